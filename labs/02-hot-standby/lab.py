"""Lab 02: hot standby web server (ホットスタンバイ).

web1 (active, VRRP master) and web2 (standby) share the VIP with keepalived.  The
student's ``deploy.sh`` publishes a new page; a hot standby needs every update on the
standby too.  Then web1 crashes: the client must get the *new* page from web2.

Only what deploy.sh decides is scored: whether both servers serve the update, and
whether clients get it after the failover.  The failover time and the client's ARP
entry following web2's gratuitous ARP are keepalived's work, the same for every
submission (an empty deploy.sh included): they are reported as information.
"""

import dataclasses
import time

from redlab import addressing as ap
from redlab.checks import arp_moved, check, fail, lab_data, ok, script_parses, within
from redlab.faults import daemon_stop, host_crash
from redlab.labs import Stop
from redlab.net import Network
from redlab.observe import Neighbour, neigh
from redlab.probe import Probe, analyse
from redlab.student import ScriptRun
from redlab.wait import WaitTimeout, wait_until

TITLE = "Hot standby web server"
TOPOLOGY = "topologies/vrrp_pair.py"
DATA = lab_data(__file__)          # lab.yaml: the recovery bound, the deploy's time limit

# the --cli stops: what to look at and what to type there, one line at a time
STOPS = {
    "deployed": Stop("compare the two servers' pages after your deploy", [
        "client1 curl -s http://%(active)s/", "client1 curl -s http://%(standby)s/"]),
    "failed_over": Stop("web2 holds the VIP", ["web2 ip -4 addr", "client1 ip neigh"]),
    "service_down": Stop("web1's nginx is stopped; its check fails", [
        "web1 ip -4 addr", "web2 ip -4 addr", "client1 curl -s http://%(vip)s/"]),
}


def arp_entry(client, vip):
    """client1's ARP entry for the VIP as data (measured.json): ip, mac, state, dev."""
    entry = neigh(client, vip)
    return dataclasses.asdict(entry) if entry else None


def shown(entry):
    return "%(mac)s (%(state)s)" % entry if entry else "none"


def page(client, ip):
    return client.cmd("curl -s -m 2 http://%s/index.html" % ip).strip()


def walkthrough(ctx):
    from topologies.vrrp_pair import VRRPPairTopo
    script = ctx.file("deploy.sh")
    vip, active, standby = ap.vip(1), ap.web(1), ap.web(2)
    client_ip = ap.client(1, ap.SERVICE)
    m = {}
    ctx.say("Step 1 -- assume the failure: web1 will crash. Step 2 -- the spare: web2, a hot\n"
            "standby that must always hold the same content. Step 3 -- the switch-over: VRRP\n"
            "moves the VIP %s; the deploy procedure keeps web2 up to date." % vip)
    topo = VRRPPairTopo(deploy_from=client_ip)
    with Network(topo, name="lab02", run_folder=ctx.folder("hot-standby")) as net:
        web1, web2, client = net["web1"], net["web2"], net["client1"]
        wait_until(lambda: (web1.daemons["keepalived"].current_state() == "MASTER",
                            web1.daemons["keepalived"].transitions()), 10, "web1 to be master")
        ctx.say("\nweb1 is VRRP master and holds the VIP. Before the deploy:")
        ctx.say("  web1 serves %r, web2 serves %r" % (page(client, active), page(client, standby)))
        version = "site v2 (deployed %s)" % time.strftime("%H:%M:%S")
        new_page = net.run.file("client1", "index-v2.html")
        new_page.write_text(version + "\n")
        ctx.say("\nRunning your deploy.sh on client1 to publish %r ..." % version)
        code, out = ScriptRun(client, script, [new_page], shell="sh", timeout=DATA["deploy_timeout"],
                              env=dict(VIP=vip, ACTIVE=active, STANDBY=standby)).finish()
        out = "%s\nexit=%s" % (out, code)
        m["deploy_output"] = out.strip()
        m["deployed"] = version
        m["active_page"], m["standby_page"] = page(client, active), page(client, standby)
        ctx.say("  deploy.sh said: %s" % out.strip().replace("\n", " | "))
        ctx.say("  now web1 serves %r, web2 serves %r" % (m["active_page"], m["standby_page"]))
        ctx.pause(net, STOPS["deployed"], active=active, standby=standby)

        probe = Probe(client, "http://%s/" % vip, interval=0.05, max_seconds=30)
        with probe:
            probe.wait_good(5)
            m["arp_before"] = arp_entry(client, vip)
            ctx.say("\nclient1's ARP entry for the VIP: %s" % shown(m["arp_before"]))
            ctx.say("web1 crashes now.")
            fault = host_crash(net, web1)
            try:
                probe.wait_good(10, timeout=15, since=fault.at)
            except WaitTimeout:
                pass
        promoted = [t for t, state in web2.daemons["keepalived"].transitions()
                    if state == "MASTER" and t >= fault.at]
        timeline = analyse(probe.samples(), fault.at, promoted[0] if promoted else None)
        m["arp_after"] = arp_entry(client, vip)
        m["time_to_detect"] = timeline.time_to_detect
        m["time_to_recover"] = timeline.time_to_recover
        m["requests_lost"] = timeline.requests_lost
        m["served_after"] = timeline.served_after
        m["pages_after"] = sorted({s.body for s in probe.samples()
                                   if s.ok and timeline.recovered_at and s.t >= timeline.recovered_at})
        m["web1_mac"], m["web2_mac"] = ap.mac_for(active), ap.mac_for(standby)
        ctx.say(timeline.summary())
        ctx.say("pages the client got after the failover: %s" % m["pages_after"])
        ctx.say("client1's ARP entry for the VIP now: %s" % shown(m["arp_after"]))
        ctx.pause(net, STOPS["failed_over"])
    if not ctx.grading:             # a demonstration: grading skips it
        m["service_down"] = service_down(ctx)
    return m


