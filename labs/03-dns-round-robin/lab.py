"""Lab 03: DNS round robin (DNSラウンドロビン) -- load spreading, not redundancy.

The walk-through builds ``topologies/dns_rr.py``: three web servers, an authoritative
BIND (dns1) with one A record per server for ``www.lab.example`` (``rrset-order
cyclic``), PCs that ask dns1 themselves, and phones behind a carrier gateway
(キャリアゲートウェイ): a caching BIND plus Squid, the HTTP proxy every phone goes
through, which keeps a name's answer in its own cache and connects to its addresses in
order.  Real users (``agents.py``) request the page ten times a second each.  It
measures, in one network:

1. the rotation: successive answers from dns1 in rotating order;
2. the spread of requests over the servers, for a short and a long TTL: even for the
   PCs, skewed behind a browser cache (less with the short TTL) and behind the carrier
   gateway -- whose Squid (5.7, Debian 12) keeps every name for its
   ``negative_dns_ttl`` whatever the TTL, so a short TTL does not help the phones;
3. web2 crashes and nobody touches DNS: DNS keeps handing web2 out, about a third of
   the PCs' requests fail; Squid waits for web2, then tries the next address, so the
   phones get slow answers instead of errors;
4. the operator removes web2's record: the PCs recover at once, but users behind a
   cache that holds the old answer fail until its TTL runs out -- with a long TTL, then
   with the student's ``dns.yaml`` (TTL and procedure), which the checks grade.

Times are scaled: one second here stands for a minute of a real service.
"""

import ipaddress
import json
import time
from dataclasses import dataclass
from pathlib import Path

from redlab import addressing as ap
from redlab.agent import HostAgent
from redlab.errors import ConfigError, WaitTimeout
from redlab.faults import host_crash
from redlab.labs import Stop, failed, passed
from redlab.net import Network
from redlab.probe import failure_kind
from redlab.wait import wait_until

TITLE = "DNS round robin: rotation, caches, and a dead server"
TOPOLOGY = "topologies/dns_rr.py"

HERE = Path(__file__).resolve().parent
AGENTS = HERE / "agents.py"

# the two --cli stops: what to look at and what to type there, one line at a time
STOPS = {
    "rotation": Stop("dns1 rotates the records (ask several times); the phones' carrier "
                     "gateway answers from its own cache and passes requests through Squid "
                     "(X-Served-By names the server, Via the proxy); Squid's cached answer "
                     "lists the addresses in the order it tries them", [
        "pc1 dig @%(dns1)s www.lab.example +short",
        "pc1 dig @%(dns1)s www.lab.example +short",
        "phone1 dig @%(gateway)s www.lab.example",
        "phone1 curl -s -i -x http://%(gateway)s:%(port)d http://www.lab.example/",
        "carriergw curl -s http://127.0.0.1:%(port)d/squid-internal-mgr/ipcache | tail -5"]),
    "dead": Stop("web2 is down%(removed)s", [
        "phone1 curl -s -x http://%(gateway)s:%(port)d http://www.lab.example/",
        "pc1 dig @%(dns1)s www.lab.example +short"]),
}

NAME = "www.lab.example"       # the service's name: zone lab.example, A records "www"
SERVERS = ("web1", "web2", "web3")
DEAD = "web2"                  # the server that dies
BOUND = 4.0                    # the service's promise: errors at most this long after a crash
SHORT_TTL, LONG_TTL = 1, 5     # the walk-through's own TTLs (spread, long-TTL damage)
WINDOW = 2.5                   # seconds of traffic per spread measurement
DEAD_WINDOW = 2.0              # seconds web2 stays dead with DNS unchanged
CAP = BOUND + 1.5              # how long a damage run watches before it gives up ...
CAP_AFTER_TTL = 2.0            # ... at least this long after a TTL up to LONG_TTL runs out
PROXY_PORT = 3128              # the carrier gateway's Squid
GATEWAY_HOLD = 5               # its negative_dns_ttl: how long Squid 5.7 keeps *every* name
CONNECT_TIMEOUT = 1            # its connect_timeout (Squid's default: 1 minute)
SLOW = 0.3                     # an answer this late waited for something (they take ~5 ms)
INTERVAL = 0.1                 # each user: one request every 100 ms
STREAK = 4                     # good answers in a row that end a user's damage
HEALTH_INTERVAL, HEALTH_TIMEOUT, HEALTH_FALL = 0.1, 0.2, 2   # the operator's check of web2
PROCEDURES = ("keep-record", "remove-record")

# (host, how it finds the server, its group)
USERS = (("pc1", "direct", "pcs"), ("pc2", "direct", "pcs"), ("pc3", "browser", "browser"),
         ("phone1", "proxy", "phones"), ("phone2", "proxy", "phones"),
         ("phone3", "proxy", "phones"))
GROUPS = ("pcs", "browser", "phones")
LABELS = {"pcs": "PCs (no cache)", "browser": "pc3 (browser cache)",
          "phones": "phones (gateway)"}


