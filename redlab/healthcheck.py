"""The health checker: runs *inside* the emulated director host.

    python -m redlab.healthcheck --service svc.yaml \\
        --socket RUN/controller/control.sock --log RUN/director/health.jsonl \\
        [--type icmp|tcp|http] [--max-seconds N]

Like keepalived's checkers or HAProxy's ``check``, its probes leave from the director
and cross the emulated network to each real server: an ICMP echo, a TCP connect, or
a real HTTP GET.  One thread per real server checks every ``interval`` (the first
check at once) and feeds :class:`controllers.health.HealthState` (``rise``/``fall``).

Every result is appended to ``--log`` as one JSON line
``{"t", "server", "ok", "detail", "latency", "type"}``; every state change as
``{"t", "event": "health", "server", "state", "reason", "checks", "type"}`` and is sent
to the controller's Unix stream socket as one JSON line
``{"cmd": "health", "server", "state", "reason", "t", "type"}`` (the controller answers
one line, read and ignored).  Only state changes are sent, never single checks.  When
the socket is missing or the connection breaks the checker keeps checking and
logging, reconnects with a short backoff and then re-sends every checked server's
current state (the controller may have restarted).  Checks of one server never
overlap: one that takes longer than ``interval`` delays the next.

Timestamps are ``time.time()``: the wall clock is shared by every namespace, so
these lines line up with probe samples, fault times and controller events.  Stdlib
(plus the controller's pure-Python health and service modules): it starts fast in
any host.  It stops on SIGTERM/SIGINT or after ``--max-seconds``.
"""

import argparse
import errno
import http.client
import io
import itertools
import json
import os
import queue
import select
import signal
import socket
import sys
import threading
import time

from controllers.health import DOWN, UP, CheckResult, HealthState  # noqa: F401 (re-exported)
from redlab import probe_agent

TYPES = ("icmp", "tcp", "http")
BODY_LIMIT = 64 * 1024

_ERRNO_DETAILS = {
    errno.ECONNREFUSED: "connection refused",
    errno.EHOSTUNREACH: "no route to host",
    errno.ENETUNREACH: "network unreachable",
    errno.ECONNRESET: "connection reset",
    errno.ETIMEDOUT: "timeout",
    errno.EPERM: "operation not permitted",
    errno.EACCES: "permission denied",
}


def _os_detail(exc, timeout):
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout after %gs" % timeout
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    detail = _ERRNO_DETAILS.get(getattr(exc, "errno", None))
    if detail == "timeout":
        return "timeout after %gs" % timeout
    return detail or "%s: %s" % (type(exc).__name__, exc)


def _ms(seconds):
    return "%.1f ms" % (seconds * 1000.0)


# --- ICMP ---------------------------------------------------------------------------

_UNREACH_CODES = {0: "network unreachable", 1: "host unreachable",
                  3: "port unreachable", 13: "administratively prohibited"}
_icmp_seq = itertools.count(1)
_icmp_seq_lock = threading.Lock()


def icmp_checksum(data):
    """The Internet checksum (RFC 1071) of ``data`` (the probe agent's)."""
    return probe_agent.checksum(data)


def echo_request(ident, seq, payload=b"redlab-healthcheck"):
    return probe_agent.echo_request(ident, seq, payload)


def _icmp_ident():
    return (os.getpid() ^ threading.get_ident()) & 0xFFFF


def _next_seq():
    with _icmp_seq_lock:
        return next(_icmp_seq) & 0xFFFF


def parse_icmp(packet, ip, ident, seq):
    """Classify a packet read from a raw ICMP socket (IP header included).

    Returns ``"reply"``, an unreachable detail, or None when it is not ours (the packet
    is parsed by :func:`redlab.probe_agent.parse_icmp`).
    """
    seen = probe_agent.parse_icmp(packet)
    if seen is None or seen[2:] != (ident, seq, ip):
        return None
    kind, code = seen[:2]
    if kind == probe_agent.ECHO_REPLY:
        return "reply"
    if kind == probe_agent.UNREACHABLE:
        return _UNREACH_CODES.get(code, "unreachable (code %d)" % code)
    return None


