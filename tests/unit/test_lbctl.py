"""The control socket's client against a real Unix socket served by a fake controller.

The fake records each request and answers what the test gives it, the way
``controllers.lb.LoadBalancer.command`` does (one JSON line in, one out).
"""

import json
import socket
import socketserver
import threading
from types import SimpleNamespace

import pytest

from redlab.errors import RedlabError
from redlab.lbctl import Connection, LBClient, LBError, LBUnavailable, ServerStatus

SERVER = dict(name="web1", ip="10.0.1.11", port=80, mac="00:00:00:00:01:11", weight=3,
              effective_weight=3, active=2, inactive=1, health="up", reason="HTTP 200")
STATUS = {"ok": True,
          "service": dict(name="web", vip="10.0.0.100", port=80, protocol="TCP", lb_algo="wlc",
                          lb_kind="NAT", persistence_timeout=None),
          "servers": [SERVER, dict(SERVER, name="web2", ip="10.0.1.12", mac=None, weight=0,
                                   effective_weight=0, active=0, inactive=0, health="down",
                                   reason="connection refused")]}


class FakeController(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Answers each request line with ``answer(request)``; ``requests`` lists them all."""

    daemon_threads = True

    def __init__(self, path):
        self.requests = []
        self.answer = lambda request: {"ok": True}
        self.released = threading.Event()      # a handler told to hang waits for this
        super().__init__(str(path), Handler)


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            request = json.loads(line)
            self.server.requests.append(request)
            reply = self.server.answer(request)
            if reply == "hang":
                self.server.released.wait(10)
                return
            if reply == "close":
                return
            self.wfile.write(reply if isinstance(reply, bytes)
                             else (json.dumps(reply) + "\n").encode())


@pytest.fixture
def fake(tmp_path):
    server = FakeController(tmp_path / "ctl.sock")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.released.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def ctl(fake):
    return LBClient(fake.server_address, timeout=2.0)


# -- the commands --------------------------------------------------------------------------

def test_status_is_typed(fake, ctl):
    fake.answer = lambda request: STATUS
    status = ctl.status()
    assert fake.requests == [{"cmd": "status"}]
    assert (status.vip, status.port, status.lb_algo, status.lb_kind) == (
        "10.0.0.100", 80, "wlc", "NAT")
    assert status.servers[0] == ServerStatus(**SERVER)
    assert status.server("web2").mac is None
    assert status.counts() == {"web1": (2, 1), "web2": (0, 0)}
    assert status.path is None
    assert status.raw == STATUS


def test_status_ignores_unknown_fields_and_keeps_them_in_raw(fake, ctl):
    path = {"kind": "select-group", "group_id": 1, "buckets": 2}
    reply = dict(STATUS, service=dict(STATUS["service"], path=path, new_field=1),
                 servers=[dict(SERVER, bytes=1234)], generation=7)
    fake.answer = lambda request: reply
    status = ctl.status()
    assert status.path == path
    assert status.servers == (ServerStatus(**SERVER),)
    assert status.raw["generation"] == 7
    assert status.raw["servers"][0]["bytes"] == 1234


def test_a_status_without_a_field_the_client_needs_says_so(fake, ctl):
    fake.answer = lambda request: dict(STATUS, service={"name": "web"})
    with pytest.raises(LBError, match="status reply has no 'vip'; redlab and controllers"):
        ctl.status()


def test_an_unknown_server_names_the_known_ones(fake, ctl):
    fake.answer = lambda request: STATUS
    with pytest.raises(LBError, match="no real server web9 .it has web1, web2."):
        ctl.status().server("web9")


def test_connections(fake, ctl):
    fake.answer = lambda request: {"ok": True, "connections": [
        dict(client="10.0.0.1", port=40000, server="web1", state="ESTABLISHED", flow=3)]}
    assert ctl.connections() == [Connection("10.0.0.1", 40000, "web1", "ESTABLISHED")]
    assert fake.requests == [{"cmd": "connections"}]


def test_servers(fake, ctl):
    servers = [dict(name="web1", ip="10.0.1.11", port=80)]
    fake.answer = lambda request: {"ok": True, "servers": servers}
    assert ctl.servers() == servers
    assert fake.requests == [{"cmd": "servers"}]


@pytest.mark.parametrize("call, sent", [
    (lambda c: c.set_weight("web1", 5), {"cmd": "set_weight", "server": "web1", "weight": 5}),
    (lambda c: c.drain("web2"), {"cmd": "set_weight", "server": "web2", "weight": 0}),
    (lambda c: c.set_scheduler("sh"), {"cmd": "set_scheduler", "lb_algo": "sh"}),
    (lambda c: c.set_fast_path(False), {"cmd": "set_fast_path", "fast_path": False}),
    (lambda c: c.add_server("web4", "10.0.1.14"),
     {"cmd": "add_server", "name": "web4", "ip": "10.0.1.14", "weight": 1}),
    (lambda c: c.add_server("web4", "10.0.1.14", port=8080, weight=2),
     {"cmd": "add_server", "name": "web4", "ip": "10.0.1.14", "port": 8080, "weight": 2}),
    (lambda c: c.remove_server("web3"), {"cmd": "remove_server", "server": "web3"}),
])
def test_commands_send_the_controllers_requests(fake, ctl, call, sent):
    assert call(ctl) is None
    assert fake.requests == [sent]


def test_set_health_returns_the_connections_cleared(fake, ctl):
    fake.answer = lambda request: {"ok": True, "cleared": 4}
    assert ctl.set_health("web1", "down", "lab: clear") == 4
    assert fake.requests == [{"cmd": "health", "server": "web1", "state": "down",
                              "reason": "lab: clear"}]


def test_set_health_refuses_a_state_the_controller_would_store(fake, ctl):
    with pytest.raises(LBError, match="must be up or down, not 'sideways'"):
        ctl.set_health("web1", "sideways")
    assert fake.requests == []


def test_for_network_uses_the_controllers_socket(fake):
    net = SimpleNamespace(controller=SimpleNamespace(socket_path=fake.server_address))
    ctl = LBClient.for_network(net)
    fake.answer = lambda request: STATUS
    assert ctl.socket_path == fake.server_address
    assert ctl.status().vip == "10.0.0.100"


# -- failures ------------------------------------------------------------------------------

def test_a_refusal_carries_the_controllers_message(fake, ctl):
    fake.answer = lambda request: {"ok": False, "error": "weight must be an integer >= 0, got -1"}
    with pytest.raises(LBError) as refused:
        ctl.set_weight("web1", -1)
    assert not isinstance(refused.value, LBUnavailable)
    assert isinstance(refused.value, RedlabError)
    assert (refused.value.cmd, refused.value.reason) == (
        "set_weight", "weight must be an integer >= 0, got -1")
    assert str(refused.value) == ("the load balancer refused set_weight: weight must be an "
                                  "integer >= 0, got -1")


def test_a_missing_socket_names_it(tmp_path):
    path = tmp_path / "gone.sock"
    with pytest.raises(LBUnavailable, match="no control socket %s; start" % path):
        LBClient(path).status()


def test_a_socket_nobody_listens_on(tmp_path):
    path = tmp_path / "dead.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(path))           # bound, never listening: what a dead controller leaves
        with pytest.raises(LBUnavailable, match="nothing listens on the control socket"):
            LBClient(path).status()


def test_a_controller_that_does_not_answer_times_out(fake):
    fake.answer = lambda request: "hang"
    with pytest.raises(LBUnavailable, match="did not answer status within 0.2 s"):
        LBClient(fake.server_address, timeout=0.2).status()


def test_a_controller_that_hangs_up(fake, ctl):
    fake.answer = lambda request: "close"
    with pytest.raises(LBUnavailable, match="closed .* without answering status"):
        ctl.status()


def test_a_reply_that_is_not_json(fake, ctl):
    fake.answer = lambda request: b"Traceback\n"
    with pytest.raises(LBError, match="not JSON"):
        ctl.status()


def test_the_status_prints_like_ipvsadm(fake, ctl):
    from redlab.lb import format_status
    fake.answer = lambda request: dict(STATUS, service=dict(STATUS["service"],
                                                            persistence_timeout=30))
    text = format_status(ctl.status(), {"web1": {"ok": False, "detail": "HTTP 500"}})
    assert text.splitlines()[3:] == [
        "TCP  10.0.0.100:80 wlc persistent 30",
        "  -> 10.0.1.11:80 (web1)          Masq    3      2          1         up     FAIL HTTP 500",
        "  -> 10.0.1.12:80 (web2)          Masq    0      0          0         down   "
        "connection refused"]


# -- `redlab lb ...` through the client ------------------------------------------------------

@pytest.fixture
def redlab_lb(fake, monkeypatch, capsys):
    """``redlab lb ARGS`` against the fake: (exit code, stdout, stderr)."""
    from redlab import cli, lb
    monkeypatch.setattr(lb, "live_socket", lambda: (fake.server_address, {}))

    def run(*args):
        code = cli.main(["lb", *args])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def test_redlab_lb_commands(fake, redlab_lb):
    assert redlab_lb("drain", "web2") == (0, "done: drain\n", "")
    assert redlab_lb("add", "web4", "10.0.1.14", "--weight", "2") == (0, "done: add\n", "")
    assert redlab_lb("path", "fast") == (0, "done: path\n", "")
    assert fake.requests == [
        {"cmd": "set_weight", "server": "web2", "weight": 0},
        {"cmd": "add_server", "name": "web4", "ip": "10.0.1.14", "port": 80, "weight": 2},
        {"cmd": "set_fast_path", "fast_path": True}]
    fake.answer = lambda request: STATUS
    code, out, err = redlab_lb("status")
    assert code == 0 and "TCP  10.0.0.100:80 wlc\n" in out and "(web2)" in out


def test_redlab_lb_says_what_the_controller_refused(fake, redlab_lb):
    fake.answer = lambda request: {"ok": False, "error": "no real server named 'web9'"}
    assert redlab_lb("remove", "web9") == (
        2, "", "redlab: error: the load balancer refused: no real server named 'web9'\n")


def test_the_status_prints_the_flags_and_how_new_connections_are_scheduled(fake, ctl):
    from redlab.lb import format_status
    fake.answer = lambda request: dict(STATUS, service=dict(
        STATUS["service"], lb_algo="sh", flags=["sh-fallback", "sh-port"],
        path=dict(mode="controller", fast_path=True, exactness="exact mode: the pick depends "
                  "on the source port")))
    text = format_status(ctl.status()).splitlines()
    assert text[3] == "TCP  10.0.0.100:80 sh (sh-fallback,sh-port)"
    assert text[-1] == ("Scheduling: by the controller -- exact mode: the pick depends on the "
                        "source port")
