"""Lab 01: cold standby router (コールドスタンバイ).

r1 routes between the client LAN and the service LAN; r2, the spare, sits beside it
powered on but with its cables out of the switches.  Both routers' configurations
are rendered from ONE template (the student's ``router.j2``) with each router's
values (``r1.yaml``, ``r2.yaml``).  r1 dies; a person moves the cables to r2
(``rewire r1 r2``), r2 loads its configuration, and the client's HTTP probe says when
the service is back -- or that it is not, when r2's configuration drifted from r1's
(``redlab lab 01 diff`` names the lines).

The notes' three steps of redundancy are each measured: the failure (every request
client1 sends after r1 dies fails), the spare (what r2 runs, read from the kernel, against
what r1 ran) and the procedure (the time from the cables moving to the first answer).
The configuration format, the cables and the readings are the harness's
(:mod:`redlab.scenarios.cold_standby`); the numbers are in ``lab.yaml``.
"""

import time

from redlab import addressing as ap
from redlab.checks import check, fail, lab_data, ok, within
from redlab.errors import ConfigError, RedlabError, WaitTimeout
from redlab.faults import host_crash
from redlab.labs import Stop
from redlab.net import Network
from redlab.probe import Probe
from redlab.recorders import NeighbourMonitor
from redlab.scenarios import cold_standby as cs
from redlab.scenarios.cold_standby import ACTIVE, SPARE, TEMPLATE
from redlab.wait import wait_until

TITLE = "Cold standby router"
TOPOLOGY = "topologies/cold_standby.py"
DATA = lab_data(__file__)         # lab.yaml: the recovery bound, the probe's and the waits' timers

# the three --cli stops: what to look at and what to type there, one line at a time
STOPS = {
    "before": Stop("r1 routes, r2 waits (its ports are down and it has no address)", [
        "r1 ip -br addr", "r2 ip -br link", "client1 curl -s http://%(server)s/",
        "client1 ip neigh"]),
    "dead": Stop("r1 is dead: client1's ARP entry for %(gateway)s still says r1's MAC; do the "
                 "procedure yourself with `rewire r1 r2` (or exit and the walk-through does it)", [
        "client1 ip neigh show %(gateway)s", "sh ovs-ofctl -O OpenFlow13 dump-ports-desc s1",
        "rewire r1 r2"]),
    "after": Stop("r2 in service; then when does r2 announce itself? (tcpdump prints what it "
                  "captured when kill stops it)", [
        "client1 ip neigh", "web1 ip neigh", "r2 ip route", "r2 ip -s link",
        "client1 tcpdump -l -n -i client1-eth0 arp &",
        "sh ip link set s1-eth2 down; ip link set s1-eth2 up",
        "r2 ip link set r2-eth0 down; ip link set r2-eth0 up",
        "client1 kill %%1"]),
}


def verb_diff(ctx, args):
    """``diff``: render both routers' configurations from the submission and compare them."""
    if args:
        raise RedlabError("diff takes no arguments: it compares r1.conf and r2.conf")
    return cs.diff_text(cs.diff_submission(ctx.submission)[0])


VERBS = {"diff": (verb_diff, "diff: the drift between r1's and r2's rendered configurations")}


def entry_text(entry):
    return "%s (%s, %s)" % (entry["mac"], entry["owner"], entry["state"])


def secs(value):
    return "never" if value is None else "%.2f s" % value


