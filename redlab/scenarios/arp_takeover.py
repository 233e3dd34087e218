"""An IP takeover watched from a client: a VIP moves between the hosts of one LAN while a
client keeps requesting it, and its ARP entry, the ARP packets on the wire, the switch's
flows and the controller's ``ip_moved`` events show how (and how late) it learns the new
MAC::

    with ArpCapture(client) as capture:
        watch = Watch(Narrator(ctx.say, net), client, vip, capture,
                      probe=dict(interval=0.05, timeout=0.3), bound=4.7)
        move = watch.begin("probe-1-by-hand", web1, web2)  # client1 settled on web1
        web1.cmd("ip addr del ..."); web2.cmd("ip addr add ...")
        result = move.follow().finish("without GARP")     # measured, and narrated
        result["controller"] = move.after("the switch's flows, titled")

Every move starts from the same state (answers from the old holder through a REACHABLE
entry with its MAC) and ends when the client is served by the new holder through the new
holder's MAC, so moves with and without a gratuitous ARP compare.  Used by lab 07; also
here: the bound a client's neighbour timers put on a moved VIP's outage
(:func:`stale_bound`), keepalived's refusal to send no GARP
(:func:`garp_repeat_zero_refused`), and a bench that runs a student's script with
arguments the lab never uses (:func:`run_on_bench`).
"""

import time

from mininet.topo import Topo

from redlab import observe
from redlab.daemons import Keepalived
from redlab.errors import RedlabError, WaitTimeout
from redlab.net import Network
from redlab.probe import Probe, analyse
from redlab.recorders import BROADCAST, ArpCapture
from redlab.student import ScriptRun
from redlab.system import require_binary
from redlab.wait import wait_until


def stale_bound(timers):
    """The longest a client can keep a moved VIP's old MAC (seconds), from its timers.

    Linux keeps a confirmed entry REACHABLE for 1/2 to 3/2 of base_reachable_time; then
    STALE, DELAY for delay_first_probe_time, PROBE with ucast_solicit unicast requests
    retrans_time apart, and FAILED: only then does a broadcast find the new holder."""
    return (1.5 * timers["base_reachable_time_ms"] / 1000.0 + timers["delay_first_probe_time"]
            + timers["ucast_solicit"] * timers["retrans_time_ms"] / 1000.0)


def tune_neigh_timers(show, client, timers, probe):
    """Set ``client``'s neighbour timers and narrate the bound they put on a moved VIP's
    outage, against Linux's defaults.  Returns what it measured, ``stale_bound_with_probe``
    included: STALE -> DELAY and FAILED -> broadcast both wait for the client's next
    packet, here the probe's next request, at most one timeout + one interval later."""
    intf = client.defaultIntf().name
    defaults = observe.neigh_timers(client, intf, list(timers))
    show.say("  Linux defaults in %s: %s -> a moved VIP can stay unreachable for up to %.1f s"
             % (client.name, ", ".join("%s=%s" % kv for kv in defaults.items()),
                stale_bound(defaults)))
    timers = show.set_neigh_timers(client, timers)
    next_packet = probe["timeout"] + probe["interval"]
    bound = stale_bound(timers) + 2 * next_packet
    show.say("  now at most 1.5 x %.1f s REACHABLE + %d s DELAY + %d x %.1f s PROBE = %.1f s, "
             "plus twice the wait for %s's next packet (%.2f s here): %.2f s"
             % (timers["base_reachable_time_ms"] / 1000.0, timers["delay_first_probe_time"],
                timers["ucast_solicit"], timers["retrans_time_ms"] / 1000.0,
                stale_bound(timers), client.name, next_packet, bound))
    return dict(neigh_timers=timers, stale_bound=stale_bound(timers), linux_defaults=defaults,
                stale_bound_defaults=stale_bound(defaults),
                stale_bound_with_probe=round(bound, 2))


def ended(code, output):
    """How a :class:`~redlab.student.ScriptRun` ended, in words: its exit code (or the limit
    that ended it) and its last line of output, for a check's reason."""
    return "%s%s" % ("code %s" % code if isinstance(code, int) else code,
                     ": %s" % output.splitlines()[-1] if output else "")


