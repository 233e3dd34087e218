"""Lab 07: IP takeover and ARP -- the VIP moves, the clients' ARP caches must follow.

One network (topologies/vrrp_pair.py: client1, web1, web2 on s1), nginx on both web
servers, one client requesting the VIP every 50 ms.  The walk-through moves the VIP:

  1. by hand, web1 -> web2, with ``ip addr del`` / ``ip addr add`` and no gratuitous
     ARP: the client keeps web1's MAC until its ARP entry runs through
     REACHABLE -> STALE (or straight to DELAY) -> DELAY -> PROBE (unicast probes to web1,
     unanswered) -> FAILED and a broadcast finds web2.  The client's neighbour timers are
     set (sysctl in client1) so that this is bounded by a few seconds;
  2. back to web1 with the student's ``move_vip.sh`` (run in web1, the new holder):
     with a gratuitous ARP the client's entry changes at once;
  3. with keepalived: the harness's default (keepalived sends GARP: immediate), then
     keepalived whose gratuitous ARPs never reach the LAN.  keepalived cannot be told to
     send none (``keepalived -t`` refuses ``garp_master_repeat 0``: the walk-through
     shows it), so the harness's ``Keepalived(garp=False)`` runs keepalived as it is with
     a tc filter on the new master's own interface that drops its gratuitous ARPs and
     counts them (``redlab.faults.drop_garp``);
  5. the student's script once more, on a throw-away bench host with another interface
     and another VIP (:func:`arguments_bench`): what it changes and sends there says
     whether it takes both from its arguments -- not a search of its text.

At each step it shows the client's ``ip neigh``, the switch's flows and the
controller's ``ip_moved`` events; the client's ARP packets are captured with tcpdump
(``redlab.recorders.ArpCapture``).
"""

import functools
import re
import time

from mininet.topo import Topo

from redlab import addressing as ap
from redlab.daemons import Keepalived, Nginx
from redlab.errors import RedlabError, WaitTimeout
from redlab.labs import Stop, failed, passed
from redlab.net import Network
from redlab.probe import Probe, analyse
from redlab.recorders import ArpCapture
from redlab.student import ScriptRun
from redlab.system import require_binary
from redlab.wait import wait_until

TITLE = "IP takeover and ARP: moving a VIP with and without gratuitous ARP"
TOPOLOGY = "topologies/vrrp_pair.py"

SCRIPT = "move_vip.sh"
SCRIPT_TIMEOUT = 10.0           # s: a script that hangs is stopped

# the four --cli stops: what to look at and what to type there, one line at a time
STOPS = {
    "web1": Stop("web1 holds the VIP", [
        "client1 ip neigh", "client1 curl -s %(vip)s",
        "sh ovs-ofctl -O OpenFlow13 dump-flows s1"]),
    "by_hand": Stop("web2 holds the VIP (moved without GARP); client1's entry says which MAC "
                    "it still sends to", [
        "web2 ip -4 -br addr", "client1 ip neigh",
        "client1 timeout 10 ip -ts monitor neigh"]),
    "script": Stop("web1 holds the VIP again (moved by %(script)s)", [
        "web1 ip -4 -br addr", "client1 ip neigh"]),
    "end": Stop("the end: web1 holds the VIP (keepalived MASTER, its GARPs dropped)", [
        "client1 ip neigh", "client1 curl -s -m 1 %(vip)s", "client1 ping -c 3 %(vip)s"]),
}
GARP_DEADLINE = 1.0             # s: with a GARP the client's ARP entry follows within this
PROBE_INTERVAL = 0.05
PROBE_TIMEOUT = 0.3

# The client's neighbour (ARP) timers, set with sysctl in client1 before anything moves.
# Linux keeps a confirmed entry REACHABLE for a random time between 1/2 and 3/2 of
# base_reachable_time_ms; after that it is STALE, the next packet makes it DELAY, and
# delay_first_probe_time later PROBE: ucast_solicit unicast ARP requests to the MAC it
# knows, retrans_time_ms apart.  Unanswered, the entry is FAILED and the next packet asks
# by broadcast (mcast_solicit).  So without GARP a moved VIP is unreachable for at most
#     1.5 * base_reachable_time + delay_first_probe_time + ucast_solicit * retrans_time
# Linux's defaults (30 s, 5 s, 3 x 1 s) allow up to 53 s; these allow 4 s, which keeps
# the walk-through short and still shows every state.  gc_stale_time only says how long an
# *unused* STALE entry may stay before the garbage collector may drop it (and the collector
# does nothing below gc_thresh1 = 128 entries): it does not shorten this outage, because the
# client keeps using the entry.  It is set (10 s instead of 60 s) because it is the knob
# people reach for first: the outage still follows the formula above.
NEIGH_TIMERS = dict(base_reachable_time_ms=1000, delay_first_probe_time=1,
                    retrans_time_ms=500, ucast_solicit=3, mcast_solicit=3, gc_stale_time=10)


