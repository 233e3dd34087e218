"""Lab 07: IP takeover and ARP -- the VIP moves, the clients' ARP caches must follow.

topologies/vrrp_pair.py (client1, web1, web2 on s1), nginx on both web servers, client1
requesting the VIP every 50 ms with its neighbour timers shortened (lab.yaml; step 0).
Step 1 puts the VIP on web1 beside its own address; then it moves:

  2. by hand, web1 -> web2, no gratuitous ARP: client1 keeps web1's MAC until its entry
     runs through REACHABLE -> (STALE) -> DELAY -> PROBE (unicast to web1, unanswered)
     -> FAILED and a broadcast finds web2;
  3. back to web1 with the student's ``move_vip.sh``: its GARP changes the entry at once;
  4. keepalived, sending GARPs (4a), then with its GARPs dropped by a tc filter (4b:
     ``keepalived -t`` refuses ``garp_master_repeat 0``, the walk-through shows it);
  5. the script once more on a bench host with another interface and VIP: what it
     changes and sends there says whether it takes both from its arguments.

Each move is watched the same way (:mod:`redlab.scenarios.arp_takeover`): client1's
``ip neigh``, its ARP packets (tcpdump), the switch's flows, the controller's ``ip_moved``.
"""

import time

from redlab import addressing as ap
from redlab import observe
from redlab.checks import check, fail, lab_data, ok
from redlab.daemons import Keepalived, Nginx
from redlab.labs import Stop
from redlab.net import Network
from redlab.recorders import ArpCapture
from redlab.scenarios.arp_takeover import (Narrator, Watch, ended, garp_repeat_zero_refused,
                                           run_on_bench, table, tune_neigh_timers, wait_state)
from redlab.student import ScriptRun
from redlab.system import require_binary

TITLE = "IP takeover and ARP: moving a VIP with and without gratuitous ARP"
TOPOLOGY = "topologies/vrrp_pair.py"
DATA = lab_data(__file__)       # lab.yaml: client1's timers, the GARP deadline, the bench
SCRIPT = "move_vip.sh"

# the four --cli stops: what to look at and what to type there, one line at a time
STOPS = {
    "web1": Stop("web1 holds the VIP", [
        "client1 ip neigh", "client1 curl -s %(vip)s",
        "sh ovs-ofctl -O OpenFlow13 dump-flows s1"]),
    "by_hand": Stop("web2 holds the VIP (moved without GARP); client1's entry says which MAC "
                    "it still sends to", ["web2 ip -4 -br addr", "client1 ip neigh",
                                          "client1 timeout 10 ip -ts monitor neigh"]),
    "script": Stop("web1 holds the VIP again (moved by %(script)s)", [
        "web1 ip -4 -br addr", "client1 ip neigh"]),
    "end": Stop("the end: web1 holds the VIP (keepalived MASTER, its GARPs dropped)", [
        "client1 ip neigh", "client1 curl -s -m 1 %(vip)s", "client1 ping -c 3 %(vip)s"]),
}