def served_streak(samples, since, server):
    """How many answers in a row, at the end, came from ``server`` (sent at/after ``since``)."""
    run = 0
    for s in samples:
        if s.t >= since:
            run = run + 1 if s.ok and s.server == server else 0
    return run


class Narrator:
    """What the walk-through prints, with each MAC followed by its host's name."""

    def __init__(self, say, net, switch="s1"):
        self.say, self.net, self.switch = say, net, switch
        self.names = {h.MAC(): h.name for h in net.hosts}
        self.names[BROADCAST] = "broadcast"

    def name(self, mac):
        return self.names.get(mac, mac or "-")

    def run(self, host, command):
        """Run ``command`` in ``host``, printed with its output."""
        self.say("  %s# %s" % (host.name, command))
        out = host.cmd(command).strip()
        if out:
            self.say("    " + out.replace("\n", "\n    "))
        return out

    def set_neigh_timers(self, host, timers):
        """``sysctl -w`` the neighbour timers of ``host``'s interface, printed as sysctl
        prints them (read back: a value the kernel refused is an error)."""
        intf = host.defaultIntf().name
        keys = {"net.ipv4.neigh.%s.%s" % (intf, k): v for k, v in timers.items()}
        self.say("  %s# sysctl -w %s" % (host.name, " ".join("%s=%s" % kv for kv in keys.items())))
        for key, value in observe.set_sysctls(host, keys).items():
            self.say("    %s = %s" % (key, value))
        return observe.neigh_timers(host, intf, list(timers))

    def neigh(self, host, title):
        self.say("  %s# ip neigh        (%s)" % (host.name, title))
        entries = observe.neigh_table(host, host.defaultIntf().name)
        for n in entries:
            self.say("    %s%s %s%s" % (n.ip, " lladdr %s" % n.mac if n.mac else "", n.state,
                                        "   <- %s" % self.name(n.mac) if n.mac else ""))
        if not entries:
            self.say("    (empty)")

    def flows(self, title):
        self.say("  %s: ovs-ofctl -O OpenFlow13 dump-flows %s   (%s; cookie, duration and "
                 "n_bytes left out)" % (self.switch, self.switch, title))
        for f in observe.flows(self.net[self.switch]):
            mac = f.get("dl_src") or f.get("dl_dst")
            self.say("    " + f["line"] + ("   [%s]" % self.name(mac) if mac else ""))

    def flow_packets(self, mac):
        """n_packets of the switch's forwarding flow to ``mac`` (table 1, dl_dst)."""
        return sum(f["n_packets"] for f in observe.flows(self.net[self.switch])
                   if f.get("table") == 1 and f.get("dl_dst") == mac)

    def events(self, since):
        """The controller's ``ip_moved`` events since ``since``, printed and returned with
        the hosts' names."""
        moved = [e for e in self.net.controller.events("ip_moved") if e["t"] >= since]
        for e in moved:
            self.say("  controller: ip_moved %s  %s (port %s) -> %s (port %s)  +%.2f s  %s"
                     % (e["ip"], self.name(e["old_mac"]), e["old_port"],
                        self.name(e["new_mac"]), e["new_port"], e["t"] - since,
                        "gratuitous ARP" if e["gratuitous"] else
                        "learned from an ordinary ARP (no GARP)"))
        if not moved:
            self.say("  controller: no ip_moved event")
        return [dict(e, old=self.name(e["old_mac"]), new=self.name(e["new_mac"])) for e in moved]

    def states(self, client, transitions, since):
        self.say("  %s's ARP entry for the VIP: %s" % (client, " -> ".join(
            "+%.2f %s%s" % (t - since, state, " " + self.name(mac) if mac else "")
            for t, state, mac in transitions)))

    def packets(self, packets, since):
        for p in packets:
            if p["op"] == "request":
                what = ("GARP: %s is at %s" % (p["target_ip"], self.name(p["src"]))
                        if p["gratuitous"]
                        else "who-has %s? tell %s" % (p["target_ip"], p["sender_ip"]))
            else:
                what = "reply: %s is-at %s" % (p["sender_ip"], self.name(p["sender_mac"]))
            self.say("    +%6.2f s  %-8s -> %-9s %s"
                     % (p["t"] - since, self.name(p["src"]), self.name(p["dst"]), what))


