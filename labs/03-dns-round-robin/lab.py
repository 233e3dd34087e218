"""Lab 03: DNS round robin (DNSラウンドロビン) -- load spreading, not redundancy.

The walk-through builds ``topologies/dns_rr.py``: three web servers, an authoritative
BIND (dns1) with one A record per server for ``www.lab.example`` (``rrset-order
cyclic``), PCs that ask dns1 themselves, and phones behind a carrier gateway
(キャリアゲートウェイ): a caching BIND plus Squid, the HTTP proxy every phone goes
through, which keeps a name's answer in its own cache and connects to its addresses in
order.  Real users (``agents.py``) request the page ten times a second each.  It
measures, in one network:

1. the rotation: successive answers from dns1 in rotating order -- and the public
   addresses the design needs: one per server;
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

Times are scaled: one second here stands for a minute of a real service.  The harness
(users, gateway, operator, tables) is :mod:`redlab.scenarios.dns_rr`; the timers and
bounds are in ``lab.yaml``.
"""

import json
import time
from pathlib import Path

from redlab.checks import check, fail, lab_data, ok
from redlab.errors import ConfigError
from redlab.labs import Stop
from redlab.net import Network
from redlab.scenarios import dns_rr as rr

TITLE = "DNS round robin: rotation, caches, and a dead server"
TOPOLOGY = "topologies/dns_rr.py"
AGENTS = Path(__file__).resolve().parent / "agents.py"
DATA = lab_data(__file__)
PROXY = DATA["proxy"]
real_time = rr.real_time

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


def submission(ctx):
    return rr.load_submission(ctx.file("dns.yaml"), DATA["servers"])


# -- the walk-through's steps -------------------------------------------------------

def rotation(lab, ctx):
    """1. Six answers in a row; every address dns1 handed out is one the world must reach."""
    ctx.say("\n== 1. Rotation: dns1 answers www.lab.example with every A record, in turn ==")
    answers = [lab.dig()[0] for _ in range(6)]
    for n, order in enumerate(answers, 1):
        ctx.say("  query %d: %s" % (n, "  ".join("%s (%s)" % (a, lab.name_of(a)) for a in order)))
    rotates = all(b == a[1:] + a[:1] for a, b in zip(answers, answers[1:]))
    firsts = [lab.name_of(a[0]) for a in answers if a]
    ctx.say("  first answer: %s -> %s" % (" ".join(firsts), "rotates by one every query"
                                           if rotates else "does NOT rotate"))
    public, servers = sorted({a for order in answers for a in order}), lab.servers()
    ctx.say("  public addresses this design needs: %d -- the distinct addresses dns1 handed out "
            "in %d answers, %s (%d servers: %s); each a global address on the Internet" % (
                len(public), len(answers), "one per server" if len(public) == len(servers)
                else "not one per server", len(servers), " ".join(servers)))
    return dict(answers=answers, first=firsts, rotates=rotates, addresses=len(set(answers[0])),
                public=public, servers=servers)


def spread(lab, ctx, ttl, then_crash=False):
    """2. The users for ``window`` s with TTL ``ttl``: who served whom.  ``then_crash``:
    they keep running and web2 crashes (step 3, :func:`server_dies`)."""
    lab.set_zone(ttl, lab.records)
    lab.flush_gateway()
    start = lab.start_users("spread-ttl%d" % ttl)
    held = lab.gateway_cache()      # Squid's entry, asked right after the phones' first requests
    lab.wait_window(start, DATA["window"])
    end = start + DATA["window"]
    table = rr.share_table(lab.samples(start, end))
    lookups = lab.lookups(until=end)   # the gateway started empty: all served the window
    # pc3's first lookup came just before ``start``, when it sent its first request
    browser = sum(1 for s in lab.samples(0.0, end) if s["group"] == "browser" and s["resolved"])
    result = dict(ttl=ttl, table=table, gateway_lookups=len(lookups), browser_lookups=browser,
                  gateway_keeps=held["ttl"] if held else None,
                  gateway_order=[lab.name_of(a) for a in held["addresses"]] if held else [],
                  max_share={g: round(rr.max_share(table[g]), 2) for g in rr.GROUPS})
    rr.say_spread(ctx, result, DATA["window"], lab.servers())
    if then_crash:
        order = [lab.dig(lab.gateway, "phone1")[0] for _ in range(3)]
        ctx.say("  (the gateway's own BIND rotates its cached answer: %s for three digs -- it is "
                "Squid, keeping one answer and trying its addresses in order, that sends every "
                "phone to one server)" % " / ".join(lab.name_of(o[0]) for o in order if o))
        result["dead"] = server_dies(lab, ctx, ttl)
    lab.stop_users()
    return result


