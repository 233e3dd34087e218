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

import contextlib
import json
import logging
import time
from pathlib import Path

from redlab.errors import ConfigError, RedlabError, WaitTimeout
from redlab.drill import actions
from redlab.drill.schema import variant as variant_of
from redlab.drill.expect import (NOT_HAPPENED, Observations, evaluate,  # noqa: F401
                                  holder_sets, measure)
from redlab.probe import failure_kind, streak
from redlab.wait import wait_until

log = logging.getLogger(__name__)

STEADY_GOOD = 5             # answers in a row before the timeline starts
RECOVERED_GOOD = 10         # answers in a row that end a run after its last fault
STEADY_TIMEOUT = 20.0
WHEN_TIMEOUT = 30.0         # how long a `when` condition may take before it is skipped
SETTLE_MARGIN = 10.0        # beyond the longest deadline, the wait for recovery


# ---------------------------------------------------------------------------------------
# before anything starts
# ---------------------------------------------------------------------------------------

def refuse_unsupported(drill):
    """Build the drill's topology, or raise :class:`ConfigError` (one sentence) for what
    only the topology can tell: a load balancer without a director or with real servers
    that are no hosts, keepalived options on a network without keepalived.  Every probe
    type, fault and expectation of the schema runs (``tests/unit/test_drill_engine.py``
    holds the registries to the schema's lists)."""
    net = drill["network"]
    topo = build_topology(drill)
    if "service" in net:
        _refuse_service(net, topo)
    if _keepalived_changed(net["keepalived"]) and not _vrrp_hosts(topo):
        raise ConfigError("network.keepalived is set but topology %s runs no keepalived; "
                          "remove network.keepalived" % _topology_name(net))
    return topo


def _topology_name(net):
    return net.get("topology", "declared in network.nodes")


def _refuse_service(net, topo):
    """A load balancer needs a ``director`` host and its real servers on the topology."""
    if "director" not in topo.hosts():
        raise ConfigError("network.service needs a host named director (the load balancer's "
                          "health checker runs there) and topology %s has none; use "
                          "service_lan" % _topology_name(net))
    ips = {topo.nodeInfo(h).get("ip", "").split("/")[0]: h for h in topo.hosts()}
    for server in net["service"]["real_servers"]:
        if server["ip"] not in ips:
            raise ConfigError("network.service real server %s has ip %s, which no host of "
                              "topology %s has; use one of %s" % (
                                  server["name"], server["ip"], _topology_name(net),
                                  ", ".join(sorted(i for i in ips if i))))


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
    from redlab.drill.schema import topology_spec
    name, params = topology_spec(net)
    topo = topologies.get(name)(**params)
    options = dict(net["keepalived"])
    script = options.pop("vrrp_script", None)
    if script is not None:
        options["check_http"] = dict(script)
    for name in _vrrp_hosts(topo):
        topo.nodeInfo(name)["vrrp"].update(options)
    return topo


# ---------------------------------------------------------------------------------------
# the run on a real network
# ---------------------------------------------------------------------------------------

def run_drill(drill, variant=None, run_folder=None, run_number=1, when_timeout=WHEN_TIMEOUT,
              label=None):
    """Run ``drill`` (as :func:`redlab.drill.schema.load_drill` returns it) once on a
    fresh network, as its ``variant`` (None: the default); return the run record, also
    written to ``record.json`` in the run folder.  ``label`` names the run in the record
    and the report (default: the variant's name)."""
    name = variant or "default"
    drill = variant_of(drill, name)
    topo = refuse_unsupported(drill)
    runner = Runner(drill, label or name, run_number, when_timeout)
    record = runner.run(topo, run_folder)
    Path(record["run_folder"]).joinpath("record.json").write_text(
        json.dumps(record, indent=1, default=str))
    return record