def walkthrough(ctx):
    from topologies.cold_standby import ColdStandbyTopo
    for name in (TEMPLATE, "%s.yaml" % ACTIVE, "%s.yaml" % SPARE):
        ctx.file(name)                  # a missing file: one clear sentence
    gateway, server = ap.router(ap.CLIENTS), ap.web(1)
    ctx.say("Step 1 -- assume the failure: the router r1 dies.\n"
            "Step 2 -- prepare the spare: r2, the same model, configured from the same\n"
            "         template (%s) with its own values (%s.yaml), powered but unplugged.\n"
            "Step 3 -- the procedure: move the cables from r1 to r2; r2 loads its configuration."
            % (TEMPLATE, SPARE))
    drift, texts = cs.diff_submission(ctx.submission)
    m = dict(diff=[str(line) for line in drift], configs_identical=not drift)
    ctx.say("\n" + cs.diff_text(drift))

    with Network(ColdStandbyTopo(), name="lab01-cold-standby",
                 run_folder=ctx.folder("cold-standby")) as net:
        client, bench = net["client1"], cs.Bench(net, texts)
        bench.start()                   # r1 loads r1.conf; r2's cables out, its packets counted
        m.update(macs=bench.macs, arp_aging=cs.arp_aging(client), run_folder=str(net.run.path))
        ctx.say("\nr1 is in service with r1.conf (run folder %s)." % net.run.path)
        ctx.say("r2 is on the shelf: its cables are out (%s down), its ports are down and it "
                "has not loaded r2.conf." % ", ".join(bench.spare_ports()))
        ctx.say("MACs on the client LAN: r1-eth0 %s, r2-eth0 %s (two boxes, two MACs)."
                % (bench.macs[ACTIVE]["eth0"], bench.macs[SPARE]["eth0"]))
        ctx.pause(net, STOPS["before"], server=server)

        probe = Probe(client, "http://%s/" % server, name="probe", max_seconds=600 if ctx.cli
                      else 30, **DATA["probe"])
        # client1's ARP entries with the kernel's own timestamps (`ip -ts monitor neigh`)
        neigh = NeighbourMonitor(client, name="client1-neigh.txt")
        with probe, cs.gateway_check(client, gateway, DATA["icmp_check"]) as icmp, neigh:
            try:
                probe.wait_good(5, timeout=10)
            except WaitTimeout:
                raise ConfigError(
                    "client1 cannot reach web1 (%s) through r1 with r1.conf applied: r1 must "
                    "forward (ip_forward=1) and hold the gateways the hosts use, %s on eth0 "
                    "(client LAN) and %s on eth1 (service LAN)"
                    % (server, gateway, ap.router(ap.SERVICE))) from None
            m["arp_before"] = bench.entry(client, gateway)
            m["running"] = {ACTIVE: bench.running(ACTIVE)}     # step 2's yardstick: r1 at work
            ctx.say("\nclient1 -> web1 works through r1; client1's ARP entry for its gateway %s: "
                    "%s (%s)." % (gateway, m["arp_before"]["mac"], m["arp_before"]["owner"]))

            crash = host_crash(net, ACTIVE)                     # step 1: the failure
            ctx.say("\n== r1 dies (every process killed, its ports dark) ==")
            try:
                wait_until(cs.failures_in_a_row(probe, crash.at, DATA["notice_failures"]), 10,
                           "client1's requests to fail")
            except WaitTimeout:
                raise RedlabError("client1's requests kept working after r1 died: something "
                                  "else routes between the LANs") from None
            m["noticed_after"] = round(time.time() - crash.at, 3)
            ctx.say("%d requests in a row failed (%.2f s after the crash): the operator goes to "
                    "the rack." % (DATA["notice_failures"], m["noticed_after"]))

            def do_rewire(args):
                """Step 3, the procedure (``rewire r1 r2`` at the CLI pause, or the lab's)."""
                if args != [ACTIVE, SPARE]:
                    raise RedlabError("this bench has one failed router and one spare: "
                                      "type `rewire %s %s`" % (ACTIVE, SPARE))
                if not bench.switched:          # the moment before: was the spare cold?
                    m.update(arp_at_rewire=bench.entry(client, gateway),
                             spare_traffic_before_rewire=bench.spare_traffic(),
                             spare_switch_ports_before_rewire=bench.spare_ports())
                moved = bench.switch_over()
                return "cables moved (%s); %s loaded %s.conf" % (moved.describe(), SPARE, SPARE)

            ctx.verb("rewire", do_rewire, "rewire r1 r2: move r1's cables to r2, r2 loads r2.conf")
            ctx.pause(net, STOPS["dead"], gateway=gateway)
            m["rewired_by"] = "student at the CLI" if bench.switched else "walk-through"
            if not bench.switched:
                do_rewire([ACTIVE, SPARE])
            moved = bench.switched
            ctx.say("r2 on the shelf sent/received %d packets; client1's ARP entry for %s still "
                    "holds %s." % (sum(map(sum, m["spare_traffic_before_rewire"].values())),
                                   gateway, entry_text(m["arp_at_rewire"])))
            ctx.say("\n== the procedure: cables moved (%s), r2 loaded r2.conf =="
                    % moved.describe())
            m.update(cs.watch_recovery(bench, client, gateway, probe, neigh, icmp, crash.at,
                                       DATA["wait_after_rewire"], DATA["icmp_wait"]))
            m["running"][SPARE] = bench.running(SPARE)          # step 2: what r2 runs now
        m["running_diff"] = cs.running_diff(m["running"][ACTIVE], m["running"][SPARE])
        m.update(cs.recovery(probe.samples(), crash.at, moved.at), rewire_at=moved.at,
                 crash_at=crash.at, config_loaded_after=round(moved.loaded - moved.at, 3),
                 time_to_recover_bound=DATA["recovery_bound"],
                 waited_after_rewire=DATA["wait_after_rewire"],
                 arp_after=bench.entry(client, gateway),
                 web1_arp_after=bench.entry(net["web1"], ap.router(ap.SERVICE)),
                 spare_packets_after_rewire=sum(map(sum, bench.spare_traffic().values())),
                 garp=bench.garps(since=moved.at))
        narrate_recovery(ctx, m, gateway)
        narrate_three_steps(ctx, m)

        # when does Linux announce?  re-plug r2's client-LAN cable, then bounce its port
        m["garp_on_replug"], m["garp_on_port_up"], m["spare_arp_notify"] = \
            bench.announcements(client)
        ctx.say("\nWhen does r2 announce itself (its arp_notify is %s)? client1 heard %d "
                "gratuitous ARP(s) when r2's cable was pulled and plugged in again, %d when r2's "
                "port was set down and up: arp_notify acts on a port coming up, not on a cable."
                % (m["spare_arp_notify"], m["garp_on_replug"], m["garp_on_port_up"]))
        ctx.pause(net, STOPS["after"])
    return m


