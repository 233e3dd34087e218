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
   let go.

Everything is observed from outside the script: ``ip monitor address`` in each web
server (who held which VIP when), ``ip monitor neigh`` and tcpdump in the client
(its ARP entry, the gratuitous ARPs it received) and a probe (what the client got).
"""

import json
import re
import time
from pathlib import Path

from redlab import addressing as ap
from redlab.errors import WaitTimeout
from redlab.faults import daemon_stop, host_crash
from redlab.labs import Stop, failed, passed
from redlab.net import Network
from redlab.probe import Probe, analyse
from redlab.recorders import BROADCAST, MAC_RE, AddressMonitor, ArpCapture, NeighbourMonitor
from redlab.student import StudentScript, syntax_check
from redlab.wait import wait_until

TITLE = "DNS round robin + VIP takeover"
TOPOLOGY = "topologies/vip_takeover.py"

SCRIPT = "takeover.sh"

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
INTERVAL = 0.2             # the script's rounds of checks (s)
CHECK_TIMEOUT = 0.3        # how long one curl may take (s)
# The client keeps a confirmed ARP entry REACHABLE for a random 0.5-1.5 x this (30-90 s
# here instead of 15-45 s), so a takeover without gratuitous ARP stays visible for
# much longer than the few seconds the walk-through watches.
CLIENT_BASE_REACHABLE_MS = 60000
CLIENT_GC_STALE_S = 120
GARP_WINDOW = 1.0          # a GARP moves the client's entry within milliseconds
ARP_WATCH = 2.0            # how long the walk-through waits for the entry to move
TAKEOVER_WAIT = 6.0        # how long it waits for a peer to take a failed VIP
RELEASE_WAIT = 3.0         # ... for a server to release its own VIP
RETURN_WAIT = 6.0          # ... for a VIP to go back to its recovered owner


def web(n):
    return "web%d" % n


def intf(name):
    return "%s-eth0" % name


def mac_of(n):
    return ap.mac_for(ap.web(n))


def who(mac, servers=3):
    """A MAC as a host name (MACs spell the address: redlab/addressing.py)."""
    for n in range(1, servers + 1):
        if mac == mac_of(n):
            return web(n)
    return mac or "nobody"


def rel(t, t0):
    return None if t is None else round(t - t0, 3)


def secs(value):
    return "n/a" if value is None else "%.2f s" % value


def after(value, what):
    """``0.12 s after the fault`` or ``never`` (while the lab watched)."""
    return "never (while the lab watched)" if value is None else "%.2f s after %s" % (value, what)


def lasting(seconds):
    return "until the end of the part" if seconds is None else "for %.2f s" % seconds


# -- the student's script, as a daemon of each web server --------------------------------

class TakeoverScript(StudentScript):
    """``takeover.sh`` inside one web server (``<run>/webN/takeover/``), its settings in
    the environment: a daemon like nginx, killed with its host by ``host_crash`` and
    started again by the host's "reboot" (the fault's undo)."""

    def __init__(self, node, script, my_vip, peers, **options):
        super().__init__(node, script, dict(
            SELF=node.name, INTF=intf(node.name), MY_VIP=my_vip,
            PEER_VIPS=" ".join(vip for vip, _ in peers),
            PEER_ADDRS=" ".join(addr for _, addr in peers),
            PREFIX=ap.SERVICE.prefixlen, INTERVAL=INTERVAL, TIMEOUT=CHECK_TIMEOUT),
            name="takeover", **options)


# -- observers: what the network did, seen from outside the script --------------------
# (redlab.recorders: ip monitor address in each server, ip monitor neigh + tcpdump in the
# client)

class Holdings:
    """Which web server held which VIP when (``ip monitor address`` in each of them)."""

    def __init__(self, net, vips):
        self.net = net
        self.vips = list(vips)
        self.monitors = {}          # host -> [AddressMonitor]  (a rebooted host gets a new one)
        self.marks = []             # (t, host, vip, held): snapshots and crashes

    def watch(self, name):
        host = self.net[name]
        monitor = AddressMonitor(host, intf(name), "lab04/addr-%d.txt"
                                 % len(self.monitors.get(name, []))).start()
        self.monitors.setdefault(name, []).append(monitor)
        now = time.time()
        present = {address.split("/")[0] for address in host.addresses(intf(name))}
        for vip in self.vips:
            self.marks.append((now, name, vip, vip in present))

    def down(self, name, t):
        """The host crashed: whatever it had configured, nobody can reach it."""
        for vip in self.vips:
            self.marks.append((t, name, vip, False))

    def events(self):
        events = list(self.marks)
        for name, monitors in self.monitors.items():
            for monitor in monitors:
                events += [(t, name, ip, held) for t, ip, held in monitor.changes()
                           if ip in self.vips]
        return sorted(events, key=lambda e: e[0])

    def holders(self, vip, t=None):
        state = {}
        for when, name, ip, held in self.events():
            if t is not None and when > t:
                break
            if ip == vip:
                state[name] = held
        return {name for name, held in state.items() if held}

    def changes(self, vip, name, held, since):
        """Times at which ``name`` got (held=True) or lost ``vip`` after ``since``."""
        times, state = [], None
        for when, host, ip, now_held in self.events():
            if host != name or ip != vip:
                continue
            if when >= since and now_held == held and state != held:
                times.append(when)
            state = now_held
        return times

    def first(self, vip, name, held, since):
        times = self.changes(vip, name, held, since)
        return times[0] if times else None

    def overlaps(self, since, until=None):
        """Periods when one VIP was on two servers or more: [(vip, hosts, start, end)]."""
        found = []
        for vip in self.vips:
            state, start, hosts = {}, None, None
            for when, name, ip, held in self.events():
                if ip != vip:
                    continue
                state[name] = held
                now = sorted(n for n, h in state.items() if h)
                if len(now) > 1 and start is None:
                    start, hosts = when, now
                elif len(now) > 1:
                    hosts = sorted(set(hosts) | set(now))
                elif start is not None:
                    found.append((vip, hosts, start, when))
                    start = None
            if start is not None:
                found.append((vip, hosts, start, None))
        end = until if until is not None else float("inf")
        return [(vip, hosts, max(s, since), e) for vip, hosts, s, e in found
                if (e is None or e > since) and s < end]

    def stop(self):
        for monitors in self.monitors.values():
            for monitor in monitors:
                monitor.stop()


def wrong_sender(packets, ip, mac):
    """Sender addresses of broadcast announcements from ``mac`` for ``ip`` that name another address.

    Thomas Habets' arping (Debian's ``arping``) sends these for ``arping -U VIP``
    without ``-S VIP``: they announce the sender address, not the VIP.  Its ARP
    target MAC is the broadcast address.  The kernel's own requests (web2 still
    resolving the VIP it used to reach on web1) carry 00:00:00:00:00:00 there, and a
    duplicate-address probe (``arping -0``) has sender 0.0.0.0: neither is an attempt
    at an announcement.
    """
    return sorted({p["sender_ip"] for p in packets
                   if p["op"] == "request" and p["target_ip"] == ip and p["src"] == mac
                   and p["sender_ip"] not in (ip, "0.0.0.0") and p["target_mac"] == BROADCAST})


class ClientArp:
    """The client's ARP entries (``ip monitor neigh``) and the ARP it received (tcpdump)."""

    def __init__(self, client):
        self.client = client
        self.neigh = NeighbourMonitor(client, intf(client.name), "lab04/neigh.txt")
        self.capture = ArpCapture(client, intf(client.name), "lab04/arp.pcap")
        self.mark, self.moved_to = self.neigh.mark, self.neigh.moved_to
        self.mac_at, self.sequence = self.neigh.mac_at, self.neigh.sequence

    def start(self):
        self.neigh.start()
        self.capture.start()
        return self

    def garps(self, ip, mac, since, until=None):
        """Times of the gratuitous ARPs from ``mac`` announcing ``ip``."""
        return self.capture.garps(ip, mac, since, until)

    def wrong_sender(self, ip, mac, since):
        """See :func:`wrong_sender`."""
        return wrong_sender(self.capture.packets(since), ip, mac)

    def stop(self):
        self.neigh.stop()
        self.capture.stop()