def server_dies(lab, ctx, ttl):
    """3. web2 crashes under the running users; DNS is left as it is for ``dead_window`` s."""
    fault = lab.crash(DATA["dead"])
    try:
        lab.wait_window(fault.at, DATA["dead_window"])
        samples = lab.samples(fault.at, fault.at + DATA["dead_window"])
    finally:
        fault.undo()
    direct = [s for s in samples if s["group"] == "pcs"]
    handed = [s for s in direct if s["address"] == lab.address_of(DATA["dead"])]
    result = dict(handed_out=round(len(handed) / len(direct), 2) if direct else 0.0,
                  error_share={g: round(rr.error_share(samples, g), 2) for g in rr.GROUPS},
                  requests={g: sum(s["group"] == g for s in samples) for g in rr.GROUPS},
                  what_failed={g: rr.failure_kinds(samples, g) for g in rr.GROUPS},
                  slow=rr.slow_answers(samples, DATA["slow"]), seconds=DATA["dead_window"])
    rr.say_dead(ctx, result, ttl, DATA)
    return result


def damage_run(lab, ctx, ttl, procedure, label, restore=True):
    """4. web2 dies right after the gateway's Squid and pc3's browser cached an answer that
    starts with it; the operator acts (``procedure``).  Watched until the damage is over
    (:meth:`~redlab.scenarios.dns_rr.DnsLab.watch_until_over`) or ``cap`` s -- for the long
    TTL until ``cap_after_ttl`` after it ran out (a browser that resolved just before the
    crash fails for the whole TTL, then needs ``streak`` good answers)."""
    dead_ip, cap = lab.address_of(DATA["dead"]), max(DATA["cap"], min(ttl, DATA["long_ttl"])
                                                      + DATA["cap_after_ttl"])
    lab.set_zone(ttl, lab.records)
    lab.spawn_users("damage-%s" % label)       # started, each waiting for its go
    pinned = lab.steer_gateway_to(dead_ip)
    lab.steer_browser_to(dead_ip, "damage-%s" % label)
    start = lab.go()
    fault = lab.crash(DATA["dead"])
    r = dict(ttl=ttl, procedure=procedure, cap=cap, detected_after=None, removed_after=None,
             gateway_cached=[lab.name_of(a) for a in pinned["addresses"]] if pinned else [],
             # when the gateway took its answer, and Squid's own count of the seconds it
             # will keep it, whatever the TTL
             gateway_cached_at=round(pinned["t"] - fault.at, 2) if pinned else None,
             gateway_keeps=pinned["ttl"] if pinned else None,
             browser_cached=lab.name_of(lab.browser_cached["address"]),
             browser_cached_at=round(lab.browser_cached["t"] - fault.at, 2))
    try:
        lab.operate(r, dead_ip, procedure, fault, fault.at + cap)
        r["closed"], r["still_listed"] = lab.watch_until_over(dead_ip, fault.at + cap,
                                                              DATA["streak"])
        watched = time.time()
        r["watched"] = round(watched - fault.at, 2)
        samples = [s for s in lab.stop_users() if start <= s["t"] < watched]
    finally:
        if restore:
            fault.undo()
            lab.set_zone(ttl, lab.records)
    after = [s for s in samples if s["t"] >= fault.at]
    r["window"] = rr.damage(samples, fault.at)
    r["damage"] = max(r["window"].values())
    r["errors"] = {g: round(rr.error_share(after, g), 2) for g in rr.GROUPS}
    r["slow"] = rr.slow_answers(after, DATA["slow"])
    rr.say_damage(ctx, r, DATA)
    return r