# -- the submission -------------------------------------------------------------------

@dataclass
class Submission:
    ttl: int
    records: list             # addresses, in the order written
    procedure: str


def load_submission(path):
    """Read and validate ``dns.yaml``; a ConfigError names the field to fix."""
    import yaml
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as exc:
        raise ConfigError("dns.yaml is not valid YAML: %s" % str(exc).replace("\n", " "))
    if not isinstance(data, dict):
        raise ConfigError("dns.yaml must be a mapping with ttl, records and when_a_server_dies")
    unknown = sorted(set(data) - {"ttl", "records", "when_a_server_dies"})
    if unknown:
        raise ConfigError("dns.yaml: unknown field %s (the fields are ttl, records, "
                          "when_a_server_dies)" % ", ".join(unknown))
    ttl = data.get("ttl")
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= 86400:
        raise ConfigError("dns.yaml: ttl must be a whole number of seconds from 1 to 86400, "
                          "not %r" % (ttl,))
    records = data.get("records")
    if not isinstance(records, list) or not records:
        raise ConfigError("dns.yaml: records must be a list of the web servers' addresses")
    web = {ap.web(n): "web%d" % n for n in range(1, len(SERVERS) + 1)}
    addresses = []
    for record in records:
        try:
            address = str(ipaddress.IPv4Address(str(record)))
        except ValueError:
            raise ConfigError("dns.yaml: records: %r is not an IPv4 address" % (record,)) from None
        if address not in web:
            raise ConfigError("dns.yaml: records: %s is not a web server; the web servers are %s"
                              % (address, ", ".join("%s %s" % (n, a) for a, n in web.items())))
        if address in addresses:
            raise ConfigError("dns.yaml: records: %s (%s) is listed twice" % (address, web[address]))
        addresses.append(address)
    procedure = data.get("when_a_server_dies")
    if procedure not in PROCEDURES:
        raise ConfigError("dns.yaml: when_a_server_dies must be one of %s, not %r"
                          % (", ".join(PROCEDURES), procedure))
    return Submission(ttl=ttl, records=addresses, procedure=procedure)


# -- processes inside hosts -----------------------------------------------------------

class Agent(HostAgent):
    """``agents.py`` running inside a host, recorded in the run registry."""

    script = AGENTS
    what = "lab 03 agent"

    def __init__(self, host, args, out):
        super().__init__(host, out)
        if out.exists():
            out.unlink()
        self.spawn(list(args) + ["--out", out])

    def check_alive(self):
        return super().check_alive(failed_only=True)

    def stop(self):
        super().stop(3)
        return self.lines()


def dig(host, server, name=NAME):
    """``(addresses, ttl)`` as ``server`` answers ``host`` right now (in its order)."""
    out = host.cmd("dig +noall +answer +tries=1 +time=1 @%s %s A" % (server, name))
    addresses, ttl = [], None
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 5 and fields[3] == "A":
            addresses.append(fields[4])
            ttl = int(fields[1])
    return addresses, ttl


# -- the lab's network ----------------------------------------------------------------