# -- the walk-through --------------------------------------------------------------------

class Walk:
    def __init__(self, ctx, net, script):
        self.ctx = ctx
        self.net = net
        self.script = script
        self.vips = [ap.vip(n) for n in (1, 2, 3)]
        self.holdings = Holdings(net, self.vips)
        self.client = net["client1"]
        self.arp = ClientArp(self.client)

    def say(self, text=""):
        self.ctx.say(text)

    # -- helpers ------------------------------------------------------------------
    def start_scripts(self, servers):
        """Start takeover.sh on ``servers`` (numbers), each with the others as peers."""
        started = {}
        for n in servers:
            peers = [(ap.vip(p), ap.web(p)) for p in servers if p != n]
            host = self.net[web(n)]
            started[n] = host.start_daemon(TakeoverScript(host, self.script, ap.vip(n), peers))
        return started

    def stop_scripts(self, servers):
        for n in servers:
            daemon = self.net[web(n)].daemons.get("takeover")
            if daemon:
                daemon.stop()

    def wait(self, condition, timeout, expected):
        """True when ``condition()`` held before ``timeout``; False (not an error) if not."""
        try:
            wait_until(condition, timeout, expected)
            return True
        except WaitTimeout:
            return False

    def wait_holders(self, vip, hosts, timeout):
        hosts = set(hosts)
        return self.wait(lambda: (self.holdings.holders(vip) == hosts,
                                  self.holdings.holders(vip)),
                         timeout, "%s to be held by %s" % (vip, ", ".join(sorted(hosts))))

    def holders_text(self):
        parts = []
        for n, vip in enumerate(self.vips, 1):
            held = sorted(self.holdings.holders(vip))
            parts.append("VIP%d %s on %s" % (n, vip, " + ".join(held) if held else "nobody"))
        return "; ".join(parts)

    def dns(self):
        out = self.client.cmd("dig +short +time=1 +tries=1 www.lab.example @%s" % ap.dns(1))
        return [word for word in out.split() if re.fullmatch(r"[\d.]+", word)]

    def log_lines(self, n, vip, since_offset):
        daemon = self.net[web(n)].daemons.get("takeover")
        if daemon is None:
            return []
        return [line for line in daemon.lines(since_offset) if vip in line]

    def log_size(self, n):
        daemon = self.net[web(n)].daemons.get("takeover")
        try:
            return daemon.log_file.stat().st_size if daemon else 0
        except FileNotFoundError:
            return 0

    def probe(self, name, vip, seconds):
        return Probe(self.client, "http://%s/" % vip, name=name, interval=0.05,
                     timeout=0.3, max_seconds=seconds).start()

    def good(self, probe, since, count=5, timeout=4.0):
        try:
            probe.wait_good(count, timeout=timeout, since=since)
            return True
        except WaitTimeout:
            return False

    # -- setup --------------------------------------------------------------------
    def prepare(self):
        cname = intf(self.client.name)
        self.client.cmd("sysctl -qw net.ipv4.neigh.%s.base_reachable_time_ms=%d "
                        "net.ipv4.neigh.%s.gc_stale_time=%d"
                        % (cname, CLIENT_BASE_REACHABLE_MS, cname, CLIENT_GC_STALE_S))
        for n in (1, 2, 3):
            self.holdings.watch(web(n))
        self.arp.start()

    def stop(self):
        self.holdings.stop()
        self.arp.stop()

    # -- part 1: two servers --------------------------------------------------------
    def two_servers(self):
        m = {}
        v1 = ap.vip(1)
        self.say("== Part 1: two web servers, one VIP each ==")
        m["dns"] = [self.dns(), self.dns()]
        self.say("dns1 answers www.lab.example with every VIP, in turn (DNS round robin):")
        for answer in m["dns"]:
            self.say("  dig www.lab.example -> %s" % " ".join(answer))
        self.say("Starting %s on web1 (my VIP %s, peer VIP %s) and web2 (my VIP %s, peer "
                 "VIP %s); every %.1f s each curls every VIP." % (
                     SCRIPT, v1, ap.vip(2), ap.vip(2), v1, INTERVAL))
        m["t_start"] = time.time()
        self.start_scripts((1, 2))
        m["vips_up"] = (self.wait_holders(v1, {"web1"}, 8)
                        and self.wait_holders(ap.vip(2), {"web2"}, 4))
        m["holders_at_start"] = self.holders_text()
        self.say("  " + m["holders_at_start"])
        if not m["vips_up"]:
            self.say("The VIPs never settled one per server: nothing to fail over. "
                     "The scripts' logs are in %s/web*/takeover/." % self.net.run.path)
            return m
        probe = self.probe("part1", v1, 40)
        try:
            m["served_at_start"] = self.good(probe, 0, timeout=5)
            m["arp_before"] = self.arp.mark(v1)
            self.say("client1 requests http://%s/ every 50 ms; its ARP entry for %s: %s (%s)"
                     % (v1, v1, m["arp_before"], who(m["arp_before"])))
            self.say("(client1 keeps a confirmed ARP entry REACHABLE for 30-90 s here: "
                     "base_reachable_time_ms=%d. Only a gratuitous ARP moves it sooner.)"
                     % CLIENT_BASE_REACHABLE_MS)
            self.ctx.pause(self.net, STOPS["start"], dns=ap.dns(1), vip=v1)
            self._fail_nginx(m, probe)
            self._return_nginx(m, probe)
        finally:
            probe.stop()
        self._other_way(m)
        m["t_end"] = time.time()
        m["duplicates"] = [dict(vip=vip, hosts=hosts, after=rel(start, m["fault_at"]),
                                seconds=None if end is None else round(end - start, 3))
                           for vip, hosts, start, end in
                           self.holdings.overlaps(m["t_start"], m["t_end"])]
        if m["duplicates"]:
            for d in m["duplicates"]:
                self.say("DUPLICATE: %s was on %s at once %s (from %s)"
                         % (d["vip"], " and ".join(d["hosts"]), lasting(d["seconds"]),
                            after(d["after"], "web1's nginx stopped")))
        else:
            self.say("No VIP was ever on two servers at once (ip monitor in every server).")
        self.stop_scripts((1, 2))
        return m

    def _fail_nginx(self, m, probe):
        v1, mac2 = ap.vip(1), mac_of(2)
        self.say("\nFault: web1's nginx stops (web1 itself stays up).")
        fault = daemon_stop(self.net["web1"].daemons["nginx"])
        self._fault = fault
        t0 = m["fault_at"] = fault.at
        # layer 3 against layer 7: web1 is up, its web service is not
        ping = self.client.cmd("ping -c 1 -W 1 %s" % ap.web(1))
        m["ping_web1_ok"] = " 0% packet loss" in ping
        m["curl_web1"] = self.client.cmd("curl -s -o /dev/null -m 1 -w '%%{http_code}' "
                                         "http://%s/" % ap.web(1)).strip()
        self.say("  client1 -> web1 (%s): ping %s, curl HTTP %s: a ping check would call web1 "
                 "healthy, the curl check does not" % (
                     ap.web(1), "answers" if m["ping_web1_ok"] else "fails", m["curl_web1"]))
        self.wait(lambda: "web1" not in self.holdings.holders(v1), RELEASE_WAIT,
                  "web1 to release %s" % v1)
        self.wait(lambda: "web2" in self.holdings.holders(v1), TAKEOVER_WAIT,
                  "web2 to take %s" % v1)
        released = self.holdings.first(v1, "web1", False, t0)
        taken = self.holdings.first(v1, "web2", True, t0)
        m["own_released_after"] = rel(released, t0)
        m["peer_took_after"] = rel(taken, t0)
        self.say("  web1 released %s: %s" % (v1, after(m["own_released_after"], "the fault")))
        self.say("  web2 took %s over: %s" % (v1, after(m["peer_took_after"], "the fault")))
        if taken:
            moved = self.wait(lambda: self.arp.moved_to(v1, mac2, taken) is not None,
                              ARP_WATCH, "client1's ARP entry for %s to move to %s" % (v1, mac2))
            at = self.arp.moved_to(v1, mac2, taken)
            m["arp_moved_after_take"] = rel(at, taken) if moved else None
            m["garps_from_taker"] = len(self.arp.garps(v1, mac2, t0))
            m["wrong_sender"] = self.arp.wrong_sender(v1, mac2, taken)
            m["arp_watch"] = ARP_WATCH
            self.good(probe, taken, timeout=2.5 if moved else 0.5)
        m["arp_after"] = self.arp.mark(v1)
        m["dns_during"] = self.dns()
        end = m["t_restore"] = time.time()
        timeline = analyse([s for s in probe.samples() if s.t < end], t0, detected_at=taken)
        m["takeover"] = timeline.as_dict()
        self.say("  client1's ARP entry for %s: %s (%s) -> %s (%s); gratuitous ARPs from "
                 "web2 seen by client1: %d" % (v1, m["arp_before"], who(m["arp_before"]),
                                               m["arp_after"], who(m["arp_after"]),
                                               m.get("garps_from_taker", 0)))
        self.say("  dns1 still answers %s: DNS does not know web1 is broken." %
                 " ".join(m["dns_during"]))
        self.say("  " + timeline.summary().replace("\n", "\n  "))
        self.ctx.pause(self.net, STOPS["nginx_down"], vip=v1)

    def _return_nginx(self, m, probe):
        v1, mac1 = ap.vip(1), mac_of(1)
        self.say("\nRepair: web1's nginx starts again; your script's rule decides who "
                 "moves first.")
        t1 = m["restored_at"] = time.time()        # the repair starts (nginx starting)
        self._fault.undo()
        back = self.wait_holders(v1, {"web1"}, RETURN_WAIT)
        released = self.holdings.first(v1, "web2", False, t1)
        taken = self.holdings.first(v1, "web1", True, t1)
        r = m["return"] = dict(
            back=back, peer_released_after=rel(released, t1), owner_took_after=rel(taken, t1),
            holders=sorted(self.holdings.holders(v1)))
        if taken:
            r["arp_before"] = self.arp.mac_at(v1, taken)
            if r["arp_before"] == mac1:     # the entry never left web1: nothing to move
                moved = True
            else:
                moved = self.wait(lambda: self.arp.moved_to(v1, mac1, taken) is not None,
                                  ARP_WATCH, "client1's ARP entry for %s to move back to %s"
                                  % (v1, mac1))
            at = self.arp.moved_to(v1, mac1, taken)
            r["arp_moved_after_take"] = rel(at, taken) if at else None
            r["arp_ok"] = moved
            r["garps_from_owner"] = len(self.arp.garps(v1, mac1, t1))
            self.good(probe, taken, timeout=2.5 if moved else 0.5)
        r["arp_after"] = self.arp.mark(v1)
        timeline = analyse([s for s in probe.samples() if s.t >= m["fault_at"]], t1)
        r["timeline"] = timeline.as_dict()
        self.say("  web2 released %s: %s; web1 took it back: %s; now on %s" % (
            v1, after(r["peer_released_after"], "the repair"),
            after(r["owner_took_after"], "the repair"), " + ".join(r["holders"]) or "nobody"))
        self.say("  client1's ARP entry for %s: %s (%s)" % (v1, r["arp_after"],
                                                          who(r["arp_after"])))
        self.say("  " + timeline.summary().replace("\n", "\n  "))

    def _other_way(self, m):
        """The notes: "and the other way round" -- web2 breaks, web1 takes VIP2."""
        v2 = ap.vip(2)
        self.say("\nAnd the other way round: web2's nginx stops, then starts again.")
        fault = daemon_stop(self.net["web2"].daemons["nginx"])
        t0 = fault.at
        self.wait(lambda: self.holdings.holders(v2) == {"web1"}, TAKEOVER_WAIT,
                  "web1 alone to hold %s" % v2)
        r = m["other_way"] = dict(
            own_released_after=rel(self.holdings.first(v2, "web2", False, t0), t0),
            peer_took_after=rel(self.holdings.first(v2, "web1", True, t0), t0))
        t1 = time.time()
        fault.undo()
        r["back"] = self.wait_holders(v2, {"web2"}, RETURN_WAIT)
        r["owner_took_after"] = rel(self.holdings.first(v2, "web2", True, t1), t1)
        self.say("  web2 released %s: %s; web1 took it: %s; web2 got it back: %s" % (
            v2, after(r["own_released_after"], "its nginx stopped"),
            after(r["peer_took_after"], "web2's nginx stopped"),
            after(r["owner_took_after"], "its nginx came back")))

    # -- part 2: three servers ---------------------------------------------------------
    def three_servers(self):
        m = {}
        v1 = ap.vip(1)
        self.say("\n== Part 2: three web servers, the same script ==")
        self.say("Restarting %s on web1, web2, web3, each with both others as peers." % SCRIPT)
        self.start_scripts((1, 2, 3))
        m["vips_up"] = all(self.wait_holders(ap.vip(n), {web(n)}, 8 if n == 3 else 4)
                           for n in (1, 2, 3))
        m["holders_at_start"] = self.holders_text()
        self.say("  " + m["holders_at_start"])
        if not m["vips_up"]:
            self.say("The VIPs never settled one per server; skipping part 2.")
            return m
        probe = self.probe("part2", v1, 40)
        try:
            self.good(probe, 0, timeout=5)
            m["arp_before"] = self.arp.mark(v1)
            self._crash(m, probe)
            self._reboot(m, probe)
        finally:
            probe.stop()
        return m

    def _crash(self, m, probe):
        v1 = ap.vip(1)
        offsets = {n: self.log_size(n) for n in (2, 3)}
        self.say("\nFault: web1 crashes (every process killed, its interface down).")
        fault = self._fault = host_crash(self.net, "web1")
        t0 = m["fault_at"] = fault.at
        self.holdings.down("web1", t0)
        self.wait(lambda: self.holdings.holders(v1) & {"web2", "web3"}, TAKEOVER_WAIT,
                  "web2 or web3 to take %s" % v1)
        first = min([t for t in (self.holdings.first(v1, web(n), True, t0) for n in (2, 3))
                     if t is not None], default=None)
        if first is not None:
            # both survivors run the same rules on the same checks: give the other one
            # as long as the first needed after the fault to act too
            self.wait(lambda: self.holdings.holders(v1) >= {"web2", "web3"},
                      first - t0, "both web2 and web3 to take %s" % v1)
        takers = {web(n): rel(self.holdings.first(v1, web(n), True, t0), t0) for n in (2, 3)}
        m["takers"] = {k: v for k, v in takers.items() if v is not None}
        self.say("  took %s over: %s" % (v1, ", ".join(
            "%s %s" % (k, after(v, "the crash")) for k, v in sorted(m["takers"].items()))
            or "nobody"))
        m["logs"] = {web(n): self.log_lines(n, v1, offsets[n])[-4:] for n in (2, 3)}
        for name, lines in m["logs"].items():
            for line in lines:
                self.say("    %s log | %s" % (name, line))
        holders = sorted(self.holdings.holders(v1))
        m["duplicate_holders"] = holders if len(holders) > 1 else []
        if len(holders) > 1:
            self._show_duplicate(m, holders)
        # what the client saw while the holders announced themselves
        if first is not None:
            macs = [mac_of(int(h[3:])) for h in m["takers"]]

            def announced():
                counts = [len(self.arp.garps(v1, mac, t0)) for mac in macs]
                silent = not any(counts) and time.time() > first + GARP_WINDOW
                return all(c >= 2 for c in counts) or silent, counts
            self.wait(announced, 2.5, "every holder's gratuitous ARPs to reach client1")
            self.good(probe, first, timeout=1.5 if self.arp.garps(v1, macs[0], t0) else 0.3)
        until = time.time()
        m["client_arp_sequence"] = [who(mac) for mac in self.arp.sequence(v1, t0, until)]
        if m["client_arp_sequence"][:1] != [who(m["arp_before"])]:
            m["client_arp_sequence"].insert(0, who(m["arp_before"]))
        m["client_arp_changes"] = sum(1 for a, b in zip(m["client_arp_sequence"],
                                                        m["client_arp_sequence"][1:]) if a != b)
        m["garps"] = {web(n): len(self.arp.garps(v1, mac_of(n), t0)) for n in (2, 3)}
        samples = [s for s in probe.samples() if s.t < until]
        served = []
        for s in samples:
            if s.t >= t0 and s.ok and (not served or served[-1] != s.server):
                served.append(s.server)
        m["served_sequence"] = served
        timeline = analyse(samples, t0, detected_at=first)
        m["takeover"] = timeline.as_dict()
        self.say("  client1's ARP entry for %s went %s (%d changes); gratuitous ARPs it "
                 "received: %s" % (v1, " -> ".join(m["client_arp_sequence"]),
                                   m["client_arp_changes"],
                                   ", ".join("%s x%d" % kv for kv in sorted(m["garps"].items()))))
        self.say("  client1 was served by: %s" % (" -> ".join(served) or "nobody"))
        self.say("  " + timeline.summary().replace("\n", "\n  "))
        self.ctx.pause(self.net, STOPS["crashed"], vip=v1)

    def _show_duplicate(self, m, holders):
        v1 = ap.vip(1)
        self.say("  TWO SERVERS HOLD %s: %s" % (v1, " and ".join(holders)))
        # RFC 5227 probe from a holder: sender 0.0.0.0, so only *another* host answers
        probe_from = holders[0]
        out = self.net[probe_from].cmd("arping -0 -c 1 -C 1 -w 1 -i %s %s" % (intf(probe_from), v1))
        m["dad_from"] = probe_from
        m["dad_answers"] = sorted({who(mac) for mac in re.findall(MAC_RE, out)} - {probe_from})
        self.say("  duplicate address detection from %s (arping -0: who else answers for "
                 "%s?): %s" % (probe_from, v1, ", ".join(m["dad_answers"]) or "nobody"))
        out = self.client.cmd("arping -d -c 1 -w 1 -i %s %s; echo exit=$?" % (
            intf(self.client.name), v1))
        m["arping_d_exit"] = int(re.search(r"exit=(\d+)", out).group(1))
        m["arping_d_answers"] = sorted({who(mac) for mac in re.findall(MAC_RE, out)}
                                       - {who(self.client.MAC())})
        self.say("  from client1, arping -d (duplicate replies) %s: answers from %s, exit %d%s"
                 % (v1, ", ".join(m["arping_d_answers"]) or "nobody", m["arping_d_exit"],
                    " (two MACs for one IP)" if m["arping_d_exit"] == 1 else ""))

    def _reboot(self, m, probe):
        v1 = ap.vip(1)
        offset = self.log_size(1)
        self.say("\nRepair: web1 boots again (nginx and %s start)." % SCRIPT)
        t1 = m["restored_at"] = time.time()        # the reboot starts
        self._fault.undo()
        self.holdings.watch("web1")
        back = self.wait_holders(v1, {"web1"}, RETURN_WAIT)
        r = m["return"] = dict(back=back, holders=sorted(self.holdings.holders(v1)))
        r["released_after"] = {web(n): rel(self.holdings.first(v1, web(n), False, t1), t1)
                               for n in (2, 3) if web(n) in m["takers"]}
        taken = self.holdings.first(v1, "web1", True, t1)
        r["owner_took_after"] = rel(taken, t1)
        r["owner_waiting_lines"] = [line for line in self.log_lines(1, v1, offset)
                                    if "wait" in line.lower()][:3]
        if taken:
            moved = self.wait(lambda: self.arp.moved_to(v1, mac_of(1), taken) is not None,
                              ARP_WATCH, "client1's ARP entry for %s to move back to web1" % v1)
            self.good(probe, taken, timeout=2 if moved else 0.3)
        m["duplicate_periods"] = [
            dict(hosts=hosts, after=rel(start, m["fault_at"]),
                 seconds=None if end is None else round(end - start, 3))
            for vip, hosts, start, end in self.holdings.overlaps(m["fault_at"]) if vip == v1]
        r["overlaps"] = [d for d in m["duplicate_periods"]
                         if d["after"] >= t1 - m["fault_at"]]
        r["arp_after"] = who(self.arp.mark(v1))
        timeline = analyse([s for s in probe.samples() if s.t >= m["fault_at"]], t1)
        r["timeline"] = timeline.as_dict()
        self.say("  released %s: %s; web1 took it back: %s; now on %s" % (
            v1, ", ".join("%s %s" % (k, after(v, "the reboot began")) for k, v in sorted(
                r["released_after"].items())) or "nobody had to",
            after(r["owner_took_after"], "the reboot began"),
            " + ".join(r["holders"]) or "nobody"))
        for line in r["owner_waiting_lines"]:
            self.say("    web1 log | %s" % line)
        self.ctx.pause(self.net, STOPS["back"], vip=v1,
                       log=self.net.run.path / "web1" / "takeover" / "takeover.log")
        for d in m["duplicate_periods"]:
            self.say("  %s was on %s at once %s, from %s%s" % (
                v1, " and ".join(d["hosts"]), lasting(d["seconds"]), after(d["after"], "the crash"),
                " (during the return)" if d in r["overlaps"] else
                " until web1's return made them let go"))
        self.say("  " + timeline.summary().replace("\n", "\n  "))