def narrate_recovery(ctx, m, gateway):
    """What the ICMP check, the switches and the client saw after the cables moved."""
    icmp, every = m["icmp_gateway"], DATA["icmp_check"]
    ctx.say("  an ICMP health check of the gateway %s (client1, every %.1f s, fall %d): r1 "
            "seen down %s after the crash, the gateway answering again %s after the cables "
            "moved -- ICMP (L3) is the check that suits a router (ルータのヘルスチェック): it "
            "sees the box die and answer again; whether it routes right, only the requests to "
            "web1 tell." % (gateway, every["interval"], every["fall"], secs(icmp["down_after"]),
                            secs(icmp["up_after_rewire"])))
    for g in m["garp"]:
        ctx.say("  %s saw r2's gratuitous ARP for %s %.3f s after the cables moved"
                % (g["switch"], g["ip"], g["after"]))
    if not m["garp"]:
        ctx.say("  no gratuitous ARP from r2 reached the switches")
    ctx.say("  client1's ARP entry for %s: %s%s" % (gateway, entry_text(m["arp_after"]), "" if
            m["arp_refreshed_after"] is None else ", refreshed %.3f s after the cables moved"
            % m["arp_refreshed_after"]))
    if m["recovered"]:
        ctx.say("  service back %.3f s after the cables moved (first answer; %d of %d requests "
                "lost since then); %d lost since the crash, outage %.2f s (most of it is the "
                "operator)" % (m["time_to_recover"], m["requests_lost_after_rewire"],
                               m["requests_sent_after_rewire"], m["requests_lost"], m["outage"]))
    else:
        ctx.say("  service NOT back %.1f s after the cables moved (%d of %d requests lost)"
                % (m["waited_after_rewire"], m["requests_lost_after_rewire"],
                   m["requests_sent_after_rewire"]))
    ctx.say("  web1's ARP entry for its gateway %s: %s"
            % (ap.router(ap.SERVICE), entry_text(m["web1_arp_after"])))
    ctx.say("  without a gratuitous ARP client1 keeps r1's MAC until its entry ages: "
            + cs.aging_text(m["arp_aging"]))


def narrate_three_steps(ctx, m):
    """The notes' three steps of redundancy, each with what this run measured."""
    broke, facts = m["failure"], len(m["running"][ACTIVE])
    ctx.say("\n== the three steps of redundancy, measured ==")
    ctx.say("  1. the failure: r1 died at t=0; client1's requests failed from t=%s: %d of %d "
            "sent until the cables moved failed" % (secs(broke["first_failed_after"]),
                                                    broke["failed"], broke["sent"]))
    ctx.say("  2. the spare: what r2 runs against what r1 ran (ports, addresses, routes, "
            "sysctls read from each router): %s" % (
                "no difference in %d facts" % facts if not m["running_diff"] else
                "%d difference(s): %s" % (len(m["running_diff"]), "; ".join(m["running_diff"]))))
    ctx.say("  3. the procedure: `rewire r1 r2` by the %s, r2 had loaded r2.conf %.2f s "
            "after the cables moved; service %s" % (
                "student" if m["rewired_by"] == "student at the CLI" else "walk-through",
                m["config_loaded_after"],
                "back %.2f s after the cables moved" % m["time_to_recover"] if m["recovered"]
                else "not back %.0f s after the cables moved" % m["waited_after_rewire"]))


# -- checks -----------------------------------------------------------------------------------