class DnsLab:
    def __init__(self, net, records):
        self.net = net
        self.records = list(records)          # the submission's addresses
        self.names = {ap.web(n): "web%d" % n for n in range(1, len(SERVERS) + 1)}
        self.dns1 = ap.dns(1)
        self.gateway = ap.router(ap.CLIENTS)  # the gateway's carrier-side address
        self.flushed = 0.0
        self.users = []

    # -- DNS ---------------------------------------------------------------------------
    @property
    def named(self):
        return self.net["dns1"].daemons["named"]

    def name_of(self, address):
        return self.names.get(address, address)

    def set_zone(self, ttl, addresses):
        """Rewrite dns1's zone and reload it (SIGHUP); wait until it answers with it."""
        named = self.named
        named.ttl = ttl
        named.records = [("www", a) for a in addresses]
        named.reload()

        def served():
            got, got_ttl = dig(self.net["pc1"], self.dns1)
            return sorted(got) == sorted(addresses) and got_ttl in (ttl, None) and \
                (got_ttl is not None or not addresses), (got, got_ttl)
        wait_until(served, 10, "dns1 to answer with TTL %d and %s" % (ttl, addresses))

    @property
    def squid(self):
        return self.net["carriergw"].daemons["squid"]

    def flush_gateway(self):
        """Start the carrier gateway afresh: its BIND and its Squid with empty caches."""
        gateway = self.net["carriergw"]
        for name in ("named", "squid"):
            gateway.daemons[name].stop()
        for name in ("named", "squid"):
            gateway.daemons[name].start()
        self.flushed = time.time()

    def lookups(self, since=None, until=None):
        """The gateway Squid's lookups: A queries from the gateway itself to its BIND."""
        since = self.flushed if since is None else since
        return [q for q in self.net["carriergw"].daemons["named"].queries(since)
                if q["client"] == self.gateway and q["name"] == NAME and q["type"] == "A"
                and (until is None or q["t"] < until)]

    def gateway_cache(self):
        """What the gateway's Squid holds for the name: addresses in order, seconds left."""
        return self.squid.ipcache(NAME)

    def steer_gateway_to(self, address, attempts=3):
        """The worst case, on purpose: the gateway caches an answer that starts with ``address``.

        dns1 rotates by one per answer (cyclic), so when its last answer had ``address``
        second, its next answer -- the gateway's, asked by its Squid -- starts with it.
        Returns ``dict(t=when Squid asked, addresses=[...], ttl=seconds it keeps them)``.
        """
        held = None
        for _ in range(attempts):
            self.flush_gateway()
            self._turn_dns1_to(address)
            self.net["phone1"].cmd("curl -s -m 3 -o /dev/null -x http://%s:%d http://%s/"
                                   % (self.gateway, PROXY_PORT, NAME))
            held, lookups = self.gateway_cache(), self.lookups()
            if held and lookups:
                held["t"] = lookups[0]["t"]
                if held["addresses"][0] == address:
                    break
        return held

    # -- users -------------------------------------------------------------------------
    def start_users(self, label, browser_first=None, attempts=3):
        """Start every user; ``browser_first``: the browser's cached answer starts with it.

        That is the worst case on purpose, as for the gateway: dns1 is turned until its
        next answer starts with ``browser_first`` and the browser starts alone, before
        anybody else asks dns1.  Returns the time every user had sent a request.
        """
        self.users = []
        self.browser_cached = None
        for host, mode, group in USERS:
            if mode == "browser" and browser_first:
                for _ in range(attempts):
                    self._turn_dns1_to(browser_first)
                    agent = self._start_user(host, mode, group, label)
                    wait_until(lambda: (bool(agent.lines()), agent.check_alive()), 10,
                               "%s's first request" % host)
                    first = agent.lines()[0]
                    if first["address"] == browser_first:
                        break
                    agent.terminate()
                    agent.stop()
                self.browser_cached = dict(t=first["t"], address=first["address"])
                self.users.append(agent)
        for host, mode, group in USERS:
            if not (mode == "browser" and browser_first):
                self.users.append(self._start_user(host, mode, group, label))
        wait_until(self._all_users_answered, 10, "every user to have sent a request")
        return time.time()

    def _turn_dns1_to(self, address):
        """Ask dns1 until its *next* answer (cyclic: one step on) starts with ``address``."""
        for _ in range(len(self.records) + 1):
            order, _ttl = dig(self.net["pc1"], self.dns1)
            if len(order) > 1 and order[1] == address:
                return

    def _start_user(self, host, mode, group, label):
        node = self.net[host]
        args = ["user", "--mode", mode, "--interval", str(INTERVAL), "--max-seconds", "60"]
        if mode == "proxy":
            # Squid waits CONNECT_TIMEOUT for a dead server before it tries the next one
            args += ["--proxy", "%s:%d" % (self.gateway, PROXY_PORT),
                     "--timeout", str(3 * CONNECT_TIMEOUT)]
        else:
            args += ["--resolver", self.dns1, "--timeout", "0.3"]
        agent = Agent(node, args, node.run.file(host, "%s.jsonl" % label))
        agent.group = group
        return agent

    def _all_users_answered(self):
        for agent in self.users:
            agent.check_alive()
        waiting = [a.host.name for a in self.users if not a.lines()]
        return not waiting, "no request yet from %s" % ", ".join(waiting)

    def wait_window(self, start, seconds):
        """Let the users run for ``seconds`` after ``start`` (a measurement window)."""
        def done():
            for agent in self.users:
                agent.check_alive()
            ends = [a.lines()[-1]["t"] for a in self.users if a.lines()]
            return min(ends) >= start + seconds, "last requests at %s" % ends
        wait_until(done, seconds + 10, "%.1f s of traffic from every user" % seconds)

    def samples(self, since, until):
        """The running users' requests sent in ``[since, until)``, with host and group."""
        return [dict(s, host=a.host.name, group=a.group) for a in self.users
                for s in a.lines() if since <= s["t"] < until]

    def stop_users(self):
        for agent in self.users:
            agent.terminate()         # all at once: each may have a request in flight
        samples = []
        for agent in self.users:
            for s in agent.stop():
                s["host"], s["group"] = agent.host.name, agent.group
                samples.append(s)
        self.users = []
        return samples

    def stop(self):
        for agent in self.users:
            agent.terminate()
        for agent in self.users:
            agent.stop()
        self.users = []

    # -- the operator --------------------------------------------------------------------
    def health_check_until_dead(self, address, deadline):
        """The operator's HTTP check of ``address`` from dns1 until it fails HEALTH_FALL times."""
        fails = [0]

        def dead():
            code = self.net["dns1"].cmd("curl -s -o /dev/null -m %s -w '%%{http_code}' http://%s/"
                                        % (HEALTH_TIMEOUT, address)).strip()
            fails[0] = fails[0] + 1 if code != "200" else 0
            return fails[0] >= HEALTH_FALL, "HTTP %s, %d failure(s) in a row" % (code, fails[0])
        wait_until(dead, max(0.5, deadline - time.time()), "the health check to see %s down"
                   % self.name_of(address), interval=HEALTH_INTERVAL)
        return time.time()

    def remove_record(self, address, ttl):
        self.set_zone(ttl, [a for a in self.records if a != address])
        return time.time()