def stale_bound(timers):
    """The longest a client can keep a moved VIP's old MAC (seconds), from its timers."""
    return (1.5 * timers["base_reachable_time_ms"] / 1000.0 + timers["delay_first_probe_time"]
            + timers["ucast_solicit"] * timers["retrans_time_ms"] / 1000.0)


# -- small helpers (candidates for the harness: see the report) ---------------------------

def sysctl_neigh(host, intf, names):
    out = host.cmd("sysctl -n " + " ".join("net.ipv4.neigh.%s.%s" % (intf, n) for n in names))
    values = [int(v) for v in out.split()]
    return dict(zip(names, values))


def neigh(host, ip, intf):
    """``(state, mac)`` of ``ip`` in ``host``'s neighbour table (``(None, None)``: no entry)."""
    line = host.cmd("ip neigh show %s dev %s" % (ip, intf)).strip()
    if not line:
        return None, None
    mac = re.search(r"lladdr (\S+)", line)
    return line.split()[-1], mac.group(1) if mac else None


# -- what the walk-through shows ----------------------------------------------------------

class Show:
    """Narration helpers that know the hosts' names and MACs."""

    def __init__(self, ctx, net):
        self.ctx, self.net = ctx, net
        self.names = {h.MAC(): h.name for h in net.hosts}
        self.names["ff:ff:ff:ff:ff:ff"] = "broadcast"

    def name(self, mac):
        return self.names.get(mac, mac or "-")

    def run(self, host, command):
        self.ctx.say("  %s# %s" % (host.name, command))
        out = host.cmd(command).strip()
        if out:
            self.ctx.say("    " + out.replace("\n", "\n    "))
        return out

    def neigh(self, client, title):
        out = client.cmd("ip neigh show dev %s" % client.defaultIntf().name).strip()
        self.ctx.say("  %s# ip neigh        (%s)" % (client.name, title))
        for line in out.splitlines() or ["(empty)"]:
            mac = re.search(r"lladdr (\S+)", line)
            self.ctx.say("    %s%s" % (line.strip(), "   <- %s" % self.name(mac.group(1))
                                       if mac else ""))

    def flows(self, title):
        self.ctx.say("  s1: ovs-ofctl -O OpenFlow13 dump-flows s1   (%s; cookie, duration "
                     "and n_bytes left out)" % title)
        for line in self.net.dump_flows("s1").splitlines():
            line = re.sub(r"cookie=\S+ |duration=\S+ |n_bytes=\S+ ", "", line.strip())
            if not line or line.startswith("OFPST"):
                continue
            mac = re.search(r"dl_(?:src|dst)=(\S+?)[ ,]", line + " ")
            self.ctx.say("    " + line + ("   [%s]" % self.name(mac.group(1)) if mac else ""))

    def events(self, since):
        moved = [e for e in self.net.controller.events("ip_moved") if e["t"] >= since]
        for e in moved:
            self.ctx.say("  controller: ip_moved %s  %s (port %s) -> %s (port %s)  +%.2f s  %s"
                         % (e["ip"], self.name(e["old_mac"]), e["old_port"],
                            self.name(e["new_mac"]), e["new_port"], e["t"] - since,
                            "gratuitous ARP" if e["gratuitous"] else
                            "learned from an ordinary ARP (no GARP)"))
        if not moved:
            self.ctx.say("  controller: no ip_moved event")
        return [dict(e, old=self.name(e["old_mac"]), new=self.name(e["new_mac"])) for e in moved]

    def states(self, transitions, since):
        parts = ["+%.2f %s%s" % (t - since, state, " " + self.name(mac) if mac else "")
                 for t, state, mac in transitions]
        self.ctx.say("  client1's ARP entry for the VIP: " + " -> ".join(parts))

    def packets(self, packets, since):
        for p in packets:
            if p["op"] == "request":
                what = ("GARP: %s is at %s" % (p["target_ip"], self.name(p["src"]))
                        if p["gratuitous"] else "who-has %s? tell %s" % (p["target_ip"],
                                                                           p["sender_ip"]))
            else:
                what = "reply: %s is-at %s" % (p["sender_ip"], self.name(p["sender_mac"]))
            self.ctx.say("    +%6.2f s  %-8s -> %-9s %s" % (p["t"] - since, self.name(p["src"]),
                                                          self.name(p["dst"]), what))


def flow_packets(net, mac):
    """n_packets of s1's forwarding flow for ``mac`` (table 1, dl_dst)."""
    for line in net.dump_flows("s1").splitlines():
        if "table=1" in line and "dl_dst=%s " % mac in line.replace(",", " ") + " ":
            return int(re.search(r"n_packets=(\d+)", line).group(1))
    return 0


