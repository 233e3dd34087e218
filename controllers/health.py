"""Up or down?  Health state of each real server, with HAProxy's rise/fall counting.

A single failed check is not enough to take a real server out of the pool: a lost
packet or a slow answer would make it flap.  HAProxy marks a server DOWN after ``fall``
failed checks *in a row* and UP again after ``rise`` successful checks in a row
(``server ... check inter 1s rise 2 fall 3``); keepalived does the same with ``retry``
(N retries, so N + 1 failures) and, in ``vrrp_script``, with ``rise``/``fall``.  Any
result of the other kind in between starts the count again: with ``fall 2``, results
that alternate fail/ok/fail/ok never take an UP server down.

Servers start UP by default, as keepalived's real servers do (its ``alpha`` option
starts them DOWN, which is ``initial=DOWN`` here); a server that starts UP still needs
``fall`` failures to go down.

Pure bookkeeping: the checks themselves (icmp/tcp/http, see
``controllers.service.HealthCheck``) are run elsewhere and fed in as
:class:`CheckResult` objects; :meth:`HealthState.record` says when a server changes
state, and every change is kept in ``transitions``, oldest first.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["UP", "DOWN", "Transition", "CheckResult", "HealthState"]

UP, DOWN = "up", "down"


@dataclass
class Transition:
    """``server`` went ``state`` at ``at`` after ``checks`` consecutive results."""

    server: str
    state: str
    at: float
    reason: str
    checks: int


@dataclass
class CheckResult:
    """One health check of one server: ``ok``, a human ``detail``, when, how fast."""

    server: str
    ok: bool
    detail: str
    at: float
    latency: float | None = None


@dataclass
class _Server:
    state: str
    successes: int = 0   # consecutive successful checks (0 after any failure)
    failures: int = 0    # consecutive failed checks (0 after any success)
    last: CheckResult | None = None


def _count(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def _initial(value):
    if value not in (UP, DOWN):
        raise ValueError(f"initial state must be {UP!r} or {DOWN!r}, got {value!r}")
    return value


class HealthState:
    """UP/DOWN for every real server of a service, driven by check results."""

    def __init__(self, servers, rise=1, fall=1, initial=UP):
        self.rise = _count(rise, "rise")
        self.fall = _count(fall, "fall")
        self._servers = {}
        self.transitions = []
        for name in servers:
            self.add(name, initial)

    def add(self, server, initial=UP):
        """Start following ``server`` (ValueError if it is already followed)."""
        if server in self._servers:
            raise ValueError(f"server {server!r} is already followed")
        self._servers[server] = _Server(_initial(initial))

    def remove(self, server):
        """Stop following ``server``; its transitions stay in the history."""
        self._get(server)
        del self._servers[server]

    def _get(self, server):
        try:
            return self._servers[server]
        except KeyError:
            known = ", ".join(map(str, self._servers)) or "none"
            raise KeyError(f"no health state for server {server!r}; known: {known}") \
                from None

    def record(self, result):
        """Count one check result; the :class:`Transition` if the server changed state.

        UP -> DOWN after ``fall`` failures in a row, DOWN -> UP after ``rise``
        successes in a row.  A success resets the failure count and a failure the
        success count, whatever the state.
        """
        entry = self._get(result.server)
        entry.last = result
        if result.ok:
            entry.successes += 1
            entry.failures = 0
            run, needed, target, word = entry.successes, self.rise, UP, "rise"
        else:
            entry.failures += 1
            entry.successes = 0
            run, needed, target, word = entry.failures, self.fall, DOWN, "fall"
        if entry.state == target or run < needed:
            return None
        entry.state = target
        outcome = "successful" if result.ok else "failed"
        plural = "check" if run == 1 else "checks"
        transition = Transition(
            server=result.server, state=target, at=result.at, checks=run,
            reason=f"{run} {outcome} {plural} in a row ({word} {needed}): "
                   f"{result.detail}")
        self.transitions.append(transition)
        return transition

    def state(self, server):
        return self._get(server).state

    def last(self, server):
        """The latest result recorded for ``server`` (None before the first check)."""
        return self._get(server).last

    def up(self):
        """Servers that are UP, in the order they were added."""
        return [name for name, entry in self._servers.items() if entry.state == UP]

    def servers(self):
        """Every followed server, in the order they were added."""
        return list(self._servers)