def walkthrough(ctx):
    from topologies.vip_takeover import VipTakeoverTopo
    script = ctx.file(SCRIPT)
    details = {}
    with Network(VipTakeoverTopo(servers=3), name="lab04-vip-takeover",
                 run_folder=ctx.folder("vip-takeover")) as net:
        walk = Walk(ctx, net, script)
        walk.prepare()
        try:
            details["two"] = walk.two_servers()
            # part 2 shows what goes wrong with three servers even when the two-server
            # rules are right: it runs once the script passes part 1
            failing = [r for r in (check(ctx, {"details": details}) for check in PART1_CHECKS)
                       if not r.passed]
            if failing:
                ctx.say("\n== Part 2 (three servers) is skipped until part 1 passes: %s ==\n"
                        "%s" % (", ".join(r.name for r in failing),
                                "\n".join("  " + r.line() for r in failing)))
            else:
                details["three"] = walk.three_servers()
        finally:
            walk.stop()
        run_folder = str(net.run.path)
    measured = dict(summary(details), details=details, run_folder=run_folder)
    (Path(measured["run_folder"]) / "measured.json").write_text(
        json.dumps(measured, indent=1, default=str))
    ctx.say("\nrun folder (scripts' logs, ip monitor output, client ARP capture): %s"
            % measured["run_folder"])
    return measured