# -- measurements ---------------------------------------------------------------------

def share_table(samples):
    """{group: {server or "error": count}} from user samples."""
    table = {g: {} for g in GROUPS}
    for s in samples:
        key = s["server"] if s["ok"] else "error"
        row = table[s["group"]]
        row[key] = row.get(key, 0) + 1
    return table


def format_table(table, title):
    cols = list(SERVERS) + ["error"]
    lines = [title, "  %-20s %s   requests" % ("", " ".join("%6s" % c for c in cols))]
    for group, row in table.items():
        total = sum(row.values())
        if not total:
            continue
        lines.append("  %-20s %s   %4d" % (LABELS[group], " ".join(
            "%5.0f%%" % (100.0 * row.get(c, 0) / total) for c in cols), total))
    return "\n".join(lines)


def max_share(row):
    total = sum(v for k, v in row.items() if k != "error")
    return max((v for k, v in row.items() if k != "error"), default=0) / total if total else 0.0


def error_share(samples, group=None):
    chosen = [s for s in samples if group is None or s["group"] == group]
    return sum(not s["ok"] for s in chosen) / len(chosen) if chosen else 0.0


def damage(samples, fault_at):
    """Per group: seconds from the fault to the last request that failed (0: none failed)."""
    window = {}
    for group in GROUPS:
        failures = [s["t"] for s in samples if s["group"] == group and not s["ok"]
                    and s["t"] >= fault_at]
        window[group] = round(max(failures) - fault_at, 2) if failures else 0.0
    return window


# -- the walk-through -----------------------------------------------------------------


def rotation(lab, ctx):
    ctx.say("\n== 1. Rotation: dns1 answers www.lab.example with every A record, in turn ==")
    answers = [dig(lab.net["pc1"], lab.dns1)[0] for _ in range(6)]
    for n, order in enumerate(answers, 1):
        ctx.say("  query %d: %s" % (n, "  ".join("%s (%s)" % (a, lab.name_of(a)) for a in order)))
    rotates = all(b == a[1:] + a[:1] for a, b in zip(answers, answers[1:]))
    firsts = [lab.name_of(a[0]) for a in answers if a]
    ctx.say("  first answer: %s -> %s" % (" ".join(firsts), "rotates by one every query"
                                           if rotates else "does NOT rotate"))
    ctx.say("  one address per server: %d servers need %d addresses (each a global address "
            "in real life)" % (len(answers[0]), len(set(answers[0]))))
    return dict(answers=answers, first=firsts, rotates=rotates,
                addresses=len(set(answers[0])))


def spread(lab, ctx, ttl, then_crash=False):
    """Users for WINDOW seconds with TTL ``ttl``: who served whom.

    ``then_crash``: the users keep running and web2 crashes (step 3, :func:`server_dies`).
    """
    lab.set_zone(ttl, lab.records)
    lab.flush_gateway()
    start = lab.start_users("spread-ttl%d" % ttl)
    held = lab.gateway_cache()      # Squid's entry, asked right after the phones' first requests
    lab.wait_window(start, WINDOW)
    samples = lab.samples(start, start + WINDOW)
    table = share_table(samples)
    # the gateway started empty: every lookup until the window's end served the window
    lookups = lab.lookups(until=start + WINDOW)
    # pc3's first lookup came just before ``start``, when it sent its first request
    browser = sum(1 for s in lab.samples(0.0, start + WINDOW)
                  if s["group"] == "browser" and s.get("resolved"))
    ctx.say(format_table(table, "\n  TTL %d s, %.1f s of traffic:" % (ttl, WINDOW)))
    ctx.say("  pc3's browser cache resolved the name %d time(s); the carrier gateway's Squid %d "
            "time(s)%s" % (browser, len(lookups), (
                ", and right after its first lookup it meant to keep %s for %d s more (TTL %d s)"
                % (" ".join(lab.name_of(a) for a in held["addresses"]), held["ttl"], ttl))
                if held else ""))
    result = dict(ttl=ttl, table=table, gateway_lookups=len(lookups), browser_lookups=browser,
                  gateway_keeps=held["ttl"] if held else None,
                  gateway_order=[lab.name_of(a) for a in held["addresses"]] if held else [],
                  max_share={g: round(max_share(table[g]), 2) for g in GROUPS})
    if then_crash:
        # the gateway's BIND holds the answer too, but hands it out rotated
        order = [dig(lab.net["phone1"], lab.gateway)[0] for _ in range(3)]
        ctx.say("  (the gateway's own BIND rotates its cached answer: %s for three digs -- it is "
                "Squid, keeping one answer and trying its addresses in order, that sends every "
                "phone to one server)" % " / ".join(lab.name_of(o[0]) for o in order if o))
        result["dead"] = server_dies(lab, ctx, ttl)
    lab.stop_users()
    return result