def follow(client, probe, new_holder, vip, since, timeout, script=None):
    """Watch the client until it is served by ``new_holder`` through ``new_holder``'s MAC.

    Returns ``(transitions, recovered)``: the ARP entry's ``(time, state, mac)`` changes.
    """
    intf = client.defaultIntf().name
    transitions = []

    def poll():
        if script is not None:
            script.poll()
        state, mac = neigh(client, vip, intf)
        if not transitions or transitions[-1][1:] != (state, mac):
            transitions.append((time.time(), state, mac))
        streak = 0
        for s in probe.samples():
            if s.t >= since:
                streak = streak + 1 if s.ok and s.server == new_holder.name else 0
        return mac == new_holder.MAC() and streak >= 3, "ARP %s %s, %d good answers from %s" % (
            state, mac, streak, new_holder.name)
    try:
        wait_until(poll, timeout, "client1 to reach the VIP at %s" % new_holder.name,
                   interval=0.02)
        return transitions, True
    except WaitTimeout:
        return transitions, False


def measure(client, capture, probe, new_holder, vip, since, transitions, recovered, old_holder):
    probe.stop()
    timeline = analyse(probe.samples(), since)
    new_mac = new_holder.MAC()
    updated = [t for t, state, mac in transitions if mac == new_mac]
    packets = capture.packets(since)
    return dict(
        recovered=recovered,
        time_without_service=round(timeline.time_to_recover, 3) if recovered else None,
        requests_lost=timeline.requests_lost,
        arp_updated_after=round(updated[0] - since, 3) if updated else None,
        states=[state for _t, state, _mac in transitions],
        unicast_probes_to_old_mac=sum(1 for p in packets if p["op"] == "request"
                                      and p["target_ip"] == vip and p["dst"] == old_holder.MAC()),
        broadcast_requests=sum(1 for p in packets if p["op"] == "request"
                               and p["src"] == client.MAC() and p["dst"] == "ff:ff:ff:ff:ff:ff"),
        garps_seen=sum(1 for p in packets if p["gratuitous"] and p["src"] == new_mac),
        packets=packets)


def start_probe(client, vip, holder, name, seconds):
    """A probe of the VIP from ``client``, once the client is settled on ``holder``: answers
    from it, and a REACHABLE ARP entry with its MAC (so every move starts from the same
    state)."""
    probe = Probe(client, "http://%s/" % vip, name=name, interval=PROBE_INTERVAL,
                  timeout=PROBE_TIMEOUT, max_seconds=seconds)
    probe.start()
    try:
        since = time.time()
        intf = client.defaultIntf().name

        def settled():
            streak = 0
            for s in probe.samples():
                if s.t >= since:
                    streak = streak + 1 if s.ok and s.server == holder.name else 0
            state, mac = neigh(client, vip, intf)
            return (streak >= 3 and state == "REACHABLE" and mac == holder.MAC(),
                    "ARP %s %s, %d good answers from %s" % (state, mac, streak, holder.name))
        wait_until(settled, 10, "client1 to be served by %s through its MAC" % holder.name)
    except BaseException:
        probe.stop()
        raise
    return probe


def summary(show, result, since, label):
    show.states(result.pop("_transitions"), since)
    show.ctx.say("  ARP packets client1 saw (tcpdump):")
    show.packets(result["packets"], since)
    if result["recovered"]:
        show.ctx.say("  => %s: client1 could not reach the VIP for %.2f s (%d requests lost); "
                     "its ARP entry changed after %.2f s" % (
                         label, result["time_without_service"], result["requests_lost"],
                         result["arp_updated_after"]))
    else:
        show.ctx.say("  => %s: client1 did not reach the VIP again while the lab waited" % label)


