"""The link to the controller's Unix control socket: its decisions and its thread.

What the link does, whatever the socket does:

- it sends only state changes, one JSON line each, and reads (and ignores) the one-line
  answer to each;
- when the socket is missing or the connection breaks the checker keeps checking and
  logging; the link retries after 0.1 s, doubling up to 1 s, and says so on stderr once
  per outage;
- on every (re)connection it first sends the current state of every checked server
  (the controller may have restarted and forgotten them), then what was queued after
  that snapshot; changes queued before it are dropped, the snapshot covers them;
- when it follows the server list it asks the controller for it (``servers``) every
  ``sync_interval`` s while connected.

:class:`LinkPlan` makes these decisions (no socket, no clock of its own: it is told the
time); :class:`ControllerLink` is the thread that does the socket I/O they call for.
"""

import json
import queue
import select
import socket
import sys
import threading
import time

from redlab.health import records


def log(message):
    """A line on stderr, which the harness keeps with the agent's output."""
    print("healthcheck: %s" % message, file=sys.stderr, flush=True)


class LinkPlan:
    """The link's decisions: when to connect, how long to wait after a failure, what to
    log, when to ask for the server list."""

    def __init__(self, path, backoff=(0.1, 1.0), sync_interval=0.5, follow=False):
        self.path = path
        self.first_delay, self.max_delay = backoff
        self.sync_interval = sync_interval
        self.follow = follow
        self.connected = False
        self.connections = 0            # successful connections so far
        self._delay = self.first_delay
        self._reported = False          # this outage was logged
        self._synced_at = None

    def connect_failed(self, error):
        """A connection attempt failed: ``(delay, note)``, how long to wait before the
        next one (doubling up to the maximum) and a line to log (None but for the first
        failure of an outage)."""
        self.connected = False
        note = None if self._reported else \
            "controller socket %s: %s; retrying" % (self.path, error)
        self._reported = True
        delay, self._delay = self._delay, min(self._delay * 2, self.max_delay)
        return delay, note

    def on_connected(self, states):
        """Connected, ``states`` states re-sent: the backoff starts again; the line to log."""
        self.connected = True
        self.connections += 1
        self._delay, self._reported = self.first_delay, False
        return "connected to the controller at %s (sent %d states)" % (self.path, states)

    def lost(self, error):
        """The connection broke: reconnect at once (the backoff goes on from where the
        last outage left it); the line to log."""
        self.connected = False
        return "controller connection lost: %s; reconnecting" % error

    def sync_now(self, now):
        """Is it time to ask for the server list?  True counts as asked (even if the
        asking fails): the next time is ``sync_interval`` s later."""
        if not (self.follow and self.connected):
            return False
        if self._synced_at is not None and now - self._synced_at < self.sync_interval:
            return False
        self._synced_at = now
        return True


class ControllerLink:
    """The connection to the controller's Unix socket, owned by one thread.

    ``send`` queues a message.  The thread connects as :class:`LinkPlan` says, and on
    every (re)connection first sends ``snapshot()`` - the current state of every checked
    server - then the queued messages, reading and ignoring one reply line each.  ``lock``
    is the checker's lock: the snapshot and clearing the queue happen under it, so a
    queued change is never older than the snapshot sent before it.  ``on_servers(list)``,
    if given, gets the controller's server list every ``sync_interval`` s.
    """

    def __init__(self, path, snapshot, lock, stop, reply_timeout=2.0,
                 backoff=(0.1, 1.0), on_servers=None, sync_interval=0.5):
        self.path = path
        self.snapshot = snapshot
        self.lock = lock
        self.stop = stop
        self.reply_timeout = reply_timeout
        self.on_servers = on_servers
        self.plan = LinkPlan(path, backoff, sync_interval, follow=bool(on_servers))
        self.queue = queue.Queue()
        self.sock = None
        self.connected = threading.Event()
        self.thread = threading.Thread(target=self._run, name="healthcheck-controller",
                                       daemon=True)

    @property
    def connections(self):
        return self.plan.connections

    def start(self):
        self.thread.start()
        return self

    def send(self, message):
        self.queue.put(message)

    def _run(self):
        while not self.stop.is_set():
            if not self.plan.connected:
                try:
                    states = self._connect()
                except OSError as exc:
                    self._drop()
                    delay, note = self.plan.connect_failed(exc)
                    if note:
                        log(note)
                    self.stop.wait(delay)
                    continue
                log(self.plan.on_connected(states))
                self.connected.set()
            try:
                if self.plan.sync_now(time.monotonic()):
                    self._sync()
                self._send_next()
            except OSError as exc:
                self._drop()
                log(self.plan.lost(exc))

    def _connect(self):
        """Connect and re-send every state; the number of states sent."""
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
        return len(messages)

    def _send_next(self):
        """Send the next queued message, or see whether the controller went away if
        there is none for 0.1 s."""
        try:
            message = self.queue.get(timeout=0.1)
        except queue.Empty:
            self._check_alive()
            return
        self._exchange(message)

    def _exchange(self, message):
        self.sock.sendall(records.encode(message).encode())
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
        servers = records.servers_in(self._exchange(records.SERVERS_REQUEST))
        if servers is not None:
            self.on_servers(servers)

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