def server_dies(lab, ctx, ttl):
    """web2 crashes under the running users; DNS is left as it is for DEAD_WINDOW seconds."""
    dead_ip = ap.web(int(DEAD[-1]))
    fault = host_crash(lab.net, DEAD)
    try:
        lab.wait_window(fault.at, DEAD_WINDOW)
        samples = lab.samples(fault.at, fault.at + DEAD_WINDOW)
    finally:
        fault.undo()
    direct = [s for s in samples if s["group"] == "pcs"]
    handed = [s for s in direct if s.get("address") == dead_ip]
    result = dict(handed_out=round(len(handed) / len(direct), 2) if direct else 0.0,
                  error_share={g: round(error_share(samples, g), 2) for g in GROUPS},
                  requests={g: sum(s["group"] == g for s in samples) for g in GROUPS},
                  what_failed={g: failure_kinds(samples, g) for g in GROUPS},
                  slow=slow_answers(samples), seconds=DEAD_WINDOW)
    ctx.say("\n== 3. web2 crashes; nobody touches DNS (%.1f s, TTL %d s) ==" % (DEAD_WINDOW, ttl))
    ctx.say("  dns1 still put web2 first in %.0f%% of the PCs' answers: DNS does not know "
            "web2 is dead" % (100 * result["handed_out"]))
    for g in GROUPS:
        ctx.say("  %-20s %3.0f%% of %d requests failed" % (
            LABELS[g], 100 * result["error_share"][g], result["requests"][g]))
    ctx.say("  (the PCs pick a server per request: about one in three fails. pc3's browser cache "
            "is all or nothing while one answer lasts: it fails throughout if it starts with web2)")
    ctx.say("  what those users saw: %s" % "; ".join(
        "%s: %s" % (LABELS[g], ", ".join("%d x %s" % (n, kind) for kind, n in
                                         sorted(result["what_failed"][g].items())) or "no error")
        for g in GROUPS))
    say_slow(ctx, result["slow"])
    return result


def slow_answers(samples, group="phones"):
    """The good answers that took SLOW or more: Squid waited for a dead server."""
    return sorted(round(s["end"] - s["t"], 2) for s in samples
                  if s["group"] == group and s["ok"] and s["end"] - s["t"] >= SLOW)


def say_slow(ctx, slow):
    if slow:
        ctx.say("  the phones got the page, but %d answer(s) took %.1f-%.1f s: Squid tried web2 "
                "first and waited for it (connect_timeout %d s), then tried the next address of "
                "its answer and marked web2 bad -- a proxy that retries hides a dead server from "
                "its users, DNS does not" % (len(slow), slow[0], slow[-1], CONNECT_TIMEOUT))
    else:
        ctx.say("  no phone waited more than %.1f s for an answer" % SLOW)