def walkthrough(ctx):
    from topologies.vrrp_pair import VRRPPairTopo

    script = ctx.file(SCRIPT)
    require_binary("arping", "lab 07 (move_vip.sh announces the VIP with it)")
    vip = ap.vip(1)
    vip_cidr = ap.cidr(vip)
    say = ctx.say
    say("Three steps of the notes: assume the failure (web1, which holds the VIP %s, must "
        "hand it over), prepare the spare (web2 runs the same nginx), make the switch-over a "
        "procedure (move_vip.sh, then keepalived).  The question of this lab: after the "
        "address moves, how does client1 learn the new MAC?" % vip)
    measured = dict(vip=vip)
    # keepalived stays off until part 3: the VIP is moved by hand and by move_vip.sh first
    with Network(VRRPPairTopo(), name="lab07-ip-takeover", run_folder=ctx.folder("takeover"),
                 services=False) as net:
        client, web1, web2 = net["client1"], net["web1"], net["web2"]
        show = Show(ctx, net)
        for web in (web1, web2):
            web.start_daemon(Nginx(web))
        intf = client.defaultIntf().name
        w1, w2 = web1.defaultIntf().name, web2.defaultIntf().name

        say("\n== 0. client1's neighbour timers ==")
        defaults = sysctl_neigh(client, intf, list(NEIGH_TIMERS))
        say("  Linux defaults in client1: %s -> a moved VIP can stay unreachable for up to "
            "%.1f s" % (", ".join("%s=%s" % kv for kv in defaults.items()),
                        stale_bound(defaults)))
        show.run(client, "sysctl -w " + " ".join("net.ipv4.neigh.%s.%s=%s" % (intf, k, v)
                                                 for k, v in NEIGH_TIMERS.items()))
        timers = sysctl_neigh(client, intf, list(NEIGH_TIMERS))
        bound = stale_bound(timers)
        measured.update(neigh_timers=timers, stale_bound=bound, linux_defaults=defaults,
                        stale_bound_defaults=stale_bound(defaults))
        # STALE -> DELAY and FAILED -> broadcast both wait for the client's next packet:
        # here the probe's next request, at most one timeout + one interval later
        next_packet = PROBE_TIMEOUT + PROBE_INTERVAL
        outage_bound = bound + 2 * next_packet
        measured["stale_bound_with_probe"] = round(outage_bound, 2)
        say("  now at most 1.5 x %.1f s REACHABLE + %d s DELAY + %d x %.1f s PROBE = %.1f s, "
            "plus twice the wait for client1's next packet (%.2f s here): %.2f s"
            % (timers["base_reachable_time_ms"] / 1000.0, timers["delay_first_probe_time"],
               timers["ucast_solicit"], timers["retrans_time_ms"] / 1000.0, bound,
               next_packet, outage_bound))

        with ArpCapture(client) as capture:
            # -- 1. web1 holds the VIP --------------------------------------------------
            say("\n== 1. web1 holds the VIP (現用機): its own address, and the VIP beside it ==")
            t1 = time.time()
            show.run(web1, "ip addr add %s dev %s" % (vip_cidr, w1))
            show.run(web1, "ip -4 -br addr show dev %s" % w1)
            start_probe(client, vip, web1, "probe-0-web1", outage_bound).stop()
            say("  client1 requests http://%s/ every %d ms; to send the first one it asked for "
                "the VIP's MAC (tcpdump):" % (vip, PROBE_INTERVAL * 1000))
            show.packets(capture.packets(t1), t1)
            show.neigh(client, "client1 learned web1's MAC for the VIP by ARP")
            show.flows("the switch learned every MAC; the VIP's packets go to web1's port")
            ctx.pause(net, STOPS["web1"], vip=vip)

            # -- 2. by hand, no GARP ---------------------------------------------------
            say("\n== 2. IP takeover by hand, web1 -> web2, without gratuitous ARP ==")
            probe = start_probe(client, vip, web1, "probe-1-by-hand", outage_bound + 15)
            t0 = time.time()
            show.run(web1, "ip addr del %s dev %s" % (vip_cidr, w1))
            show.run(web2, "ip addr add %s dev %s" % (vip_cidr, w2))
            say("  web2 holds the VIP now, but client1 still sends to web1's MAC...")
            to_web1 = flow_packets(net, web1.MAC())
            transitions, recovered = follow(client, probe, web2, vip, t0, outage_bound + 3)
            by_hand = measure(client, capture, probe, web2, vip, t0, transitions, recovered,
                              web1)
            by_hand["_transitions"] = transitions
            summary(show, by_hand, t0, "without GARP")
            by_hand["packets_to_old_mac"] = flow_packets(net, web1.MAC()) - to_web1
            say("  Ethernet delivers by MAC, not by IP: meanwhile s1 sent %d packets to web1's "
                "port (flow dl_dst=%s), which web1 dropped: the VIP is no longer its address"
                % (by_hand["packets_to_old_mac"], web1.MAC()))
            show.neigh(client, "after")
            show.flows("the switch was right all along: web1's MAC is still on web1's port")
            by_hand["controller"] = show.events(t0)
            measured["by_hand_without_garp"] = by_hand
            measured["time_without_garp"] = by_hand["time_without_service"]
            ctx.pause(net, STOPS["by_hand"])

            # -- 3. move_vip.sh, back to web1 --------------------------------------------
            say("\n== 3. back to web1 with your %s (run in web1, the new holder) ==" % SCRIPT)
            probe = start_probe(client, vip, web2, "probe-2-move-vip", outage_bound + 15)
            t0 = time.time()
            show.run(web2, "ip addr del %s dev %s" % (vip_cidr, w2))
            say("  web1# bash %s %s %s" % (script, w1, vip_cidr))
            run = ScriptRun(web1, script, [w1, vip_cidr], timeout=SCRIPT_TIMEOUT)
            transitions, recovered = follow(client, probe, web1, vip, t0, outage_bound + 3,
                                            script=run)
            code, output = run.finish()
            started, ended = run.started, run.ended
            if output:
                say("    " + output.replace("\n", "\n    "))
            say("  (exit code %s after %.2f s)" % (code, ended - started))
            took = web1.holds(vip_cidr, w1)
            moved = measure(client, capture, probe, web1, vip, t0, transitions, recovered, web2)
            moved.update(exit_code=code, output=output[-500:], holds_vip=took,
                         addresses=web1.addresses(w1),
                         script_started_after=round(started - t0, 3),
                         script_seconds=round(ended - started, 3),
                         arp_updated_after_script=(round(t0 + moved["arp_updated_after"]
                                                         - started, 3)
                                                   if moved["arp_updated_after"] is not None
                                                   else None),
                         # `arping VIP` without -U/-S: asks for the VIP from web1's own IP
                         other_ips=sorted({p["sender_ip"] for p in moved["packets"]
                                           if p["src"] == web1.MAC() and p["op"] == "request"
                                           and p["target_ip"] == vip and not p["gratuitous"]}))
            moved["_transitions"] = transitions
            summary(show, moved, t0, "with %s" % SCRIPT)
            show.neigh(client, "after")
            show.flows("after %s" % SCRIPT)
            moved["controller"] = show.events(t0)
            measured["move_vip_sh"] = moved
            measured["time_with_garp"] = moved["time_without_service"]
            if not took:
                say("  web1 does not hold the VIP after %s: the lab puts it there itself so "
                    "that part 4 can go on" % SCRIPT)
                web1.cmd("ip addr add %s dev %s" % (vip_cidr, w1))
                web1.cmd("arping -q -U -c 1 -i %s -S %s %s" % (w1, vip, vip))
            ctx.pause(net, STOPS["script"], script=SCRIPT)

            # -- 4. keepalived --------------------------------------------------------
            measured.update(keepalived(ctx, net, show, capture, vip, vip_cidr, outage_bound))
            ctx.pause(net, STOPS["end"], vip=vip)
        measured["run_folder"] = str(net.run.path)

    measured["arguments_bench"] = arguments_bench(ctx, script)

    say("\n== what client1 measured ==")
    rows = [("by hand, no GARP", measured["by_hand_without_garp"]),
            ("%s" % SCRIPT, measured["move_vip_sh"]),
            ("keepalived (GARP)", measured["keepalived_with_garp"]),
            ("keepalived, GARP dropped", measured["keepalived_without_garp"])]
    say("  %-26s %-22s %-20s %s" % ("move", "no answer for", "ARP entry changed", "GARPs seen"))
    for label, r in rows:
        say("  %-26s %-22s %-20s %s" % (
            label, "%.2f s (%d lost)" % (r["time_without_service"], r["requests_lost"])
            if r["recovered"] else "not recovered",
            "+%.2f s" % r["arp_updated_after"] if r["arp_updated_after"] is not None else "never",
            r["garps_seen"]))
    for r in (measured["by_hand_without_garp"], measured["move_vip_sh"],
              measured["keepalived_with_garp"], measured["keepalived_without_garp"]):
        r.pop("packets", None)
    return measured


