"""One health check of one real server: an ICMP echo, a TCP connect or an HTTP GET.

Like keepalived's checkers or HAProxy's ``check``, the probes leave from the host the
checker runs in and cross the emulated network.  Each ``check_*`` function takes a
target and a timeout and returns ``(ok, detail, latency)``: ``detail`` says in a few
words what was seen ("connection refused", "HTTP 500, expected 200"), ``latency`` is
the time to the answer in seconds (None when there was none).  :func:`check` runs the
one a health check asks for and wraps it into a :class:`CheckResult`; it never raises.
"""

import errno
import http.client
import io
import itertools
import os
import select
import socket
import threading
import time

from controllers.health import CheckResult
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


def os_detail(exc, timeout):
    """The words for an OSError of a probe bounded by ``timeout`` s: a timeout says how
    long was waited, known errnos get their short name, anything else its class and text."""
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout after %gs" % timeout
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    detail = _ERRNO_DETAILS.get(getattr(exc, "errno", None))
    if detail == "timeout":
        return "timeout after %gs" % timeout
    return detail or "%s: %s" % (type(exc).__name__, exc)


def ms(seconds):
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
    """Per process and thread: checks of two servers running at once never take each
    other's replies."""
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
            return False, os_detail(exc, timeout), None
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
                return True, "echo reply in %s" % ms(latency), latency
            if verdict is not None:
                return False, verdict, None
    except OSError as exc:
        return False, os_detail(exc, timeout), None
    finally:
        sock.close()


# --- TCP ----------------------------------------------------------------------------

def check_tcp(ip, port, timeout):
    """A TCP connect to ``ip:port``.  Returns ``(ok, detail, latency)``."""
    started = time.monotonic()
    try:
        sock = socket.create_connection((ip, port), timeout=timeout)
    except OSError as exc:
        return False, os_detail(exc, timeout), None
    latency = time.monotonic() - started
    sock.close()
    return True, "connected in %s" % ms(latency), latency


# --- HTTP ---------------------------------------------------------------------------

class _Bytes:
    """Just enough of a socket for :class:`http.client.HTTPResponse` to parse bytes."""

    def __init__(self, data):
        self.data = data

    def makefile(self, mode, *args, **kwargs):
        return io.BytesIO(self.data)


def parse_response(data, eof):
    """Return ``(status, body)`` once ``data`` holds a whole response, else None.

    A server that keeps the connection open after a whole response (a length or the
    last chunk) is not waited for; a body without a length ends at EOF or at
    :data:`BODY_LIMIT` bytes.
    """
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
            parsed = parse_response(data, eof=not chunk)
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
        return False, os_detail(exc, timeout), None
    except http.client.HTTPException as exc:
        return False, "bad HTTP response: %s" % (str(exc) or type(exc).__name__), None
    if got != status:
        return False, "HTTP %d, expected %d" % (got, status), latency
    if body is not None and body.encode() not in text:
        return False, "HTTP %d but the body lacks %r" % (got, body), latency
    return True, "HTTP %d in %s" % (got, ms(latency)), latency


# --- one check as the checker runs it -------------------------------------------------

def _probe(check_type, server, hc):
    port = server.port if hc.port is None else hc.port
    if check_type == "icmp":
        return check_icmp(server.ip, hc.timeout)
    if check_type == "tcp":
        return check_tcp(server.ip, port, hc.timeout)
    return check_http(server.ip, port, hc.path or "/", hc.timeout, hc.status, hc.body)


def check(check_type, server, hc, clock=time.time):
    """One ``check_type`` check of real server ``server`` (``.name``, ``.ip``, ``.port``)
    with the settings of health check ``hc``, as a :class:`CheckResult` whose detail
    starts with the type ("http: HTTP 500, expected 200") and whose time is when it
    ended.  Never raises: a bug in a probe must not stop the checking."""
    try:
        ok, detail, latency = _probe(check_type, server, hc)
    except Exception as exc:
        ok, detail, latency = False, "error: %s: %s" % (type(exc).__name__, exc), None
    return CheckResult(server=server.name, ok=ok, detail="%s: %s" % (check_type, detail),
                       at=clock(), latency=latency)