def service_down(ctx):
    """The notes: a correct failover needs a health check.  VRRP alone watches the host.

    web1's nginx stops while web1 itself runs on: with VRRP alone web1 keeps sending its
    advertisements, stays MASTER and keeps the VIP -- every request fails.  With a
    ``vrrp_script`` that curls the web service (keepalived's application check) web1
    goes to FAULT, releases the VIP, and web2 takes over.
    """
    from topologies.vrrp_pair import VRRPPairTopo
    vip = ap.vip(1)
    result = {}
    ctx.say("\n== The web service dies, the host does not ==")
    with Network(VRRPPairTopo(), name="lab02-service-down",
                 run_folder=ctx.folder("service-down")) as net:
        web1, web2, client = net["web1"], net["web2"], net["client1"]
        k1, k2 = web1.daemons["keepalived"], web2.daemons["keepalived"]
        nginx1 = web1.daemons["nginx"]
        wait_until(lambda: (k1.current_state() == "MASTER", k1.transitions()), 10,
                   "web1 to be master")
        window = 3 * k1.advert_int + 1.5        # longer than VRRP's master-down interval

        ctx.say("1. VRRP alone (what the lab ran so far): web1's nginx stops.")
        probe = Probe(client, "http://%s/" % vip, interval=0.1, timeout=0.5, max_seconds=60,
                      name="probe-vrrp-alone")
        with probe:
            probe.wait_good(3)
            fault = daemon_stop(nginx1)
            wait_until(lambda: (any(x.t >= fault.at + window for x in probe.samples()),
                                len(probe.samples())), window + 5,
                       "the probe to watch %.1f s after nginx stopped" % window)
            watched = [x for x in probe.samples() if fault.at <= x.t <= fault.at + window]
            result["vrrp_alone"] = dict(
                web1=k1.current_state(), web2=k2.current_state(), window=window,
                sent=len(watched), answered=sum(x.ok for x in watched),
                vip_on_web1=web1.holds(vip, web1.defaultIntf().name))
            r = result["vrrp_alone"]
            ctx.say("   %.1f s later web1 is still %s (web2 %s) and holds the VIP: %d of %d "
                    "requests answered.  VRRP saw a live host, not a dead service."
                    % (window, r["web1"], r["web2"], r["answered"], r["sent"]))
            fault.undo()
            probe.wait_good(3, since=time.time())

        ctx.say("2. With an application check: both keepalived get a vrrp_script that curls "
                "their own web service every second (fall 2, rise 2) and track it.")
        # a maintenance window: both keepalived restart with the check (no client yet)
        for k in (k2, k1):
            k.stop()
        for k in (k1, k2):
            k.check_http = dict(interval=1, fall=2, rise=2, timeout=1)
            k.start()
        for k in (k1, k2):
            k.wait_log("chk_web) succeeded")
        wait_until(lambda: (k1.current_state() == "MASTER" and k2.current_state() == "BACKUP"
                            and web1.holds(vip, web1.defaultIntf().name),
                            (k1.transitions()[-2:], k2.transitions()[-2:])),
                   15, "web1 to be master again with the check in place")
        probe = Probe(client, "http://%s/" % vip, interval=0.1, timeout=0.5, max_seconds=60,
                      name="probe-with-check")
        with probe:
            probe.wait_good(3)
            fault = daemon_stop(nginx1)
            try:
                probe.wait_good(5, timeout=15, since=fault.at)
            except WaitTimeout:
                pass
            promoted = [t for t, state in k2.transitions() if state == "MASTER" and t >= fault.at]
            timeline = analyse(probe.samples(), fault.at, promoted[0] if promoted else None)
            result["with_check"] = dict(
                web1=k1.current_state(), web2=k2.current_state(),
                time_to_detect=timeline.time_to_detect, time_to_recover=timeline.time_to_recover,
                requests_lost=timeline.requests_lost, served_after=timeline.served_after)
            r = result["with_check"]
            ctx.say("   web1 went %s, web2 became %s after %s; service back after %s from %s "
                    "(%d requests lost)" % (
                        r["web1"], r["web2"],
                        "%.2f s" % r["time_to_detect"] if r["time_to_detect"] else "(never)",
                        "%.2f s" % r["time_to_recover"] if r["time_to_recover"] else "(never)",
                        r["served_after"], r["requests_lost"]))
            ctx.pause(net, STOPS["service_down"], vip=vip)
            fault.undo()
    ctx.say("   A dead web service on a live host is invisible to VRRP: failing over correctly "
            "needs a health check of the service itself (ヘルスチェック).")
    return result