def failure_kinds(samples, group):
    """What a user of ``group`` got instead of the page: ``{"HTTP 503 ...": n, ...}``."""
    kinds = {}
    for s in samples:
        if s["group"] != group or s["ok"]:
            continue
        kind = failure_kind(s.get("status"), s.get("error"))
        if s.get("via_gateway") and s.get("status") in (502, 503, 504):
            kind += " (the carrier gateway's error page)"
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def damage_run(lab, ctx, ttl, procedure, label, restore=True):
    """web2 dies right after the gateway's Squid and pc3's browser cached an answer that
    starts with it.

    The operator's health check notices; with ``remove-record`` the record goes.  Watch
    until every user has had STREAK good answers and dns1 no longer hands web2 out, or
    CAP seconds -- for the long TTL, until CAP_AFTER_TTL after it ran out (a browser
    that resolved just before the crash fails for the whole TTL, then needs STREAK good
    answers).
    """
    dead_ip = ap.web(int(DEAD[-1]))
    cap = max(CAP, min(ttl, LONG_TTL) + CAP_AFTER_TTL)
    lab.set_zone(ttl, lab.records)
    pinned = lab.steer_gateway_to(dead_ip)
    start = lab.start_users("damage-%s" % label, browser_first=dead_ip)
    fault = host_crash(lab.net, DEAD)
    deadline = fault.at + cap
    result = dict(ttl=ttl, procedure=procedure, cap=cap,
                  gateway_cached=[lab.name_of(a) for a in pinned["addresses"]] if pinned else [],
                  # when the gateway took its answer, and when it will ask again
                  gateway_cached_at=round(pinned["t"] - fault.at, 2) if pinned else None,
                  # Squid's own count of the seconds it will keep them, whatever the TTL
                  gateway_keeps=pinned["ttl"] if pinned else None,
                  # when pc3's browser cache took its answer (and the first address of it)
                  browser_cached=lab.name_of(lab.browser_cached["address"]),
                  browser_cached_at=round(lab.browser_cached["t"] - fault.at, 2),
                  detected_after=None, removed_after=None, closed=False)
    try:
        try:
            detected = lab.health_check_until_dead(dead_ip, deadline)
            result["detected_after"] = round(detected - fault.at, 2)
            if procedure == "remove-record" and dead_ip in lab.records:
                removed = lab.remove_record(dead_ip, ttl)
                result["removed_after"] = round(removed - fault.at, 2)
        except WaitTimeout:
            pass
        still_listed = [False]

        def over():
            for agent in lab.users:
                agent.check_alive()
            still_listed[0] = dead_ip in dig(lab.net["pc1"], lab.dns1)[0]
            streaks = {}
            for agent in lab.users:
                streak = 0
                for s in agent.lines():
                    streak = streak + 1 if s["ok"] else 0
                streaks[agent.host.name] = streak
            return (not still_listed[0] and min(streaks.values()) >= STREAK,
                    "dns1 lists web2: %s, good answers in a row: %s" % (still_listed[0], streaks))
        try:
            wait_until(over, max(0.5, deadline - time.time()), "the damage to end",
                       interval=0.1)
            result["closed"] = True
        except WaitTimeout:
            pass
        watched = time.time()
        result["watched"] = round(watched - fault.at, 2)
        result["still_listed"] = still_listed[0]
        samples = [s for s in lab.stop_users() if start <= s["t"] < watched]
    finally:
        if restore:
            fault.undo()
            lab.set_zone(ttl, lab.records)
    after = [s for s in samples if s["t"] >= fault.at]
    result["window"] = damage(samples, fault.at)
    result["damage"] = max(result["window"].values())
    result["errors"] = {g: round(error_share(after, g), 2) for g in GROUPS}
    result["slow"] = slow_answers(after)
    say_damage(ctx, result)
    return result


def say_damage(ctx, r):
    def secs(v):
        return "%.1f s" % v if v is not None else "never"
    if r["gateway_cached"]:
        ctx.say("  TTL %d s, %s: the carrier gateway's Squid cached %s at %.1f s and meant to "
                "keep it %d s" % (r["ttl"], r["procedure"], " ".join(r["gateway_cached"]),
                                  r["gateway_cached_at"], r["gateway_keeps"]))
    ctx.say("  pc3's browser cache took an answer starting with %s at %.1f s, for the TTL: until "
            "%.1f s" % (r["browser_cached"], r["browser_cached_at"],
                        r["browser_cached_at"] + r["ttl"]))
    ctx.say("  web2 crashed at 0.0 s; health check saw it down at %s; record removed at %s"
            % (secs(r["detected_after"]), secs(r["removed_after"])))
    for g in GROUPS:
        ctx.say("  %-20s last error at %5.1f s   (%3.0f%% of requests failed after the crash)"
                % (LABELS[g], r["window"][g], 100 * r["errors"][g]))
    say_slow(ctx, r["slow"])
    if r["closed"]:
        ctx.say("  damage window: %.1f s (the last user error after the crash)" % r["damage"])
    else:
        ctx.say("  damage window: still open when the lab stopped watching at %.1f s%s"
                % (r["watched"], " -- dns1 still hands out web2" if r["still_listed"] else ""))


def walkthrough(ctx):
    from topologies.dns_rr import DNSRoundRobinTopo
    sub = load_submission(ctx.file("dns.yaml"))
    ctx.say("Your dns.yaml: ttl %d s, records %s, when a server dies: %s" % (
        sub.ttl, ", ".join(sub.records), sub.procedure))
    ctx.say("The service's promise (scaled, 1 s here = 1 min): after a server dies, users see "
            "errors for at most %.0f s." % BOUND)
    topo = DNSRoundRobinTopo(ttl=SHORT_TTL, records=[("www", a) for a in sub.records],
                             proxy=dict(port=PROXY_PORT, negative_dns_ttl=GATEWAY_HOLD,
                                        connect_timeout=CONNECT_TIMEOUT))
    detail = dict(ttl=sub.ttl, procedure=sub.procedure, records=sub.records, bound=BOUND)
    with Network(topo, name="lab03-dns-rr", run_folder=ctx.folder("dns-rr")) as net:
        lab = DnsLab(net, sub.records)
        evidence = net.run.path / "measured.json"
        try:
            detail["rotation"] = rotation(lab, ctx)
            ctx.pause(net, STOPS["rotation"], dns1=lab.dns1, gateway=lab.gateway,
                      port=PROXY_PORT)

            ctx.say("\n== 2. Spread: 2 PCs ask dns1 every time, pc3 keeps its answer for the TTL "
                    "(browser cache), 3 phones go through the carrier gateway ==")
            short = spread(lab, ctx, SHORT_TTL)
            long = spread(lab, ctx, LONG_TTL, then_crash=True)
            detail["spread"] = dict(short=short, long=long)
            detail["dead_server"] = long.pop("dead")

            ctx.say("\n== 4a. web2 crashes; the operator removes its record; long TTL (%d s) =="
                    % LONG_TTL)
            detail["long_ttl"] = damage_run(lab, ctx, LONG_TTL, "remove-record", "long")
            ctx.say("\n== 4b. The same with your dns.yaml ==")
            detail["yours"] = damage_run(lab, ctx, sub.ttl, sub.procedure, "yours",
                                         restore=False)
            ctx.pause(net, STOPS["dead"], gateway=lab.gateway, port=PROXY_PORT, dns1=lab.dns1,
                      removed=(" and its record removed" if sub.procedure == "remove-record"
                               else ""))
        finally:
            lab.stop()
    measured = flatten(detail)
    evidence.write_text(json.dumps(dict(measured, detail=detail), indent=1, default=str))
    say_summary(ctx, measured)
    ctx.say("  (all of it, with every request, in %s)" % evidence.parent)
    return measured