def check_icmp(ip, timeout):
    """One ICMP echo to ``ip`` over a raw socket (needs root or CAP_NET_RAW).

    Returns ``(ok, detail, latency)``; latency is the round trip in seconds.
    """
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    except PermissionError:
        return False, "permission denied (a raw ICMP socket needs root)", None
    ident, seq = _icmp_ident(), _next_seq()
    started = time.monotonic()
    deadline = started + timeout
    try:
        try:
            sock.sendto(echo_request(ident, seq), (ip, 0))
        except OSError as exc:
            return False, _os_detail(exc, timeout), None
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False, "timeout after %gs" % timeout, None
            readable, _, _ = select.select([sock], [], [], remaining)
            if not readable:
                continue
            packet, _ = sock.recvfrom(65535)
            verdict = parse_icmp(packet, ip, ident, seq)
            if verdict == "reply":
                latency = time.monotonic() - started
                return True, "echo reply in %s" % _ms(latency), latency
            if verdict is not None:
                return False, verdict, None
    except OSError as exc:
        return False, _os_detail(exc, timeout), None
    finally:
        sock.close()


# --- TCP ----------------------------------------------------------------------------

def check_tcp(ip, port, timeout):
    """A TCP connect to ``ip:port``.  Returns ``(ok, detail, latency)``."""
    started = time.monotonic()
    try:
        sock = socket.create_connection((ip, port), timeout=timeout)
    except OSError as exc:
        return False, _os_detail(exc, timeout), None
    latency = time.monotonic() - started
    sock.close()
    return True, "connected in %s" % _ms(latency), latency


# --- HTTP ---------------------------------------------------------------------------

class _Bytes:
    """Just enough of a socket for :class:`http.client.HTTPResponse` to parse bytes."""

    def __init__(self, data):
        self.data = data

    def makefile(self, mode, *args, **kwargs):
        return io.BytesIO(self.data)


def _parse_response(data, eof):
    """Return ``(status, body)`` once ``data`` holds a whole response, else None."""
    if b"\r\n\r\n" not in data and b"\n\n" not in data:
        if eof:
            raise http.client.HTTPException("incomplete headers")
        return None
    response = http.client.HTTPResponse(_Bytes(data), method="GET")
    response.begin()
    try:
        body = response.read()
    except http.client.IncompleteRead as exc:
        if eof or len(data) >= BODY_LIMIT:
            return response.status, exc.partial
        return None
    if response.length is None and not response.chunked and not eof \
            and len(data) < BODY_LIMIT:
        return None                        # no length: the body ends at EOF
    return response.status, body


def http_get(ip, port, path, timeout, host=None):
    """A real HTTP/1.1 GET (new connection, ``Connection: close``), the whole exchange
    bounded by ``timeout``.  Returns ``(status, body, latency)``; raises OSError
    (``socket.timeout`` on the deadline) or ``http.client.HTTPException``."""
    started = time.monotonic()
    deadline = started + timeout
    if host is None:
        host = ip if port == 80 else "%s:%d" % (ip, port)
    request = ("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: redlab-healthcheck\r\n"
               "Accept: */*\r\nConnection: close\r\n\r\n" % (path, host)).encode()
    sock = socket.create_connection((ip, port), timeout=timeout)
    try:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        sock.sendall(request)
        data = b""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout("timed out")
            sock.settimeout(remaining)
            chunk = sock.recv(65536)
            data += chunk
            parsed = _parse_response(data, eof=not chunk)
            if parsed is not None:
                return parsed[0], parsed[1], time.monotonic() - started
            if not chunk:
                raise http.client.HTTPException("connection closed before a response")
    finally:
        sock.close()


