"""DNS round robin with a carrier gateway: the harness behind lab 03.

``topologies/dns_rr.py`` builds the network (three web servers, dns1 authoritative for
``www.lab.example``, PCs that ask dns1 and phones behind a carrier gateway that runs a
caching BIND and Squid).  This module drives it:

- :func:`load_submission` reads the student's ``dns.yaml`` (one sentence per mistake);
- :class:`DnsLab` changes dns1's zone, empties and steers the gateway's caches, starts
  the users (the lab's ``agents.py``, one per host) and plays the operator (a health
  check, then the record removed);
- the measurement functions turn the users' samples into shares, error shares and
  damage windows; the ``say_*`` functions print them the way the lab's guide quotes them.

Times are lab seconds (1 s here stands for 1 minute of a real service); the timers come
from the lab's ``lab.yaml`` (``settings``), not from here.
"""

import ipaddress
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from controllers.validation import bounded_safe_load
from redlab import addressing as ap
from redlab.agent import HostAgent
from redlab.errors import ConfigError, WaitTimeout
from redlab.faults import host_crash
from redlab.observe import dig
from redlab.probe import failure_kind
from redlab.wait import wait_until

NAME = "www.lab.example"       # the service's name: zone lab.example, A records "www"
PROCEDURES = ("keep-record", "remove-record")
# (host, how it finds the server, its group): see the lab's agents.py for the modes
USERS = (("pc1", "direct", "pcs"), ("pc2", "direct", "pcs"), ("pc3", "browser", "browser"),
         ("phone1", "proxy", "phones"), ("phone2", "proxy", "phones"),
         ("phone3", "proxy", "phones"))
GROUPS = ("pcs", "browser", "phones")
LABELS = {"pcs": "PCs (no cache)", "browser": "pc3 (browser cache)",
          "phones": "phones (gateway)"}


def web_servers(count):
    """``{address: name}`` of the topology's web servers (the address plan's)."""
    return {ap.web(n): "web%d" % n for n in range(1, count + 1)}


# -- the student's file -----------------------------------------------------------------

@dataclass
class Submission:
    ttl: int
    records: list             # addresses, in the order written
    procedure: str


def load_submission(path, servers=3):
    """Read and validate ``dns.yaml``; a ConfigError names the field to fix."""
    try:
        data = bounded_safe_load(Path(path).read_text())
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
    web = web_servers(servers)
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
            raise ConfigError("dns.yaml: records: %s (%s) is listed twice"
                              % (address, web[address]))
        addresses.append(address)
    procedure = data.get("when_a_server_dies")
    if procedure not in PROCEDURES:
        raise ConfigError("dns.yaml: when_a_server_dies must be one of %s, not %r"
                          % (", ".join(PROCEDURES), procedure))
    return Submission(ttl=ttl, records=addresses, procedure=procedure)


def real_time(lab_seconds):
    """What ``lab_seconds`` stand for in a real service (1 s here = 1 minute)."""
    minutes = lab_seconds
    if minutes < 120:
        return "%g minute%s" % (minutes, "" if minutes == 1 else "s")
    if minutes < 48 * 60:
        return "%g hours" % round(minutes / 60, 1)
    return "%g days" % round(minutes / 1440, 1)


# -- the users: the lab's agents.py inside the hosts ------------------------------------

class User(HostAgent):
    """One user (``agents.py user``) running inside a host, recorded in the run registry."""

    what = "lab 03 user"

    def __init__(self, host, script, args, out, group, mode, go):
        super().__init__(host, out)
        self.script = script
        self.group, self.mode = group, mode
        self.go = go                  # the file whose creation lets it start requesting
        self.ready = go.with_name(go.name + ".ready")
        for path in (out, go, self.ready):
            if path.exists():
                path.unlink()
        self.spawn(list(args) + ["--out", out, "--go", go])

    def check_alive(self):
        return super().check_alive(failed_only=True)

    def stop(self):
        super().stop(3)
        return self.lines()


# -- the network, driven --------------------------------------------------------------