def walkthrough(ctx):
    from topologies.dns_rr import DNSRoundRobinTopo
    sub = submission(ctx)
    ctx.say("Your dns.yaml: ttl %d s, records %s, when a server dies: %s" % (
        sub.ttl, ", ".join(sub.records), sub.procedure))
    ctx.say("The service's promise (scaled, 1 s here = 1 min): after a server dies, users see "
            "errors for at most %.0f s." % DATA["bound"])
    topo = DNSRoundRobinTopo(ttl=DATA["short_ttl"], records=[("www", a) for a in sub.records],
                             proxy={k: PROXY[k] for k in ("port", "negative_dns_ttl",
                                                          "connect_timeout")})
    detail = dict(ttl=sub.ttl, procedure=sub.procedure, records=sub.records)
    with Network(topo, name="lab03-dns-rr", run_folder=ctx.folder("dns-rr")) as net:
        lab = rr.DnsLab(net, sub.records, DATA, AGENTS)
        evidence = net.run.path / "measured.json"
        try:
            detail["rotation"] = rotation(lab, ctx)
            ctx.pause(net, STOPS["rotation"], dns1=lab.dns1, gateway=lab.gateway,
                      port=PROXY["port"])

            ctx.say("\n== 2. Spread: 2 PCs ask dns1 every time, pc3 keeps its answer for the TTL "
                    "(browser cache), 3 phones go through the carrier gateway ==")
            short = spread(lab, ctx, DATA["short_ttl"])
            long = spread(lab, ctx, DATA["long_ttl"], then_crash=True)
            detail["spread"] = dict(short=short, long=long)
            detail["dead_server"] = long.pop("dead")

            ctx.say("\n== 4a. web2 crashes; the operator removes its record; long TTL (%d s) =="
                    % DATA["long_ttl"])
            detail["long_ttl"] = damage_run(lab, ctx, DATA["long_ttl"], "remove-record", "long")
            ctx.say("\n== 4b. The same with your dns.yaml ==")
            detail["yours"] = damage_run(lab, ctx, sub.ttl, sub.procedure, "yours", restore=False)
            ctx.pause(net, STOPS["dead"], gateway=lab.gateway, port=PROXY["port"], dns1=lab.dns1,
                      removed=(" and its record removed" if sub.procedure == "remove-record"
                               else ""))
        finally:
            lab.stop()
    measured = rr.flatten(detail, DATA)
    evidence.write_text(json.dumps(dict(measured, detail=detail), indent=1, default=str))
    rr.say_summary(ctx, measured)
    ctx.say("  (all of it, with every request, in %s)" % evidence.parent)
    return measured


# -- checks ---------------------------------------------------------------------------

def yours(m):
    """The student's damage run (4b), as ``{key: value}`` without the ``yours_`` prefix."""
    return dict({k[len("yours_"):]: v for k, v in m.items() if k.startswith("yours_")},
                ttl=m["ttl"])


# information: the untouched starter is valid, and an invalid file stops the walk-through
# with the same sentence
@check("dns.yaml is valid", static=True, scored=False)
def check_dns_yaml_is_valid(ctx, m):
    try:
        sub = submission(ctx)
    except ConfigError as exc:
        return fail(str(exc))
    return ok("ttl %d s (lab seconds: %s of a real service), %d record(s), when a server dies: "
              "%s" % (sub.ttl, real_time(sub.ttl), len(sub.records), sub.procedure))