def measure_move(samples, since, transitions, packets, vip, client_mac, old_mac, new_mac,
                 recovered):
    """What one move cost the client, from its probe's samples, its ARP entry's
    ``(time, state, mac)`` changes and the ARP packets it saw (all after ``since``)."""
    timeline = analyse(samples, since)
    updated = [t for t, _state, mac in transitions if mac == new_mac]
    return dict(
        recovered=recovered,
        time_without_service=round(timeline.time_to_recover, 3) if recovered else None,
        requests_lost=timeline.requests_lost,
        arp_updated_after=round(updated[0] - since, 3) if updated else None,
        states=[state for _t, state, _mac in transitions],
        unicast_probes_to_old_mac=sum(1 for p in packets if p["op"] == "request"
                                      and p["target_ip"] == vip and p["dst"] == old_mac),
        broadcast_requests=sum(1 for p in packets if p["op"] == "request"
                               and p["src"] == client_mac and p["dst"] == BROADCAST),
        garps_seen=sum(1 for p in packets if p["gratuitous"] and p["src"] == new_mac))


class Watch:
    """One client watching one VIP; :meth:`begin` starts each move from the same state."""

    def __init__(self, show, client, vip, capture, probe, bound):
        """``probe``: the client's HTTP probe, ``interval`` and ``timeout`` (seconds);
        ``bound``: the longest a move may take (a move is followed for ``bound`` + 3 s)."""
        self.show, self.say = show, show.say
        self.client, self.vip, self.capture = client, vip, capture
        self.interval, self.timeout, self.bound = probe["interval"], probe["timeout"], bound

    def settled_probe(self, name, holder):
        """A probe of the VIP, once the client gets answers from ``holder`` through a
        REACHABLE entry with its MAC."""
        probe = Probe(self.client, "http://%s/" % self.vip, name=name, interval=self.interval,
                      timeout=self.timeout, max_seconds=self.bound + 20)
        probe.start()
        since = time.time()

        def settled():
            entry = observe.neigh(self.client, self.vip)
            streak = served_streak(probe.samples(), since, holder.name)
            return (streak >= 3 and entry is not None and entry.state == "REACHABLE"
                    and entry.mac == holder.MAC(), "ARP %s, %d good answers from %s"
                    % (entry, streak, holder.name))
        try:
            wait_until(settled, 10, "%s to be served by %s through its MAC"
                       % (self.client.name, holder.name))
        except BaseException:
            probe.stop()
            raise
        return probe

    def begin(self, name, old, new):
        """A move from ``old`` to ``new``: the clock starts once the client is settled."""
        return Move(self, self.settled_probe(name, old), old, new)