class DnsLab:
    """The running lab: dns1's zone, the carrier gateway's caches, the users, the operator.

    ``records``: the submission's addresses; ``settings``: the lab's ``lab.yaml``;
    ``agents``: the lab's ``agents.py`` (the users' program)."""

    def __init__(self, net, records, settings, agents):
        self.net = net
        self.records = list(records)
        self.s = settings
        self.agents = Path(agents)
        self.names = web_servers(settings["servers"])
        self.dns1 = ap.dns(1)
        self.gateway = ap.router(ap.CLIENTS)  # the gateway's carrier-side address
        self.flushed = 0.0
        self.users = []
        self.browser_cached = None

    def name_of(self, address):
        return self.names.get(address, address)

    def address_of(self, name):
        return next(a for a, n in self.names.items() if n == name)

    def servers(self):
        """The network's web servers, by name (hosts whose role is ``web``)."""
        return sorted(h.name for h in self.net.hosts if getattr(h, "role", None) == "web")

    def dig(self, server=None, host="pc1"):
        """``(addresses, ttl)`` of the name as ``server`` (dns1) answers ``host`` now."""
        return dig(self.net[host], server or self.dns1, NAME)

    # -- DNS ---------------------------------------------------------------------------
    def set_zone(self, ttl, addresses):
        """Rewrite dns1's zone and reload it (SIGHUP); wait until it answers with it."""
        named = self.net["dns1"].daemons["named"]
        named.ttl = ttl
        named.records = [("www", a) for a in addresses]
        named.reload()

        def served():
            got, got_ttl = self.dig()
            return sorted(got) == sorted(addresses) and got_ttl in (ttl, None) and \
                (got_ttl is not None or not addresses), (got, got_ttl)
        wait_until(served, 10, "dns1 to answer with TTL %d and %s" % (ttl, addresses))

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
        return self.net["carriergw"].daemons["squid"].ipcache(NAME)

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
                                   % (self.gateway, self.s["proxy"]["port"], NAME))
            held, lookups = self.gateway_cache(), self.lookups()
            if held and lookups:
                held["t"] = lookups[0]["t"]
                if held["addresses"][0] == address:
                    break
        return held

    def _turn_dns1_to(self, address):
        """Ask dns1 until its *next* answer (cyclic: one step on) starts with ``address``."""
        for _ in range(len(self.records) + 1):
            order, _ttl = self.dig()
            if len(order) > 1 and order[1] == address:
                return

    # -- users -------------------------------------------------------------------------
    def spawn_users(self, label):
        """Start every user's program, each waiting for its go (:meth:`go`).

        A program's start-up takes a second or more under load: it is over before the
        first request, so that nothing slow comes between the caches' answers the lab
        arranges (:meth:`steer_gateway_to`, :meth:`steer_browser_to`) and the crash."""
        self.users = [self._spawn(host, mode, group, label) for host, mode, group in USERS]
        self.browser_cached = None
        self._wait_ready(self.users)

    def _wait_ready(self, users):
        def ready():
            for user in users:
                user.check_alive()
            waiting = [u.host.name for u in users if not u.ready.exists()]
            return not waiting, "%s still starting" % ", ".join(waiting)
        wait_until(ready, 20, "every user's program to start")

    def start_users(self, label):
        """Every user, requesting: the time every one had sent a request."""
        self.spawn_users(label)
        return self.go()

    def go(self):
        """Let every waiting user go; the time every one had sent a request."""
        for user in self.users:
            user.go.touch()
        wait_until(self._all_users_answered, 10, "every user to have sent a request")
        return time.time()

    def steer_browser_to(self, address, label, attempts=3):
        """The worst case, on purpose, as for the gateway: pc3's browser caches an answer
        that starts with ``address``: dns1 is turned until its next answer does and pc3
        alone goes (nobody else asks dns1 meanwhile).  ``browser_cached``: when, and what."""
        user = next(u for u in self.users if u.mode == "browser")
        for _ in range(attempts):
            self._turn_dns1_to(address)
            user.go.touch()
            wait_until(lambda: (bool(user.lines()), user.check_alive()), 10,
                       "%s's first request" % user.host.name)
            first = user.lines()[0]
            if first["address"] == address:
                break
            user.terminate()               # a wrong answer is cached: a new browser
            user.stop()
            self.users[self.users.index(user)] = user = self._spawn(
                user.host.name, user.mode, user.group, label)
            self._wait_ready([user])
        # cached from when the answer arrived, not when the request began (its lookup can
        # take a second on a loaded machine): the TTL runs from there
        self.browser_cached = dict(t=first.get("resolved_at", first["t"]),
                                   address=first["address"])
        return self.browser_cached

    def _spawn(self, host, mode, group, label):
        node = self.net[host]
        args = ["user", "--mode", mode, "--interval", self.s["interval"], "--max-seconds", 60]
        if mode == "proxy":
            proxy = self.s["proxy"]
            # Squid waits connect_timeout for a dead server before it tries the next one
            args += ["--proxy", "%s:%d" % (self.gateway, proxy["port"]),
                     "--timeout", proxy["patience"]]
        else:
            args += ["--resolver", self.dns1, "--timeout", self.s["user_timeout"]]
        return User(node, self.agents, args, node.run.file(host, "%s.jsonl" % label), group,
                    mode, node.run.file(host, "%s.go" % label))

    def _all_users_answered(self):
        for user in self.users:
            user.check_alive()
        waiting = [u.host.name for u in self.users if not u.lines()]
        return not waiting, "no request yet from %s" % ", ".join(waiting)

    def wait_window(self, start, seconds):
        """Let the users run for ``seconds`` after ``start`` (a measurement window)."""
        def done():
            for user in self.users:
                user.check_alive()
            ends = [u.lines()[-1]["t"] for u in self.users if u.lines()]
            return min(ends) >= start + seconds, "last requests at %s" % ends
        wait_until(done, seconds + 10, "%.1f s of traffic from every user" % seconds)

    def samples(self, since, until):
        """The running users' requests sent in ``[since, until)``, with host and group."""
        return [dict(s, host=u.host.name, group=u.group) for u in self.users
                for s in u.lines() if since <= s["t"] < until]

    def streaks(self):
        """Each running user's good answers in a row, up to its last request."""
        streaks = {}
        for user in self.users:
            user.check_alive()
            streak = 0
            for s in user.lines():
                streak = streak + 1 if s["ok"] else 0
            streaks[user.host.name] = streak
        return streaks

    def stop_users(self):
        """Stop every user (all at once: each may have a request in flight); their samples."""
        for user in self.users:
            user.terminate()
        samples = []
        for user in self.users:
            for s in user.stop():
                s["host"], s["group"] = user.host.name, user.group
                samples.append(s)
        self.users = []
        return samples

    def stop(self):
        self.stop_users()

    # -- the server dies; the operator -------------------------------------------------
    def crash(self, name):
        """``name`` crashes (:func:`redlab.faults.host_crash`): the Fault, to undo."""
        return host_crash(self.net, name)

    def health_check_until_dead(self, address, deadline):
        """The operator's HTTP check of ``address`` from dns1 until it fails ``fall`` times."""
        health, fails = self.s["health"], [0]

        def dead():
            code = self.net["dns1"].cmd("curl -s -o /dev/null -m %s -w '%%{http_code}' http://%s/"
                                        % (health["timeout"], address)).strip()
            fails[0] = fails[0] + 1 if code != "200" else 0
            return fails[0] >= health["fall"], "HTTP %s, %d failure(s) in a row" % (code, fails[0])
        wait_until(dead, max(0.5, deadline - time.time()), "the health check to see %s down"
                   % self.name_of(address), interval=health["interval"])
        return time.time()

    def remove_record(self, address, ttl):
        """The operator deletes ``address``'s A record and reloads dns1: when it answers so."""
        self.set_zone(ttl, [a for a in self.records if a != address])
        return time.time()

    def operate(self, result, address, procedure, fault, deadline):
        """The operator's procedure after ``fault``: the health check notices; with
        ``remove-record`` the record goes.  Fills ``detected_after``/``removed_after``."""
        try:
            detected = self.health_check_until_dead(address, deadline)
            result["detected_after"] = round(detected - fault.at, 2)
            if procedure == "remove-record" and address in self.records:
                result["removed_after"] = round(self.remove_record(address, result["ttl"])
                                                - fault.at, 2)
        except WaitTimeout:
            pass

    def watch_until_over(self, address, deadline, streak):
        """Until dns1 no longer lists ``address`` and every user has had ``streak`` good
        answers in a row, or ``deadline``: ``(closed, still listed)``."""
        listed = [True]

        def over():
            listed[0] = address in self.dig()[0]
            streaks = self.streaks()
            return (not listed[0] and min(streaks.values()) >= streak,
                    "dns1 lists %s: %s, good answers in a row: %s"
                    % (self.name_of(address), listed[0], streaks))
        try:
            wait_until(over, max(0.5, deadline - time.time()), "the damage to end",
                       interval=0.1)
            return True, listed[0]
        except WaitTimeout:
            return False, listed[0]