def keepalived(ctx, net, show, capture, vip, vip_cidr, outage_bound):
    say = ctx.say
    client, web1, web2 = net["client1"], net["web1"], net["web2"]
    w1 = web1.defaultIntf().name
    vrrp1, vrrp2 = dict(web1.params["vrrp"]), dict(web2.params["vrrp"])
    result = {}

    say("\n== 4a. keepalived (redlab.daemons.Keepalived, default: GARP after takeover) ==")
    say("  web1 gives its hand-made VIP to keepalived (MASTER, priority %d); web2 is BACKUP "
        "(priority %d)" % (vrrp1["priority"], vrrp2["priority"]))
    say("  (keepalived starts in BACKUP and removes its VIPs first: web1 answers again once it "
        "is MASTER, after the master-down interval, 3 x advert_int + skew)")
    show.run(web1, "ip addr del %s dev %s" % (vip_cidr, w1))
    k1 = web1.start_daemon(Keepalived(web1, **dict(vrrp1, state="MASTER")))
    k2 = web2.start_daemon(Keepalived(web2, **vrrp2))
    wait_until(lambda: (k1.current_state() == "MASTER" and web1.holds(vip_cidr, w1),
                        k1.transitions()), 10, "web1's keepalived to be MASTER with the VIP")
    wait_until(lambda: (k2.current_state() == "BACKUP", k2.transitions()), 10,
               "web2's keepalived to be BACKUP")
    probe = start_probe(client, vip, web1, "probe-3-keepalived", outage_bound + 20)
    t0 = time.time()
    say("  web1: keepalived stops (a planned switch-over; it releases the VIP and sends "
        "priority 0)")
    k1.request_stop()             # SIGTERM; reaped below, after watching the client
    transitions, recovered = follow(client, probe, web2, vip, t0, outage_bound + 3)
    k1.stop()
    r = measure(client, capture, probe, web2, vip, t0, transitions, recovered, web1)
    masters = [t for t, state in k2.transitions() if state == "MASTER" and t >= t0]
    r["takeover_after"] = round(masters[0] - t0, 3) if masters else None
    r["_transitions"] = transitions
    say("  web2's keepalived became MASTER after %s" % (
        "%.2f s" % r["takeover_after"] if masters else "(never)"))
    summary(show, r, t0, "keepalived with GARP")
    show.neigh(client, "after")
    show.flows("after keepalived's takeover")
    r["controller"] = show.events(t0)
    result["keepalived_with_garp"] = r

    say("\n== 4b. keepalived without gratuitous ARP ==")
    refused = repeat_zero_refused(web1, vrrp1)
    say("  can keepalived be told to send no GARP?  its config with `garp_master_repeat 0`:")
    say("  web1# keepalived -t -f .../web1/keepalived-garp-repeat-0/keepalived.conf  ->  %s"
        % (refused or "OK"))
    result["keepalived_garp_false"] = dict(dry_run_ok=refused is None, message=refused)
    say("  keepalived always sends at least one gratuitous ARP (and a second burst "
        "vrrp_garp_master_delay later).  So the harness's Keepalived(garp=False) runs keepalived "
        "as it is and puts a tc filter on web1-eth0 that drops its gratuitous ARPs and counts "
        "them (redlab.faults.drop_garp).")
    k3 = web1.start_daemon(Keepalived(web1, **dict(vrrp1, nopreempt=True, garp=False)))
    show.run(web1, "tc filter show dev %s" % w1)
    wait_until(lambda: (k3.current_state() == "BACKUP", k3.transitions()), 10,
               "web1's keepalived to be BACKUP")
    probe = start_probe(client, vip, web2, "probe-4-keepalived-no-garp", outage_bound + 20)
    t0 = time.time()
    say("  web2: keepalived stops; web1 (nopreempt, BACKUP) takes over")
    k2.request_stop()
    transitions, recovered = follow(client, probe, web1, vip, t0, outage_bound + 3)
    k2.stop()
    r = measure(client, capture, probe, web1, vip, t0, transitions, recovered, web2)
    masters = [t for t, state in k3.transitions() if state == "MASTER" and t >= t0]
    r["takeover_after"] = round(masters[0] - t0, 3) if masters else None
    r["garps_dropped"] = k3.garps_dropped()
    r["_transitions"] = transitions
    say("  web1's keepalived became MASTER after %s; gratuitous ARPs it sent and tc dropped: %s"
        % ("%.2f s" % r["takeover_after"] if masters else "(never)", r["garps_dropped"]))
    summary(show, r, t0, "keepalived, GARP dropped")
    show.neigh(client, "after")
    show.flows("after keepalived's takeover without GARP")
    r["controller"] = show.events(t0)
    result["keepalived_without_garp"] = r
    return result


