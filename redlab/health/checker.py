"""The checker's shell: one thread per real server, a lock, the log file, the link.

Each thread checks its server every ``interval`` (the first check at once; checks of one
server never overlap: one that takes longer than ``interval`` delays the next) and hands
the result to the :class:`~redlab.health.roster.Roster`, which says what to log and send.
Every decision is the roster's or the link plan's; this module only runs them.
"""

import os
import threading
import time

from redlab.health import probes, records
from redlab.health.link import ControllerLink
from redlab.health.roster import Roster, check_interval, next_check


class Checker:
    """Checks every real server of ``service`` from one thread each.

    service: a ``controllers.service.VirtualService`` (``.real_servers``,
    ``.health_check``).  check_type overrides the service's check type.  With
    ``socket_path`` state changes go to the controller and the checker follows its
    server list; with ``log_path`` every result and change is appended there.
    """

    def __init__(self, service, socket_path=None, log_path=None, check_type=None):
        self.service = service
        self.hc = service.health_check
        self.type = check_type or self.hc.type
        if self.type not in probes.TYPES:
            raise ValueError("unknown health check type %r (one of %s)"
                             % (self.type, ", ".join(probes.TYPES)))
        self.roster = Roster(service.real_servers, self.hc.rise, self.hc.fall, self.type)
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
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

    @property
    def servers(self):
        """The real servers checked now."""
        return self.roster.servers

    @property
    def state(self):
        """Their rise/fall state (:class:`controllers.health.HealthState`)."""
        return self.roster.state

    # checks
    def check(self, rs):
        """Run one check of real server ``rs``; never raises."""
        return probes.check(self.type, rs, self.hc)

    def record(self, result):
        """Log ``result``, feed it to the state; log and send a state change.  Returns
        the transition, or None."""
        with self.lock:
            recorded = self.roster.record(result)
            self._write(recorded.lines)
            if recorded.message is not None and self.link is not None:
                self.link.send(recorded.message)
            return recorded.transition

    def _snapshot(self):
        """Every checked server's state as controller messages (the link holds the lock)."""
        return self.roster.snapshot(time.time())

    def _write(self, lines):
        if self._log_file is not None and not self._log_file.closed:
            for line in lines:
                self._log_file.write(records.encode(line))

    def sync(self, servers):
        """Follow the controller's list of real servers: check added ones (DOWN until
        ``rise`` checks pass), drop removed ones.  Returns ``(added, removed)``."""
        with self.lock:
            added, removed, lines = self.roster.follow(servers, time.time())
            self._write(lines)
        for rs in added:
            self._start_thread(rs)
        return added, removed

    def _following(self, rs):
        with self.lock:
            return self.roster.follows(rs)

    def _loop(self, rs):
        interval = check_interval(self.hc)
        due = time.monotonic()
        while not self.stop_event.is_set() and self._following(rs):
            result = self.check(rs)
            if self.stop_event.is_set() or not self._following(rs):
                break
            self.record(result)
            due, delay = next_check(due, interval, time.monotonic())
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
