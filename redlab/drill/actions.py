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
``run.drill`` (the drill), ``run.keepalived()`` (host -> its keepalived daemon),
``run.lbctl()`` (a :class:`redlab.lbctl.LBClient` of the load balancer, when the drill
has a ``network.service``) and ``run.event(t, lane, kind, label)`` (an event of the record).

A fault's ``.at`` is when it began, as the engine's mark: some faults take a while to
be done (nginx reloads into HTTP 500, keepalived reloads, a command runs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from redlab import faults
from redlab.errors import ConfigError, RedlabError
from redlab.lbctl import LBError, LBUnavailable


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


def began(do, *args):
    """``do(*args)`` (a fault function), its fault's ``.at`` set to when it began."""
    start = time.time()
    fault = do(*args)
    fault.at = start
    return fault


def _index(run, entry):
    return next(i for i, e in enumerate(run.drill["timeline"]) if e is entry)


def name_of(run, entry):
    """``timeline[N]`` (``timeline[N] (ID)`` with an id): the entry, as errors name it."""
    return "timeline[%d]%s" % (_index(run, entry), " (%s)" % entry["id"] if "id" in entry
                               else "")


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


def check_nginx(run, entry, where):
    check_daemon(run, dict(entry, daemon="nginx"), where)


@action("http_500", lambda e: "http_500 %s" % e["host"], check_nginx)
def _http_500(run, entry):
    return began(faults.http_500, run.net[entry["host"]].daemons["nginx"])


@action("hang", lambda e: "hang %s on %s" % (e["daemon"], e["host"]), check_daemon)
def _hang(run, entry):
    return began(faults.hang, _daemon(run, entry))


def check_controller(run, entry, where):
    if run.net.controller is None:
        raise ConfigError("%s: this network runs without a controller, so there is none to "
                          "kill; remove the controller_kill entry" % where)


@action("controller_kill", lambda e: "controller_kill", check_controller)
def _controller_kill(run, entry):
    return began(faults.controller_kill, run.net)


# ---------------------------------------------------------------------------------------
# operator steps
# ---------------------------------------------------------------------------------------

COMMAND_CHARS = 40          # of the command in its one-line description


def _describe_command(entry):
    run = " ".join(entry["run"].split())
    if len(run) > COMMAND_CHARS:
        run = run[:COMMAND_CHARS - 1].rstrip() + "\u2026"
    return "command on %s: %s" % (entry["host"], run)


@action("command", _describe_command)
def _command(run, entry):
    """``run`` in the host; its exit status and output go to the host's run folder
    (``commands/<entry>.txt``) and, as an event in lane ``command <host>``, to the
    record: a failing command is what the drill saw, not an error of the drill."""
    name = entry.get("id") or "timeline-%d" % _index(run, entry)

    def record(result):
        status = result["status"]
        kind = "event" if status == 0 else "fail"
        what = "killed after %.0f s" % (result["ended"] - result["began"]) \
            if status is None else "exit %d" % status
        lines = result["output"].strip().splitlines()
        run.event(result["ended"], "command %s" % result["host"], kind, "%s%s%s" % (
            "undo: " if result["step"] == "undo" else "", what,
            ": %s" % lines[-1].strip() if lines else ""))
    return faults.command(run.net[entry["host"]], entry["run"], undo=entry.get("undo"),
                          name=name, on_result=record)


def _keepalived_of(run, entry):
    return run.net[entry["host"]].daemons["keepalived"]


def check_keepalived(run, entry, where):
    if "keepalived" not in run.net[entry["host"]].daemons:
        raise ConfigError("%s: host %s runs no keepalived, so it has no priority to change; "
                          "pick one of %s" % (where, entry["host"],
                                              ", ".join(run.keepalived()) or "no host"))


@action("keepalived_priority",
        lambda e: "keepalived_priority %s -> %d" % (e["host"], e["priority"]),
        check_keepalived)
def _keepalived_priority(run, entry):
    return began(faults.keepalived_priority, _keepalived_of(run, entry), entry["priority"])


# ---------------------------------------------------------------------------------------
# the load balancer (network.service), through its control socket
# ---------------------------------------------------------------------------------------

def _describe_lb(entry):
    action, server = entry["action"], entry["server"]
    if action == "weight":
        return "lb weight %s -> %d" % (server, entry["weight"])
    if action == "add":
        return "lb add %s (%s)" % (server, entry["ip"])
    return "lb %s %s" % (action, server)


def _lb_servers(run, where):
    """The running service's real servers by name (:class:`redlab.lbctl.ServerStatus`)
    and its port (from ``status``)."""
    try:
        status = run.lbctl().status()
    except ConfigError as exc:
        raise ConfigError("%s: %s" % (where, exc)) from None
    except LBUnavailable as exc:
        raise RedlabError("%s: %s" % (where, exc)) from None
    except LBError as exc:
        raise RedlabError("%s: the load balancer did not answer status (%s); check its "
                          "controller log" % (where, exc.reason)) from None
    return {s.name: s for s in status.servers}, status.port


def check_lb(run, entry, where):
    """The server is in the running service when the entry comes (not yet, for add),
    counting what the lb entries and undo steps before it add and remove."""
    servers, _ = _lb_servers(run, where)
    names = _names_before(run, entry, set(servers))
    name = entry["server"]
    if entry["action"] == "add" and name in names:
        raise ConfigError("%s: real server %s is already in the running service; add a new "
                          "name" % (where, name))
    if entry["action"] != "add" and name not in names:
        raise ConfigError("%s: the running service has no real server %s when this entry "
                          "comes (it has %s); pick one of them" % (
                              where, name, ", ".join(sorted(names)) or "none"))


def _names_before(run, entry, names):
    """The real servers' names once the lb entries (and their undos) before ``entry``
    have run."""
    def apply(e, forward):
        if e["action"] in ("add", "remove"):
            adds = (e["action"] == "add") == forward
            (names.add if adds else names.discard)(e["server"])
    lb_entries = {}
    for i, e in enumerate(run.drill["timeline"]):
        if e is entry:
            break
        if e.get("fault") == "lb":
            lb_entries[e.get("id")] = e
            apply(e, True)
        elif e.get("step") == "undo" and e["of"] in lb_entries:
            apply(lb_entries[e["of"]], False)
    return names


def _lb_send(run, at, command, *arguments, **options):
    """``run.lbctl().command(...)``; a refusal is an error naming the timeline entry."""
    try:
        getattr(run.lbctl(), command)(*arguments, **options)
    except LBUnavailable as exc:
        raise RedlabError("%s: %s" % (at, exc)) from None
    except LBError as exc:
        raise RedlabError("%s: the load balancer refused %s: %s; fix the entry's server or "
                          "weight" % (at, exc.cmd, exc.reason)) from None


def _lb_weight(run, at, entry, servers, port):
    name = entry["server"]
    old = servers[name].weight if name in servers else None
    weight = 0 if entry["action"] == "drain" else entry["weight"]
    _lb_send(run, at, "set_weight", name, weight)
    return faults.Fault("lb: %s weight %s -> %d" % (name, old, weight),
                        lambda: _lb_send(run, at, "set_weight", name, old))


def _lb_add(run, at, entry, servers, port):
    name, ip, weight = entry["server"], entry["ip"], entry.get("weight", 1)
    _lb_send(run, at, "add_server", name, ip, port=port, weight=weight)
    return faults.Fault("lb: %s added (%s:%d, weight %d)" % (name, ip, port, weight),
                        lambda: _lb_send(run, at, "remove_server", name))


def _lb_remove(run, at, entry, servers, port):
    name = entry["server"]
    _lb_send(run, at, "remove_server", name)
    spec = servers[name]        # the command above was refused if it was not there
    return faults.Fault("lb: %s removed (was %s:%d, weight %d)" % (
        name, spec.ip, spec.port, spec.weight),
        lambda: _lb_send(run, at, "add_server", name, spec.ip, port=spec.port,
                         weight=spec.weight))


_LB_ACTIONS = {"drain": _lb_weight, "weight": _lb_weight, "add": _lb_add,
               "remove": _lb_remove}


@action("lb", _describe_lb, check_lb)
def _lb(run, entry):
    """drain (weight 0) and weight: the undo sets the weight the server had (read from
    ``status`` just before); add: the undo removes it; remove: the undo adds it back with
    its ip, port and weight."""
    at = name_of(run, entry)

    def do():
        servers, port = _lb_servers(run, at)
        return _LB_ACTIONS[entry["action"]](run, at, entry, servers, port)
    return began(do)