def walkthrough(ctx):
    from topologies.vrrp_pair import VRRPPairTopo
    script = ctx.file(SCRIPT)
    require_binary("arping", "lab 07 (move_vip.sh announces the VIP with it)")
    vip, vip_cidr, say = ap.vip(1), ap.cidr(ap.vip(1)), ctx.say
    say("Three steps of the notes: assume the failure (web1, which holds the VIP %s, must "
        "hand it over), prepare the spare (web2 runs the same nginx), make the switch-over a "
        "procedure (move_vip.sh, then keepalived).  The question of this lab: after the "
        "address moves, how does client1 learn the new MAC?" % vip)
    m = dict(vip=vip)
    # keepalived stays off until part 4: the VIP is moved by hand and by move_vip.sh first
    with Network(VRRPPairTopo(), name="lab07-ip-takeover", run_folder=ctx.folder("takeover"),
                 services=False) as net:
        client, web1, web2 = net["client1"], net["web1"], net["web2"]
        w1, w2 = web1.defaultIntf().name, web2.defaultIntf().name
        for web in (web1, web2):
            web.start_daemon(Nginx(web))

        say("\n== 0. client1's neighbour timers ==")
        show = Narrator(say, net)
        m.update(tune_neigh_timers(show, client, DATA["neigh_timers"], DATA["probe"]))
        with ArpCapture(client) as capture:
            watch = Watch(show, client, vip, capture, DATA["probe"], m["stale_bound_with_probe"])
            say("\n== 1. web1 holds the VIP (現用機): its own address, and the VIP beside it ==")
            t1 = time.time()
            show.run(web1, "ip addr add %s dev %s" % (vip_cidr, w1))
            show.run(web1, "ip -4 -br addr show dev %s" % w1)
            watch.settled_probe("probe-0-web1", web1).stop()
            say("  client1 requests http://%s/ every %d ms; to send the first one it asked for "
                "the VIP's MAC (tcpdump):" % (vip, DATA["probe"]["interval"] * 1000))
            show.packets(capture.packets(t1), t1)
            show.neigh(client, "client1 learned web1's MAC for the VIP by ARP")
            show.flows("the switch learned every MAC; the VIP's packets go to web1's port")
            ctx.pause(net, STOPS["web1"], vip=vip)

            say("\n== 2. IP takeover by hand, web1 -> web2, without gratuitous ARP ==")
            move = watch.begin("probe-1-by-hand", web1, web2)
            show.run(web1, "ip addr del %s dev %s" % (vip_cidr, w1))
            show.run(web2, "ip addr add %s dev %s" % (vip_cidr, w2))
            say("  web2 holds the VIP now, but client1 still sends to web1's MAC...")
            to_web1 = show.flow_packets(web1.MAC())
            r = m["by_hand_without_garp"] = move.follow().finish("without GARP")
            r["packets_to_old_mac"] = show.flow_packets(web1.MAC()) - to_web1
            say("  Ethernet delivers by MAC, not by IP: meanwhile s1 sent %d packets to web1's "
                "port (flow dl_dst=%s), which web1 dropped: the VIP is no longer its address"
                % (r["packets_to_old_mac"], web1.MAC()))
            r["controller"] = move.after("the switch was right all along: web1's MAC is "
                                         "still on web1's port")
            m["time_without_garp"] = r["time_without_service"]
            ctx.pause(net, STOPS["by_hand"])

            say("\n== 3. back to web1 with your %s (run in web1, the new holder) ==" % SCRIPT)
            move = watch.begin("probe-2-move-vip", web2, web1)
            show.run(web2, "ip addr del %s dev %s" % (vip_cidr, w2))
            say("  web1# bash %s %s %s" % (script, w1, vip_cidr))
            move.follow(ScriptRun(web1, script, [w1, vip_cidr], timeout=DATA["script_timeout"]))
            r = m["move_vip_sh"] = move.finish("with %s" % SCRIPT)
            r.update(holds_vip=web1.holds(vip_cidr, w1),
                     addresses=observe.addresses(web1, w1).get(w1, []))
            r["controller"] = move.after("after %s" % SCRIPT)
            m["time_with_garp"] = r["time_without_service"]
            if not r["holds_vip"]:
                say("  web1 does not hold the VIP after %s: the lab puts it there itself so "
                    "that part 4 can go on" % SCRIPT)
                web1.cmd("ip addr add %s dev %s" % (vip_cidr, w1))
                web1.cmd("arping -q -U -c 1 -i %s -S %s %s" % (w1, vip, vip))
            ctx.pause(net, STOPS["script"], script=SCRIPT)

            m.update(keepalived(say, net, watch, vip_cidr))
            ctx.pause(net, STOPS["end"], vip=vip)
        m["run_folder"] = str(net.run.path)

    say("\n== 5. your %s with other arguments, on a bench host ==" % SCRIPT)
    m["arguments_bench"] = run_on_bench(say, ctx.folder("arguments"), script,
                                        DATA["script_timeout"], **DATA["bench"])
    say("\n== what client1 measured ==")
    table(say, [("by hand, no GARP", m["by_hand_without_garp"]), (SCRIPT, m["move_vip_sh"]),
                ("keepalived (GARP)", m["keepalived_with_garp"]),
                ("keepalived, GARP dropped", m["keepalived_without_garp"])])
    return m


