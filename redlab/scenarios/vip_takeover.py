"""DNS round robin over one VIP per server, moved by a script in every server (lab 04).

The harness of ``labs/04-dns-vip-takeover``: the student's ``takeover.sh`` runs as a
daemon of each web server (:class:`TakeoverScript`); everything it does is observed from
outside it -- ``ip monitor address`` in each server (:class:`Holdings`: who held which VIP
when), ``ip monitor neigh`` and tcpdump in the client (:class:`ClientArp`: its ARP entry,
the gratuitous ARPs it received) and a probe (what the client got).  :class:`VipTakeover`
runs the lab's steps on a running :class:`topologies.vip_takeover.VipTakeoverTopo` and
returns what each measured as a dict (``measured.json``'s ``details``); its timers come
from the lab's ``lab.yaml``.

A step narrates through the lab's context (``ctx.say``) and never opens the Mininet CLI:
the lab pauses between steps.
"""

import concurrent.futures
import subprocess
import time

from redlab import addressing as ap
from redlab import observe
from redlab.agent import end_process
from redlab.errors import WaitTimeout
from redlab.faults import daemon_stop, host_crash
from redlab.probe import Probe, analyse
from redlab.recorders import BROADCAST, AddressMonitor, ArpCapture, NeighbourMonitor
from redlab.student import StudentScript
from redlab.wait import wait_until

SCRIPT = "takeover.sh"


def web(n):
    return "web%d" % n


def intf(name):
    return "%s-eth0" % name


def mac_of(n):
    """web``n``'s MAC (MACs spell the address: redlab/addressing.py)."""
    return ap.mac_for(ap.web(n))


def who(mac, servers=3):
    """A MAC as a host name; ``nobody`` for None."""
    for n in range(1, servers + 1):
        if mac == mac_of(n):
            return web(n)
    return mac or "nobody"


def rel(t, t0):
    return None if t is None else round(t - t0, 3)


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

    def __init__(self, node, script, my_vip, peers, interval, timeout, **options):
        super().__init__(node, script, dict(
            SELF=node.name, INTF=intf(node.name), MY_VIP=my_vip,
            PEER_VIPS=" ".join(vip for vip, _ in peers),
            PEER_ADDRS=" ".join(addr for _, addr in peers),
            PREFIX=ap.SERVICE.prefixlen, INTERVAL=interval, TIMEOUT=timeout),
            name="takeover", **options)


# -- observers: what the network did, seen from outside the script -----------------------