# information: an empty deploy.sh passes; a missing or broken one fails the walk-through
# or "standby gets every update" too
@check("deploy script present", static=True, scored=False)
def deploy_script_present(ctx, m):
    return script_parses(ctx.submission / "deploy.sh", shell="sh")


@check("standby gets every update")
def standby_gets_every_update(ctx, m):
    if m["standby_page"] == m["deployed"] and m["active_page"] == m["deployed"]:
        return ok("web1 and web2 both serve %r" % m["deployed"])
    if m["active_page"] == m["deployed"]:
        return fail("after deploy.sh, web1 serves %r but the standby web2 still serves %r: a hot "
                    "standby must get every update too -- send the page to $STANDBY as well"
                    % (m["active_page"], m["standby_page"]))
    return fail("deploy.sh did not publish the page: after it, web1 serves %r and web2 %r "
                "instead of %r (it said: %s); send the file it is given ($1) to both servers, "
                "`curl -fsS -T \"$1\" http://$ACTIVE/deploy/index.html` and the same for "
                "$STANDBY" % (m["active_page"], m["standby_page"], m["deployed"],
                              m["deploy_output"].replace("\n", " | ")))


@check("clients get the update after failover")
def clients_get_the_update_after_failover(ctx, m):
    if not m["pages_after"]:
        return fail("no answer after web1 crashed (the failover itself did not happen: see "
                    "'failover time')")
    if m["pages_after"] == [m["deployed"]]:
        return ok("after the failover clients got %r from web2" % m["deployed"])
    return fail("after the failover clients got %s instead of %r: web2 was not up to date; "
                "deploy.sh must publish every update on the standby ($STANDBY) too"
                % (m["pages_after"], m["deployed"]))


# information: keepalived's master-down interval decides it, whatever deploy.sh does
@check("failover time", scored=False)
def failover_time(ctx, m):
    return within(m["time_to_recover"], DATA["max_recovery"], "time to recover",
                  "max_recovery of lab.yaml; keepalived noticed after %s, %d requests lost"
                  % ("%.2f s" % m["time_to_detect"] if m["time_to_detect"] else "never",
                     m["requests_lost"]), time_to_recover=m["time_to_recover"])


# information: web2's keepalived sends the gratuitous ARP, not the student's deploy.sh
@check("ARP entry followed the GARP", scored=False)
def arp_entry_followed_the_garp(ctx, m):
    before = (m["arp_before"] or {}).get("mac")
    if before != m["web1_mac"]:
        return fail("client1's entry for the VIP held %s before the crash, not web1's MAC %s: "
                    "there was no move to follow" % (before or "nothing", m["web1_mac"]))
    after = Neighbour(**m["arp_after"]) if m["arp_after"] else None
    return arp_moved(after, m["web2_mac"], "client1", ap.vip(1), owner="web2",
                     why="web2's gratuitous ARP did not reach it")


CHECKS = [deploy_script_present, standby_gets_every_update,
          clients_get_the_update_after_failover, failover_time, arp_entry_followed_the_garp]