# -- what was measured, and the checks ---------------------------------------------------

def summary(details):
    """The numbers of the guide's table, flat (what `redlab run 04` prints at the end)."""
    two, three = details.get("two", {}), details.get("three", {})
    t, back = two.get("takeover", {}), two.get("return", {})
    out = dict(
        dns_answers=" | ".join(" ".join(a) for a in two.get("dns", [])),
        web1_released_vip1_s=two.get("own_released_after"),
        web2_took_vip1_s=two.get("peer_took_after"),
        client_arp_moved_s=two.get("arp_moved_after_take"),
        takeover_recovered_s=None if t.get("time_to_recover") is None
        else round(t["time_to_recover"], 3),
        takeover_requests_lost=t.get("requests_lost"),
        return_web2_released_s=back.get("peer_released_after"),
        return_web1_took_s=back.get("owner_took_after"),
        return_requests_lost=back.get("timeline", {}).get("requests_lost"))
    if three:
        out.update(
            three_takers=three.get("takers"), three_dad_answers=three.get("dad_answers"),
            three_client_arp=" -> ".join(three.get("client_arp_sequence", [])),
            three_return_released_s=three.get("return", {}).get("released_after"))
    return out


def _two(measured, name):
    """Part 1's measurements, or the reason they are missing (a failed CheckResult)."""
    two = (measured.get("details") or {}).get("two") or {}
    if not two.get("vips_up"):
        return None, failed(name, "the VIPs never settled one per server with two servers (%s): "
                            "at start, your script must add its own VIP (MY_VIP) to INTF once "
                            "its own nginx answers" % two.get("holders_at_start", "not run"))
    return two, None