# -- measurements ---------------------------------------------------------------------

def share_table(samples):
    """{group: {server or "error": count}} from user samples."""
    table = {g: {} for g in GROUPS}
    for s in samples:
        key = s["server"] if s["ok"] else "error"
        row = table[s["group"]]
        row[key] = row.get(key, 0) + 1
    return table


def max_share(row):
    """The busiest server's share of a group's good answers."""
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


def slow_answers(samples, slow, group="phones"):
    """The good answers that took ``slow`` s or more: Squid waited for a dead server."""
    return sorted(round(s["end"] - s["t"], 2) for s in samples
                  if s["group"] == group and s["ok"] and s["end"] - s["t"] >= slow)


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


def flatten(d, settings):
    """The walk-through's ``detail`` as one flat dict (``measured.json``'s keys): what the
    guide's table asks for, and what the checks use."""
    short, long, dead, rot = d["spread"]["short"], d["spread"]["long"], d["dead_server"], \
        d["rotation"]
    m = dict(ttl=d["ttl"], procedure=d["procedure"], bound=settings["bound"],
             rotation=" ".join(rot["first"]), rotates=rot["rotates"],
             addresses_per_answer=rot["addresses"], public_addresses=len(rot["public"]),
             servers=len(rot["servers"]), short_ttl=settings["short_ttl"],
             long_ttl=settings["long_ttl"], window=settings["window"],
             busiest_share_short=short["max_share"], busiest_share_long=long["max_share"],
             gateway_lookups_short=short["gateway_lookups"],
             gateway_lookups_long=long["gateway_lookups"],
             browser_lookups_short=short["browser_lookups"],
             browser_lookups_long=long["browser_lookups"],
             gateway_keeps_short=short["gateway_keeps"], gateway_keeps_long=long["gateway_keeps"],
             gateway_hold=settings["proxy"]["negative_dns_ttl"], dead_slow_phones=dead["slow"],
             pcs_requests_short=dict(short["table"]["pcs"]),
             dead_handed_out=dead["handed_out"], dead_error_share=dead["error_share"])
    for prefix, run in (("long", d["long_ttl"]), ("yours", d["yours"])):
        m["%s_gateway_cached" % prefix] = " ".join(run["gateway_cached"])
        for key in ("gateway_cached_at", "gateway_keeps", "browser_cached", "browser_cached_at",
                    "detected_after", "removed_after",
                    "window", "damage", "closed", "watched", "still_listed", "errors", "slow"):
            m["%s_%s" % (prefix, key)] = run[key]
    m["worst_case"] = None if m["yours_removed_after"] is None else \
        round(m["yours_removed_after"] + d["ttl"], 2)
    return m


