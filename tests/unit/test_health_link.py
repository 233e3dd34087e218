"""The controller link (redlab.health.link): its decisions without a socket
(:class:`LinkPlan`), then what it sends when, against a real Unix socket server."""

import json
import shutil
import socketserver
import tempfile
import threading
from pathlib import Path

import pytest

from redlab.health.link import ControllerLink, LinkPlan
from redlab.wait import wait_until

PATH = "/run/redlab/control.sock"


# --- the decisions -------------------------------------------------------------------

def test_reconnects_back_off_doubling_up_to_the_maximum():
    plan = LinkPlan(PATH, backoff=(0.1, 1.0))
    delays = [plan.connect_failed(FileNotFoundError("no such file"))[0] for _ in range(6)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert not plan.connected and plan.connections == 0


def test_an_outage_is_logged_once_and_a_connection_starts_the_backoff_again():
    plan = LinkPlan(PATH, backoff=(0.1, 1.0))
    notes = [plan.connect_failed(ConnectionRefusedError("refused"))[1] for _ in range(3)]
    assert notes == ["controller socket %s: refused; retrying" % PATH, None, None]
    assert plan.on_connected(2) == \
        "connected to the controller at %s (sent 2 states)" % PATH
    assert plan.connected and plan.connections == 1
    delay, note = plan.connect_failed(ConnectionRefusedError("refused"))
    assert delay == 0.1 and note is not None                 # a new outage


def test_a_lost_connection_reconnects_at_once():
    plan = LinkPlan(PATH)
    plan.on_connected(0)
    assert plan.lost(ConnectionResetError("the controller closed the connection")) == \
        "controller connection lost: the controller closed the connection; reconnecting"
    assert not plan.connected
    assert plan.connect_failed(OSError("x"))[0] == 0.1       # the first retry waits 0.1 s


def test_the_server_list_is_asked_for_every_interval_while_connected():
    plan = LinkPlan(PATH, sync_interval=0.5, follow=True)
    assert not plan.sync_now(100.0)                            # not connected
    plan.on_connected(0)
    assert [plan.sync_now(t) for t in (100.0, 100.2, 100.49, 100.5, 100.6, 101.0)] == \
        [True, False, False, True, False, True]
    plan.lost(OSError("gone"))
    plan.on_connected(0)
    assert not plan.sync_now(101.2)                            # the interval goes on


def test_a_link_that_does_not_follow_never_asks_for_servers():
    plan = LinkPlan(PATH, follow=False)
    plan.on_connected(0)
    assert not any(plan.sync_now(t) for t in (0.0, 10.0, 1000.0))


# --- what is sent when, over a real socket -------------------------------------------

class Controller(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Records every line it gets and answers ``{"ok": true}`` to each."""

    daemon_threads = True

    def __init__(self, path):
        self.lines = []
        super().__init__(path, _Answer)


class _Answer(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.server.lines.append(json.loads(line))
            self.wfile.write(b'{"ok": true}\n')


@pytest.fixture
def controller():
    folder = tempfile.mkdtemp(prefix="hl-")          # AF_UNIX paths must stay short
    server = Controller(str(Path(folder) / "c.sock"))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)
    shutil.rmtree(folder, ignore_errors=True)


def test_a_connection_sends_the_snapshot_first_and_drops_older_changes(controller):
    snapshot = [{"cmd": "health", "server": "web1", "state": "up"},
                {"cmd": "health", "server": "web2", "state": "down"}]
    stop, lock = threading.Event(), threading.Lock()
    link = ControllerLink(controller.server_address, lambda: snapshot, lock, stop)
    link.send({"cmd": "health", "server": "web2", "state": "up"})   # older than the snapshot
    link.start()
    try:
        wait_until(lambda: link.connected.is_set(), 5, "the link connected")
        link.send({"cmd": "health", "server": "web1", "state": "down"})
        wait_until(lambda: len(controller.lines) >= 3, 5, "three messages")
    finally:
        stop.set()
        link.thread.join(5)
        link.close()
    assert controller.lines == snapshot + [{"cmd": "health", "server": "web1",
                                            "state": "down"}]
    assert link.connections == 1