def flatten(d):
    """The measurements as one flat dict: what the guide's table asks for, and the checks use."""
    short, long, dead = d["spread"]["short"], d["spread"]["long"], d["dead_server"]
    m = dict(ttl=d["ttl"], procedure=d["procedure"], bound=BOUND,
             rotation=" ".join(d["rotation"]["first"]), rotates=d["rotation"]["rotates"],
             addresses_per_answer=d["rotation"]["addresses"],
             short_ttl=SHORT_TTL, long_ttl=LONG_TTL, window=WINDOW,
             busiest_share_short=short["max_share"], busiest_share_long=long["max_share"],
             gateway_lookups_short=short["gateway_lookups"],
             gateway_lookups_long=long["gateway_lookups"],
             browser_lookups_short=short["browser_lookups"],
             browser_lookups_long=long["browser_lookups"],
             gateway_keeps_short=short["gateway_keeps"], gateway_keeps_long=long["gateway_keeps"],
             gateway_hold=GATEWAY_HOLD, dead_slow_phones=dead["slow"],
             pcs_requests_short={k: v for k, v in short["table"]["pcs"].items()},
             dead_handed_out=dead["handed_out"], dead_error_share=dead["error_share"])
    for prefix in ("long", "yours"):
        r = d["long_ttl" if prefix == "long" else "yours"]
        m["%s_gateway_cached" % prefix] = " ".join(r["gateway_cached"])
        for key in ("gateway_cached_at", "gateway_keeps", "browser_cached", "browser_cached_at",
                    "detected_after", "removed_after",
                    "window", "damage", "closed", "watched", "still_listed", "errors", "slow"):
            m["%s_%s" % (prefix, key)] = r[key]
    m["worst_case"] = None if m["yours_removed_after"] is None else \
        round(m["yours_removed_after"] + d["ttl"], 2)
    return m


def say_summary(ctx, m):
    ctx.say("\n== What you measured ==")
    ctx.say("  rotation: %s" % m["rotation"])
    for key, ttl in (("short", SHORT_TTL), ("long", LONG_TTL)):
        share = m["busiest_share_%s" % key]
        ctx.say("  TTL %d s: busiest server got %.0f%% (PCs) / %.0f%% (browser) / %.0f%% (phones); "
                "in %.1f s pc3 resolved %d time(s), the gateway %d (it keeps every name %s s)" % (
                    ttl, 100 * share["pcs"], 100 * share["browser"], 100 * share["phones"],
                    WINDOW, m["browser_lookups_%s" % key], m["gateway_lookups_%s" % key],
                    m["gateway_keeps_%s" % key]))
    ctx.say("  web2 dead, DNS unchanged: dns1 handed web2 out first in %.0f%%; PCs' requests "
            "failed %.0f%%" % (100 * m["dead_handed_out"], 100 * m["dead_error_share"]["pcs"]))
    for key, label, ttl, procedure in (("long", "long TTL", LONG_TTL, "remove-record"),
                                       ("yours", "your dns.yaml", m["ttl"], m["procedure"])):
        ctx.say("  %-14s TTL %3d s, %-13s damage window %s" % (
            label, ttl, procedure, "%.1f s" % m["%s_damage" % key] if m["%s_closed" % key]
            else "> %.1f s (still open)" % m["%s_watched" % key]))


# -- checks ---------------------------------------------------------------------------

def _submission(ctx):
    return load_submission(ctx.file("dns.yaml"))


def real_time(lab_seconds):
    """What ``lab_seconds`` stand for in a real service (1 s here = 1 minute)."""
    minutes = lab_seconds
    if minutes < 120:
        return "%g minute%s" % (minutes, "" if minutes == 1 else "s")
    if minutes < 48 * 60:
        return "%g hours" % round(minutes / 60, 1)
    return "%g days" % round(minutes / 1440, 1)


