"""Lab 04: DNS round robin + VIP takeover (the course notes' curl-based check script).

dns1 hands out one VIP per web server (DNS round robin).  The student's
``takeover.sh`` runs inside every web server: it curls every VIP, releases its own
VIP when its own service is broken, takes a failed peer's VIP over (``ip addr add``)
and announces it with gratuitous ARP.  The walk-through:

1. two servers: web1's nginx stops -> web1 releases VIP1, web2 takes it, the client's
   ARP entry for VIP1 moves to web2's MAC; web1's nginx comes back -> VIP1 goes back;
2. three servers: web1 crashes -> web2 *and* web3 take VIP1 (both try; the logs say
   so), two servers hold one IP (duplicate address detection with arping shows it)
   and the client's ARP entry flaps between them; bringing web1 back needs both to
   let go;
3. the notes' "a stopped server is hard to bring back", done twice by the harness
   while web2 still holds VIP1: web1 claims it at once (two holders, the client's
   requests go to either), then web1 waits until nobody answers for it (one holder).

Everything is observed from outside the script (redlab.scenarios.vip_takeover).
"""

import json
import time
from pathlib import Path

from redlab import addressing as ap
from redlab.checks import check, fail, lab_data, ok, script_parses
from redlab.labs import Stop
from redlab.net import Network
from redlab.scenarios.vip_takeover import SCRIPT, VipTakeover, after, mac_of, summary

TITLE = "DNS round robin + VIP takeover"
TOPOLOGY = "topologies/vip_takeover.py"
DATA = lab_data(__file__)          # lab.yaml: the timers and bounds
V1, V2 = ap.vip(1), ap.vip(2)

# the four --cli stops: what to look at and what to type there, one line at a time
STOPS = {
    "start": Stop("VIP1 on web1, VIP2 on web2; dns1 hands out the three VIPs in turn", [
        "client1 dig @%(dns)s www.lab.example +short", "web1 ip -4 addr", "client1 ip neigh",
        "client1 curl -s http://%(vip)s/"]),
    "nginx_down": Stop("web1's nginx is down; who has %(vip)s now?", [
        "web2 ip -4 addr", "client1 ip neigh", "client1 curl -s http://%(vip)s/"]),
    "crashed": Stop("web1 crashed. Who has %(vip)s? (arping -d exits 1 when two MACs answer)", [
        "web2 ip -4 addr", "web3 ip -4 addr", "client1 arping -d -c 2 -i client1-eth0 %(vip)s"]),
    "back": Stop("web1 is back. Who holds %(vip)s now? web1's script says what it waited for", [
        "web1 ip -4 addr", "client1 ip neigh", "sh tail -n 5 %(log)s"]),
}


def walkthrough(ctx):
    from topologies.vip_takeover import VipTakeoverTopo
    script = ctx.file(SCRIPT)
    details = {}
    with Network(VipTakeoverTopo(servers=3), name="lab04-vip-takeover",
                 run_folder=ctx.folder("vip-takeover")) as net, \
            VipTakeover(ctx, net, script, DATA) as run:
        details["two"] = two_servers(ctx, net, run)
        # parts 2 and 3 show what goes wrong with three servers even when the two-server
        # rules are right: they run once the script passes part 1
        failing = [r for r in (c(ctx, {"details": details}) for c in PART1_CHECKS)
                   if not r.passed]
        if failing:
            ctx.say("\n== Parts 2 and 3 (three servers) are skipped until part 1 passes: %s ==\n%s"
                    % (", ".join(r.name for r in failing),
                       "\n".join("  " + r.line() for r in failing)))
        else:
            details["three"] = three_servers(ctx, net, run)
            details["rejoin"] = bring_back(ctx, run)
        run_folder = str(net.run.path)
    measured = dict(summary(details), details=details, run_folder=run_folder)
    (Path(run_folder) / "measured.json").write_text(json.dumps(measured, indent=1, default=str))
    ctx.say("\nrun folder (scripts' logs, ip monitor output, client ARP capture): %s" % run_folder)
    return measured


def two_servers(ctx, net, run):
    """Part 1: web1's nginx stops and comes back; then the other way round."""
    ctx.say("== Part 1: two web servers, one VIP each ==")
    dns = [run.dns(), run.dns()]
    ctx.say("dns1 answers www.lab.example with every VIP, in turn (DNS round robin):")
    for answer in dns:
        ctx.say("  dig www.lab.example -> %s" % " ".join(answer))
    ctx.say("Starting %s on web1 (my VIP %s, peer VIP %s) and web2 (my VIP %s, peer VIP %s); "
            "every %.1f s each curls every VIP." % (SCRIPT, V1, V2, V2, V1, DATA["interval"]))
    m = dict(dns=dns, t_start=time.time())
    m.update(run.start((1, 2)))
    if not m["vips_up"]:
        return m
    with run.probe("part1", V1, 40) as probe:
        run.serving(m, probe)
        ctx.pause(net, STOPS["start"], dns=ap.dns(1), vip=V1)
        run.nginx_stops(m, probe)
        ctx.pause(net, STOPS["nginx_down"], vip=V1)
        run.nginx_returns(m, probe)
    run.other_way(m)
    run.duplicates(m)
    run.stop_scripts((1, 2))
    return m