class Move:
    """One move of the VIP, measured from :attr:`t0` (just before the lab moves it)."""

    def __init__(self, watch, probe, old, new):
        self.watch, self.probe, self.old, self.new = watch, probe, old, new
        self.transitions, self.recovered, self.script = [], False, None
        self.t0 = time.time()

    def follow(self, script=None):
        """Watch the client's ARP entry until the new holder serves it through its MAC
        (at most the bound + 3 s); with ``script`` (a ScriptRun), then print its end."""
        w = self.watch

        def served():
            if script is not None:
                script.poll()
            entry = observe.neigh(w.client, w.vip)
            state, mac = (entry.state, entry.mac) if entry else (None, None)
            if not self.transitions or self.transitions[-1][1:] != (state, mac):
                self.transitions.append((time.time(), state, mac))
            streak = served_streak(self.probe.samples(), self.t0, self.new.name)
            return mac == self.new.MAC() and streak >= 3, "ARP %s %s, %d good answers from %s" % (
                state, mac, streak, self.new.name)
        try:
            wait_until(served, w.bound + 3, "%s to reach the VIP at %s"
                       % (w.client.name, self.new.name), interval=0.02)
            self.recovered = True
        except WaitTimeout:
            self.recovered = False
        if script is not None:
            self.script = script
            self.code, self.output = script.finish()
            if self.output:
                w.say("    " + self.output.replace("\n", "\n    "))
            w.say("  (exit code %s after %.2f s)" % (self.code, script.ended - script.started))
        return self

    def by_stopping(self, daemon, successor):
        """Make the move by stopping keepalived ``daemon`` (SIGTERM: it releases the VIP and
        sends priority 0) and follow it; seconds until ``successor`` became MASTER."""
        daemon.request_stop()
        self.follow()
        daemon.stop()               # reaped after watching the client
        return became(successor, "MASTER", self.t0)

    def finish(self, label):
        """Stop the probe; measure the move and print what the client went through."""
        w, show = self.watch, self.watch.show
        self.probe.stop()
        packets = w.capture.packets(self.t0)
        result = measure_move(self.probe.samples(), self.t0, self.transitions, packets, w.vip,
                              w.client.MAC(), self.old.MAC(), self.new.MAC(), self.recovered)
        if self.script is not None:
            result.update(self.script_measures(result, packets))
        show.states(w.client.name, self.transitions, self.t0)
        w.say("  ARP packets %s saw (tcpdump):" % w.client.name)
        show.packets(packets, self.t0)
        if result["recovered"]:
            w.say("  => %s: %s could not reach the VIP for %.2f s (%d requests lost); its ARP "
                  "entry changed after %.2f s" % (label, w.client.name,
                                                  result["time_without_service"],
                                                  result["requests_lost"],
                                                  result["arp_updated_after"]))
        else:
            w.say("  => %s: %s did not reach the VIP again while the lab waited"
                  % (label, w.client.name))
        return result

    def script_measures(self, result, packets):
        """The script's run, timed against the move: when the client's entry changed after
        it started, and which sender IPs asked for the VIP in an ordinary ARP request
        (``arping VIP`` without -U/-S asks from the host's own IP: not a GARP)."""
        run, updated = self.script, result["arp_updated_after"]
        return dict(
            exit_code=self.code, output=self.output[-500:],
            script_started_after=round(run.started - self.t0, 3),
            script_seconds=round(run.ended - run.started, 3),
            arp_updated_after_script=(round(self.t0 + updated - run.started, 3)
                                      if updated is not None else None),
            other_ips=sorted({p["sender_ip"] for p in packets
                              if p["src"] == self.new.MAC() and p["op"] == "request"
                              and p["target_ip"] == self.watch.vip and not p["gratuitous"]}))

    def after(self, flows_title):
        """The client's table and the switch's flows after the move; the controller's
        ``ip_moved`` events since it began (returned)."""
        show = self.watch.show
        show.neigh(self.watch.client, "after")
        show.flows(flows_title)
        return show.events(self.t0)


def table(say, rows):
    """The walk-through's closing table: one row per ``(label, move result)``."""
    say("  %-26s %-22s %-20s %s" % ("move", "no answer for", "ARP entry changed", "GARPs seen"))
    for label, r in rows:
        say("  %-26s %-22s %-20s %s" % (
            label, "%.2f s (%d lost)" % (r["time_without_service"], r["requests_lost"])
            if r["recovered"] else "not recovered",
            "+%.2f s" % r["arp_updated_after"] if r["arp_updated_after"] is not None else "never",
            r["garps_seen"]))


# -- keepalived ---------------------------------------------------------------------------

def wait_state(daemon, state, host=None, cidr=None, timeout=10):
    """Wait until keepalived ``daemon`` is in ``state`` (and ``host`` holds ``cidr``)."""
    def reached():
        held = cidr is None or host.holds(cidr, host.defaultIntf().name)
        return daemon.current_state() == state and held, daemon.transitions()
    wait_until(reached, timeout, "%s's keepalived to be %s%s" % (
        daemon.node.name, state, " with %s" % cidr if cidr else ""))


def became(daemon, state, since):
    """Seconds after ``since`` when keepalived ``daemon`` entered ``state`` (None: never)."""
    times = [t for t, s in daemon.transitions() if s == state and t >= since]
    return round(times[0] - since, 3) if times else None


