"""The probe's client side: runs *inside* an emulated client host.

    python -m redlab.probe_agent --url http://10.0.0.100/ --out samples.jsonl
    python -m redlab.probe_agent --kind tcp --host 10.0.0.11 --port 80 --schedule fixed ...
    python -m redlab.probe_agent --kind icmp --host 10.0.0.11 --schedule fixed ...
    python -m redlab.probe_agent --kind dns --server 10.0.0.53 --query www.lab.example ...

Sends one real request every ``--interval`` seconds, bounded by ``--max-requests`` and
``--max-seconds``, and appends one JSON line per request: ``seq``, send time ``t``, end
time, ``ok``, ``status``, ``server`` (who answered), ``error`` (``"Kind: detail"``) and
the start of the ``body``.  It stops on SIGTERM after the requests in flight.

The kinds, each bounded by ``--timeout`` as a whole:

- ``http``: a GET on a new TCP connection (``Connection: close``); ok = HTTP 200;
  ``server`` = the ``X-Served-By`` header;
- ``tcp``: a TCP connect, then close; ok = connected;
- ``icmp``: one echo request on a raw socket (root), matched by identifier and sequence;
  ok = its echo reply; an ICMP error about it (host unreachable...) fails it at once;
- ``dns``: one UDP query (dnspython); ok = NOERROR with an answer of the asked type;
  ``status`` = the rcode; ``server`` = the answers, sorted, joined by ",".

Two schedules:

- ``sequential`` (the default): the next request leaves ``interval`` after the previous
  one *ended*.  During an outage of timeouts it sends one request per timeout, not per
  interval (2/s instead of 20/s with 0.5 s and 50 ms): what many labs were tuned for.
- ``fixed``: a request leaves every ``interval`` whether or not earlier ones answered
  (open loop, like RFC 6413's offered load), each on a worker of a bounded pool, so
  ``requests lost x interval`` measures an outage.  A request that finds every worker
  busy is recorded as sent and failed (``ProbeOverload``), never skipped; a schedule
  that fell behind (the host's CPU was busy) sends the requests it owes at once.  Lines
  are written as requests end, so a request that times out comes after later ones.

Stdlib only, but for dnspython, imported for ``dns`` probes alone: it starts fast in any host.
"""

import argparse
import errno
import http.client
import json
import math
import os
import random
import signal
import socket
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

KINDS = ("http", "tcp", "icmp", "dns")
SCHEDULES = ("sequential", "fixed")

_stop = False


def _on_term(signum, frame):
    global _stop
    _stop = True


# ---------------------------------------------------------------------------------------
# one request of each kind: a dict of ok, status, server, error, body
# ---------------------------------------------------------------------------------------

# an OSError without a subclass of its own, named the way the other kinds name it
_ERRNO_KINDS = {errno.EHOSTUNREACH: "HostUnreachable", errno.ENETUNREACH: "NetworkUnreachable"}


def answer(ok, status=None, server=None, error=None, body=""):
    return dict(ok=ok, status=status, server=server, error=error, body=body)


def failed(exc_or_kind, detail=None):
    """A failed request: ``error`` is ``"Kind: detail"``; an exception gives its type's name
    (``TimeoutError``, ``ConnectionRefusedError``; a bare OSError its errno's meaning)."""
    if isinstance(exc_or_kind, BaseException):
        kind = type(exc_or_kind).__name__
        if type(exc_or_kind) is OSError:
            kind = _ERRNO_KINDS.get(exc_or_kind.errno,
                                    errno.errorcode.get(exc_or_kind.errno, kind))
        detail = str(exc_or_kind) if detail is None else detail
    else:
        kind = exc_or_kind
    return answer(False, error="%s: %s" % (kind, detail) if detail else kind)