@check("configs identical", static=True)
def configs_identical(ctx, m):
    try:
        drift, texts = cs.diff_submission(ctx.submission)
    except RedlabError as exc:
        return fail("the configurations cannot be rendered: %s" % exc)
    if not drift and not cs.configured(texts[ACTIVE]):
        return fail("r1.conf, rendered from %s with r1.yaml, configures nothing (no line but "
                    "comments and the hostname), so r2.conf is identical to an empty "
                    "configuration: a spare that is configured like nothing replaces "
                    "nothing. Render r1's sysctls, addresses and routes from the values in "
                    "r1.yaml (one command per line, see the guide)" % TEMPLATE)
    if not drift:
        return ok("r1.conf and r2.conf, rendered from %s, are identical but for the hostname "
                  "(%d lines each)" % (TEMPLATE, len(cs.config_lines(texts[ACTIVE]))))
    shown = "; ".join("%s.conf line %d `%s`" % (d.router, d.number, d.text) for d in drift[:6])
    return fail("r2's configuration differs from r1's (hostname ignored) in %d line(s): %s%s. "
                "A spare that is not configured like the active router does not replace it: "
                "give r2.yaml the same values as r1.yaml (only the hostname differs)"
                % (len(drift), shown, " ..." if len(drift) > 6 else ""),
                diff=[str(d) for d in drift])


@check("service returns after rewire")
def service_returns_after_rewire(ctx, m):
    gateway, arp, aging = ap.router(ap.CLIENTS), m["arp_after"], m["arp_aging"]["until_broadcast"]
    if m["recovered"]:
        result = within(m["time_to_recover"], m["time_to_recover_bound"],
                        "client1 got answers from web1 again after the cables moved:",
                        "lab.yaml; without a gratuitous ARP client1 would wait %.0f-%.0f s for "
                        "its ARP entry to age" % tuple(aging), time_to_recover=m["time_to_recover"])
        if result.passed and m["garp"]:
            result.reason += (": r2's gratuitous ARP moved client1's ARP entry for %s to r2's "
                              "MAC %s" % (gateway, arp["mac"]))
        return result
    waited = "no answer from web1 in the %.0f s after the cables moved" % m["waited_after_rewire"]
    if arp["owner"] != SPARE and not m["garp"]:
        return fail("%s: client1 still sends to r1, its ARP entry for the gateway %s still "
                    "holds r1's MAC %s (%s), because r2 sent no gratuitous ARP. Linux sends one "
                    "when a port comes up only with arp_notify=1: put `sysctl -w "
                    "net.ipv4.conf.all.arp_notify=1` in %s before the ports come up (without "
                    "it client1 waits for its ARP entry to age, %.0f-%.0f s)"
                    % (waited, gateway, arp["mac"], arp["state"], TEMPLATE, aging[0], aging[1]),
                    time_to_recover=None)
    if arp["owner"] == SPARE:
        running = "; ".join(m["running_diff"][:6])
        return fail("%s, although client1 now sends to r2 (its ARP entry for %s holds r2's MAC "
                    "%s): r2 does not route like r1 did. %s"
                    % (waited, gateway, arp["mac"],
                       "What r2 runs differs from what r1 ran: %s" % running if running else
                       "Look at r2's addresses and routes with `sudo redlab run 01 --cli`"),
                    time_to_recover=None)
    return fail("%s; client1's ARP entry for %s: %s" % (waited, gateway, arp["text"]),
                time_to_recover=None)


# information: the lab pulls r2's cables and loads r2.conf only at the rewire, whatever the
# submission renders -- no submission can make the spare carry traffic before it
@check("spare was unplugged before the failure", scored=False)
def spare_was_unplugged_before_the_failure(ctx, m):
    traffic, ports = m["spare_traffic_before_rewire"], m["spare_switch_ports_before_rewire"]
    busy = {intf: c for intf, c in traffic.items() if any(c)}
    live = sorted(p for p, state in ports.items() if state != "DOWN")
    if busy or live:
        return fail("r2 was not cold before the rewire: %s%s. A spare that is plugged in with "
                    "the active router's addresses answers for them too" % (
                        "; ".join("%s carried %d packets in, %d out" % (i, c[0], c[1])
                                  for i, c in sorted(busy.items())),
                        ("; switch ports %s were up" % ", ".join(live)) if live else ""))
    return ok("r2's switch ports (%s) were down and r2 carried 0 packets until the rewire; "
              "after it, %d" % (", ".join(sorted(ports)), m["spare_packets_after_rewire"]))


CHECKS = [configs_identical, service_returns_after_rewire, spare_was_unplugged_before_the_failure]