def check_http(ip, port, path, timeout, status=200, body=None, host=None):
    """GET ``path``: ok when the status is ``status`` and, if ``body`` is given, the
    body contains it.  Returns ``(ok, detail, latency)``."""
    try:
        got, text, latency = http_get(ip, port, path, timeout, host=host)
    except OSError as exc:
        return False, _os_detail(exc, timeout), None
    except http.client.HTTPException as exc:
        return False, "bad HTTP response: %s" % (str(exc) or type(exc).__name__), None
    if got != status:
        return False, "HTTP %d, expected %d" % (got, status), latency
    if body is not None and body.encode() not in text:
        return False, "HTTP %d but the body lacks %r" % (got, body), latency
    return True, "HTTP %d in %s" % (got, _ms(latency)), latency


# --- The checker --------------------------------------------------------------------

def _log(message):
    print("healthcheck: %s" % message, file=sys.stderr, flush=True)


class ControllerLink:
    """The connection to the controller's Unix socket, owned by one thread.

    ``send`` queues a message.  The thread connects (retrying with backoff), and on
    every (re)connection first sends ``snapshot()`` - the current state of every
    checked server - then the queued messages, reading and ignoring one reply line each.
    A broken connection is dropped: the next connection's snapshot covers what was
    lost.  ``lock`` is the checker's lock: the snapshot and clearing the queue happen
    under it, so a queued change is never older than the snapshot sent before it.
    """

    def __init__(self, path, snapshot, lock, stop, reply_timeout=2.0,
                 backoff=(0.1, 1.0), on_servers=None, sync_interval=0.5):
        self.on_servers = on_servers
        self.sync_interval = sync_interval
        self.synced_at = 0.0
        self.path = path
        self.snapshot = snapshot
        self.lock = lock
        self.stop = stop
        self.reply_timeout = reply_timeout
        self.backoff = backoff
        self.queue = queue.Queue()
        self.sock = None
        self.connected = threading.Event()
        self.connections = 0
        self.thread = threading.Thread(target=self._run, name="healthcheck-controller",
                                       daemon=True)

    def start(self):
        self.thread.start()
        return self

    def send(self, message):
        self.queue.put(message)

    def _run(self):
        delay = self.backoff[0]
        reported = False
        while not self.stop.is_set():
            if self.sock is None:
                try:
                    self._connect()
                except OSError as exc:
                    if not reported:
                        _log("controller socket %s: %s; retrying" % (self.path, exc))
                        reported = True
                    self._drop()
                    self.stop.wait(delay)
                    delay = min(delay * 2, self.backoff[1])
                    continue
                delay, reported = self.backoff[0], False
            try:
                if self.on_servers and time.monotonic() - self.synced_at >= self.sync_interval:
                    self._sync()
                try:
                    message = self.queue.get(timeout=0.1)
                except queue.Empty:
                    self._check_alive()
                    continue
                self._exchange(message)
            except OSError as exc:
                _log("controller connection lost: %s; reconnecting" % exc)
                self._drop()

    def _connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock = sock
        sock.settimeout(self.reply_timeout)
        sock.connect(self.path)
        with self.lock:
            while True:
                try:
                    self.queue.get_nowait()
                except queue.Empty:
                    break
            messages = self.snapshot()
        for message in messages:
            self._exchange(message)
        self.connections += 1
        self.connected.set()
        _log("connected to the controller at %s (sent %d states)" % (self.path, len(messages)))

    def _exchange(self, message):
        self.sock.sendall((json.dumps(message) + "\n").encode())
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("the controller closed the connection")
            reply += chunk
        try:
            return json.loads(reply)
        except ValueError:
            return None

    def _sync(self):
        """Ask the controller for its real servers (``redlab lb add/remove`` change them)."""
        self.synced_at = time.monotonic()
        reply = self._exchange({"cmd": "servers"})
        if isinstance(reply, dict) and reply.get("ok") and "servers" in reply:
            self.on_servers(reply["servers"])

    def _check_alive(self):
        readable, _, _ = select.select([self.sock], [], [], 0)
        if readable and not self.sock.recv(4096):       # EOF: the controller went away
            raise ConnectionResetError("the controller closed the connection")

    def _drop(self):
        self.connected.clear()
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None

    def close(self):
        self._drop()