def _left(deadline):
    """Seconds until ``deadline`` (a time.monotonic()), for a socket timeout; a
    TimeoutError when it has passed, so that one request never outlives its timeout."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    return left


def http_get(host, port, path, timeout):
    """GET ``path`` on a new connection; the whole request within ``timeout``."""
    deadline = time.monotonic() + timeout
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.connect()
        sock = conn.sock
        sock.settimeout(_left(deadline))
        conn.request("GET", path, headers={"Connection": "close", "User-Agent": "redlab-probe"})
        response = conn.getresponse()
        sock.settimeout(_left(deadline))
        body = response.read(200)
        return answer(response.status == 200, status=response.status,
                      server=response.getheader("X-Served-By"),
                      body=body.decode(errors="replace").strip()[:80])
    except (OSError, http.client.HTTPException) as exc:
        return failed(exc)
    finally:
        conn.close()


def tcp_connect(host, port, timeout):
    """A TCP handshake with ``host:port`` within ``timeout``, then close."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return answer(True)
    except OSError as exc:
        return failed(exc)


# --- ICMP echo (RFC 792), built and parsed here: 8 bytes of header and a checksum ---------

ECHO_REPLY, UNREACHABLE, ECHO_REQUEST, TIME_EXCEEDED = 0, 3, 8, 11
_UNREACHABLE_KINDS = {0: "NetworkUnreachable", 1: "HostUnreachable"}
PAYLOAD = b"redlab-probe" + bytes(range(44))           # 56 bytes, as ping sends