def garp_repeat_zero_refused(host, vrrp):
    """``keepalived -t`` on a config asking for no GARP (``garp_master_repeat 0``): None
    if keepalived accepts it, else its message.  Only the config is written, in a folder
    of its own; nothing starts."""
    daemon = Keepalived(host, **vrrp)
    daemon.name = "keepalived-garp-repeat-0"
    daemon.binary_path = require_binary(daemon.binary, daemon.where)
    daemon.render()
    text = daemon.config_file.read_text()
    daemon.config_file.write_text(text.replace("    virtual_ipaddress {",
                                               "    garp_master_repeat 0\n    virtual_ipaddress {"))
    try:
        daemon.check()
    except RedlabError as exc:
        return str(exc).split("is invalid: ", 1)[-1]
    return None


# -- a script run with other arguments ----------------------------------------------------

class BenchTopo(Topo):
    """A throw-away bench for a script that takes an interface and an address::

        bench (runs the script)                  lan (tcpdump on each port)
          bench-eth0  ports[0]  ------------------ lan-eth0
          bench-eth1  ports[1]  ------------------ lan-eth1
          ...

    No switch, no controller: only what the script changes and sends is watched.
    """

    def build(self, ports=()):
        bench = self.addHost("bench", ip=None)
        lan = self.addHost("lan", ip=None)
        for address in ports:
            self.addLink(bench, lan, params1={"ip": address})


def run_on_bench(say, run_folder, script, timeout, ports, given, vip, wait,
                 name="script-bench"):
    """Run ``script given vip`` (``vip``: address/prefix) on a bench host whose ports have
    the addresses ``ports``, and watch what it changes (the bench's addresses) and sends
    (gratuitous ARP on every port, captured at the far end; ``wait`` seconds for them
    after it ends).  Returns what it saw, for a check to judge.

    A lab's own run shows *that* a script moves its VIP; this shows that it moves the VIP
    *it is given* on the interface *it is given*: a script that names the lab's interface
    or VIP itself, however it spells them, fails here."""
    vip_cidr, vip = vip, vip.split("/")[0]
    with Network(BenchTopo(ports=ports), name=name, run_folder=run_folder,
                 controller=False, services=False) as net:
        bench, lan = net["bench"], net["lan"]
        macs = {intf.name: intf.MAC() for intf in bench.intfList() if intf.name != "lo"}
        peer = {intf.name: intf.link.intf2.name if intf.link.intf1 is intf
                else intf.link.intf1.name for intf in bench.intfList() if intf.link}
        held = observe.addresses(bench)
        say("  bench# ip -4 -br addr: %s" % "; ".join(
            "%s %s" % (name, " ".join(held.get(name, []))) for name in sorted(macs)))
        say("  bench# bash %s %s %s" % (script.name, given, vip_cidr))
        captures = {name: ArpCapture(lan, peer[name], "arp-%s.pcap" % name).start()
                    for name in macs}
        try:
            code, output = ScriptRun(bench, script, [given, vip_cidr], timeout=timeout).finish()

            def garps():
                return {name: sorted({p["sender_ip"] for p in capture.packets()
                                      if p["gratuitous"] and p["sender_mac"] == macs[name]})
                        for name, capture in captures.items()}
            try:
                wait_until(lambda: (any(garps().values()), garps()), wait,
                           "the bench's gratuitous ARPs")
            except WaitTimeout:
                pass                        # none: that is the measurement
            announced = garps()
            count = sum(1 for p in captures[given].packets() if p["gratuitous"]
                        and p["sender_ip"] == vip and p["sender_mac"] == macs[given])
        finally:
            for capture in captures.values():
                capture.stop()
        held = observe.addresses(bench)
        after = {name: held.get(name, []) for name in macs}
    if output:
        say("    " + output.replace("\n", "\n    "))
    say("  (exit code %s) %s" % (code, "; ".join(
        "%s now has %s, announced %s" % (name, " ".join(addresses) or "no address",
                                         " ".join(announced[name]) or "nothing")
        for name, addresses in sorted(after.items()))))
    return dict(given=given, vip_cidr=vip_cidr, exit_code=code, output=output[-500:],
                addresses=after, garps_for_vip=count, announced=announced)