def three_servers(ctx, net, run):
    """Part 2: the same script on three servers; web1 crashes, then boots again."""
    ctx.say("\n== Part 2: three web servers, the same script ==")
    ctx.say("Restarting %s on web1, web2, web3, each with both others as peers." % SCRIPT)
    m = run.start((1, 2, 3))
    if not m["vips_up"]:
        return m
    with run.probe("part2", V1, 40) as probe:
        run.good(probe, 0, timeout=5)
        m["arp_before"] = run.arp.mark(V1)
        run.crash(m, probe)
        ctx.pause(net, STOPS["crashed"], vip=V1)
        run.reboot(m, probe)
        ctx.pause(net, STOPS["back"], vip=V1,
                  log=net.run.path / "web1" / "takeover" / "takeover.log")
    return m


def bring_back(ctx, run):
    """Part 3: web1 returns while web2 still holds VIP1, first naively, then carefully."""
    ctx.say("\n== Part 3: bringing a stopped server back (the harness does it, twice) ==")
    return {"naive": run.rejoin(careful=False), "careful": run.rejoin(careful=True)}


# -- the checks ---------------------------------------------------------------------------

def _two(measured):
    """Part 1's measurements, or why they are missing (a failed result)."""
    two = (measured.get("details") or {}).get("two") or {}
    if not two.get("vips_up"):
        return None, fail("the VIPs never settled one per server with two servers (%s): at "
                          "start, your script must add its own VIP (MY_VIP) to INTF once its "
                          "own nginx answers" % two.get("holders_at_start", "not run"))
    return two, None


def _moved(measured):
    """Part 1's measurements if web2 took VIP1 over, or a failed result.

    A script that only claims its own VIP never moves anything, so it never holds one VIP
    twice and never has one to give back: those checks would pass on doing nothing."""
    two, problem = _two(measured)
    if problem or two.get("peer_took_after") is not None:
        return two, problem
    return None, fail("not checked: web2 never took %s over after web1's nginx stopped (see "
                      "'takes over failed peer vip'), so nothing moved -- there was no takeover "
                      "to do without a duplicate and nothing to give back" % V1)


# information: an empty takeover.sh is valid bash, and one that is not fails the
# walk-through (its dry run) with the same sentence
@check("script is valid bash", static=True, scored=False)
def script_is_valid_bash(ctx, m):
    return script_parses(ctx.submission / SCRIPT)


@check("takes over failed peer vip")
def takes_over_failed_peer_vip(ctx, m):
    two, problem = _two(m)
    if problem:
        return problem
    took, t = two.get("peer_took_after"), two.get("takeover", {})
    if took is None:
        return fail("web2 never added %s (web1's VIP) in %.0f s after web1's nginx stopped: "
                    "when a peer's VIP fails its curl check, take it over with `ip addr add "
                    "%s/%d dev $INTF`" % (V1, DATA["takeover_wait"], V1, ap.SERVICE.prefixlen),
                    peer_took_after=None)
    return ok("web2 added %s %.2f s after web1's nginx stopped; client1 %s" % (
        V1, took, "was served by %s again after %.2f s (%d requests lost)" % (
            t.get("served_after"), t.get("time_to_recover"), t.get("requests_lost"))
        if t.get("recovered") else "was not served again while the lab watched"),
        peer_took_after=took, takeover=t)


@check("sends gratuitous arp")
def sends_gratuitous_arp(ctx, m):
    two, problem = _two(m)
    if problem:
        return problem
    if two.get("peer_took_after") is None:
        return fail("not checked: web2 never took %s over (see 'takes over failed peer vip')"
                    % V1)
    moved, late = two.get("arp_moved_after_take"), DATA["garp_window"]
    still = "after web2 took VIP %s, client1 still had web1's MAC %s for it" % (V1, mac_of(1))
    if (moved is None or moved > late) and two.get("wrong_sender"):
        sender = two["wrong_sender"][0]
        return fail("%s: web2 did broadcast ARP for %s, but with sender address %s, which "
                    "announces %s, not the VIP. Debian's arping is Thomas Habets' arping: "
                    "`arping -U -S %s -c 2 -i $INTF %s` makes the VIP the sender" % (
                        still, V1, sender, sender, V1, V1),
                    arp_moved_after_take=moved, wrong_sender=two["wrong_sender"])
    if moved is None or moved > late:
        return fail("%s %.0f s later: the takeover sent no gratuitous ARP (client1 received %d "
                    "from web2; send one with `arping -U -S %s -c 2 -i $INTF %s` right after "
                    "`ip addr add`); without it client1 keeps sending to web1 until its ARP "
                    "entry ages out (30-90 s here)" % (
                        still, two.get("arp_watch", DATA["arp_watch"]),
                        two.get("garps_from_taker", 0), V1, V1),
                    arp_moved_after_take=moved, garps=two.get("garps_from_taker"))
    back = two.get("return", {})
    if back.get("owner_took_after") is not None and not back.get("arp_ok"):
        return fail("after web1 took VIP %s back, client1 still had web2's MAC %s for it: "
                    "claiming a VIP back needs a gratuitous ARP too" % (V1, mac_of(2)),
                    return_arp=back.get("arp_after"))
    return ok("client1's ARP entry for %s moved to web2's MAC %s %.3f s after web2 took it "
              "(%d gratuitous ARPs from web2), not after ARP aging" % (
                  V1, mac_of(2), moved, two.get("garps_from_taker", 0)),
              arp_moved_after_take=moved, garps=two.get("garps_from_taker"))


