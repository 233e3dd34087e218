"""The checker's state and decisions, without threads, sockets or clocks.

:class:`Roster` holds the servers being checked, their rise/fall state
(:class:`controllers.health.HealthState`), the reason and time of each one's last change,
and answers: what to log and send for a check result, which servers to start and stop
checking for a new server list, which states to re-send to a controller that
reconnected.  :func:`next_check` says when a server's next check is due.  The checker
(:mod:`redlab.health.checker`) calls it under its lock and does the I/O it asks for.
"""

from dataclasses import dataclass, field

from controllers.health import DOWN, HealthState
from redlab.health import records

MIN_INTERVAL = 0.01         # s: an interval of 0 would spin


@dataclass
class Recorded:
    """What one check result asks for: log ``lines``; on a state change, the
    ``transition`` and the ``message`` for the controller."""

    lines: list = field(default_factory=list)
    transition: object = None
    message: dict = None


def check_interval(hc):
    """Seconds between the starts of two checks of one server."""
    return max(float(hc.interval), MIN_INTERVAL)


def next_check(due, interval, now):
    """When the check after the one that was ``due`` starts: ``(due, delay)``.

    Checks keep to their grid (``due + interval``) whatever each one took; a check that
    ran past the next one's time is followed at once, and the grid restarts from ``now``
    (no burst of checks to catch up, and never two at once).
    """
    due += interval
    delay = due - now
    if delay <= 0:
        return now, 0
    return due, delay


def plan_follow(current, wanted):
    """Which servers to start and stop checking: ``(added, removed)``.

    current: the names checked now, in order; wanted: the controller's server list,
    dicts with ``name``, ``ip``, ``port``.  added: the wanted dicts not checked yet, in
    the controller's order; removed: the checked names it no longer lists, in order.
    """
    by_name = {s["name"]: s for s in wanted}      # a name listed twice: its last entry
    checked = set(current)
    added = [s for name, s in by_name.items() if name not in checked]
    removed = [name for name in current if name not in by_name]
    return added, removed


class Roster:
    """The servers checked and what is known of each (the checker's lock guards it)."""

    def __init__(self, servers, rise, fall, check_type):
        self.type = check_type
        self.servers = list(servers)
        self.state = HealthState([s.name for s in self.servers], rise=rise, fall=fall)
        self.changed_at = {}
        self.reasons = {}

    def follows(self, server):
        """Is this very server (not just its name) still checked?  A server removed and
        added again is a new object: the old one's thread stops."""
        return any(s is server for s in self.servers)

    def record(self, result):
        """Count ``result`` (a CheckResult): log it; on a state change log that too and
        tell the controller.  A result of a server removed while its check ran is dropped."""
        if not any(s.name == result.server for s in self.servers):
            return Recorded()
        lines = [records.check_line(result, self.type)]
        transition = self.state.record(result)
        if transition is None:
            return Recorded(lines)
        # the cause in a few words; the count is in "checks" (HealthState's own
        # reason, "2 failed checks in a row (fall 2): ...", stays in its history)
        reason = result.detail
        at = transition.at or result.at
        self.changed_at[result.server] = at
        self.reasons[result.server] = reason
        lines.append(records.change_line(transition, reason, at, self.type))
        message = records.health_message(transition.server, transition.state, reason, at,
                                         self.type)
        return Recorded(lines, transition, message)

    def follow(self, wanted, now):
        """Follow the controller's server list: ``(added, removed, lines)``, the
        :class:`RealServerSpec` now to be checked, the names no longer checked and their
        log lines.

        An added server starts DOWN (keepalived's ``alpha``): it joins after ``rise``
        passing checks, and the controller keeps it out until then.
        """
        from controllers.service import RealServerSpec     # loaded by then: no startup cost
        new, removed = plan_follow([s.name for s in self.servers], wanted)
        lines = []
        for name in removed:
            self.servers = [s for s in self.servers if s.name != name]
            self.state.remove(name)
            lines.append(records.roster_line("removed", name, now))
        added = [RealServerSpec(name=s["name"], ip=s["ip"], port=int(s["port"]), weight=1)
                 for s in new]
        for server in added:
            self.servers.append(server)
            self.state.add(server.name, DOWN)
            lines.append(records.roster_line("added", server.name, now))
        return added, removed, lines

    def snapshot(self, now):
        """The current state of every checked server as controller messages: what a
        controller that (re)connected must hear.  A server never checked yet is left
        out (the controller's default holds); one that never changed state says why
        with its last check."""
        messages = []
        for server in self.servers:
            last = self.state.last(server.name)
            if last is None:
                continue
            reason = self.reasons.get(server.name) or last.detail
            messages.append(records.health_message(
                server.name, self.state.state(server.name), reason,
                self.changed_at.get(server.name, now), self.type))
        return messages