def repeat_zero_refused(host, vrrp):
    """``keepalived -t`` on a config asking for no GARP: None if accepted, else its message."""
    daemon = Keepalived(host, **vrrp)
    daemon.name = "keepalived-garp-repeat-0"        # its own folder: only the config is written
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


# -- the script with other arguments ------------------------------------------------------

# The bench: three ports, each with an own address from a documentation range (RFC 5737),
# never any lab's.  The script is given the middle one and a VIP in its subnet whose prefix
# is not the lab's /24; the same values every run, so a grade never depends on chance.
BENCH_PORTS = ("203.0.113.10/24", "198.51.100.10/25", "192.0.2.10/24")   # bench-eth0..2
BENCH_GIVEN = "bench-eth1"
BENCH_VIP = "198.51.100.77/25"
BENCH_WAIT = 1.0            # s after the script ends for its announcements to be captured


class ArgumentsBenchTopo(Topo):
    """A throw-away bench for move_vip.sh, run with arguments the lab never uses::

        bench (runs move_vip.sh)                 lan (tcpdump on each port)
          bench-eth0  203.0.113.10/24  ------------ lan-eth0
          bench-eth1  198.51.100.10/25 ------------ lan-eth1    <- $1, VIP 198.51.100.77/25
          bench-eth2  192.0.2.10/24    ------------ lan-eth2

    The given port has an own address in the VIP's subnet, as web1-eth0 has in the lab;
    it is neither the first nor the last port.  No switch, no controller: only what the
    script changes and sends is watched.
    """

    def build(self, addresses=BENCH_PORTS):
        bench = self.addHost("bench", ip=None)
        lan = self.addHost("lan", ip=None)
        for address in addresses:
            self.addLink(bench, lan, params1={"ip": address})


