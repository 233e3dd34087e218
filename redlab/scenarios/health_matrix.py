"""The detection matrix of the course notes, measured.

Faults {host crash, link down, nginx stopped, HTTP 500, hang} x checks {icmp, tcp,
http}: which check notices which fault, and how fast.  The notes say: ICMP (L3)
misses a dead web service; a TCP connect (L4) misses 500s and hangs; an HTTP request
(L7) catches them all.  Three checkers (one per type) run side by side on the director
and watch web1; each fault is applied, observed for a fixed window, and undone.
"""

import time

from redlab import faults
from redlab.lb import HealthChecker, web_service
from redlab.wait import wait_until

CHECKS = ("icmp", "tcp", "http")
FAULTS = {
    "host crash": lambda net, web: faults.host_crash(net, web),
    "link down": lambda net, web: faults.link_down(net, web, "s1"),
    "nginx stopped": lambda net, web: faults.daemon_stop(web.daemons["nginx"]),
    "HTTP 500": lambda net, web: faults.http_500(web.daemons["nginx"]),
    "hang": lambda net, web: faults.hang(web.daemons["nginx"]),
}
EXPECTED = {
    "host crash": {"icmp", "tcp", "http"},
    "link down": {"icmp", "tcp", "http"},
    "nginx stopped": {"tcp", "http"},
    "HTTP 500": {"http"},
    "hang": {"http"},
}


class Matrix:
    def __init__(self, net, server="web1", interval=0.2, timeout=0.5, rise=2, fall=2,
                 out=None):
        self.net = net
        self.server = server
        self.out = out or (lambda text: None)
        # long enough for any check to fail `fall` times in a row, plus a margin
        self.window = fall * (interval + timeout) + 1.5
        number = int(server.replace("web", ""))
        service = web_service("rr", servers=number, interval=interval, timeout=timeout,
                              rise=rise, fall=fall)
        service.real_servers = [s for s in service.real_servers if s.name == server]
        self.checkers = {c: HealthChecker(net["director"], service, check_type=c, name=c)
                         for c in CHECKS}

    def __enter__(self):
        for checker in self.checkers.values():
            checker.start()
        return self

    def __exit__(self, *exc):
        for checker in self.checkers.values():
            checker.stop()
        return False

    def down_since(self, since):
        return {c: self.checkers[c].transitions(self.server, "down", since=since) for c in CHECKS}

    def measure(self, name, expected=None):
        """Apply fault ``name`` to the server; return {check: seconds to detect or None}."""
        web = self.net[self.server]
        fault = FAULTS[name](self.net, web)
        expected = EXPECTED[name] if expected is None else expected
        wait_until(lambda: (all(self.down_since(fault.at)[c] for c in expected),
                            self.down_since(fault.at)), self.window + 3,
                   "%s to be detected by %s" % (name, ", ".join(sorted(expected)) or "nobody"))
        # the other checks get the same window to (wrongly) notice before we say they miss it
        wait_until(lambda: (time.time() >= fault.at + self.window, "window open"),
                   self.window + 1, "the observation window to end")
        found = {c: (t[0]["t"] - fault.at if t else None)
                 for c, t in self.down_since(fault.at).items()}
        undone = time.time()
        fault.undo()
        wait_until(lambda: (all(self.checkers[c].transitions(self.server, "up", since=undone)
                                for c in CHECKS if found[c] is not None), found), 15,
                   "every check to see %s up again after the undo" % self.server)
        self.out("  %-14s %s" % (name, "  ".join(
            "%s: %s" % (c, "missed" if found[c] is None else "%.2f s" % found[c])
            for c in CHECKS)))
        return found

    def run(self, names=None):
        return {name: self.measure(name) for name in (names or FAULTS)}


def markdown(matrix):
    lines = ["| fault | " + " | ".join(CHECKS) + " |", "|---|---|---|---|"]
    for name, row in matrix.items():
        lines.append("| %s | %s |" % (name, " | ".join(
            "missed" if row[c] is None else "%.2f s" % row[c] for c in CHECKS)))
    return "\n".join(lines)