def keepalived(say, net, watch, vip_cidr):
    """Part 4: the same moves made by keepalived, with its GARPs and with them dropped."""
    web1, web2, show = net["web1"], net["web2"], watch.show
    vrrp1, vrrp2 = dict(web1.params["vrrp"]), dict(web2.params["vrrp"])
    result = {}
    say("\n== 4a. keepalived (redlab.daemons.Keepalived, default: GARP after takeover) ==")
    say("  web1 gives its hand-made VIP to keepalived (MASTER, priority %d); web2 is BACKUP "
        "(priority %d)" % (vrrp1["priority"], vrrp2["priority"]))
    say("  (keepalived starts in BACKUP and removes its VIPs first: web1 answers again once it "
        "is MASTER, after the master-down interval, 3 x advert_int + skew)")
    show.run(web1, "ip addr del %s dev %s" % (vip_cidr, web1.defaultIntf().name))
    k1 = web1.start_daemon(Keepalived(web1, **dict(vrrp1, state="MASTER")))
    k2 = web2.start_daemon(Keepalived(web2, **vrrp2))
    wait_state(k1, "MASTER", web1, vip_cidr)
    wait_state(k2, "BACKUP")
    move = watch.begin("probe-3-keepalived", web1, web2)
    say("  web1: keepalived stops (a planned switch-over; it releases the VIP and sends "
        "priority 0)")
    took = move.by_stopping(k1, k2)
    say("  web2's keepalived became MASTER after %s"
        % ("(never)" if took is None else "%.2f s" % took))
    r = result["keepalived_with_garp"] = dict(move.finish("keepalived with GARP"),
                                              takeover_after=took)
    r["controller"] = move.after("after keepalived's takeover")

    say("\n== 4b. keepalived without gratuitous ARP ==")
    refused = garp_repeat_zero_refused(web1, vrrp1)
    say("  can keepalived be told to send no GARP?  its config with `garp_master_repeat 0`:")
    say("  web1# keepalived -t -f .../web1/keepalived-garp-repeat-0/keepalived.conf  ->  %s"
        % (refused or "OK"))
    result["keepalived_garp_false"] = dict(dry_run_ok=refused is None, message=refused)
    say("  keepalived always sends at least one gratuitous ARP (and a second burst "
        "vrrp_garp_master_delay later).  So the harness's Keepalived(garp=False) runs keepalived "
        "as it is and puts a tc filter on web1-eth0 that drops its gratuitous ARPs and counts "
        "them (redlab.faults.drop_garp).")
    k3 = web1.start_daemon(Keepalived(web1, **dict(vrrp1, nopreempt=True, garp=False)))
    show.run(web1, "tc filter show dev %s" % web1.defaultIntf().name)
    wait_state(k3, "BACKUP")
    move = watch.begin("probe-4-keepalived-no-garp", web2, web1)
    say("  web2: keepalived stops; web1 (nopreempt, BACKUP) takes over")
    took = move.by_stopping(k2, k3)
    say("  web1's keepalived became MASTER after %s; gratuitous ARPs it sent and tc dropped: %s"
        % ("(never)" if took is None else "%.2f s" % took, k3.garps_dropped()))
    r = result["keepalived_without_garp"] = dict(move.finish("keepalived, GARP dropped"),
                                                 takeover_after=took,
                                                 garps_dropped=k3.garps_dropped())
    r["controller"] = move.after("after keepalived's takeover without GARP")
    return result


# -- checks --------------------------------------------------------------------------------

def pick(m, *keys):
    """The measurements a check reports with its verdict (the tests and --json read them)."""
    return {key: m.get(key) for key in keys}


@check("script reads its arguments")
def check_script(ctx, m):
    b, lab, seen = m["arguments_bench"], m["move_vip_sh"], pick(m, "arguments_bench")
    given, vip_cidr = b["given"], b["vip_cidr"]
    vip = vip_cidr.split("/")[0]
    ran = "run as `bash %s %s %s` on a bench host (ports %s; no web1-eth0)" % (
        SCRIPT, given, vip_cidr, ", ".join(sorted(b["addresses"])))
    if vip_cidr not in b["addresses"][given]:
        return fail("%s, %s did not put %s on %s (it has %s; it exited with %s): take the "
                    "interface from $1 and the VIP/prefix from $2 -- `ip addr add \"$2\" dev "
                    "\"$1\"` -- and name neither yourself: the other server runs it with its "
                    "own interface" % (ran, SCRIPT, vip_cidr, given,
                                       " ".join(b["addresses"][given]) or "no address",
                                       ended(b["exit_code"], b["output"])), **seen)
    others = sorted(port for port, held in b["addresses"].items()
                    if port != given and any(a.split("/")[0] == vip for a in held))
    if others:
        return fail("%s, %s put %s on %s as well as on %s: only the interface given in $1 "
                    "takes the VIP" % (ran, SCRIPT, vip, " and ".join(others), given), **seen)
    wrong = sorted({"%s on %s" % (ip, name) for name, ips in b["announced"].items()
                    for ip in ips if (ip, name) != (vip, given)})
    if lab["garps_seen"] and not b["garps_for_vip"]:
        return fail("in the lab %s announced the VIP, but %s it sent no gratuitous ARP for %s "
                    "on %s%s (it exited with %s): announce the VIP of $2 on the interface of "
                    "$1, e.g. `arping -U -c 2 -i \"$1\" -S \"${2%%/*}\" \"${2%%/*}\"`" % (
                        SCRIPT, ran, vip, given,
                        "; it announced %s instead" % ", ".join(wrong) if wrong else "",
                        ended(b["exit_code"], b["output"])), **seen)
    if wrong:
        return fail("%s, %s announced %s: a gratuitous ARP names the VIP of $2 and goes out of "
                    "the interface of $1 only" % (ran, SCRIPT, ", ".join(wrong)), **seen)
    return ok("%s, %s put %s on %s%s: it takes both from its arguments" % (
        ran, SCRIPT, vip_cidr, given,
        " and announced it there (%d gratuitous ARP)" % b["garps_for_vip"]
        if b["garps_for_vip"] else " (it announces nothing: see 'sends gratuitous ARP')"),
        **seen)