def arguments_bench(ctx, script):
    """Run move_vip.sh once more, on a bench host with another interface and another VIP,
    and watch what it changes (the bench's addresses) and sends (ARP on both ports).

    The lab's own run shows *that* the script moves the VIP; this shows that it moves
    the VIP *it is given* on the interface *it is given*: a script that names web1-eth0
    or the lab's VIP itself -- however it spells them -- works in the lab and fails here.
    """
    given, vip_cidr = BENCH_GIVEN, BENCH_VIP
    vip = vip_cidr.split("/")[0]
    ctx.say("\n== 5. your %s with other arguments, on a bench host ==" % SCRIPT)
    with Network(ArgumentsBenchTopo(), name="lab07-arguments",
                 run_folder=ctx.folder("arguments"), controller=False, services=False) as net:
        bench, lan = net["bench"], net["lan"]
        macs = {intf.name: intf.MAC() for intf in bench.intfList() if intf.name != "lo"}
        peer = {intf.name: intf.link.intf2.name if intf.link.intf1 is intf
                else intf.link.intf1.name for intf in bench.intfList() if intf.link}
        before = {name: bench.addresses(name) for name in macs}
        ctx.say("  bench# ip -4 -br addr: %s" % "; ".join(
            "%s %s" % (name, " ".join(held)) for name, held in sorted(before.items())))
        ctx.say("  bench# bash %s %s %s" % (SCRIPT, given, vip_cidr))
        captures = {name: ArpCapture(lan, peer[name], "arp-%s.pcap" % name).start()
                    for name in macs}
        try:
            code, output = ScriptRun(bench, script, [given, vip_cidr],
                                     timeout=SCRIPT_TIMEOUT).finish()

            def announced():
                seen = [p for name, capture in captures.items() for p in capture.packets()
                        if p["gratuitous"] and p["sender_mac"] == macs[name]]
                return bool(seen), seen
            try:
                wait_until(announced, BENCH_WAIT, "the bench's gratuitous ARPs")
            except WaitTimeout:
                pass                        # none: that is the measurement
            garps = {name: sorted({p["sender_ip"] for p in capture.packets()
                                   if p["gratuitous"] and p["sender_mac"] == macs[name]})
                     for name, capture in captures.items()}
            count = sum(1 for p in captures[given].packets()
                        if p["gratuitous"] and p["sender_ip"] == vip
                        and p["sender_mac"] == macs[given])
        finally:
            for capture in captures.values():
                capture.stop()
        after = {name: bench.addresses(name) for name in macs}
    if output:
        ctx.say("    " + output.replace("\n", "\n    "))
    ctx.say("  (exit code %s) %s" % (code, "; ".join(
        "%s now has %s, announced %s" % (name, " ".join(held) or "no address",
                                          " ".join(garps[name]) or "nothing")
        for name, held in sorted(after.items()))))
    return dict(given=given, vip_cidr=vip_cidr, exit_code=code,
                output=output[-500:], addresses=after, garps_for_vip=count,
                announced=garps)


# -- checks -------------------------------------------------------------------------------

def check(name, static=False, keys=()):
    """A check returning ``(ok, reason)``, named like the report line (no underscores so that
    the framework's name for a check it could not run is the same); ``keys`` of the
    measurements travel with the result."""
    def decorate(func):
        @functools.wraps(func)
        def run(ctx, measured):
            ok, reason = func(ctx, measured)
            values = {key: measured.get(key) for key in keys}
            return (passed if ok else failed)(name, reason, **values)
        run.__name__ = "check_" + name.replace(" ", "_")
        run.static = static
        return run
    return decorate


@check("script reads its arguments", keys=("arguments_bench",))
def check_script(ctx, measured):
    b, lab = measured["arguments_bench"], measured["move_vip_sh"]
    given, vip_cidr = b["given"], b["vip_cidr"]
    vip = vip_cidr.split("/")[0]
    ran = "run as `bash %s %s %s` on a bench host (ports %s; no web1-eth0)" % (
        SCRIPT, given, vip_cidr, ", ".join(sorted(b["addresses"])))
    exited = "it exited with %s%s" % (
        "code %s" % b["exit_code"] if isinstance(b["exit_code"], int) else b["exit_code"],
        ": %s" % b["output"].splitlines()[-1] if b["output"] else "")
    if vip_cidr not in b["addresses"][given]:
        return False, ("%s, %s did not put %s on %s (it has %s; %s): take the interface from $1 "
                       "and the VIP/prefix from $2 -- `ip addr add \"$2\" dev \"$1\"` -- and name "
                       "neither yourself: the other server runs it with its own interface" % (
                           ran, SCRIPT, vip_cidr, given,
                           " ".join(b["addresses"][given]) or "no address", exited))
    others = sorted(port for port, held in b["addresses"].items()
                    if port != given and any(a.split("/")[0] == vip for a in held))
    if others:
        return False, ("%s, %s put %s on %s as well as on %s: only the interface given in $1 "
                       "takes the VIP" % (ran, SCRIPT, vip, " and ".join(others), given))
    wrong = sorted({"%s on %s" % (ip, name) for name, ips in b["announced"].items()
                    for ip in ips if (ip, name) != (vip, given)})
    if lab["garps_seen"] and not b["garps_for_vip"]:
        return False, ("in the lab %s announced the VIP, but %s it sent no gratuitous ARP for "
                       "%s on %s%s (%s): announce the VIP of $2 on the interface of $1, e.g. "
                       "`arping -U -c 2 -i \"$1\" -S \"${2%%/*}\" \"${2%%/*}\"`" % (
                           SCRIPT, ran, vip, given,
                           "; it announced %s instead" % ", ".join(wrong) if wrong else "",
                           exited))
    if wrong:
        return False, ("%s, %s announced %s: a gratuitous ARP names the VIP of $2 and goes out "
                       "of the interface of $1 only" % (ran, SCRIPT, ", ".join(wrong)))
    return True, ("%s, %s put %s on %s%s: it takes both from its arguments" % (
        ran, SCRIPT, vip_cidr, given,
        " and announced it there (%d gratuitous ARP)" % b["garps_for_vip"]
        if b["garps_for_vip"] else " (it announces nothing: see 'sends gratuitous ARP')"))