def check_script_is_valid_bash(ctx, measured):
    name = "script is valid bash"
    path = ctx.submission / SCRIPT
    if not path.exists():
        return failed(name, "the submission has no %s; copy the lab's submission/%s and edit "
                      "it" % (SCRIPT, SCRIPT))
    ok, complaint = syntax_check(path, shell="bash")
    if not ok:
        return failed(name, "bash -n %s says: %s" % (SCRIPT, complaint[-300:]))
    return passed(name, "bash -n %s is happy" % SCRIPT)


check_script_is_valid_bash.static = True
# information: an empty takeover.sh is valid bash, and one that is not fails the
# walk-through (its dry run) with the same sentence
check_script_is_valid_bash.scored = False


def check_takes_over_failed_peer_vip(ctx, measured):
    name = "takes over failed peer vip"
    two, problem = _two(measured, name)
    if problem:
        return problem
    took, t = two.get("peer_took_after"), two.get("takeover", {})
    if took is None:
        return failed(name, "web2 never added %s (web1's VIP) in %.0f s after web1's nginx "
                      "stopped: when a peer's VIP fails its curl check, take it over with "
                      "`ip addr add %s/%d dev $INTF`" % (ap.vip(1), TAKEOVER_WAIT, ap.vip(1),
                                                        ap.SERVICE.prefixlen),
                      peer_took_after=None)
    return passed(name, "web2 added %s %.2f s after web1's nginx stopped; client1 %s" % (
        ap.vip(1), took, "was served by %s again after %.2f s (%d requests lost)" % (
            t.get("served_after"), t.get("time_to_recover"), t.get("requests_lost"))
        if t.get("recovered") else "was not served again while the lab watched"),
        peer_took_after=took, takeover=t)


