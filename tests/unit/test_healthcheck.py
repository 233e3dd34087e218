"""redlab.healthcheck on loopback: real servers in threads, a fake controller socket.

The probes (redlab.health.probes), the threaded checker (redlab.health.checker) and the
command; the parts have their own tests (test_health_probes.py, test_health_roster.py,
test_health_link.py).

The servers: HTTP answering 200 "ok" on /health, HTTP answering 500, a listener that
never accept()s (a hung server: the kernel completes the handshake into the backlog,
nothing ever answers) and a closed port.  No Mininet, no root except for ICMP.
"""

import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from redlab.health import probes
from redlab.health.checker import Checker
from redlab.health.probes import check_http, check_icmp, check_tcp
from redlab.wait import wait_until

REPO = Path(__file__).resolve().parents[2]
LO = "127.0.0.1"


# --- servers -------------------------------------------------------------------------

def _handler(status, body):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code, text = (status, body) if self.path == "/health" else (404, "not found")
            data = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass
    return Handler


class WebServer:
    """An HTTP server in a thread that can be stopped and started again on its port."""

    def __init__(self, status=200, body="ok", port=0):
        self.status, self.body, self.port = status, body, port
        self.server = None

    def start(self):
        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.server = http.server.ThreadingHTTPServer((LO, self.port),
                                                      _handler(self.status, self.body))
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()
        return self

    def stop(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@pytest.fixture(scope="module")
def web_ok():
    server = WebServer(200, "ok").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def web_500():
    server = WebServer(500, "broken").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hung_port():
    """A listener that never accepts: connect succeeds, nothing is ever answered."""
    sock = socket.socket()
    sock.bind((LO, 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture(scope="module")
def closed_port():
    sock = socket.socket()
    sock.bind((LO, 0))               # bound, not listening: connections are refused
    yield sock.getsockname()[1]
    sock.close()


class FakeController:
    """A Unix stream socket answering one JSON line per request, like controllers.lb."""

    def __init__(self, path):
        self.path = path
        self.messages = []           # (connection number, message)
        self.connections = 0
        self.lock = threading.Lock()
        self.listener = None
        self.conns = []
        self.servers = None          # the real servers a "servers" request gets (None: none)
        self.synced = 0

    def start(self):
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(4)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()
        return self

    def _accept(self, listener):
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                number = self.connections
                self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn, number):
        try:
            for line in conn.makefile("r"):
                message = json.loads(line)
                with self.lock:
                    if message["cmd"] == "servers":
                        self.synced += 1
                        reply = {"ok": True, "servers": self.servers} \
                            if self.servers is not None else {"ok": True}
                    else:
                        self.messages.append((number, message))
                        reply = {"ok": True}
                conn.sendall((json.dumps(reply) + "\n").encode())
        except (OSError, ValueError):
            pass

    def stop(self):
        """Go away as a crashed controller would: every connection closed."""
        self.listener.close()
        with self.lock:
            for conn in self.conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self.conns = []
        os.unlink(self.path)

    def received(self, server=None, state=None, connection=None):
        with self.lock:
            return [m for n, m in self.messages
                    if (server is None or m["server"] == server)
                    and (state is None or m["state"] == state)
                    and (connection is None or n == connection)]


@pytest.fixture
def short_dir():
    folder = tempfile.mkdtemp(prefix="hc-")       # AF_UNIX paths must stay short
    yield Path(folder)
    shutil.rmtree(folder, ignore_errors=True)


def make_service(servers, check_type="http", interval=0.05, timeout=0.5, rise=2, fall=2):
    """A VirtualService (through controllers.service when there is one)."""
    check = dict(type=check_type, interval=interval, timeout=timeout, rise=rise, fall=fall,
                 path="/health", status=200)
    real = [dict(name=name, ip=LO, port=port, weight=1) for name, port in servers]
    try:
        from controllers.service import parse_service
    except ImportError:
        hc = SimpleNamespace(body=None, port=None, **check)
        return SimpleNamespace(name="web", vip="10.0.0.100", port=80, health_check=hc,
                               real_servers=[SimpleNamespace(**r) for r in real])
    return parse_service(dict(name="web", vip="10.0.0.100", port=80, health_check=check,
                              real_servers=real))


def read_log(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


# --- single checks -------------------------------------------------------------------

def test_tcp_ok_and_refused(web_ok, closed_port):
    ok, detail, latency = check_tcp(LO, web_ok.port, 1.0)
    assert ok and detail.startswith("connected") and latency >= 0
    ok, detail, latency = check_tcp(LO, closed_port, 1.0)
    assert not ok and detail == "connection refused" and latency is None


def test_http_ok(web_ok):
    ok, detail, latency = check_http(LO, web_ok.port, "/health", 1.0, 200, "ok")
    assert ok, detail
    assert detail.startswith("HTTP 200") and latency is not None


def test_http_500_fails_with_the_status(web_500):
    ok, detail, latency = check_http(LO, web_500.port, "/health", 1.0, 200, None)
    assert not ok
    assert detail == "HTTP 500, expected 200"


def test_http_wrong_path_and_body_mismatch(web_ok):
    ok, detail, _ = check_http(LO, web_ok.port, "/missing", 1.0, 200, None)
    assert (ok, detail) == (False, "HTTP 404, expected 200")
    ok, detail, _ = check_http(LO, web_ok.port, "/health", 1.0, 200, "all good")
    assert not ok and "body" in detail and "all good" in detail


def test_http_refused(closed_port):
    ok, detail, _ = check_http(LO, closed_port, "/health", 1.0)
    assert (ok, detail) == (False, "connection refused")


def test_a_hung_server_passes_tcp_but_fails_http_in_time(hung_port):
    # L4 cannot see a hang: the kernel completes the handshake for the backlog
    ok, detail, _ = check_tcp(LO, hung_port, 0.5)
    assert ok, detail
    timeout = 0.4
    started = time.monotonic()
    ok, detail, latency = check_http(LO, hung_port, "/health", timeout)
    took = time.monotonic() - started
    assert not ok and "timeout" in detail and latency is None
    assert took < timeout + 0.5


def test_http_sends_host_and_connection_close():
    """A raw server records the request and answers HTTP/1.1 without closing first."""
    listener = socket.socket()
    listener.bind((LO, 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    seen = {}
    release = threading.Event()

    def serve():
        conn, _ = listener.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(4096)
        seen["request"] = data.decode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"3\r\nall\r\n5\r\n good\r\n0\r\n\r\n")
        release.wait(5)              # keep the connection open: the parser must not wait
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        ok, detail, latency = check_http(LO, port, "/health", 2.0, 200, "all good")
    finally:
        release.set()
        thread.join(5)
        listener.close()
    assert ok, detail
    assert latency < 1.0
    request = seen["request"]
    assert request.startswith("GET /health HTTP/1.1\r\n")
    assert "\r\nHost: 127.0.0.1:%d\r\n" % port in request
    assert "\r\nConnection: close\r\n" in request


def test_icmp_checksum_and_reply_matching():
    packet = probes.echo_request(0x1234, 7, b"")
    assert probes.icmp_checksum(packet) == 0             # a valid checksum sums to 0
    # IPv4 headers (protocol 1, ICMP) from 10.0.0.11
    ip_header = bytes([0x45]) + bytes(8) + b"\x01" + bytes(2) + socket.inet_aton(
        "10.0.0.11") + bytes(4)
    reply = b"\x00\x00\x00\x00" + packet[4:]
    assert probes.parse_icmp(ip_header + reply, "10.0.0.11", 0x1234, 7) == "reply"
    assert probes.parse_icmp(ip_header + reply, "10.0.0.11", 0x1234, 8) is None
    assert probes.parse_icmp(ip_header + reply, "10.0.0.12", 0x1234, 7) is None
    assert probes.parse_icmp(ip_header + packet, "10.0.0.11", 0x1234, 7) is None
    original = bytes([0x45]) + bytes(8) + b"\x01" + bytes(6) + socket.inet_aton(
        "10.0.0.11") + packet[:8]
    unreachable = b"\x03\x01\x00\x00\x00\x00\x00\x00" + original
    assert probes.parse_icmp(ip_header + unreachable, "10.0.0.11", 0x1234, 7) \
        == "host unreachable"


@pytest.mark.skipif(os.geteuid() != 0, reason="a raw ICMP socket needs root")
def test_icmp_echo_to_loopback():
    ok, detail, latency = check_icmp(LO, 1.0)
    assert ok, detail
    assert detail.startswith("echo reply") and 0 <= latency < 1.0


@pytest.mark.skipif(os.geteuid() == 0, reason="root may open raw sockets")
def test_icmp_without_root_says_so():
    ok, detail, _ = check_icmp(LO, 0.2)
    assert not ok and "root" in detail


# --- the checker ---------------------------------------------------------------------

def test_checker_reports_down_and_up_and_resyncs_a_restarted_controller(
        web_500, short_dir):
    web1 = WebServer(200, "ok").start()
    controller = FakeController(str(short_dir / "control.sock")).start()
    log = short_dir / "health.jsonl"
    service = make_service([("web1", web1.port), ("web2", web_500.port)])
    checker = Checker(service, socket_path=controller.path, log_path=str(log)).start()
    try:
        # web2 answers 500: down after fall=2 checks, with the detail as the reason
        down2 = wait_until(lambda: controller.received("web2", "down"), 5, "web2 down")
        assert down2[0]["reason"] == "http: HTTP 500, expected 200"
        assert down2[0]["cmd"] == "health" and down2[0]["type"] == "http"
        assert not controller.received("web1", "down")

        stopped_at = time.time()
        web1.stop()
        down1 = wait_until(lambda: controller.received("web1", "down"), 5, "web1 down")
        assert down1[0]["reason"] == "http: connection refused"
        assert down1[0]["t"] >= stopped_at

        web1.start()
        up1 = wait_until(lambda: controller.received("web1", "up"), 5, "web1 back up")
        assert up1[-1]["t"] > down1[0]["t"]

        # the controller restarts: after reconnecting, every server's state is re-sent
        controller.stop()
        controller.start()
        resent = wait_until(
            lambda: (len(controller.received(connection=2)) >= 2,
                     controller.received(connection=2)), 5, "the state re-sent")
        states = {m["server"]: m["state"] for m in resent}
        assert states == {"web1": "up", "web2": "down"}
    finally:
        checker.stop()
        web1.stop()
        controller.stop()

    lines = read_log(log)
    results = [r for r in lines if "event" not in r]
    events = [r for r in lines if r.get("event") == "health"]
    assert {"t", "server", "ok", "detail", "latency", "type"} <= set(results[0])
    assert any(r["server"] == "web1" and r["ok"] for r in results)
    assert any(r["server"] == "web1" and not r["ok"] for r in results)
    assert all(not r["ok"] for r in results if r["server"] == "web2")
    assert [(e["server"], e["state"]) for e in events if e["server"] == "web1"] \
        == [("web1", "down"), ("web1", "up")]
    web2_down = next(e for e in events if e["server"] == "web2")
    assert web2_down["state"] == "down" and web2_down["checks"] == 2
    assert web2_down["reason"] == "http: HTTP 500, expected 200"
    assert web2_down["type"] == "http"
    # only state changes were sent (and re-sent states), never single checks; the
    # first connection may carry a snapshot if a check finished before it connected
    first = controller.received(connection=1)
    assert len(events) <= len(first) <= len(events) + 2 < len(results)


def test_checker_follows_the_controllers_servers(web_500, short_dir):
    """`redlab lb add/remove`: the checker checks an added server (DOWN until ``rise``
    checks pass, keepalived's alpha) and stops checking a removed one."""
    web1, web3 = WebServer(200, "ok").start(), WebServer(200, "ok").start()
    controller = FakeController(str(short_dir / "control.sock")).start()
    log = short_dir / "health.jsonl"
    service = make_service([("web1", web1.port), ("web2", web_500.port)])
    checker = Checker(service, socket_path=controller.path, log_path=str(log)).start()
    try:
        wait_until(lambda: controller.received("web2", "down"), 5, "web2 down")
        assert controller.synced >= 1           # asked, got no list: nothing changes
        assert [rs.name for rs in checker.servers] == ["web1", "web2"]
        controller.servers = [dict(name="web1", ip=LO, port=web1.port),
                              dict(name="web3", ip=LO, port=web3.port)]
        up3 = wait_until(lambda: controller.received("web3", "up"), 5, "web3 checked and up")
        assert up3[0]["reason"].startswith("http: HTTP 200")
        assert [rs.name for rs in checker.servers] == ["web1", "web3"]
        removed_at = time.time()
        web3_checks = [r for r in read_log(log) if r.get("server") == "web3" and "ok" in r]
        assert len(web3_checks) >= 2                # rise 2: two passing checks first
        wait_until(lambda: any(r.get("event") == "removed" and r["server"] == "web2"
                               for r in read_log(log)), 5, "web2 dropped")
        later = wait_until(lambda: (controller.synced >= 3, controller.synced), 5, "syncs")
        assert later >= 3
        assert not [r for r in read_log(log) if r.get("server") == "web2" and "ok" in r
                    and r["t"] > removed_at + 0.2]
    finally:
        checker.stop()
        web1.stop()
        web3.stop()
        controller.stop()


def test_checker_without_a_controller_keeps_checking_then_connects(web_ok, short_dir):
    path = str(short_dir / "control.sock")
    log = short_dir / "health.jsonl"
    service = make_service([("web1", web_ok.port)], check_type="tcp")
    checker = Checker(service, socket_path=path, log_path=str(log)).start()
    controller = None
    try:
        wait_until(lambda: log.exists() and len(read_log(log)) >= 3, 5, "checks logged")
        controller = FakeController(path).start()
        got = wait_until(lambda: controller.received("web1"), 5, "the state sent")
        assert got[0]["state"] == "up" and got[0]["reason"].startswith("tcp: connected")
    finally:
        checker.stop()
        if controller is not None:
            controller.stop()


def test_checker_type_override_and_log_only(hung_port, short_dir):
    log = short_dir / "health.jsonl"
    service = make_service([("hung", hung_port)], timeout=0.2, rise=1, fall=1)
    checker = Checker(service, log_path=str(log), check_type="tcp").start()
    try:
        wait_until(lambda: log.exists() and len(read_log(log)) >= 2, 5, "two checks")
    finally:
        checker.stop()
    results = read_log(log)
    assert all(r["ok"] and r["type"] == "tcp" for r in results)
    assert not any("event" in r for r in results)        # starts up, stays up


# --- the command ---------------------------------------------------------------------

def _run(args, **kwargs):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "redlab.healthcheck"] + args, cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def _service_file(folder, port, check_type="tcp"):
    path = folder / "svc.yaml"
    path.write_text(
        "name: web\nvip: 10.0.0.100\nport: 80\n"
        "health_check: {type: %s, interval: 0.05, timeout: 0.5, rise: 1, fall: 1}\n"
        "real_servers:\n  - {name: web1, ip: 127.0.0.1, port: %d}\n" % (check_type, port))
    return path


def test_bad_service_file_exits_2_with_one_line(short_dir):
    bad = short_dir / "bad.yaml"
    bad.write_text("name: web\nvip: not-an-address\n")
    proc = _run(["--service", str(bad)])
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 2
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("healthcheck: ") and str(bad) in err and "vip" in err


def test_command_stops_on_sigterm_and_on_max_seconds(web_ok, short_dir):
    service = _service_file(short_dir, web_ok.port)
    log = short_dir / "term.jsonl"
    proc = _run(["--service", str(service), "--log", str(log)])
    try:
        wait_until(lambda: (log.exists() and log.stat().st_size > 0, proc.poll()), 5,
                   "the first check logged")
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert read_log(log)[0]["ok"] is True

    log2 = short_dir / "max.jsonl"
    started = time.monotonic()
    proc = _run(["--service", str(service), "--log", str(log2), "--max-seconds", "0.3"])
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert time.monotonic() - started < 5
    assert len(read_log(log2)) >= 2