@check("releases own vip when service broken")
def releases_own_vip_when_service_broken(ctx, m):
    two, problem = _two(m)
    if problem:
        return problem
    released = two.get("own_released_after")
    if released is None:
        return fail("web1 kept its VIP %s for %.0f s after its own nginx stopped: when the "
                    "check of your own VIP fails, your web service is broken; release the VIP "
                    "(`ip addr del $MY_VIP/$PREFIX dev $INTF`) so that a healthy peer can "
                    "serve it" % (V1, DATA["release_wait"]), own_released_after=None)
    return ok("web1 released %s %.2f s after its own nginx stopped" % (V1, released),
              own_released_after=released)


@check("no duplicate vip with two servers")
def no_duplicate_vip_with_two_servers(ctx, m):
    two, problem = _moved(m)
    if problem:
        return problem
    if two.get("duplicates"):
        d = two["duplicates"][0]
        return fail("%s was on %s at the same time for %s, from %s after web1's nginx "
                    "stopped: two servers answered ARP for one IP; release your own VIP first, "
                    "and take a peer's VIP (or claim yours back) only when nobody holds it any "
                    "more" % (d["vip"], " and ".join(d["hosts"]), "the rest of the run"
                              if d["seconds"] is None else "%.2f s" % d["seconds"],
                              "n/a" if d["after"] is None else "%.2f s" % d["after"]),
                    duplicates=two["duplicates"])
    return ok("no VIP was on web1 and web2 at once, neither at the takeover nor at the return "
              "(ip monitor address in both)", duplicates=[])


@check("gives vip back to recovered owner")
def gives_vip_back_to_recovered_owner(ctx, m):
    two, problem = _moved(m)
    if problem:
        return problem
    back = two.get("return")
    if not back:
        return fail("not checked: the lab did not get to the repair")
    if not back.get("back"):
        return fail("%.0f s after web1's nginx came back, %s was on %s instead of web1 alone: "
                    "decide who moves first when the owner recovers (the guide's 'back again' "
                    "section) and make both scripts follow it" % (
                        DATA["return_wait"], V1, " + ".join(back.get("holders")) or "nobody"),
                    **back)
    return ok("web2 released %s %s and web1 took it back %s; client1 lost %d requests" % (
        V1, after(back.get("peer_released_after"), "the repair"),
        after(back.get("owner_took_after"), "the repair"),
        back.get("timeline", {}).get("requests_lost", 0)), **back)


# information: the harness performs both returns (the scripts are stopped); the student's
# own return is graded by the two checks above
@check("returning server waits until its vip is free", scored=False)
def returning_server_waits(ctx, m):
    rejoin = (m.get("details") or {}).get("rejoin")
    if not rejoin:
        return fail("not run: part 3 (the harness brings web1 back twice) runs once part 1 "
                    "passes")
    naive, careful = rejoin["naive"], rejoin["careful"]
    seen = "naive return: VIP1 on %s at once, client1 served by %s; careful return: " % (
        " + ".join(max((h["holders"] for h in naive["holders"]), key=len)),
        " and ".join(naive["served_after_claim"]))
    if careful["max_holders"] > 1 or careful["lost"] > DATA["rejoin_max_lost"]:
        return fail(seen + "%d holders at most, %d requests lost (bound %d)" % (
            careful["max_holders"], careful["lost"], DATA["rejoin_max_lost"]))
    return ok(seen + "one holder at a time, %d of %d requests lost (bound %d, lab.yaml)" % (
        careful["lost"], careful["requests"], DATA["rejoin_max_lost"]))


PART1_CHECKS = (takes_over_failed_peer_vip, sends_gratuitous_arp,
                releases_own_vip_when_service_broken, no_duplicate_vip_with_two_servers,
                gives_vip_back_to_recovered_owner)
CHECKS = [script_is_valid_bash, *PART1_CHECKS, returning_server_waits]
