"""The faults and operator steps of a drill's timeline, one registered :class:`Action`
per ``fault:`` kind.

An action has three parts:

- ``check(run, entry, where)``: once the network is up and before ``t0``, what only the
  running network can tell (the host runs that daemon, the service has that server);
  raises :class:`redlab.errors.ConfigError` with one sentence naming ``where``;
- ``inject(run, entry)``: do it now and return a :class:`redlab.faults.Fault` whose
  ``undo()`` puts back exactly what was changed (the engine undoes every fault still in
  place at the end of a run, or on ``step: undo``);
- ``describe(entry)``: one line for the swimlanes' fault lane and the report.

``run`` is the engine's runner: ``run.net`` (a :class:`redlab.net.Network`),
``run.keepalived()`` (host -> its keepalived daemon) and ``run.control(message)`` (the
load balancer's control socket, when the drill has a ``network.service``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from redlab import faults
from redlab.errors import ConfigError


@dataclass(frozen=True)
class Action:
    inject: Callable
    describe: Callable
    check: Callable = lambda run, entry, where: None


ACTIONS: dict = {}


def action(kind, describe, check=None):
    """Register the decorated ``inject(run, entry) -> Fault`` as fault kind ``kind``."""
    def register(inject):
        ACTIONS[kind] = Action(inject, describe, check or Action.check)
        return inject
    return register


def supported():
    return tuple(ACTIONS)


def inject(run, entry):
    return ACTIONS[entry["fault"]].inject(run, entry)


def describe(entry):
    return ACTIONS[entry["fault"]].describe(entry)


def check_all(run, timeline):
    """Every timeline entry's running-network check, before ``t0``."""
    for i, entry in enumerate(timeline):
        if "fault" in entry:
            ACTIONS[entry["fault"]].check(run, entry, "timeline[%d]" % i)


# ---------------------------------------------------------------------------------------
# the network
# ---------------------------------------------------------------------------------------

@action("link_down", lambda e: "link_down %s-%s" % tuple(e["link"]))
def _link_down(run, entry):
    return faults.link_down(run.net, *entry["link"])


@action("host_crash", lambda e: "host_crash %s" % e["host"])
def _host_crash(run, entry):
    return faults.host_crash(run.net, entry["host"])


# ---------------------------------------------------------------------------------------
# daemons
# ---------------------------------------------------------------------------------------

def _daemon(run, entry):
    return run.net[entry["host"]].daemons[entry["daemon"]]


def check_daemon(run, entry, where):
    daemons = run.net[entry["host"]].daemons
    if entry["daemon"] not in daemons:
        raise ConfigError("%s: host %s runs no %s (it runs %s); pick one of its daemons"
                          % (where, entry["host"], entry["daemon"],
                             ", ".join(daemons) or "none"))


@action("daemon_stop", lambda e: "daemon_stop %s on %s" % (e["daemon"], e["host"]),
        check_daemon)
def _daemon_stop(run, entry):
    return faults.daemon_stop(_daemon(run, entry))