class Holdings:
    """Which web server held which VIP when (``ip monitor address`` in each of them)."""

    def __init__(self, net, vips):
        self.net = net
        self.vips = list(vips)
        self.monitors = {}          # host -> [AddressMonitor]  (a rebooted host gets a new one)
        self.marks = []             # (t, host, vip, held): snapshots and crashes

    def watch(self, name):
        """Start watching ``name`` (again, after a reboot) from a snapshot of now."""
        host = self.net[name]
        monitor = AddressMonitor(host, intf(name), "lab04/addr-%d.txt"
                                 % len(self.monitors.get(name, []))).start()
        self.monitors.setdefault(name, []).append(monitor)
        now = time.time()
        for vip in self.vips:
            self.marks.append((now, name, vip, observe.holds(host, vip)))

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
        """The hosts holding ``vip`` (at ``t``; default: now), as a set of names."""
        state = {}
        for when, name, ip, held in self.events():
            if t is not None and when > t:
                break
            if ip == vip:
                state[name] = held
        return {name for name, held in state.items() if held}

    def first(self, vip, name, held, since):
        """When ``name`` first got (held=True) or lost ``vip`` after ``since`` (None: never)."""
        state = None
        for when, host, ip, now_held in self.events():
            if host != name or ip != vip:
                continue
            if when >= since and now_held == held and state != held:
                return when
            state = now_held
        return None

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
    """Sender addresses of ``mac``'s broadcast announcements for ``ip`` naming another address.

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


# -- the lab's steps ----------------------------------------------------------------------

class VipTakeover:
    """The steps of lab 04 on a running network, each returning what it measured.

    ``timers`` (lab.yaml): ``interval`` and ``check_timeout`` (the script's rounds and
    curl timeout), ``client_base_reachable_ms`` and ``client_gc_stale_s`` (client1's ARP
    timers), how long to wait for a takeover, a release and a return
    (``takeover_wait``, ``release_wait``, ``return_wait``) and for client1's ARP entry to
    move (``arp_watch``).  Use it as a context manager: the observers stop on the way out.
    """

    def __init__(self, ctx, net, script, timers):
        self.ctx, self.net, self.script, self.t = ctx, net, script, timers
        self.vips = [ap.vip(n) for n in (1, 2, 3)]
        self.holdings = Holdings(net, self.vips)
        self.client = net["client1"]
        self.arp = ClientArp(self.client)
        self.fault = None

    def say(self, text=""):
        self.ctx.say(text)

    def __enter__(self):
        """client1 keeps a confirmed ARP entry for 30-90 s (a takeover without GARP stays
        visible); the observers start."""
        observe.set_sysctls(self.client, {
            "net.ipv4.neigh.%s.base_reachable_time_ms" % intf("client1"):
                self.t["client_base_reachable_ms"],
            "net.ipv4.neigh.%s.gc_stale_time" % intf("client1"): self.t["client_gc_stale_s"]})
        try:
            for n in (1, 2, 3):
                self.holdings.watch(web(n))
            self.arp.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        self.holdings.stop()
        self.arp.stop()
        return False

    # -- small helpers ----------------------------------------------------------------
    def daemon(self, n):
        return self.net[web(n)].daemons.get("takeover")

    def start_scripts(self, servers, among=None):
        """Start takeover.sh on ``servers`` (numbers), each with the others of ``among``
        (default: ``servers``) as peers."""
        for n in servers:
            peers = [(ap.vip(p), ap.web(p)) for p in (among or servers) if p != n]
            host = self.net[web(n)]
            host.start_daemon(TakeoverScript(host, self.script, ap.vip(n), peers,
                                             self.t["interval"], self.t["check_timeout"]))

    def restart_in_step(self, servers, among):
        """Restart the scripts on ``servers`` at the same moment (one thread each), so that
        their rounds of checks run in step from now on: the timing under which the notes
        say two servers can end up holding one address.  Free-running scripts drift apart,
        and then it happens only when their checks happen to line up."""
        self.stop_scripts(servers)
        with concurrent.futures.ThreadPoolExecutor(len(servers)) as pool:
            list(pool.map(lambda n: self.start_scripts((n,), among), servers))

    def stop_scripts(self, servers):
        for n in servers:
            if self.daemon(n):
                self.daemon(n).stop()

    @staticmethod
    def wait(condition, timeout, expected):
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
        return "; ".join("VIP%d %s on %s" % (n, vip, " + ".join(
            sorted(self.holdings.holders(vip))) or "nobody")
            for n, vip in enumerate(self.vips, 1))

    def dns(self):
        return observe.dig(self.client, ap.dns(1), "www.lab.example")[0]

    def log_lines(self, n, vip, since_offset):
        daemon = self.daemon(n)
        return [line for line in daemon.lines(since_offset) if vip in line] if daemon else []

    def log_size(self, n):
        try:
            return self.daemon(n).log_file.stat().st_size if self.daemon(n) else 0
        except FileNotFoundError:
            return 0

    def probe(self, name, vip, seconds):
        """client1 requests http://VIP/ every 50 ms (a context manager: stopped on exit)."""
        return Probe(self.client, "http://%s/" % vip, name=name, interval=0.05,
                     timeout=0.3, max_seconds=seconds)

    @staticmethod
    def good(probe, since, count=5, timeout=4.0):
        try:
            probe.wait_good(count, timeout=timeout, since=since)
            return True
        except WaitTimeout:
            return False

    # -- part 1: two servers --------------------------------------------------------------
    def start(self, servers):
        """Start the scripts on ``servers``; wait for each to hold its own VIP."""
        m = {}
        self.start_scripts(servers)
        m["vips_up"] = all(self.wait_holders(ap.vip(n), {web(n)}, 8) for n in servers)
        m["holders_at_start"] = self.holders_text()
        self.say("  " + m["holders_at_start"])
        if not m["vips_up"]:
            self.say("The VIPs never settled one per server: nothing to fail over. "
                     "The scripts' logs are in %s/web*/takeover/." % self.net.run.path)
        return m

    def serving(self, m, probe):
        """client1 is served through VIP1; its ARP entry for it, before anything breaks."""
        v1 = ap.vip(1)
        m["served_at_start"] = self.good(probe, 0, timeout=5)
        m["arp_before"] = self.arp.mark(v1)
        self.say("client1 requests http://%s/ every 50 ms; its ARP entry for %s: %s (%s)"
                 % (v1, v1, m["arp_before"], who(m["arp_before"])))
        self.say("(client1 keeps a confirmed ARP entry REACHABLE for 30-90 s here: "
                 "base_reachable_time_ms=%d. Only a gratuitous ARP moves it sooner.)"
                 % self.t["client_base_reachable_ms"])

    def nginx_stops(self, m, probe):
        """web1's nginx stops (web1 stays up): who releases, who takes over, how fast the
        client's ARP entry follows, and what DNS still says."""
        v1, mac2 = ap.vip(1), mac_of(2)
        self.say("\nFault: web1's nginx stops (web1 itself stays up).")
        self.fault = daemon_stop(self.net["web1"].daemons["nginx"])
        t0 = m["fault_at"] = self.fault.at
        # layer 3 against layer 7: web1 is up, its web service is not
        ping = self.client.cmd("ping -c 1 -W 1 %s" % ap.web(1))
        m["ping_web1_ok"] = " 0% packet loss" in ping
        m["curl_web1"] = self.client.cmd("curl -s -o /dev/null -m 1 -w '%%{http_code}' "
                                         "http://%s/" % ap.web(1)).strip()
        self.say("  client1 -> web1 (%s): ping %s, curl HTTP %s: a ping check would call web1 "
                 "healthy, the curl check does not" % (
                     ap.web(1), "answers" if m["ping_web1_ok"] else "fails", m["curl_web1"]))
        self.wait(lambda: "web1" not in self.holdings.holders(v1), self.t["release_wait"],
                  "web1 to release %s" % v1)
        self.wait(lambda: "web2" in self.holdings.holders(v1), self.t["takeover_wait"],
                  "web2 to take %s" % v1)
        taken = self.holdings.first(v1, "web2", True, t0)
        m["own_released_after"] = rel(self.holdings.first(v1, "web1", False, t0), t0)
        m["peer_took_after"] = rel(taken, t0)
        self.say("  web1 released %s: %s" % (v1, after(m["own_released_after"], "the fault")))
        self.say("  web2 took %s over: %s" % (v1, after(m["peer_took_after"], "the fault")))
        if taken:
            moved = self.wait(lambda: self.arp.moved_to(v1, mac2, taken) is not None,
                              self.t["arp_watch"],
                              "client1's ARP entry for %s to move to %s" % (v1, mac2))
            m["arp_moved_after_take"] = rel(self.arp.moved_to(v1, mac2, taken), taken) \
                if moved else None
            m["garps_from_taker"] = len(self.arp.garps(v1, mac2, t0))
            m["wrong_sender"] = self.arp.wrong_sender(v1, mac2, taken)
            m["arp_watch"] = self.t["arp_watch"]
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

    def nginx_returns(self, m, probe):
        """web1's nginx starts again: who moves first, and whether the client follows."""
        v1, mac1 = ap.vip(1), mac_of(1)
        self.say("\nRepair: web1's nginx starts again; your script's rule decides who "
                 "moves first.")
        t1 = m["restored_at"] = time.time()        # the repair starts (nginx starting)
        self.fault.undo()
        back = self.wait_holders(v1, {"web1"}, self.t["return_wait"])
        taken = self.holdings.first(v1, "web1", True, t1)
        r = m["return"] = dict(
            back=back, peer_released_after=rel(self.holdings.first(v1, "web2", False, t1), t1),
            owner_took_after=rel(taken, t1), holders=sorted(self.holdings.holders(v1)))
        if taken:
            r["arp_before"] = self.arp.mac_at(v1, taken)
            # an entry that never left web1 has nothing to move
            moved = r["arp_before"] == mac1 or self.wait(
                lambda: self.arp.moved_to(v1, mac1, taken) is not None, self.t["arp_watch"],
                "client1's ARP entry for %s to move back to %s" % (v1, mac1))
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

    def other_way(self, m):
        """The notes: "and the other way round" -- web2 breaks, web1 takes VIP2."""
        v2 = ap.vip(2)
        self.say("\nAnd the other way round: web2's nginx stops, then starts again.")
        fault = daemon_stop(self.net["web2"].daemons["nginx"])
        t0 = fault.at
        self.wait(lambda: self.holdings.holders(v2) == {"web1"}, self.t["takeover_wait"],
                  "web1 alone to hold %s" % v2)
        r = m["other_way"] = dict(
            own_released_after=rel(self.holdings.first(v2, "web2", False, t0), t0),
            peer_took_after=rel(self.holdings.first(v2, "web1", True, t0), t0))
        t1 = time.time()
        fault.undo()
        r["back"] = self.wait_holders(v2, {"web2"}, self.t["return_wait"])
        r["owner_took_after"] = rel(self.holdings.first(v2, "web2", True, t1), t1)
        self.say("  web2 released %s: %s; web1 took it: %s; web2 got it back: %s" % (
            v2, after(r["own_released_after"], "its nginx stopped"),
            after(r["peer_took_after"], "web2's nginx stopped"),
            after(r["owner_took_after"], "its nginx came back")))

    def duplicates(self, m):
        """Every moment of part 1 when one VIP was on two servers (ip monitor address)."""
        m["t_end"] = time.time()
        m["duplicates"] = [dict(vip=vip, hosts=hosts, after=rel(start, m["fault_at"]),
                                seconds=None if end is None else round(end - start, 3))
                           for vip, hosts, start, end in
                           self.holdings.overlaps(m["t_start"], m["t_end"])]
        for d in m["duplicates"]:
            self.say("DUPLICATE: %s was on %s at once %s (from %s)" % (
                d["vip"], " and ".join(d["hosts"]), lasting(d["seconds"]),
                after(d["after"], "web1's nginx stopped")))
        if not m["duplicates"]:
            self.say("No VIP was ever on two servers at once (ip monitor in every server).")

    # -- part 2: three servers --------------------------------------------------------------
    def crash(self, m, probe):
        """web1 crashes: who takes VIP1 over (both survivors?), what duplicate address
        detection says, how client1's ARP entry moves and who served it."""
        v1 = ap.vip(1)
        self.say("\nweb2's and web3's scripts start again together: from now on their "
                 "checks run in step, the timing the notes warn about.")
        self.restart_in_step((2, 3), among=(1, 2, 3))
        offsets = {n: self.log_size(n) for n in (2, 3)}
        self.say("\nFault: web1 crashes (every process killed, its interface down).")
        self.fault = host_crash(self.net, "web1")
        t0 = m["fault_at"] = self.fault.at
        self.holdings.down("web1", t0)
        self.wait(lambda: self.holdings.holders(v1) & {"web2", "web3"},
                  self.t["takeover_wait"], "web2 or web3 to take %s" % v1)
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
            self.show_duplicate(m, holders)
        if first is not None:
            self._announced(m["takers"], t0, first, probe)
        self._client_view(m, probe, t0, first)

    def _announced(self, takers, t0, first, probe):
        """Wait for every taker's gratuitous ARPs (two each) to reach client1."""
        v1, macs = ap.vip(1), [mac_of(int(h[3:])) for h in takers]

        def announced():
            counts = [len(self.arp.garps(v1, mac, t0)) for mac in macs]
            silent = not any(counts) and time.time() > first + self.t["garp_window"]
            return all(c >= 2 for c in counts) or silent, counts
        self.wait(announced, 2.5, "every holder's gratuitous ARPs to reach client1")
        self.good(probe, first, timeout=1.5 if self.arp.garps(v1, macs[0], t0) else 0.3)

    def _client_view(self, m, probe, t0, first):
        """What client1 saw since ``t0``: its ARP entry's MACs, the GARPs, who served it."""
        v1, until = ap.vip(1), time.time()
        seq = [who(mac) for mac in self.arp.sequence(v1, t0, until)]
        m["client_arp_sequence"] = seq if seq[:1] == [who(m["arp_before"])] \
            else [who(m["arp_before"])] + seq
        m["client_arp_changes"] = sum(1 for a, b in zip(m["client_arp_sequence"],
                                                        m["client_arp_sequence"][1:]) if a != b)
        m["garps"] = {web(n): len(self.arp.garps(v1, mac_of(n), t0)) for n in (2, 3)}
        samples = [s for s in probe.samples() if s.t < until]
        m["served_sequence"] = served_sequence(samples, t0)
        timeline = analyse(samples, t0, detected_at=first)
        m["takeover"] = timeline.as_dict()
        self.say("  client1's ARP entry for %s went %s (%d changes); gratuitous ARPs it "
                 "received: %s" % (v1, " -> ".join(m["client_arp_sequence"]),
                                   m["client_arp_changes"],
                                   ", ".join("%s x%d" % kv for kv in sorted(m["garps"].items()))))
        self.say("  client1 was served by: %s" % (" -> ".join(m["served_sequence"]) or "nobody"))
        self.say("  " + timeline.summary().replace("\n", "\n  "))

    def show_duplicate(self, m, holders):
        """Duplicate address detection: from a holder (only *another* one answers) and
        from client1 (``arping -d`` exits 1 when two MACs answer one IP)."""
        v1 = ap.vip(1)
        self.say("  TWO SERVERS HOLD %s: %s" % (v1, " and ".join(holders)))
        m["dad_from"] = probe_from = holders[0]
        macs, _ = observe.arp_answers(self.net[probe_from], v1, intf(probe_from), anonymous=True)
        m["dad_answers"] = sorted({who(mac) for mac in macs} - {probe_from})
        self.say("  duplicate address detection from %s (arping -0: who else answers for "
                 "%s?): %s" % (probe_from, v1, ", ".join(m["dad_answers"]) or "nobody"))
        macs, m["arping_d_exit"] = observe.arp_answers(self.client, v1, intf("client1"))
        m["arping_d_answers"] = sorted({who(mac) for mac in macs} - {"client1"})
        self.say("  from client1, arping -d (duplicate replies) %s: answers from %s, exit %d%s"
                 % (v1, ", ".join(m["arping_d_answers"]) or "nobody", m["arping_d_exit"],
                    " (two MACs for one IP)" if m["arping_d_exit"] == 1 else ""))

    def reboot(self, m, probe):
        """web1 boots again (nginx and the script start): both holders must let go."""
        v1 = ap.vip(1)
        offset = self.log_size(1)
        self.say("\nRepair: web1 boots again (nginx and %s start)." % SCRIPT)
        t1 = m["restored_at"] = time.time()        # the reboot starts
        self.fault.undo()
        self.holdings.watch("web1")
        back = self.wait_holders(v1, {"web1"}, self.t["return_wait"])
        r = m["return"] = dict(back=back, holders=sorted(self.holdings.holders(v1)))
        r["released_after"] = {web(n): rel(self.holdings.first(v1, web(n), False, t1), t1)
                               for n in (2, 3) if web(n) in m["takers"]}
        taken = self.holdings.first(v1, "web1", True, t1)
        r["owner_took_after"] = rel(taken, t1)
        r["owner_waiting_lines"] = [line for line in self.log_lines(1, v1, offset)
                                    if "wait" in line.lower()][:3]
        if taken:
            moved = self.wait(lambda: self.arp.moved_to(v1, mac_of(1), taken) is not None,
                              self.t["arp_watch"],
                              "client1's ARP entry for %s to move back to web1" % v1)
            self.good(probe, taken, timeout=2 if moved else 0.3)
        m["duplicate_periods"] = [
            dict(hosts=hosts, after=rel(start, m["fault_at"]),
                 seconds=None if end is None else round(end - start, 3))
            for vip, hosts, start, end in self.holdings.overlaps(m["fault_at"]) if vip == v1]
        r["overlaps"] = [d for d in m["duplicate_periods"] if d["after"] >= t1 - m["fault_at"]]
        r["arp_after"] = who(self.arp.mark(v1))
        timeline = analyse([s for s in probe.samples() if s.t >= m["fault_at"]], t1)
        r["timeline"] = timeline.as_dict()
        self.say("  released %s: %s; web1 took it back: %s; now on %s" % (
            v1, ", ".join("%s %s" % (k, after(v, "the reboot began")) for k, v in sorted(
                r["released_after"].items())) or "nobody had to",
            after(r["owner_took_after"], "the reboot began"), " + ".join(r["holders"]) or "nobody"))
        for line in r["owner_waiting_lines"]:
            self.say("    web1 log | %s" % line)
        for d in m["duplicate_periods"]:
            self.say("  %s was on %s at once %s, from %s%s" % (
                v1, " and ".join(d["hosts"]), lasting(d["seconds"]), after(d["after"], "the crash"),
                " (during the return)" if d in r["overlaps"] else
                " until web1's return made them let go"))
        self.say("  " + timeline.summary().replace("\n", "\n  "))

    # -- the return, done two ways by the harness -----------------------------------------
    def rejoin(self, careful):
        """web1 returns while web2 still holds VIP1: web2 has just taken it over and is
        announcing it (two gratuitous ARPs, ``garp_gap`` apart, as takeover.sh does).

        Done by the harness (the scripts are stopped), the same way each time, so the two
        returns compare.  ``careful=False``: web1 adds VIP1 and announces it at once -- two
        servers hold VIP1, and client1 goes wherever the last announcement sent it.
        ``careful=True``: web1 first asks who answers ARP for VIP1 (``arping -0``); web2
        stops announcing and releases; web1 takes VIP1 once nobody answers, then announces
        it.  Either way client1 then resolves VIP1 afresh (a new client, or an entry that
        expired): the first answer wins.  Holders are read with
        :func:`redlab.observe.holders` after every step."""
        v1, web1, web2 = ap.vip(1), self.net["web1"], self.net["web2"]
        servers = [self.net[web(n)] for n in (1, 2, 3)]
        r = dict(holders=[])

        def holders(step):
            r["holders"].append(dict(step=step, holders=observe.holders(servers, v1)))

        self.stop_scripts((1, 2, 3))
        with self.probe("rejoin-%s" % ("careful" if careful else "naive"), v1, 20) as probe:
            announcing = self._place(v1, web2, servers, probe)
            try:
                t0 = r["t0"] = time.time()
                r["arp_before"] = who(self.arp.mark(v1))
                holders("web2 took %s over and announces it; web1 is back" % v1)
                if careful:
                    self._careful_return(web1, web2, v1, announcing, holders, r)
                else:
                    r["claimed_at"] = time.time()
                    self._take(web1, v1)
                    holders("web1 adds %s and sends a gratuitous ARP" % v1)
                    self.wait(lambda: (announcing.poll() is not None, "announcing"),
                              self.t["garp_gap"] + 2, "web2's second gratuitous ARP")
                    holders("web2's second gratuitous ARP for %s" % v1)
                self.good(probe, time.time(), count=3, timeout=2)
                r["dad_answers"] = [who(m) for m in observe.arp_answers(
                    self.client, v1, intf("client1"), wait=0.5)[0]]
                r["fresh"] = [self._resolve_afresh(probe, v1)
                              for _ in range(self.t["fresh_resolutions"])]
                r["t_end"] = time.time()
            finally:
                end_process(web2, announcing, 2)
        self._measure_rejoin(r, probe.samples())
        self._release(web2, v1)         # whatever happened, VIP1 ends on web1 alone
        self._narrate_rejoin(r, careful)
        return r

    def _careful_return(self, web1, web2, v1, announcing, holders, r):
        """Ask, let the holder release (and stop announcing), wait for silence, take."""
        r["asked"] = [who(m) for m in observe.arp_answers(
            web1, v1, intf("web1"), anonymous=True, wait=0.5)[0]]
        holders("web1 asks who answers for %s: %s" % (v1, ", ".join(r["asked"]) or "nobody"))
        end_process(web2, announcing, 2)
        self._release(web2, v1)
        holders("web2 stops announcing and releases %s" % v1)
        self.wait(lambda: (not observe.arp_answers(web1, v1, intf("web1"), anonymous=True,
                                                   wait=0.2)[0], "answered"),
                  self.t["return_wait"], "nobody to answer for %s" % v1)
        r["claimed_at"] = time.time()
        self._take(web1, v1)
        holders("nobody answers: web1 adds %s and sends a gratuitous ARP" % v1)

    def _place(self, vip, host, servers, probe):
        """``vip`` on ``host`` alone, announced twice in the background (returned: the
        announcing process), client1's entry pointing at it and client1 served by it."""
        for other in servers:
            if other is not host:
                self._release(other, vip)
        self._take(host, vip, announce=False)
        announcing = host.popen(["arping", "-U", "-S", vip, "-c", "2", "-W",
                                 str(self.t["garp_gap"]), "-i", intf(host.name), vip],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        host.run.record_process(announcing.pid, "arping in %s" % host.name)
        try:
            self.wait(lambda: self._points_at(vip, host.MAC()), self.t["arp_watch"],
                      "client1's entry for %s to point at %s" % (vip, host.name))
            self.good(probe, time.time(), count=3)
        except BaseException:
            end_process(host, announcing, 2)
            raise
        return announcing

    def _points_at(self, vip, mac):
        entry = observe.neigh(self.client, vip)
        return entry is not None and entry.mac == mac, entry

    @staticmethod
    def _take(host, vip, announce=True):
        if not observe.holds(host, vip):
            host.cmd("ip addr add %s/%d dev %s" % (vip, ap.SERVICE.prefixlen, intf(host.name)))
        if announce:
            host.cmd("arping -U -S %s -c 1 -i %s %s" % (vip, intf(host.name), vip))

    @staticmethod
    def _release(host, vip):
        if observe.holds(host, vip):
            host.cmd("ip addr del %s/%d dev %s" % (vip, ap.SERVICE.prefixlen, intf(host.name)))

    def _resolve_afresh(self, probe, vip):
        """client1 forgets its entry for ``vip``; the server of its next answer."""
        self.client.cmd("ip neigh del %s dev %s" % (vip, intf("client1")))
        since = time.time()
        self.good(probe, since, count=1, timeout=2)
        answered = [s for s in probe.samples() if s.t >= since and s.ok]
        return answered[0].server if answered else None

    def _measure_rejoin(self, r, samples):
        """What client1 saw from the start of the return: its ARP entry, who served it."""
        v1, t0 = ap.vip(1), r["t0"]
        samples = [s for s in samples if t0 <= s.t <= r["t_end"]]
        r["served"] = sorted({s.server for s in samples if s.ok})
        r["served_after_claim"] = sorted({s.server for s in samples
                                          if s.ok and s.t >= r["claimed_at"]})
        r["served_sequence"] = served_sequence(samples, t0)
        r["requests"], r["lost"] = len(samples), sum(1 for s in samples if not s.ok)
        seq = [who(mac) for mac in self.arp.sequence(v1, t0, r["t_end"])]
        r["client_arp_sequence"] = seq if seq[:1] == [r["arp_before"]] \
            else [r["arp_before"]] + seq
        r["max_holders"] = max(len(h["holders"]) for h in r["holders"])

    def _narrate_rejoin(self, r, careful):
        self.say("\n%s web1 returns while web2 still holds %s:" % (
            "Careful:" if careful else "Naive:", ap.vip(1)))
        for h in r["holders"]:
            self.say("  %-62s -> held by %s" % (h["step"], " + ".join(h["holders"]) or "nobody"))
        self.say("  client1's arping -d %s: answers from %s" % (
            ap.vip(1), ", ".join(r["dad_answers"]) or "nobody"))
        self.say("  client1's ARP entry went %s; it was served by %s (after web1 added %s: "
                 "by %s)" % (" -> ".join(r["client_arp_sequence"]),
                             " -> ".join(r["served_sequence"]), ap.vip(1),
                             " and ".join(r["served_after_claim"]) or "nobody"))
        self.say("  then it resolved %s afresh %d times: answered first by %s" % (
            ap.vip(1), len(r["fresh"]), ", ".join(str(s) for s in r["fresh"])))
        self.say("  %d of %d requests lost" % (r["lost"], r["requests"]))


def served_sequence(samples, since):
    """The servers that answered after ``since``, in order, repeats collapsed."""
    served = []
    for s in samples:
        if s.t >= since and s.ok and (not served or served[-1] != s.server):
            served.append(s.server)
    return served


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
    for kind, r in (details.get("rejoin") or {}).items():
        out["rejoin_%s_max_holders" % kind] = r.get("max_holders")
        out["rejoin_%s_served_after_claim" % kind] = r.get("served_after_claim")
        out["rejoin_%s_lost" % kind] = r.get("lost")
    return out