class Checker:
    """Checks every real server of ``service`` from one thread each.

    service: a ``controllers.service.VirtualService`` (``.real_servers``,
    ``.health_check``).  check_type overrides the service's check type.
    """

    def __init__(self, service, socket_path=None, log_path=None, check_type=None):
        self.service = service
        self.hc = service.health_check
        self.type = check_type or self.hc.type
        if self.type not in TYPES:
            raise ValueError("unknown health check type %r (one of %s)"
                             % (self.type, ", ".join(TYPES)))
        self.servers = list(service.real_servers)
        self.state = HealthState([rs.name for rs in self.servers], rise=self.hc.rise,
                                 fall=self.hc.fall)
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.changed_at = {}
        self.reasons = {}
        self.log_path = log_path
        self._log_file = None
        if log_path:
            folder = os.path.dirname(os.path.abspath(log_path))
            os.makedirs(folder, exist_ok=True)
            self._log_file = open(log_path, "a", buffering=1)
        self.link = (ControllerLink(socket_path, self._snapshot, self.lock, self.stop_event,
                                    on_servers=self.sync)
                     if socket_path else None)
        self.threads = []

    # checks
    def check(self, rs):
        """Run one check of real server ``rs``; never raises."""
        hc = self.hc
        port = rs.port if hc.port is None else hc.port
        try:
            if self.type == "icmp":
                ok, detail, latency = check_icmp(rs.ip, hc.timeout)
            elif self.type == "tcp":
                ok, detail, latency = check_tcp(rs.ip, port, hc.timeout)
            else:
                ok, detail, latency = check_http(rs.ip, port, hc.path or "/", hc.timeout,
                                                 hc.status, hc.body)
        except Exception as exc:                          # a bug must not stop checking
            ok, detail, latency = False, "error: %s: %s" % (type(exc).__name__, exc), None
        return CheckResult(server=rs.name, ok=ok, detail="%s: %s" % (self.type, detail),
                           at=time.time(), latency=latency)

    def record(self, result):
        """Log ``result``, feed it to the state; log and send a state change."""
        with self.lock:
            if not any(rs.name == result.server for rs in self.servers):
                return None                      # removed while its check was running
            self._write({"t": result.at, "server": result.server, "ok": result.ok,
                         "detail": result.detail, "latency": result.latency,
                         "type": self.type})
            transition = self.state.record(result)
            if transition is None:
                return None
            # the cause in a few words; the count is in "checks" (HealthState's own
            # reason, "2 failed checks in a row (fall 2): ...", stays in its history)
            reason = result.detail
            at = transition.at or result.at
            self.changed_at[result.server] = at
            self.reasons[result.server] = reason
            self._write({"t": at, "event": "health", "server": transition.server,
                         "state": transition.state, "reason": reason,
                         "checks": transition.checks, "type": self.type})
            if self.link is not None:
                self.link.send(self._message(transition.server, transition.state, reason, at))
            return transition

    def _message(self, server, state, reason, at):
        return {"cmd": "health", "server": server, "state": state, "reason": reason,
                "t": at, "type": self.type}

    def _snapshot(self):
        """The current state of every checked server as controller messages (lock held)."""
        messages = []
        for rs in self.servers:
            last = self.state.last(rs.name)
            if last is None:
                continue            # never checked: the controller's default holds
            reason = self.reasons.get(rs.name) or last.detail
            messages.append(self._message(rs.name, self.state.state(rs.name), reason,
                                          self.changed_at.get(rs.name, time.time())))
        return messages

    def _write(self, record):
        if self._log_file is not None and not self._log_file.closed:
            self._log_file.write(json.dumps(record) + "\n")

    def sync(self, servers):
        """Follow the controller's list of real servers: check added ones, drop removed ones.

        An added server starts DOWN (keepalived's ``alpha``): it joins after ``rise``
        passing checks, and the controller keeps it out until then.
        """
        from controllers.service import RealServerSpec
        with self.lock:
            wanted = {s["name"]: s for s in servers}
            current = {rs.name for rs in self.servers}
            removed = current - set(wanted)
            for name in removed:
                self.servers = [rs for rs in self.servers if rs.name != name]
                self.state.remove(name)
                self._write({"t": time.time(), "event": "removed", "server": name})
            added = [RealServerSpec(name=s["name"], ip=s["ip"], port=int(s["port"]), weight=1)
                     for name, s in wanted.items() if name not in current]
            for rs in added:
                self.servers.append(rs)
                self.state.add(rs.name, DOWN)
                self._write({"t": time.time(), "event": "added", "server": rs.name})
        for rs in added:
            self._start_thread(rs)
        return added, removed

    def _following(self, rs):
        with self.lock:
            return any(s is rs for s in self.servers)

    def _loop(self, rs):
        interval = max(float(self.hc.interval), 0.01)
        next_at = time.monotonic()
        while not self.stop_event.is_set() and self._following(rs):
            result = self.check(rs)
            if self.stop_event.is_set() or not self._following(rs):
                break
            self.record(result)
            next_at += interval
            delay = next_at - time.monotonic()
            if delay <= 0:
                next_at, delay = time.monotonic(), 0
            self.stop_event.wait(delay)

    # lifecycle
    def start(self):
        if self.link is not None:
            self.link.start()
        for rs in list(self.servers):
            self._start_thread(rs)
        return self

    def _start_thread(self, rs):
        thread = threading.Thread(target=self._loop, args=(rs,), daemon=True,
                                  name="healthcheck-%s" % rs.name)
        thread.start()
        self.threads.append(thread)

    def stop(self, timeout=None):
        """Stop checking, wait briefly for checks in flight, flush and close the log."""
        self.stop_event.set()
        wait = self.hc.timeout + 0.5 if timeout is None else timeout
        deadline = time.monotonic() + wait
        for thread in self.threads + ([self.link.thread] if self.link else []):
            if thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))
        if self.link is not None:
            self.link.close()
        with self.lock:
            if self._log_file is not None and not self._log_file.closed:
                self._log_file.flush()
                self._log_file.close()

    def run(self, max_seconds=None, stopping=lambda: False):
        """Check until ``stopping()`` is true (polled every 0.1 s: a signal handler
        sets a flag, it must not take the locks of ``stop_event``), :meth:`stop` is
        called or ``max_seconds`` have passed."""
        self.start()
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        try:
            while not self.stop_event.is_set() and not stopping():
                remaining = 0.1 if deadline is None else deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.stop_event.wait(min(remaining, 0.1))
        finally:
            self.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m redlab.healthcheck")
    parser.add_argument("--service", required=True, help="the virtual service file (YAML)")
    parser.add_argument("--socket", help="the controller's Unix socket (omit: log only)")
    parser.add_argument("--log", help="append results and state changes here (JSON lines)")
    parser.add_argument("--type", choices=TYPES, help="override the service's check type")
    parser.add_argument("--max-seconds", type=float)
    args = parser.parse_args(argv)

    from controllers.service import load_service
    try:
        service = load_service(args.service)
        checker = Checker(service, socket_path=args.socket, log_path=args.log,
                          check_type=args.type)
    except OSError as exc:          # load_service reports its own OSErrors as config errors
        print("healthcheck: cannot open the log %s: %s" % (args.log, exc.strerror or exc),
              file=sys.stderr)
        return 2
    except Exception as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        if args.service not in message:
            message = "bad service file %s: %s" % (args.service, message)
        print("healthcheck: %s" % message, file=sys.stderr)
        return 2

    signals = []
    signal.signal(signal.SIGTERM, lambda signum, frame: signals.append(signum))
    signal.signal(signal.SIGINT, lambda signum, frame: signals.append(signum))
    checker.run(max_seconds=args.max_seconds, stopping=lambda: bool(signals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
