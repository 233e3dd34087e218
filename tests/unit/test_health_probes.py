"""The probes' words for what went wrong (redlab.health.probes): errno mapping, HTTP
responses cut short or malformed, served by real sockets on 127.0.0.1, and the check
wrapper that never raises.  test_healthcheck.py covers the probes against whole servers."""

import errno
import socket
import threading
from types import SimpleNamespace

import pytest

from redlab.health import probes

LO = "127.0.0.1"


@pytest.mark.parametrize("exc, detail", [
    (socket.timeout("timed out"), "timeout after 0.5s"),
    (TimeoutError(), "timeout after 0.5s"),
    (OSError(errno.ETIMEDOUT, "Connection timed out"), "timeout after 0.5s"),
    (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "connection refused"),
    (OSError(errno.EHOSTUNREACH, "No route to host"), "no route to host"),
    (OSError(errno.ENETUNREACH, "Network is unreachable"), "network unreachable"),
    (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), "connection reset"),
    (PermissionError(errno.EPERM, "Operation not permitted"), "operation not permitted"),
    (OSError(errno.EIO, "Input/output error"), "OSError: [Errno 5] Input/output error"),
])
def test_os_errors_in_a_few_words(exc, detail):
    assert probes.os_detail(exc, 0.5) == detail


# --- HTTP responses --------------------------------------------------------------------

def test_a_whole_response_is_parsed_without_waiting_for_eof():
    data = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    assert probes.parse_response(data, eof=False) == (200, b"ok")
    chunked = b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nno\r\n0\r\n\r\n"
    assert probes.parse_response(chunked, eof=False) == (503, b"no")


def test_a_partial_response_waits_for_more():
    assert probes.parse_response(b"HTTP/1.1 200 OK\r\nContent-Le", eof=False) is None
    assert probes.parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nok",
                                 eof=False) is None
    assert probes.parse_response(b"HTTP/1.0 200 OK\r\n\r\nbody without a length",
                                 eof=False) is None


def test_at_eof_a_response_ends_where_the_data_ends():
    assert probes.parse_response(b"HTTP/1.0 200 OK\r\n\r\nno length", eof=True) == \
        (200, b"no length")
    assert probes.parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nok",
                                 eof=True) == (200, b"ok")
    with pytest.raises(probes.http.client.HTTPException, match="incomplete headers"):
        probes.parse_response(b"HTTP/1.1 200 OK\r\n", eof=True)


@pytest.fixture
def canned():
    """A server on 127.0.0.1 that reads a request, sends ``canned.reply`` and closes."""
    listener = socket.socket()
    listener.bind((LO, 0))
    listener.listen(4)
    state = SimpleNamespace(port=listener.getsockname()[1], reply=b"")

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                conn.sendall(state.reply)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield state
    listener.shutdown(socket.SHUT_RDWR)           # wakes the accept() (close alone does not)
    listener.close()
    thread.join(5)


@pytest.mark.parametrize("reply, detail", [
    (b"", "bad HTTP response: incomplete headers"),
    (b"HTTP/1.1 200 OK\r\n", "bad HTTP response: incomplete headers"),
    (b"hello\r\n\r\n", "bad HTTP response: hello\r\n"),            # http.client's words
    (b"HTTP/1.1 302 Found\r\nLocation: /\r\nContent-Length: 0\r\n\r\n", "HTTP 302, expected 200"),
])
def test_http_failures_say_what_came_back(canned, reply, detail):
    canned.reply = reply
    ok, got, latency = probes.check_http(LO, canned.port, "/", 1.0)
    assert (ok, got) == (False, detail)


def test_an_http_body_cut_short_still_counts_its_status(canned):
    canned.reply = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nall good"
    ok, detail, latency = probes.check_http(LO, canned.port, "/", 1.0, body="good")
    assert ok and detail.startswith("HTTP 200 in ") and latency is not None


# --- one check as the checker runs it ---------------------------------------------------

def _hc(**settings):
    base = dict(type="tcp", port=None, timeout=0.5, path="/health", status=200, body=None)
    return SimpleNamespace(**{**base, **settings})


@pytest.fixture
def closed_port():
    sock = socket.socket()
    sock.bind((LO, 0))               # bound, not listening: connections are refused
    yield sock.getsockname()[1]
    sock.close()


def test_a_check_names_its_type_and_ends_at_the_clock(closed_port):
    web = SimpleNamespace(name="web1", ip=LO, port=closed_port)
    result = probes.check("tcp", web, _hc(), clock=lambda: 1234.5)
    assert (result.server, result.ok, result.detail, result.at, result.latency) == \
        ("web1", False, "tcp: connection refused", 1234.5, None)
    result = probes.check("http", web, _hc(), clock=lambda: 1.0)
    assert result.detail == "http: connection refused"


def test_a_checks_port_overrides_the_servers(canned, closed_port):
    canned.reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    web = SimpleNamespace(name="web1", ip=LO, port=closed_port)
    result = probes.check("http", web, _hc(port=canned.port))
    assert result.ok, result.detail


def test_a_bug_in_a_probe_is_a_failed_check_not_a_dead_thread(canned):
    canned.reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    web = SimpleNamespace(name="web1", ip=LO, port=canned.port)
    result = probes.check("http", web, _hc(status="200"))     # a str: "%d" fails
    assert not result.ok
    assert result.detail.startswith("http: error: TypeError: ")