def check_sends_gratuitous_arp(ctx, measured):
    name = "sends gratuitous arp"
    two, problem = _two(measured, name)
    if problem:
        return problem
    v1 = ap.vip(1)
    if two.get("peer_took_after") is None:
        return failed(name, "not checked: web2 never took %s over (see 'takes over failed "
                      "peer vip')" % v1)
    moved = two.get("arp_moved_after_take")
    if (moved is None or moved > GARP_WINDOW) and two.get("wrong_sender"):
        return failed(name, "after web2 took VIP %s, client1 still had web1's MAC %s for it: "
                      "web2 did broadcast ARP for %s, but with sender address %s, which "
                      "announces %s, not the VIP. Debian's arping is Thomas Habets' arping: "
                      "`arping -U -S %s -c 2 -i $INTF %s` makes the VIP the sender" % (
                          v1, mac_of(1), v1, two["wrong_sender"][0], two["wrong_sender"][0],
                          v1, v1), arp_moved_after_take=moved, wrong_sender=two["wrong_sender"])
    if moved is None or moved > GARP_WINDOW:
        return failed(name, "after web2 took VIP %s, client1 still had web1's MAC %s for it "
                      "%.0f s later: the takeover sent no gratuitous ARP (client1 received %d "
                      "from web2; send one with `arping -U -S %s -c 2 -i $INTF %s` right after "
                      "`ip addr add`); without it client1 keeps sending to web1 until its ARP "
                      "entry ages out (30-90 s here)" % (
                          v1, mac_of(1), two.get("arp_watch", ARP_WATCH),
                          two.get("garps_from_taker", 0), v1, v1),
                      arp_moved_after_take=moved, garps=two.get("garps_from_taker"))
    back = two.get("return", {})
    if back.get("owner_took_after") is not None and not back.get("arp_ok"):
        return failed(name, "after web1 took VIP %s back, client1 still had web2's MAC %s for "
                      "it: claiming a VIP back needs a gratuitous ARP too" % (v1, mac_of(2)),
                      return_arp=back.get("arp_after"))
    return passed(name, "client1's ARP entry for %s moved to web2's MAC %s %.3f s after web2 "
                  "took it (%d gratuitous ARPs from web2), not after ARP aging" % (
                      v1, mac_of(2), moved, two.get("garps_from_taker", 0)),
                  arp_moved_after_take=moved, garps=two.get("garps_from_taker"))