# -- narration: what the guide quotes ---------------------------------------------------

def format_table(table, title, servers):
    cols = list(servers) + ["error"]
    lines = [title, "  %-20s %s   requests" % ("", " ".join("%6s" % c for c in cols))]
    for group, row in table.items():
        total = sum(row.values())
        if not total:
            continue
        lines.append("  %-20s %s   %4d" % (LABELS[group], " ".join(
            "%5.0f%%" % (100.0 * row.get(c, 0) / total) for c in cols), total))
    return "\n".join(lines)


def say_spread(ctx, r, window, servers):
    """Step 2: one TTL's table, and how often each cache asked."""
    ctx.say(format_table(r["table"], "\n  TTL %d s, %.1f s of traffic:" % (r["ttl"], window),
                         servers))
    ctx.say("  pc3's browser cache resolved the name %d time(s); the carrier gateway's Squid %d "
            "time(s)%s" % (r["browser_lookups"], r["gateway_lookups"], (
                ", and right after its first lookup it meant to keep %s for %d s more (TTL %d s)"
                % (" ".join(r["gateway_order"]), r["gateway_keeps"], r["ttl"]))
                if r["gateway_order"] else ""))


def say_slow(ctx, slow, least, connect_timeout):
    if slow:
        ctx.say("  the phones got the page, but %d answer(s) took %.1f-%.1f s: Squid tried web2 "
                "first and waited for it (connect_timeout %d s), then tried the next address of "
                "its answer and marked web2 bad -- a proxy that retries hides a dead server from "
                "its users, DNS does not" % (len(slow), slow[0], slow[-1], connect_timeout))
    else:
        ctx.say("  no phone waited more than %.1f s for an answer" % least)