@check("every server gets users")
def check_every_server_gets_users(ctx, m):
    row, servers = m["pcs_requests_short"], ["web%d" % n for n in range(1, DATA["servers"] + 1)]
    total = sum(row.values())
    missing = [s for s in servers if row.get(s, 0) < DATA["min_share"] * total]
    if missing:
        return fail("of %d requests from the PCs, %s got %s: give every web server an A record in "
                    "dns.yaml (records)" % (total, ", ".join(missing),
                                            ", ".join(str(row.get(s, 0)) for s in missing)),
                    table=row)
    return ok("the PCs' %d requests went %s" % (
        total, ", ".join("%s %d" % (s, row.get(s, 0)) for s in servers)), table=row)


@check("dead server leaves DNS")
def check_dead_server_leaves_dns(ctx, m):
    r = yours(m)
    if r["removed_after"] is None:
        return fail("dns1 still handed out web2 %.1f s after it died: DNS round robin has no "
                    "health check and keeps sending users to a dead server; make the operator "
                    "remove its record (when_a_server_dies: remove-record)" % r["watched"],
                    watched=r["watched"])
    return ok("web2's record was removed %.1f s after web2 died (health check saw it down at "
              "%.1f s)" % (r["removed_after"], r["detected_after"]),
              removed_after=r["removed_after"])


@check("damage window within the bound")
def check_damage_window_within_the_bound(ctx, m):
    r, bound = yours(m), DATA["bound"]
    last = rr.LABELS[max(r["window"], key=r["window"].get)]
    if not r["closed"]:
        failing = [rr.LABELS[g] for g in rr.GROUPS if r["window"][g] >= r["watched"] - 1.0]
        return fail("users still got errors when the lab stopped watching, %.1f s after web2 "
                    "died (bound %.0f s; still failing: %s); %s" % (
                        r["watched"], bound, " and ".join(failing) or last,
                        "web2's record was never removed" if r["removed_after"] is None else
                        "its record was removed at %.1f s, but caches keep the old answer for its "
                        "TTL (ttl: %d s)" % (r["removed_after"], r["ttl"])), window=r["window"])
    if r["damage"] > bound:
        return fail("users got errors for %.1f s after web2 died (bound %.0f s; the last: %s); "
                    "caches kept the answer with web2 for its TTL (ttl: %d s): lower the TTL"
                    % (r["damage"], bound, last, r["ttl"]), window=r["window"])
    return ok("the last error came %.1f s after web2 died (bound %.0f s; %s)" % (
        r["damage"], bound, ", ".join("%s %.1f s" % (rr.LABELS[g], r["window"][g])
                                      for g in rr.GROUPS)), window=r["window"])


@check("worst case within the bound")
def check_worst_case_within_the_bound(ctx, m):
    r, bound = yours(m), DATA["bound"]
    if r["removed_after"] is None:
        return fail("without removing web2's record the damage never ends: the worst case is "
                    "unbounded (when_a_server_dies: keep-record)")
    worst = r["removed_after"] + r["ttl"]
    if worst > bound:
        return fail("removal took %.1f s and a cache that took the answer just before it keeps "
                    "web2 for ttl %d s more (%s of a real service): worst case %.1f s > bound "
                    "%.0f s; choose ttl <= %d" % (
                        r["removed_after"], r["ttl"], real_time(r["ttl"]), worst, bound,
                        max(0, int(bound - r["removed_after"]))), worst=worst)
    return ok("removal %.1f s + ttl %d s = %.1f s <= bound %.0f s"
              % (r["removed_after"], r["ttl"], worst, bound), worst=worst)


CHECKS = [check_dns_yaml_is_valid, check_every_server_gets_users, check_dead_server_leaves_dns,
          check_damage_window_within_the_bound, check_worst_case_within_the_bound]