def check_releases_own_vip_when_service_broken(ctx, measured):
    name = "releases own vip when service broken"
    two, problem = _two(measured, name)
    if problem:
        return problem
    released = two.get("own_released_after")
    if released is None:
        return failed(name, "web1 kept its VIP %s for %.0f s after its own nginx stopped: when "
                      "the check of your own VIP fails, your web service is broken; release "
                      "the VIP (`ip addr del $MY_VIP/$PREFIX dev $INTF`) so that a healthy peer "
                      "can serve it" % (ap.vip(1), RELEASE_WAIT), own_released_after=None)
    return passed(name, "web1 released %s %.2f s after its own nginx stopped" % (
        ap.vip(1), released), own_released_after=released)


def _nothing_moved(name, two):
    """A failed result when web2 never took VIP1: no duplicate and no return to check.

    A script that only claims its own VIP never moves anything, so it never holds one VIP
    twice and never has one to give back: those checks would pass on doing nothing."""
    if two.get("peer_took_after") is not None:
        return None
    return failed(name, "not checked: web2 never took %s over after web1's nginx stopped (see "
                  "'takes over failed peer vip'), so nothing moved -- there was no takeover "
                  "to do without a duplicate and nothing to give back" % ap.vip(1))


def check_no_duplicate_vip_with_two_servers(ctx, measured):
    name = "no duplicate vip with two servers"
    two, problem = _two(measured, name)
    if problem:
        return problem
    problem = _nothing_moved(name, two)
    if problem:
        return problem
    dups = two.get("duplicates", [])
    if dups:
        d = dups[0]
        return failed(name, "%s was on %s at the same time for %s, from %s after web1's nginx "
                      "stopped: two servers answered ARP for one IP; release your own VIP "
                      "first, and take a peer's VIP (or claim yours back) only when nobody "
                      "holds it any more" % (
                          d["vip"], " and ".join(d["hosts"]),
                          "the rest of the run" if d["seconds"] is None
                          else "%.2f s" % d["seconds"], secs(d["after"])), duplicates=dups)
    return passed(name, "no VIP was on web1 and web2 at once, neither at the takeover nor at "
                  "the return (ip monitor address in both)", duplicates=[])