def check_dns_yaml_is_valid(ctx, measured):
    name = "dns.yaml is valid"
    try:
        sub = _submission(ctx)
    except ConfigError as exc:
        return failed(name, str(exc))
    return passed(name, "ttl %d s (lab seconds: %s of a real service), %d record(s), when a "
                  "server dies: %s" % (sub.ttl, real_time(sub.ttl), len(sub.records),
                                       sub.procedure))


check_dns_yaml_is_valid.static = True
# information: the untouched starter is valid, and an invalid file stops the walk-through
# with the same sentence
check_dns_yaml_is_valid.scored = False
# one name per check (redlab.labs.check_name): the file's name has a dot
check_dns_yaml_is_valid.check_name = "dns.yaml is valid"


def check_every_server_gets_users(ctx, measured):
    name = "every server gets users"
    row = measured["pcs_requests_short"]
    total = sum(row.values())
    missing = [s for s in SERVERS if row.get(s, 0) < 0.2 * total]
    if missing:
        return failed(name, "of %d requests from the PCs, %s got %s: give every web server an A "
                      "record in dns.yaml (records)" % (
                          total, ", ".join(missing),
                          ", ".join(str(row.get(s, 0)) for s in missing)), table=row)
    return passed(name, "the PCs' %d requests went %s" % (
        total, ", ".join("%s %d" % (s, row.get(s, 0)) for s in SERVERS)), table=row)


def _yours(measured):
    """The student's damage run, as ``{key: value}`` without the ``yours_`` prefix."""
    r = {k[len("yours_"):]: v for k, v in measured.items() if k.startswith("yours_")}
    r["ttl"] = measured["ttl"]
    return r


def check_dead_server_leaves_DNS(ctx, measured):   # noqa: N802 (named like its report line)
    name = "dead server leaves DNS"
    r = _yours(measured)
    if r["removed_after"] is None:
        return failed(name, "dns1 still handed out web2 %.1f s after it died: DNS round robin has "
                      "no health check and keeps sending users to a dead server; make the "
                      "operator remove its record (when_a_server_dies: remove-record)"
                      % r["watched"], watched=r["watched"])
    return passed(name, "web2's record was removed %.1f s after web2 died (health check saw it "
                  "down at %.1f s)" % (r["removed_after"], r["detected_after"]),
                  removed_after=r["removed_after"])


def check_damage_window_within_the_bound(ctx, measured):
    name = "damage window within the bound"
    r = _yours(measured)
    last = max(r["window"], key=r["window"].get)
    if not r["closed"]:
        failing = [LABELS[g] for g in GROUPS if r["window"][g] >= r["watched"] - 1.0]
        return failed(name, "users still got errors when the lab stopped watching, %.1f s after "
                      "web2 died (bound %.0f s; still failing: %s); %s" % (
                          r["watched"], BOUND, " and ".join(failing) or LABELS[last],
                          "web2's record was never removed" if r["removed_after"] is None else
                          "its record was removed at %.1f s, but caches keep the old answer for "
                          "its TTL (ttl: %d s)" % (r["removed_after"], r["ttl"])),
                      window=r["window"])
    if r["damage"] > BOUND:
        return failed(name, "users got errors for %.1f s after web2 died (bound %.0f s; the last: "
                      "%s); caches kept the answer with web2 for its TTL (ttl: %d s): lower the "
                      "TTL" % (r["damage"], BOUND, LABELS[last], r["ttl"]), window=r["window"])
    return passed(name, "the last error came %.1f s after web2 died (bound %.0f s; %s)" % (
        r["damage"], BOUND, ", ".join("%s %.1f s" % (LABELS[g], r["window"][g]) for g in GROUPS)),
        window=r["window"])


def check_worst_case_within_the_bound(ctx, measured):
    name = "worst case within the bound"
    r = _yours(measured)
    if r["removed_after"] is None:
        return failed(name, "without removing web2's record the damage never ends: the worst case "
                      "is unbounded (when_a_server_dies: keep-record)")
    worst = r["removed_after"] + r["ttl"]
    if worst > BOUND:
        return failed(name, "removal took %.1f s and a cache that took the answer just before it "
                      "keeps web2 for ttl %d s more (%s of a real service): worst case %.1f s > "
                      "bound %.0f s; choose ttl <= %d" % (
                          r["removed_after"], r["ttl"], real_time(r["ttl"]), worst, BOUND,
                          max(0, int(BOUND - r["removed_after"]))), worst=worst)
    return passed(name, "removal %.1f s + ttl %d s = %.1f s <= bound %.0f s"
                  % (r["removed_after"], r["ttl"], worst, BOUND), worst=worst)


CHECKS = [check_dns_yaml_is_valid, check_every_server_gets_users, check_dead_server_leaves_DNS,
          check_damage_window_within_the_bound, check_worst_case_within_the_bound]