def say_dead(ctx, r, ttl, settings):
    """Step 3: web2 dead, DNS unchanged."""
    ctx.say("\n== 3. web2 crashes; nobody touches DNS (%.1f s, TTL %d s) ==" % (r["seconds"], ttl))
    ctx.say("  dns1 still put web2 first in %.0f%% of the PCs' answers: DNS does not know "
            "web2 is dead" % (100 * r["handed_out"]))
    for g in GROUPS:
        ctx.say("  %-20s %3.0f%% of %d requests failed" % (
            LABELS[g], 100 * r["error_share"][g], r["requests"][g]))
    ctx.say("  (the PCs pick a server per request: about one in three fails. pc3's browser cache "
            "is all or nothing while one answer lasts: it fails throughout if it starts with web2)")
    ctx.say("  what those users saw: %s" % "; ".join(
        "%s: %s" % (LABELS[g], ", ".join("%d x %s" % (n, kind) for kind, n in
                                         sorted(r["what_failed"][g].items())) or "no error")
        for g in GROUPS))
    say_slow(ctx, r["slow"], settings["slow"], settings["proxy"]["connect_timeout"])


def say_damage(ctx, r, settings):
    """Step 4: one damage run, from the caches' state at the crash to its window."""
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
    say_slow(ctx, r["slow"], settings["slow"], settings["proxy"]["connect_timeout"])
    if r["closed"]:
        ctx.say("  damage window: %.1f s (the last user error after the crash)" % r["damage"])
    else:
        ctx.say("  damage window: still open when the lab stopped watching at %.1f s%s"
                % (r["watched"], " -- dns1 still hands out web2" if r["still_listed"] else ""))


def say_summary(ctx, m):
    """The end of the walk-through: what the guide's table asks for."""
    ctx.say("\n== What you measured ==")
    ctx.say("  rotation: %s" % m["rotation"])
    ctx.say("  public addresses: %d for %d servers" % (m["public_addresses"], m["servers"]))
    for key in ("short", "long"):
        share = m["busiest_share_%s" % key]
        ctx.say("  TTL %d s: busiest server got %.0f%% (PCs) / %.0f%% (browser) / %.0f%% (phones); "
                "in %.1f s pc3 resolved %d time(s), the gateway %d (it keeps every name %s s)" % (
                    m["%s_ttl" % key], 100 * share["pcs"], 100 * share["browser"],
                    100 * share["phones"], m["window"], m["browser_lookups_%s" % key],
                    m["gateway_lookups_%s" % key], m["gateway_keeps_%s" % key]))
    ctx.say("  web2 dead, DNS unchanged: dns1 handed web2 out first in %.0f%%; PCs' requests "
            "failed %.0f%%" % (100 * m["dead_handed_out"], 100 * m["dead_error_share"]["pcs"]))
    for key, label, ttl, procedure in (("long", "long TTL", m["long_ttl"], "remove-record"),
                                       ("yours", "your dns.yaml", m["ttl"], m["procedure"])):
        ctx.say("  %-14s TTL %3d s, %-13s damage window %s" % (
            label, ttl, procedure, "%.1f s" % m["%s_damage" % key] if m["%s_closed" % key]
            else "> %.1f s (still open)" % m["%s_watched" % key]))