def check_gives_vip_back_to_recovered_owner(ctx, measured):
    name = "gives vip back to recovered owner"
    two, problem = _two(measured, name)
    if problem:
        return problem
    problem = _nothing_moved(name, two)
    if problem:
        return problem
    back = two.get("return")
    if not back:
        return failed(name, "not checked: the lab did not get to the repair")
    if not back.get("back"):
        return failed(name, "%.0f s after web1's nginx came back, %s was on %s instead of web1 "
                      "alone: decide who moves first when the owner recovers (the guide's "
                      "'back again' section) and make both scripts follow it" % (
                          RETURN_WAIT, ap.vip(1), " + ".join(back.get("holders")) or "nobody"),
                      **back)
    t = back.get("timeline", {})
    return passed(name, "web2 released %s %s and web1 took it back %s; client1 lost %d "
                  "requests" % (ap.vip(1), after(back.get("peer_released_after"), "the repair"),
                                after(back.get("owner_took_after"), "the repair"),
                                t.get("requests_lost", 0)), **back)


PART1_CHECKS = (check_takes_over_failed_peer_vip, check_sends_gratuitous_arp,
                check_releases_own_vip_when_service_broken,
                check_no_duplicate_vip_with_two_servers, check_gives_vip_back_to_recovered_owner)
CHECKS = [check_script_is_valid_bash, *PART1_CHECKS]
