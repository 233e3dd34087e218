"""The drill engine: run one drill (a checked drill file) on a real network, return its
run record (``/work/briefs/drill-record.md``): events, probe samples, measures,
intervals and expectations, all on one clock.

One run, in this order:

1. refuse what this redlab cannot run yet (:func:`refuse_unsupported`), before anything
   starts: one sentence naming the field and what is supported;
2. build the topology with its params, the keepalived options on every VRRP host and the
   controller's options;
3. wait until the network is steady: one keepalived MASTER (when there is keepalived),
   every probe answering ``STEADY_GOOD`` times in a row;
4. start the recorders (keepalived transitions are read from its notify log, GARPs and
   ARP entries on each client, the VIP's holders on each VRRP host, controller events)
   and take ``t0``: every ``t`` of the record is seconds since then;
5. run the timeline: an entry ``at`` seconds after ``t0``, or ``when`` a probe has seen
   N good (or failed) answers in a row since the previous entry (bounded: an entry whose
   condition never holds is skipped and says so);
6. wait until every probe has recovered (bounded by the expectations' deadlines), undo
   every fault still in place, stop the recorders;
7. evaluate each expectation only inside the window of the entry it follows, and only
   if that entry happened (:func:`evaluate`); compute the measures of the first fault
   (:func:`measure`).

Step 7's functions work on plain data (:class:`Observations`), so they are tested
without a network.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from redlab.errors import ConfigError, RedlabError, WaitTimeout
from redlab.probe import Sample, analyse, failure_kind
from redlab.wait import wait_until

log = logging.getLogger(__name__)

SUPPORTED_PROBES = ("http",)
SUPPORTED_FAULTS = ("host_crash", "daemon_stop", "link_down")
SUPPORTED_EXPECTATIONS = ("recover_within", "max_lost", "vip_held_by_one", "arp_moved",
                          "never_failed")
STEADY_GOOD = 5             # answers in a row before the timeline starts
RECOVERED_GOOD = 10         # answers in a row that end a run after its last fault
STEADY_TIMEOUT = 20.0
WHEN_TIMEOUT = 30.0         # how long a `when` condition may take before it is skipped
SETTLE_MARGIN = 10.0        # beyond the longest deadline, the wait for recovery
NOT_HAPPENED = "its fault never happened"


# ---------------------------------------------------------------------------------------
# before anything starts
# ---------------------------------------------------------------------------------------

def _words(items):
    return ", ".join(items)


def refuse_unsupported(drill):
    """Raise :class:`ConfigError` (one sentence) for the first part of ``drill`` this
    redlab cannot run yet; the schema accepts more than this engine runs, and nothing
    may be silently ignored."""
    net = drill["network"]
    if "service" in net:
        raise ConfigError("network.service is not supported by this redlab yet; drills run "
                          "topologies without a load-balancer service for now")
    for i, probe in enumerate(drill["probes"]):
        if probe["type"] not in SUPPORTED_PROBES:
            raise ConfigError("probes[%d]: probe type %r is not supported by this redlab yet; "
                              "supported: %s" % (i, probe["type"], _words(SUPPORTED_PROBES)))
    for i, entry in enumerate(drill["timeline"]):
        if "fault" in entry and entry["fault"] not in SUPPORTED_FAULTS:
            raise ConfigError("timeline[%d]: fault %r is not supported by this redlab yet; "
                              "supported: %s" % (i, entry["fault"], _words(SUPPORTED_FAULTS)))
    for i, item in enumerate(drill["expect"]):
        kind = _expectation_kind(item)
        if kind not in SUPPORTED_EXPECTATIONS:
            raise ConfigError("expect[%d]: expectation %r is not supported by this redlab yet; "
                              "supported: %s" % (i, kind, _words(SUPPORTED_EXPECTATIONS)))
    topo = build_topology(drill)
    if _keepalived_changed(net["keepalived"]) and not _vrrp_hosts(topo):
        raise ConfigError("network.keepalived is set but topology %s runs no keepalived; "
                          "remove network.keepalived" % net["topology"])
    return topo


def _expectation_kind(item):
    from redlab.drill.schema import EXPECTATIONS
    return next(key for key in EXPECTATIONS if key in item)


def _keepalived_changed(options):
    from redlab.drill.schema import DRILL_SCHEMA
    schema = DRILL_SCHEMA["properties"]["network"]["properties"]["keepalived"]["properties"]
    return any(options.get(key) != spec.get("default") for key, spec in schema.items()
               if key in options)


def _vrrp_hosts(topo):
    return [name for name in topo.hosts() if topo.nodeInfo(name).get("vrrp")]


def build_topology(drill):
    """The drill's topology with its params; the keepalived options go onto every host
    the topology gives a ``vrrp`` mapping (they override the topology's own)."""
    import topologies
    net = drill["network"]
    topo = topologies.get(net["topology"])(**net["params"])
    options = dict(net["keepalived"])
    script = options.pop("vrrp_script", None)
    if script is not None:
        options["check_http"] = dict(script)
    for name in _vrrp_hosts(topo):
        topo.nodeInfo(name)["vrrp"].update(options)
    return topo


# ---------------------------------------------------------------------------------------
# what a run saw, as plain data (times in seconds since t0)
# ---------------------------------------------------------------------------------------

@dataclass
class Observations:
    """Everything expectations and measures are judged on.

    ``marks``: timeline id -> when it happened (None: it never did); ``undone``: fault id
    -> when it was undone; ``entries``: timeline id -> its entry; ``samples``: probe ->
    record samples (``t``, ``ok``, ``served_by``, ``error``...); ``holders``: VIP ->
    ``[(t, frozenset of hosts)]``, the VIP's holders from t on; ``arp``: ``(client, vip)``
    -> ``[(t, mac or None)]``; ``macs``: host -> MAC; ``masters``: ``[(t, host)]`` of
    VRRP MASTER transitions; ``end``: when recording stopped.
    """
    marks: dict
    entries: dict
    samples: dict
    probe_interval: dict
    end: float
    undone: dict = field(default_factory=dict)
    holders: dict = field(default_factory=dict)
    arp: dict = field(default_factory=dict)
    macs: dict = field(default_factory=dict)
    masters: list = field(default_factory=list)

    def window(self, entry_id):
        """From an entry to its undo (a fault) or to the end of the recording."""
        start = self.marks.get(entry_id)
        undone = self.undone.get(entry_id)
        return start, undone if undone is not None else self.end

    def first_fault(self):
        """The id of the first fault that happened (the one the measures are about)."""
        faults = [(t, i) for i, t in self.marks.items()
                  if t is not None and "fault" in self.entries.get(i, {})]
        return min(faults)[1] if faults else None


def _samples(records):
    return [Sample(seq=n, t=s["t"], end=s["t"] + (s.get("latency") or 0.0), ok=s["ok"],
                   server=s.get("served_by"), error=s.get("error"))
            for n, s in enumerate(records)]


def _between(samples, start, end):
    return [s for s in samples if start <= s["t"] < end]


def _secs(value):
    return "%.2f s" % value


def _bound(value):
    return "%g s" % value


def _result(name, passed, measured, bound, reason):
    return dict(name=name, passed=bool(passed), measured=measured, bound=bound, reason=reason)


def expectation_name(item):
    """A name that reads as a sentence and is the same in every variant and run."""
    after = "after %s" % item["after"] if "after" in item else \
        "between %s and %s" % tuple(item["during"])
    if "recover_within" in item:
        return "service back within %s %s (probe %s)" % (_bound(item["recover_within"]), after,
                                                          item["probe"])
    if "max_lost" in item:
        return "at most %d requests lost %s (probe %s)" % (item["max_lost"], after,
                                                           item["probe"])
    if "vip_held_by_one" in item:
        v = item["vip_held_by_one"]
        return "VIP %s held by exactly one of %s within %s %s" % (
            v["vip"], ", ".join(v["hosts"]), _bound(item["within"]), after)
    if "arp_moved" in item:
        a = item["arp_moved"]
        return "%s's ARP entry for %s moved to %s within %s %s" % (
            a["client"], a["vip"], a["to"], _bound(item["within"]), after)
    if "never_failed" in item:
        return "probe %s never failed %s" % (item["never_failed"], after)
    return "%s %s" % (_expectation_kind(item), after)


def evaluate(expectations, obs):
    """Each expectation judged in its window; one whose entry never happened fails."""
    return [evaluate_one(item, obs) for item in expectations]


def evaluate_one(item, obs):
    name = expectation_name(item)
    if "during" in item:
        first, last = item["during"]
        if obs.marks.get(first) is None:
            return _result(name, False, None, None, _never(obs, first))
        if obs.marks.get(last) is None:
            return _result(name, False, None, None, "timeline entry %s never happened, so "
                                                    "the window has no end" % last)
        start, end = obs.marks[first], obs.marks[last]
    else:
        if obs.marks.get(item["after"]) is None:
            return _result(name, False, None, None, _never(obs, item["after"]))
        start, end = obs.window(item["after"])
    if "recover_within" in item:
        return _recover_within(name, item, obs, start, end)
    if "max_lost" in item:
        return _max_lost(name, item, obs, start, end)
    if "vip_held_by_one" in item:
        return _vip_held_by_one(name, item, obs, start, end)
    if "arp_moved" in item:
        return _arp_moved(name, item, obs, start, end)
    return _never_failed(name, item, obs, start, end)


def _never(obs, entry_id):
    if "fault" in obs.entries.get(entry_id, {"fault": True}):
        return NOT_HAPPENED
    return "its step (%s) never happened" % entry_id


def _recover_within(name, item, obs, start, end):
    bound = item["recover_within"]
    samples = _between(obs.samples.get(item["probe"], []), start, end)
    if not samples:
        return _result(name, False, None, bound, "probe %s sent no request after the fault"
                       % item["probe"])
    timeline = analyse(_samples(samples), start)
    took = timeline.time_to_recover
    if took is None:
        return _result(name, False, None, bound, "service not back %s after the fault "
                       "(bound %s)" % (_secs(end - start), _bound(bound)))
    return _result(name, took <= bound, round(took, 3), bound,
                   "service back after %s (bound %s)" % (_secs(took), _bound(bound)))


def _max_lost(name, item, obs, start, end):
    bound = item["max_lost"]
    samples = _between(obs.samples.get(item["probe"], []), start, end)
    if not samples:
        return _result(name, False, None, bound, "probe %s sent no request after the fault"
                       % item["probe"])
    timeline = analyse(_samples(samples), start)
    lost = timeline.requests_lost
    if not timeline.recovered:
        return _result(name, False, lost, bound, "the service never came back: %d of %d "
                       "requests lost before the run ended (bound %d)"
                       % (lost, len(samples), bound))
    return _result(name, lost <= bound, lost, bound, "%d of %d requests lost (bound %d)"
                   % (lost, len(samples), bound))


def holders_at(changes, t):
    """The holders in force at ``t`` from ``[(t, frozenset)]`` (sorted)."""
    current = frozenset()
    for when, holders in changes:
        if when > t:
            break
        current = holders
    return current


def _vip_held_by_one(name, item, obs, start, end):
    spec, bound = item["vip_held_by_one"], item["within"]
    hosts = set(spec["hosts"])
    changes = [(t, h & hosts) for t, h in obs.holders.get(spec["vip"], [])]
    # the holder sets in the window: the one in force at the fault, then each change
    states = [(start, holders_at(changes, start))] + [(t, h) for t, h in changes
                                                        if start < t <= end]
    stable = None           # since when exactly one host held it, to the window's end
    for t, holders in states:
        if len(holders) == 1:
            stable = t if stable is None else stable
        else:
            stable = None
    final = states[-1][1]
    if stable is None:
        who = ", ".join(sorted(final)) if final else "nobody"
        return _result(name, False, None, bound, "at the end the VIP was held by %s "
                       "(%d hosts), not by exactly one" % (who, len(final)))
    took = stable - start
    return _result(name, took <= bound, round(took, 3), bound,
                   "held by %s alone from %s after the fault on (bound %s)"
                   % (next(iter(final)), _secs(took), _bound(bound)))


def mac_at(entries, t):
    mac = None
    for when, now in entries:
        if when > t:
            break
        mac = now if now is not None else mac
    return mac


def _arp_moved(name, item, obs, start, end):
    spec, bound = item["arp_moved"], item["within"]
    target = obs.macs.get(spec["to"])
    entries = sorted(obs.arp.get((spec["client"], spec["vip"]), []), key=lambda e: e[0])
    before = mac_at(entries, start)
    if before == target:
        return _result(name, False, None, bound, "%s's entry for %s already pointed to %s "
                       "(%s) before the fault: nothing to move" % (
                           spec["client"], spec["vip"], spec["to"], target))
    moved = next((t for t, mac in entries if start <= t <= end and mac == target), None)
    if moved is None:
        now = mac_at(entries, end)
        return _result(name, False, None, bound, "%s's entry for %s still points to %s, not "
                       "%s's %s" % (spec["client"], spec["vip"], now or "nothing",
                                    spec["to"], target))
    took = moved - start
    return _result(name, took <= bound, round(took, 3), bound,
                   "moved from %s to %s (%s) %s after the fault (bound %s)"
                   % (before or "nothing", target, spec["to"], _secs(took), _bound(bound)))


def _never_failed(name, item, obs, start, end):
    samples = _between(obs.samples.get(item["never_failed"], []), start, end)
    if not samples:
        return _result(name, False, None, 0, "probe %s sent no request in the window"
                       % item["never_failed"])
    failed = [s for s in samples if not s["ok"]]
    if failed:
        return _result(name, False, len(failed), 0, "%d of %d requests failed, the first at "
                       "t=%.2f s (%s)" % (len(failed), len(samples), failed[0]["t"],
                                          failed[0].get("error") or "failed"))
    return _result(name, True, 0, 0, "all %d requests answered" % len(samples))


def measure(obs, drill):
    """The run's measures and intervals, about its first fault and first probe."""
    probe = drill["probes"][0]["name"]
    fault = obs.first_fault()
    empty = dict(time_to_detect=None, time_to_recover=None, requests_lost=None,
                 loss_convergence=None)
    if fault is None:
        return empty, []
    start, end = obs.window(fault)
    samples = _between(obs.samples.get(probe, []), start, end)
    masters = [t for t, _host in obs.masters if start <= t <= end]
    detected = masters[0] if masters else None
    timeline = analyse(_samples(samples), start, detected_at=detected) if samples else None
    lost = timeline.requests_lost if timeline else None
    recover = timeline.time_to_recover if timeline else None
    values = dict(
        time_to_detect=_round(detected - start) if detected is not None else None,
        time_to_recover=_round(recover),
        requests_lost=lost,
        loss_convergence=_round(lost * obs.probe_interval[probe]) if lost is not None else None)
    intervals = []
    if detected is not None:
        intervals.append(dict(name="detect", start=start, end=detected))
    if recover is not None:
        intervals.append(dict(name="recover", start=start, end=start + recover))
    return values, intervals


def _round(value):
    return None if value is None else round(value, 3)


# ---------------------------------------------------------------------------------------
# the run on a real network
# ---------------------------------------------------------------------------------------

def run_drill(drill, variant=None, run_folder=None, run_number=1, when_timeout=WHEN_TIMEOUT):
    """Run ``drill`` (as :func:`redlab.drill.schema.load_drill` returns it) once on a
    fresh network, as its ``variant`` (None: the default); return the run record, also
    written to ``record.json`` in the run folder."""
    from redlab.drill.schema import variant as variant_of
    label = variant or "default"
    drill = variant_of(drill, label)
    topo = refuse_unsupported(drill)
    runner = _Runner(drill, label, run_number, when_timeout)
    record = runner.run(topo, run_folder)
    Path(record["run_folder"]).joinpath("record.json").write_text(
        json.dumps(record, indent=1, default=str))
    return record


class _Runner:
    """One run: the network, its probes and recorders, the timeline's marks."""

    def __init__(self, drill, label, run_number, when_timeout):
        self.drill = drill
        self.label = label
        self.run_number = run_number
        self.when_timeout = when_timeout
        self.net = None
        self.probes = {}
        self.recorders = []
        self.neigh = {}             # client -> NeighbourMonitor
        self.arp = {}               # client -> ArpCapture
        self.addr = {}              # host -> _AllAddresses
        self.t0 = None
        self.events = []
        self.marks = {}
        self.undone = {}
        self.faults = {}            # id -> Fault still in place
        self.crashed = []           # (host, t) of host crashes
        self.initial = {}

    # -- the run, start to end --------------------------------------------------------
    def run(self, topo, run_folder):
        from redlab.net import Network
        name = "drill-%s-%s-%d" % (self.drill["drill"], self.label, self.run_number)
        with Network(topo, name=name, run_folder=run_folder,
                     controller_config=dict(self.drill["network"]["controller"])) as net:
            self.net = net
            self._check_daemons()
            try:
                self._start_probes()
                self._wait_steady()
                self._start_recorders()
                self.t0 = time.time()
                self._snapshot()
                self._timeline()
                self._settle()
                self._undo_all()
            finally:
                self._stop_all()
            return self._record(str(net.run.path))

    def _check_daemons(self):
        for i, entry in enumerate(self.drill["timeline"]):
            if entry.get("fault") == "daemon_stop":
                daemons = self.net[entry["host"]].daemons
                if entry["daemon"] not in daemons:
                    raise ConfigError("timeline[%d]: host %s runs no %s (it runs %s); pick one "
                                      "of its daemons" % (i, entry["host"], entry["daemon"],
                                                          ", ".join(daemons) or "none"))

    def _keepalived(self):
        return {h.name: h.daemons["keepalived"] for h in self.net.hosts
                if "keepalived" in getattr(h, "daemons", {})}

    def _start_probes(self):
        from redlab.probe import Probe
        bound = self._longest_run()
        for spec in self.drill["probes"]:
            probe = Probe(self.net[spec["from"]], spec["url"], name="probe-%s" % spec["name"],
                          interval=spec["interval"], timeout=spec["timeout"],
                          max_seconds=bound)
            self.probes[spec["name"]] = probe
            probe.start()

    def _longest_run(self):
        """A bound for the probes: steady wait, timeline, settling, with room to spare."""
        timeline = self.drill["timeline"]
        at = max([e.get("at", 0) for e in timeline] + [0])
        whens = sum(1 for e in timeline if "when" in e) * self.when_timeout
        return STEADY_TIMEOUT + at + whens + self._settle_timeout() + 60

    def _wait_steady(self):
        keepalived = self._keepalived()
        if keepalived:
            def one_master():
                states = {h: d.current_state() for h, d in keepalived.items()}
                masters = [h for h, s in states.items() if s == "MASTER"]
                return len(masters) == 1, states
            wait_until(one_master, STEADY_TIMEOUT, "exactly one keepalived MASTER")
        for name, probe in self.probes.items():
            try:
                probe.wait_good(STEADY_GOOD, timeout=STEADY_TIMEOUT)
            except WaitTimeout as exc:
                raise RedlabError("the network never became steady: probe %s did not get %d "
                                  "good answers in a row (%s); check the probe's url"
                                  % (name, STEADY_GOOD, exc)) from None

    def _start_recorders(self):
        from redlab.recorders import ArpCapture, NeighbourMonitor
        clients = {spec["from"] for spec in self.drill["probes"]}
        clients |= {e["arp_moved"]["client"] for e in self.drill["expect"] if "arp_moved" in e}
        for client in sorted(clients):
            host = self.net[client]
            self.arp[client] = self._recorder(ArpCapture(host))
            self.neigh[client] = self._recorder(NeighbourMonitor(host))
        for host in sorted({h for e in self.drill["expect"] if "vip_held_by_one" in e
                            for h in e["vip_held_by_one"]["hosts"]}):
            self.addr[host] = self._recorder(_AllAddresses(self.net[host]))

    def _recorder(self, recorder):
        self.recorders.append(recorder)
        return recorder.start()

    def _snapshot(self):
        """What the recorders cannot see because it did not change: the state at t0."""
        for client, monitor in self.neigh.items():
            for vip in self._vips():
                monitor.mark(vip)
        for host in self.addr:
            self.initial[host] = {vip: self.net[host].holds(vip) for vip in self._vips()}

    def _vips(self):
        vips = {e["vip_held_by_one"]["vip"] for e in self.drill["expect"]
                if "vip_held_by_one" in e}
        vips |= {e["arp_moved"]["vip"] for e in self.drill["expect"] if "arp_moved" in e}
        for daemon in self._keepalived().values():
            vips |= {v.split("/")[0] for v in daemon.vips}
        return sorted(vips)

    # -- the timeline -----------------------------------------------------------------
    def _timeline(self):
        since = self.t0
        for i, entry in enumerate(self.drill["timeline"]):
            key = entry.get("id", "#%d" % i)
            if "at" in entry:
                delay = self.t0 + entry["at"] - time.time()
                if delay > 0:
                    time.sleep(delay)       # a scheduled time, not a condition
            elif not self._wait_when(entry, since, key):
                self.marks[key] = None
                continue
            since = self._do(key, entry)

    def _wait_when(self, entry, since, key):
        cond = entry["when"]
        probe = self.probes[cond["probe"]]
        want_ok = "good" in cond
        count = cond.get("good", cond.get("failed"))

        def streak():
            run = 0
            for s in probe.samples():
                if s.t >= since:
                    run = run + 1 if s.ok == want_ok else 0
            return run >= count, run
        try:
            wait_until(streak, self.when_timeout, "condition of %s" % key, interval=0.1)
            return True
        except WaitTimeout:
            what = "good" if want_ok else "failed"
            self._event(time.time(), "step" if "step" in entry else "fault", "skipped",
                        "%s skipped: probe %s never saw %d %s answers in a row within %g s"
                        % (key, cond["probe"], count, what, self.when_timeout))
            return False

    def _do(self, key, entry):
        from redlab import faults
        if "step" in entry:
            of = entry["of"]
            fault = self.faults.pop(of, None)
            if fault is None:       # its fault never happened, or was already undone
                self.marks[key] = None
                return time.time()
            fault.undo()
            self.undone[of] = fault.undone_at
            self.marks[key] = fault.undone_at
            self._event(fault.undone_at, "step", "mark", "undo %s" % self._describe(
                self._entry(of)))
            return fault.undone_at
        kind = entry["fault"]
        # the fault's mark is when it began: a probe request can fail while the fault is
        # still being done (seen: a request at +4 ms failed before host_crash returned)
        began = time.time()
        if kind == "host_crash":
            fault = faults.host_crash(self.net, entry["host"])
            self.crashed.append((entry["host"], fault))
        elif kind == "daemon_stop":
            fault = faults.daemon_stop(self.net[entry["host"]].daemons[entry["daemon"]])
        else:
            fault = faults.link_down(self.net, *entry["link"])
        self.faults[key] = fault
        self.marks[key] = began
        self._event(began, "fault", "mark", self._describe(entry))
        if kind == "host_crash" and entry["host"] in self._keepalived():
            self._event(began, "vrrp %s" % entry["host"], "state", "(host crashed)")
        return began

    def _entry(self, key):
        for i, entry in enumerate(self.drill["timeline"]):
            if entry.get("id", "#%d" % i) == key:
                return entry
        raise KeyError(key)

    @staticmethod
    def _describe(entry):
        kind = entry["fault"]
        if kind == "link_down":
            return "link_down %s-%s" % tuple(entry["link"])
        if kind == "daemon_stop":
            return "daemon_stop %s on %s" % (entry["daemon"], entry["host"])
        return "%s %s" % (kind, entry["host"])

    def _settle_timeout(self):
        deadlines = [e.get("recover_within", 0) for e in self.drill["expect"]]
        deadlines += [e.get("within", 0) for e in self.drill["expect"]]
        return max(deadlines + [5.0]) + SETTLE_MARGIN

    def _settle(self):
        """Wait until every probe answered RECOVERED_GOOD times in a row after the last
        fault or step (bounded: a service that never comes back ends the run too)."""
        happened = [t for t in self.marks.values() if t is not None]
        if not happened:
            return
        since = max(happened)

        def recovered():
            streaks = {}
            for name, probe in self.probes.items():
                run = 0
                for s in probe.samples():
                    if s.t >= since:
                        run = run + 1 if s.ok else 0
                streaks[name] = run
            return all(v >= RECOVERED_GOOD for v in streaks.values()), streaks
        try:
            wait_until(recovered, self._settle_timeout(), "every probe to recover",
                       interval=0.1)
        except WaitTimeout:
            log.info("drill %s: not every probe recovered before the run ended",
                     self.drill["drill"])

    def _undo_all(self):
        self.end = time.time()
        for key in list(self.faults)[::-1]:
            fault = self.faults.pop(key)
            fault.undo()
            self.undone[key] = fault.undone_at
            self._event(fault.undone_at, "step", "mark", "undo %s (end of the drill)"
                        % self._describe(self._entry(key)))

    def _stop_all(self):
        for probe in self.probes.values():
            probe.terminate()
        for probe in self.probes.values():
            probe.stop()
        for recorder in self.recorders:
            recorder.stop()
        for fault in self.faults.values():      # an error in the middle: undo anyway
            try:
                fault.undo()
            except Exception as exc:            # noqa: BLE001 -- the network stops next
                log.warning("could not undo %s: %s", fault, exc)

    # -- the record -------------------------------------------------------------------
    def _event(self, t, lane, kind, label):
        self.events.append(dict(t=t, lane=lane, kind=kind, label=label))

    def _record(self, folder):
        t0 = self.t0
        samples = {name: self._probe_samples(probe) for name, probe in self.probes.items()}
        self._vrrp_events()
        self._garp_events()
        self._arp_events()
        self._controller_events()
        self._probe_events(samples)
        rel = lambda t: None if t is None else round(t - t0, 4)    # noqa: E731
        obs = Observations(
            marks={k: rel(t) for k, t in self.marks.items()},
            entries={e.get("id", "#%d" % i): e for i, e in enumerate(self.drill["timeline"])},
            samples=samples,
            probe_interval={p["name"]: p["interval"] for p in self.drill["probes"]},
            end=rel(getattr(self, "end", time.time())),
            undone={k: rel(t) for k, t in self.undone.items()},
            holders=self._holders(rel), arp=self._arp_entries(rel), macs=self._macs(),
            masters=[(rel(t), host) for host, d in self._keepalived().items()
                     for t, state in d.transitions() if state == "MASTER" and t >= t0])
        obs.masters.sort()
        measures, intervals = measure(obs, self.drill)
        events = [dict(e, t=rel(e["t"])) for e in self.events if e["t"] >= t0 - 1e-6]
        events.sort(key=lambda e: e["t"])
        return dict(drill=self.drill["drill"], variant=self.label, run=self.run_number,
                    t0=t0, events=events, samples=samples, probe_interval=obs.probe_interval,
                    measures=measures, intervals=intervals,
                    expectations=evaluate(self.drill["expect"], obs), run_folder=folder)

    def _probe_samples(self, probe):
        return [dict(t=round(s.t - self.t0, 4), ok=bool(s.ok),
                     latency=round(s.end - s.t, 4) if s.end is not None else None,
                     served_by=s.server,
                     error=None if s.ok else failure_kind(s.status, s.error))
                for s in probe.samples() if s.t >= self.t0]

    def _vrrp_events(self):
        for host, daemon in self._keepalived().items():
            states = daemon.transitions()
            before = [s for t, s in states if t < self.t0]
            if before:
                self._event(self.t0, "vrrp %s" % host, "state", before[-1])
            for t, state in states:
                if t >= self.t0:
                    self._event(t, "vrrp %s" % host, "state", state)

    def _macs(self):
        return {h.name: h.MAC() for h in self.net.hosts}

    def _mac_names(self):
        names = {mac: host for host, mac in self._macs().items()}
        for host, daemon in self._keepalived().items():
            names[daemon.vmac] = "VRRP virtual MAC"
        return names

    def _garp_events(self):
        names = self._mac_names()
        for client, capture in self.arp.items():
            for p in capture.packets(since=self.t0):
                if p["gratuitous"]:
                    who = names.get(p["sender_mac"], "?")
                    self._event(p["t"], "garp", "packet", "%s says %s is-at %s" % (
                        who, p["sender_ip"], p["sender_mac"]))

    def _arp_entries(self, rel):
        return {(client, vip): [(rel(max(t, self.t0)), mac) for t, mac in monitor.entries(vip)]
                for client, monitor in self.neigh.items() for vip in self._vips()}

    def _arp_events(self):
        names = self._mac_names()
        for client, monitor in self.neigh.items():
            for vip in self._vips():
                previous = object()
                for t, mac in monitor.entries(vip):
                    if mac == previous:
                        continue
                    previous = mac
                    label = "%s -> %s (%s)" % (vip, mac, names.get(mac, "?")) if mac else \
                        "%s: no entry" % vip
                    self._event(max(t, self.t0), "arp %s" % client, "state", label)

    def _holders(self, rel):
        result = {}
        for vip in self._vips():
            changes = []
            for host, monitor in self.addr.items():
                changes.append((self.t0, host, self.initial[host][vip]))
                changes += [(t, host, held) for t, ip, held in monitor.changes() if ip == vip]
            for host, fault in self.crashed:
                if host in self.addr:
                    changes.append((fault.at, host, False))     # a dead host holds nothing
            result[vip] = [(rel(t), h) for t, h in holder_sets(changes)]
        return result

    def _controller_events(self):
        if self.net.controller is None:
            return
        for e in self.net.controller.events():
            if e["t"] < self.t0:
                continue
            kind = e["event"]
            if kind == "mac_moved":
                self._event(e["t"], "controller", "flow", "MAC %s moved port %s -> %s, flows %s"
                            % (e["mac"], e["old_port"], e["new_port"],
                               "replaced" if e.get("flows_replaced") else "left stale"))
            elif kind == "ip_moved":
                self._event(e["t"], "controller", "flow", "%s moved to %s (port %s)%s" % (
                    e["ip"], e["new_mac"], e["new_port"],
                    " on a GARP" if e.get("gratuitous") else ""))
            elif kind == "health":
                self._event(e["t"], "health %s" % e["server"], "state", e["state"])
            elif kind != "scheduled":       # one per connection: the probe lane has them
                self._event(e["t"], "controller", "event", kind)

    def _probe_events(self, samples):
        """The probe lane's turning points: the first failure, the first good answer after."""
        for name, records in samples.items():
            ok = True
            for s in records:
                if s["ok"] != ok:
                    ok = s["ok"]
                    self._event(self.t0 + s["t"], "probe %s" % name, "ok" if ok else "fail",
                                "answered by %s" % s["served_by"] if ok else s["error"])


def holder_sets(changes):
    """``[(t, host, held)]`` -> ``[(t, frozenset of holders from t on)]``, time order."""
    held = set()
    result = []
    for t, host, now in sorted(changes, key=lambda c: c[0]):
        if now:
            held.add(host)
        else:
            held.discard(host)
        if result and result[-1][0] == t:
            result[-1] = (t, frozenset(held))
        else:
            result.append((t, frozenset(held)))
    return result


class _AllAddresses:
    """A host's IPv4 addresses on every interface over time (``ip -ts monitor address``):
    with ``use_vmac`` the VIP sits on keepalived's ``vrrp.N``, not on the default one."""

    def __init__(self, host):
        from redlab.recorders import HostProcess
        self.process = HostProcess(host, "addr-all.txt", ["ip", "-ts", "monitor", "address"])

    def start(self):
        self.process.start()
        return self

    def stop(self):
        self.process.stop()

    def changes(self):
        from redlab.recorders import ADDR_LINE, ip_monitor_time
        result = []
        for line in self.process.text().splitlines():
            m = ADDR_LINE.match(line)
            if m:
                result.append((ip_monitor_time(m.group("ts")), m.group("ip"),
                               not m.group("deleted")))
        return result


# ---------------------------------------------------------------------------------------
# repeated and compared: what `redlab drill` runs
# ---------------------------------------------------------------------------------------

def run_series(drill, repeat=1, compare=None, folder=None, progress=None,
               when_timeout=WHEN_TIMEOUT):
    """Run the drill ``repeat`` times, each on a fresh network; with ``compare`` (a
    variant's name) run the default and that variant interleaved (A, B, A, B...), so a
    slow hour of the machine hits both alike.  Returns ``{label: [record, ...]}``; each
    run's folder is ``<folder>/runs/<label>-run<N>``.  ``progress(text)`` gets one line
    per run."""
    from redlab.drill.schema import variant as variant_of
    labels = ["default"] + ([compare] if compare else [])
    for label in labels:                        # every refusal before the first network
        refuse_unsupported(variant_of(drill, label))
    folder = Path(folder)
    runs = {label: [] for label in labels}
    total = repeat * len(labels)
    for n in range(1, repeat + 1):
        for label in labels:
            record = run_drill(drill, None if label == "default" else label,
                               run_folder=folder / "runs" / ("%s-run%d" % (label, n)),
                               run_number=n, when_timeout=when_timeout)
            runs[label].append(record)
            if progress:
                progress("run %d/%d (%s %d): %s" % (sum(map(len, runs.values())), total,
                                                    label, n, run_line(record)))
    return runs


def run_line(record):
    """One run in one line: its measures and how many expectations it met."""
    m = record["measures"]
    met = sum(1 for e in record["expectations"] if e["passed"])

    def secs(value):
        return "never" if value is None else "%.2f s" % value
    return "detect %s, recover %s, %s requests lost, %d/%d expectations met" % (
        secs(m["time_to_detect"]), secs(m["time_to_recover"]),
        "n/a" if m["requests_lost"] is None else m["requests_lost"], met,
        len(record["expectations"]))


def all_met(runs_by_variant):
    return all(e["passed"] for runs in runs_by_variant.values() for run in runs
               for e in run["expectations"])