@check("takes the VIP")
def check_takes_vip(ctx, m):
    r, vip, seen = m["move_vip_sh"], m["vip"], pick(m, "move_vip_sh")
    if r["exit_code"] != 0:
        return fail("%s exited with %s" % (SCRIPT, ended(r["exit_code"], r["output"])), **seen)
    if not r["holds_vip"]:
        return fail("after `bash %s web1-eth0 %s` web1 does not hold %s (web1-eth0 has %s); add "
                    "it with `ip addr add \"$2\" dev \"$1\"`" % (
                        SCRIPT, ap.cidr(vip), ap.cidr(vip),
                        ", ".join(r["addresses"]) or "no IPv4 address"), **seen)
    if not r["recovered"]:
        return fail("web1 holds %s after %s, but client1 never got an answer from web1 through "
                    "it while the lab waited" % (vip, SCRIPT), **seen)
    return ok("web1 holds %s after %s and answered client1 (%.2f s without answers)" % (
        ap.cidr(vip), SCRIPT, r["time_without_service"]), **seen)


@check("sends gratuitous ARP")
def check_garp(ctx, m):
    r, vip, seen = m["move_vip_sh"], m["vip"], pick(m, "move_vip_sh")
    after, deadline = r["arp_updated_after_script"], DATA["garp_deadline"]
    if after is not None and after <= deadline and r["garps_seen"]:
        return ok("client1's ARP entry for %s changed to web1's MAC %.2f s after %s started "
                  "(%d gratuitous ARP seen)" % (vip, after, SCRIPT, r["garps_seen"]), **seen)
    if r["garps_seen"]:
        return fail("client1 saw %d gratuitous ARP from web1 but its ARP entry for %s %s; send "
                    "it after the address is on the interface" % (
                        r["garps_seen"], vip, "changed only after %.2f s" % after
                        if after is not None else "never changed"), **seen)
    if not r["holds_vip"]:
        return fail("no gratuitous ARP from web1 for %s reached client1 (and web1 does not hold "
                    "it: see 'takes the VIP')" % vip, **seen)
    stale = ("client1 kept web2's MAC for %.2f s after %s started: its ARP entry went %s before "
             "a broadcast found web1" % (after, SCRIPT, " -> ".join(r["states"]))
             if after is not None else
             "client1's ARP entry for %s never changed to web1's MAC" % vip)
    wrong = (" (web1 asked who has %s from %s: that is an ordinary ARP request; in a gratuitous "
             "one sender and target IP are both the VIP)" % (vip, ", ".join(r["other_ips"]))
             if r["other_ips"] else "")
    return fail("%s; no gratuitous ARP from web1 reached client1 within %.0f s%s.  After `ip "
                "addr add`, announce the VIP: `arping -U -c 2 -i \"$1\" -S VIP VIP`"
                % (stale, deadline, wrong), **seen)


@check("time without GARP is longer")
def check_time_without_garp(ctx, m):
    seen = pick(m, "time_without_garp", "time_with_garp", "stale_bound_with_probe",
                "by_hand_without_garp", "keepalived_with_garp", "keepalived_without_garp",
                "keepalived_garp_false")
    without, with_garp, bound = m["time_without_garp"], m["time_with_garp"], \
        m["stale_bound_with_probe"]
    if without is None:
        return fail("client1 never reached the VIP after the move by hand without GARP (the lab "
                    "waited %.1f s): look at the run folder's evidence in %s"
                    % (bound + 3, m.get("run_folder")), **seen)
    if with_garp is None:
        return fail("without GARP client1 could not reach the VIP for %.2f s; after %s it never "
                    "reached it again: see 'takes the VIP'" % (without, SCRIPT), **seen)
    if with_garp < DATA["garp_deadline"] and without > with_garp:
        return ok("without GARP client1 could not reach the VIP for %.2f s (its timers allow up "
                  "to %.1f s); with %s's GARP for %.2f s" % (without, bound, SCRIPT, with_garp),
                  **seen)
    return fail("with %s client1 could not reach the VIP for %.2f s (%.2f s without GARP); with "
                "a gratuitous ARP it is under %.0f s: the script must announce the VIP (see "
                "'sends gratuitous ARP')" % (SCRIPT, with_garp, without, DATA["garp_deadline"]),
                **seen)


CHECKS = [check_script, check_takes_vip, check_garp, check_time_without_garp]