@check("takes the VIP", keys=("move_vip_sh",))
def check_takes_vip(ctx, measured):
    m = measured["move_vip_sh"]
    vip = measured["vip"]
    if m["exit_code"] != 0:
        return False, "%s exited with %s%s" % (
            SCRIPT, "code %s" % m["exit_code"] if isinstance(m["exit_code"], int)
            else m["exit_code"], ": %s" % m["output"].splitlines()[-1] if m["output"] else "")
    if not m["holds_vip"]:
        return False, ("after `bash %s web1-eth0 %s` web1 does not hold %s (web1-eth0 has %s); "
                       "add it with `ip addr add \"$2\" dev \"$1\"`" % (
                           SCRIPT, ap.cidr(vip), ap.cidr(vip),
                           ", ".join(m["addresses"]) or "no IPv4 address"))
    if not m["recovered"]:
        return False, ("web1 holds %s after %s, but client1 never got an answer from web1 "
                       "through it while the lab waited" % (vip, SCRIPT))
    return True, "web1 holds %s after %s and answered client1 (%.2f s without answers)" % (
        ap.cidr(vip), SCRIPT, m["time_without_service"])


@check("sends gratuitous ARP", keys=("move_vip_sh",))
def check_garp(ctx, measured):
    m = measured["move_vip_sh"]
    vip = measured["vip"]
    after = m["arp_updated_after_script"]
    if after is not None and after <= GARP_DEADLINE and m["garps_seen"]:
        return True, ("client1's ARP entry for %s changed to web1's MAC %.2f s after %s "
                      "started (%d gratuitous ARP seen)" % (vip, after, SCRIPT, m["garps_seen"]))
    if m["garps_seen"]:
        return False, ("client1 saw %d gratuitous ARP from web1 but its ARP entry for %s %s; "
                       "send it after the address is on the interface" % (
                           m["garps_seen"], vip, "changed only after %.2f s" % after
                           if after is not None else "never changed"))
    if not m["holds_vip"]:
        return False, ("no gratuitous ARP from web1 for %s reached client1 (and web1 does not "
                       "hold it: see 'takes the VIP')" % vip)
    stale = ("client1 kept web2's MAC for %.2f s after %s started: its ARP entry went %s "
             "before a broadcast found web1" % (after, SCRIPT, " -> ".join(m["states"]))
             if after is not None else
             "client1's ARP entry for %s never changed to web1's MAC" % vip)
    wrong = ""
    if m["other_ips"]:
        wrong = (" (web1 asked who has %s from %s: that is an ordinary ARP request; in a "
                 "gratuitous one sender and target IP are both the VIP)"
                 % (vip, ", ".join(m["other_ips"])))
    return False, ("%s; no gratuitous ARP from web1 reached client1 within %.0f s%s.  After "
                   "`ip addr add`, announce the VIP: `arping -U -c 2 -i \"$1\" -S VIP VIP`"
                   % (stale, GARP_DEADLINE, wrong))


@check("time without GARP is longer", keys=(
    "time_without_garp", "time_with_garp", "stale_bound_with_probe", "by_hand_without_garp",
    "keepalived_with_garp", "keepalived_without_garp", "keepalived_garp_false"))
def check_time_without_garp(ctx, measured):
    without = measured["time_without_garp"]
    with_garp = measured["time_with_garp"]
    bound = measured["stale_bound_with_probe"]
    if without is None:
        return False, ("client1 never reached the VIP after the move by hand without GARP "
                       "(the lab waited %.1f s): look at the run folder's evidence in %s"
                       % (bound + 3, measured.get("run_folder")))
    if with_garp is None:
        return False, ("without GARP client1 could not reach the VIP for %.2f s; after %s it "
                       "never reached it again: see 'takes the VIP'" % (without, SCRIPT))
    if with_garp < GARP_DEADLINE and without > with_garp:
        return True, ("without GARP client1 could not reach the VIP for %.2f s (its timers "
                      "allow up to %.1f s); with %s's GARP for %.2f s" % (
                          without, bound, SCRIPT, with_garp))
    return False, ("with %s client1 could not reach the VIP for %.2f s (%.2f s without GARP); "
                   "with a gratuitous ARP it is under %.0f s: the script must announce the VIP "
                   "(see 'sends gratuitous ARP')" % (SCRIPT, with_garp, without, GARP_DEADLINE))


CHECKS = [check_script, check_takes_vip, check_garp, check_time_without_garp]