def checksum(data):
    """The Internet checksum (RFC 1071): one's complement of the one's complement sum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(ident, seq, payload=PAYLOAD):
    """An ICMP echo request: type 8, code 0, checksum, identifier, sequence, payload."""
    header = struct.pack("!BBHHH", ECHO_REQUEST, 0, 0, ident & 0xFFFF, seq & 0xFFFF)
    return struct.pack("!BBHHH", ECHO_REQUEST, 0, checksum(header + payload),
                       ident & 0xFFFF, seq & 0xFFFF) + payload


def _ip_payload(packet):
    """(source, destination, protocol, what follows the IPv4 header), or None."""
    if len(packet) < 20 or packet[0] >> 4 != 4:
        return None
    length = (packet[0] & 0x0F) * 4
    return (socket.inet_ntoa(packet[12:16]), socket.inet_ntoa(packet[16:20]), packet[9],
            packet[length:])


def parse_icmp(packet):
    """What an IPv4 packet from a raw ICMP socket says about one of our echo requests:
    ``(type, code, ident, seq, about)`` where ``about`` is the address the echo request
    went to (the reply's source; for an ICMP error, the quoted packet's destination), or
    None when it is about no echo request (or is not ICMP at all)."""
    outer = _ip_payload(packet)
    if outer is None or outer[2] != socket.IPPROTO_ICMP or len(outer[3]) < 8:
        return None
    source, _, _, icmp = outer
    kind, code = icmp[0], icmp[1]
    if kind == ECHO_REPLY:
        ident, seq = struct.unpack("!HH", icmp[4:8])
        return kind, code, ident, seq, source
    if kind in (UNREACHABLE, TIME_EXCEEDED):
        quoted = _ip_payload(icmp[8:])          # our request's IP header + its first 8 bytes
        if quoted is None or quoted[2] != socket.IPPROTO_ICMP or len(quoted[3]) < 8 \
                or quoted[3][0] != ECHO_REQUEST:
            return None
        ident, seq = struct.unpack("!HH", quoted[3][4:8])
        return kind, code, ident, seq, quoted[1]
    return None


def icmp_failure(kind, code, reporter):
    if kind == TIME_EXCEEDED:
        return failed("TimeExceeded", "%s says the TTL ran out" % reporter)
    return failed(_UNREACHABLE_KINDS.get(code, "DestinationUnreachable"),
                  "%s says ICMP destination unreachable, code %d" % (reporter, code))


def icmp_echo(address, timeout, ident, seq):
    """One echo request to ``address``; its reply (or an ICMP error about it) within
    ``timeout``.  Every raw ICMP socket sees every ICMP packet: match ident and seq."""
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
            sock.sendto(echo_request(ident, seq), (address, 0))
            while True:
                sock.settimeout(_left(deadline))
                packet, (reporter, _) = sock.recvfrom(4096)
                seen = parse_icmp(packet)
                if seen is None or seen[2:] != (ident & 0xFFFF, seq & 0xFFFF, address):
                    continue
                if seen[0] == ECHO_REPLY:
                    return answer(True, server=reporter)
                return icmp_failure(seen[0], seen[1], reporter)
    except OSError as exc:
        return failed(exc)


# --- DNS -----------------------------------------------------------------------------------

def dns_answer(response, qtype):
    """ok / failed for a DNS response: NOERROR with at least one record of ``qtype``;
    ``server`` = those records, sorted, joined by ","."""
    import dns.rcode
    import dns.rdatatype
    rcode = dns.rcode.to_text(response.rcode())
    if rcode != "NOERROR":
        return dict(failed(rcode, "the server answered %s" % rcode), status=rcode)
    wanted = dns.rdatatype.from_text(qtype)
    records = sorted(rdata.to_text() for rrset in response.answer if rrset.rdtype == wanted
                     for rdata in rrset)
    if not records:
        return dict(failed("NoAnswer", "NOERROR without a %s record" % qtype), status=rcode)
    return answer(True, status=rcode, server=",".join(records))


def dns_query(server, query, qtype, timeout, port=53):
    """One UDP query to ``server``:``port`` within ``timeout``.  The socket is connected, so a
    server whose port is closed fails at once (ConnectionRefusedError), as dig says."""
    import dns.exception
    import dns.message
    import dns.query
    message = dns.message.make_query(query, qtype)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect((server, port))
            sock.setblocking(False)            # dnspython waits with its own deadline
            response = dns.query.udp(message, server, timeout=timeout, port=port, sock=sock,
                                     ignore_unexpected=True)
    except dns.exception.Timeout:
        return failed("TimeoutError", "no answer from %s in %g s" % (server, timeout))
    except (OSError, dns.exception.DNSException) as exc:
        return failed(exc)
    return dns_answer(response, qtype)


def sender(args):
    """``send(seq, timeout) -> answer`` for the probe kind of the command line."""
    if args.kind == "http":
        url = urlsplit(args.url)
        host, port, path = url.hostname, url.port or 80, url.path or "/"
        return lambda seq, timeout: http_get(host, port, path, timeout)
    if args.kind == "tcp":
        return lambda seq, timeout: tcp_connect(args.host, args.port, timeout)
    if args.kind == "icmp":
        ident = os.getpid() & 0xFFFF
        return lambda seq, timeout: icmp_echo(args.host, timeout, ident, seq)
    return lambda seq, timeout: dns_query(args.server, args.query, args.qtype, timeout)


# ---------------------------------------------------------------------------------------
# schedules
# ---------------------------------------------------------------------------------------

def paced(interval, max_requests, max_seconds, stopped, jitter=0.0, wait=time.sleep,
          catch_up=False):
    """Yield 0, 1, 2, ... one every ``interval`` s (each gap varied by +-``jitter`` of it),
    until ``max_requests``, ``max_seconds`` or ``stopped()``.  A slow step shifts the
    schedule instead of bursting to catch up; with ``catch_up``, the steps it delayed
    follow at once, so that ``max_seconds`` holds one step per interval."""
    started = time.monotonic()
    next_at = started
    for seq in range(max_requests):
        if stopped() or time.monotonic() - started > max_seconds:
            return
        yield seq
        next_at += interval * (random.uniform(1 - jitter, 1 + jitter) if jitter else 1)
        delay = next_at - time.monotonic()
        if delay > 0:
            wait(delay)
        elif not catch_up:
            next_at = time.monotonic()


def record(seq, t, end, result):
    return dict(seq=seq, t=t, end=end, **result)


def run_sequential(send, write, interval, timeout, max_requests, max_seconds, stopped):
    """The next request leaves ``interval`` after the previous one ended."""
    for seq in paced(interval, max_requests, max_seconds, stopped):
        t = time.time()
        result = send(seq, timeout)
        write(record(seq, t, time.time(), result))


# how late the schedule may fall (its thread kept off the CPU) and still send what it owes
# on free workers: under a loaded CI run (4 test workers and a qemu guest on 2 cores) a
# fixed ICMP probe's catch-up found all 12 workers of 0.05/0.5 s busy in an outage and
# wrote ProbeOverload for requests that would have timed out like their neighbours
LATE = 0.5


def workers_for(interval, timeout):
    """Enough workers for every request of one timeout in flight, and for the requests a
    schedule :data:`LATE` seconds late owes (two at least) to spare."""
    return math.ceil(timeout / interval) + max(2, math.ceil(LATE / interval))


def run_fixed(send, write, interval, timeout, max_requests, max_seconds, stopped,
              workers=None):
    """A request every ``interval`` whatever the earlier ones do, each on a worker of a
    pool of ``workers``; with every worker busy, the request is written as failed
    (``ProbeOverload``) so that the count of requests stays one per interval.  Returns
    after the requests in flight ended (each bounded by ``timeout``)."""
    workers = workers or workers_for(interval, timeout)
    free = threading.Semaphore(workers)

    def one(seq):
        try:
            t = time.time()
            try:
                result = send(seq, timeout)
            except Exception as exc:       # a worker's error would vanish in its future:
                result = failed(exc)       # record it, never leave a hole in the seqs
            write(record(seq, t, time.time(), result))
        finally:
            free.release()

    with ThreadPoolExecutor(workers, thread_name_prefix="probe") as pool:
        for seq in paced(interval, max_requests, max_seconds, stopped, catch_up=True):
            if free.acquire(blocking=False):
                pool.submit(one, seq)
            else:
                t = time.time()
                write(record(seq, t, t, failed(
                    "ProbeOverload", "all %d workers were busy; raise --workers" % workers)))


def writer(out):
    """``write(record)``: one JSON line per call, whole, whatever thread calls it."""
    lock = threading.Lock()

    def write(data):
        line = json.dumps(data) + "\n"
        with lock:
            out.write(line)
    return write


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m redlab.probe_agent")
    parser.add_argument("--kind", choices=KINDS, default="http")
    parser.add_argument("--url", help="http: the URL to GET")
    parser.add_argument("--host", help="tcp, icmp: the target's IPv4 address")
    parser.add_argument("--port", type=int, help="tcp: the port to connect to")
    parser.add_argument("--server", help="dns: the server's IPv4 address")
    parser.add_argument("--query", help="dns: the name to look up")
    parser.add_argument("--qtype", default="A", help="dns: the record type (default A)")
    parser.add_argument("--schedule", choices=SCHEDULES, default="sequential")
    parser.add_argument("--workers", type=int, help="fixed: requests in flight at most "
                        "(default: timeout / interval, rounded up, + 2)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--interval", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=0.5)
    parser.add_argument("--max-requests", type=int, default=2000)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    needs = {"http": ["url"], "tcp": ["host", "port"], "icmp": ["host"],
             "dns": ["server", "query"]}[args.kind]
    missing = ["--" + name for name in needs if getattr(args, name) is None]
    if missing:
        parser.error("a %s probe needs %s" % (args.kind, " and ".join(missing)))
    if args.kind == "dns":
        try:
            import dns.message
            dns.message.make_query(args.query, args.qtype)
        except Exception as exc:
            parser.error("--query %s --qtype %s is no DNS question (%s)"
                         % (args.query, args.qtype, exc))
    return args


def main(argv=None):
    args = parse_args(argv)
    run = run_fixed if args.schedule == "fixed" else run_sequential
    extra = {"workers": args.workers} if args.schedule == "fixed" else {}
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    with open(args.out, "a", buffering=1) as out:
        run(sender(args), writer(out), args.interval, args.timeout, args.max_requests,
            args.max_seconds, lambda: _stop, **extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