class Runner:
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
        self.began = {}             # step id -> when its undo began (its mark: when it returned)
        self.undone = {}
        self.faults = {}            # id -> Fault still in place
        self.crashed = []           # (host, t) of host crashes
        self.initial = {}
        self.lb = None              # the LoadBalancedService of network.service

    # -- the run, start to end --------------------------------------------------------
    def run(self, topo, run_folder):
        name = "drill-%s-%s-%d" % (self.drill["drill"], self.label, self.run_number)
        with self._network(topo, name, run_folder) as net:
            self.net = net
            self._start_daemons()
            actions.check_all(self, self.drill["timeline"])
            try:
                self._setup_network()
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

    @contextlib.contextmanager
    def _network(self, topo, name, run_folder):
        """The drill's network; with ``network.service``, the load balancer too: the
        os-ken load-balancer app, direct routing's VIP on the real servers, and the
        health checker in the director (what ``redlab run lb`` starts)."""
        from redlab.net import Network
        controller = dict(self.drill["network"]["controller"])
        service = self.drill["network"].get("service")
        if service is None:
            with Network(topo, name=name, run_folder=run_folder,
                         controller_config=controller) as net:
                yield net
            return
        from controllers.service import parse_service
        from redlab.scenarios.lb import LoadBalancedService
        with LoadBalancedService(parse_service(service), name=name, run_folder=run_folder,
                                 topo=topo, **controller) as lb:
            self.lb = lb
            yield lb.network

    def _start_daemons(self):
        """``network.daemons``: started once the network is up, stopped with its host."""
        from redlab.drill.schema import daemon_class
        for spec in self.drill["network"]["daemons"]:
            host = self.net[spec["host"]]
            host.start_daemon(daemon_class(spec["daemon"])(host, **spec["options"]))

    def lbctl(self):
        """The client of the load balancer's control socket (:class:`redlab.lbctl.LBClient`)."""
        if self.lb is None:
            raise ConfigError("this drill has no network.service, so there is no load "
                              "balancer to command; add network.service")
        return self.lb.ctl

    def keepalived(self):
        return {h.name: h.daemons["keepalived"] for h in self.net.hosts
                if "keepalived" in getattr(h, "daemons", {})}

    def _setup_network(self):
        """``network.setup`` in order, before the probes start: commands in hosts (each
        must exit 0: a drill on a half-configured network would measure nothing) and
        hosts unplugged (the switch side of each of their links goes down)."""
        from redlab.faults import shell
        for i, step in enumerate(self.drill["network"].get("setup", ())):
            if "unplug" in step:
                for intf in self.net[step["unplug"]].intfList():
                    link = intf.link
                    other = link and (link.intf2 if link.intf1 is intf else link.intf1)
                    if other and other.node in self.net.net.switches:
                        other.node.cmd("ip link set dev %s down" % other.name)
                continue
            host = self.net[step["host"]]
            status, output = shell(host, step["run"], self.net.run.file(
                host.name, "setup-%d.txt" % i))
            if status != 0:
                raise ConfigError("network.setup[%d] `%s` %s on %s (%s); fix the command" % (
                    i, step["run"], "timed out" if status is None else "exited %d" % status,
                    host.name, (output.strip().splitlines() or ["no output"])[-1]))

    def _start_probes(self):
        from redlab.probe import Probe
        bound = self._longest_run()
        for spec in self.drill["probes"]:
            probe = Probe.from_spec(self.net[spec["from"]], spec, "probe-%s" % spec["name"],
                                    bound, self._address)
            self.probes[spec["name"]] = probe
            probe.start()

    def _address(self, target):
        """A probe's target: a host's address, or the IPv4 address written."""
        return self.net[target].IP() if target in self.net.net else target

    def _longest_run(self):
        """A bound for the probes: steady wait, timeline, settling, with room to spare."""
        timeline = self.drill["timeline"]
        at = max([e.get("at", 0) for e in timeline] + [0])
        whens = sum(1 for e in timeline if "when" in e) * self.when_timeout
        return STEADY_TIMEOUT + at + whens + self._settle_timeout() + 60

    def _wait_steady(self):
        keepalived = self.keepalived()
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
                raise RedlabError("the network never became steady: probe %s (%s) did not "
                                  "get %d good answers in a row (%s); check its target and "
                                  "that the network serves it" % (
                                      name, probe.describe(), STEADY_GOOD, exc)) from None

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
        for daemon in self.keepalived().values():
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
        """Wait for the entry's ``when`` condition (bounded): a probe's streak since the
        previous entry, or a real server's ActiveConn or health in the load balancer."""
        cond = entry["when"]
        if "probe" in cond:
            check, what = self._streak(cond, since)
        else:
            check, what = self._server_state(cond)
        try:
            wait_until(check, self.when_timeout, "condition of %s" % key, interval=0.1)
            return True
        except WaitTimeout:
            self._event(time.time(), "step" if "step" in entry else "fault", "skipped",
                        "%s skipped: %s never held within %g s" % (key, what,
                                                                   self.when_timeout))
            return False

    def _streak(self, cond, since):
        probe = self.probes[cond["probe"]]
        want_ok = "good" in cond
        count = cond.get("good", cond.get("failed"))

        def held():
            run = streak(probe.samples(), since, want_ok)
            return run >= count, run
        return held, "probe %s seeing %d %s answers in a row" % (
            cond["probe"], count, "good" if want_ok else "failed")

    def _server_state(self, cond):
        name = cond["server"]

        def state():
            servers = {s.name: s for s in self.lbctl().status().servers}
            server = servers.get(name)
            if server is None:
                return False, "no real server %s" % name
            if "active" in cond:
                return server.active <= cond["active"], "ActiveConn %d" % server.active
            return server.health == cond["health"], "health %s" % server.health
        what = ("real server %s's ActiveConn at most %d" % (name, cond["active"])
                if "active" in cond else "real server %s %s" % (name, cond["health"]))
        return state, what

    def _do(self, key, entry):
        if "step" in entry:
            of = entry["of"]
            fault = self.faults.pop(of, None)
            if fault is None:       # its fault never happened, or was already undone
                self.marks[key] = None
                return time.time()
            fault.undo()
            self.undone[of] = fault.undone_at
            self.began[key] = fault.undo_began
            # the step's mark is when the undo returned (a restarted controller has its
            # switch again); fault.undo_began says when its effect could first be seen
            self.marks[key] = fault.undone_at
            self._event(fault.undone_at, "step", "mark", "undo %s" % actions.describe(
                self._entry(of)))
            return fault.undone_at
        # the fault's mark is when it began: a probe request can fail while the fault is
        # still being done (seen: a request at +4 ms failed before host_crash returned)
        began = time.time()
        fault = actions.inject(self, entry)
        self.faults[key] = fault
        self.marks[key] = began
        self._event(began, "fault", "mark", actions.describe(entry))
        if entry["fault"] == "host_crash":
            self.crashed.append((entry["host"], fault))
            if entry["host"] in self.keepalived():
                self._event(began, "vrrp %s" % entry["host"], "state", "(host crashed)")
        return began

    def _entry(self, key):
        for i, entry in enumerate(self.drill["timeline"]):
            if entry.get("id", "#%d" % i) == key:
                return entry
        raise KeyError(key)

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
            streaks = {name: streak(probe.samples(), since)
                       for name, probe in self.probes.items()}
            return all(v >= RECOVERED_GOOD for v in streaks.values()), streaks
        try:
            wait_until(recovered, self._settle_timeout(), "every probe to recover",
                       interval=0.1)
        except WaitTimeout:
            log.info("drill %s: not every probe recovered before the run ended",
                     self.drill["drill"])
        delay = self._deadlines_end() - time.time()
        if delay > 0:
            time.sleep(delay)       # the observation window the deadlines need, not a condition

    def _deadlines_end(self):
        """When the last deadline of an expectation ends (its entry's mark plus its
        ``within``/``recover_within``/``fails_within``): "within 5 s" can only be judged
        after 5 s, also when nothing failed (a planned switchover completes seconds after
        its step, with every request answered)."""
        ends = [0.0]
        for item in self.drill["expect"]:
            mark = self.marks.get(item.get("after"))
            bound = max(item.get(k, 0) for k in ("within", "recover_within", "fails_within"))
            if mark is not None and bound:
                ends.append(mark + bound)
        return max(ends)

    def _undo_all(self):
        self.end = time.time()
        for key in list(self.faults)[::-1]:
            fault = self.faults.pop(key)
            fault.undo()
            self.undone[key] = fault.undone_at
            self._event(fault.undone_at, "step", "mark", "undo %s (end of the drill)"
                        % actions.describe(self._entry(key)))

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

    def event(self, t, lane, kind, label):
        """An event an action records itself (a command's exit status), on the run's clock."""
        self._event(t, lane, kind, label)

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
            began={k: rel(t) for k, t in self.began.items()},
            holders=self._holders(rel), arp=self._arp_entries(rel), macs=self._macs(),
            ips={h.name: h.IP() for h in self.net.hosts},
            masters=[(rel(t), host) for host, d in self.keepalived().items()
                     for t, state in d.transitions() if state == "MASTER" and t >= t0])
        obs.masters.sort()
        obs.health = sorted((rel(e["t"]), e["server"], e["state"])
                            for e in self._controller_log("health") if e["t"] >= t0)
        measures, intervals = measure(obs, self.drill)
        events = [dict(e, t=rel(e["t"])) for e in self.events if e["t"] >= t0 - 1e-6]
        events.sort(key=lambda e: e["t"])
        observed = dict(  # the raw observations, for who needs more than the events
            holders={vip: [[t, sorted(h)] for t, h in changes]
                     for vip, changes in obs.holders.items()},
            arp={"%s %s" % key: [[t, mac] for t, mac in entries]
                 for key, entries in obs.arp.items()},
            marks=obs.marks, undone=obs.undone, began=obs.began, end=obs.end,
            controller=[dict(e, t=rel(e["t"])) for e in self._controller_log()
                        if e["t"] >= t0 and e["event"] != "scheduled"])
        return dict(drill=self.drill["drill"], variant=self.label, run=self.run_number,
                    t0=t0, events=events, samples=samples, probe_interval=obs.probe_interval,
                    measures=measures, intervals=intervals,
                    expectations=evaluate(self.drill["expect"], obs), observed=observed,
                    run_folder=folder)

    def _probe_samples(self, probe):
        return [dict(t=round(s.t - self.t0, 4), ok=bool(s.ok),
                     latency=round(s.end - s.t, 4) if s.end is not None else None,
                     served_by=s.server,
                     error=None if s.ok else failure_kind(s.status, s.error))
                for s in probe.samples() if s.t >= self.t0]

    def _vrrp_events(self):
        for host, daemon in self.keepalived().items():
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
        for host, daemon in self.keepalived().items():
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

    def _controller_log(self, kind=None):
        return [] if self.net.controller is None else self.net.controller.events(kind)

    def _controller_events(self):
        for e in self._controller_log():
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
                                ("answered by %s" % s["served_by"] if s["served_by"] else
                                 "answered") if ok else s["error"])


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
    """Run the drill ``repeat`` times, each on a fresh network; with ``compare`` run two
    variants interleaved (A, B, A, B...), so that a slow hour of the machine hits both
    alike.  ``compare`` is a variant's name (the drill's default against it) or another
    loaded drill file (this drill against that one).  Returns ``{label: [record, ...]}``;
    each run's folder is ``<folder>/runs/<label>-run<N>``.  ``progress(text)`` gets one
    line per run."""
    plans = series_plan(drill, compare)
    for label, (data, name) in plans.items():   # every refusal before the first network
        refuse_unsupported(variant_of(data, name))
    folder = Path(folder)
    runs = {label: [] for label in plans}
    total = repeat * len(plans)
    for n in range(1, repeat + 1):
        for label, (data, name) in plans.items():
            record = run_drill(data, None if name == "default" else name,
                               run_folder=folder / "runs" / ("%s-run%d" % (label, n)),
                               run_number=n, when_timeout=when_timeout, label=label)
            runs[label].append(record)
            if progress:
                progress("run %d/%d (%s %d): %s" % (sum(map(len, runs.values())), total,
                                                    label, n, run_line(record)))
    return runs


def series_plan(drill, compare=None):
    """``{label: (drill, variant name)}`` of a series: the drill alone, the drill against
    one of its variants, or the drill against another drill file (labelled by their
    ``drill:`` names, or ``A``/``B`` when both have the same)."""
    if compare is None:
        return {"default": (drill, "default")}
    if isinstance(compare, str):
        return {"default": (drill, "default"), compare: (drill, compare)}
    first, second = drill["drill"], compare["drill"]
    if first == second:
        first, second = "%s (A)" % first, "%s (B)" % second
    return {first: (drill, "default"), second: (compare, "default")}


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
