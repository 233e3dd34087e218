"""Lab 08: Maintenance without loss.

The notes' third step of redundancy is an operable switch-over ("障害が発生した際に予備の
機材に切り替えられる運用体制を整備する").  Here the student writes it as a procedure: take
web1 out of the load balancer, let its connections finish, upgrade it, wait for its health
check, and return it, while client1 requests the VIP every 50 ms and downloads a file that
web1 is serving when the procedure starts.

The student's ``procedure.yaml`` is data (steps from the operator's short list, each with an
optional ``when:`` on web1's ActiveConn or health; :mod:`redlab.scenarios.maintenance`);
the lab builds the network, the probe and the download itself, so a procedure cannot
change what is measured.  Graded: no request lost, and web1 back in the pool serving the
new version.
"""

from controllers.service import parse_service
from redlab.checks import check, fail, lab_data, ok
from redlab.errors import ConfigError
from redlab.labs import Stop
from redlab.scenarios.maintenance import Maintenance, describe, load_procedure

TITLE = "Maintenance without loss"
TOPOLOGY = "topologies/service_lan.py"
DATA = lab_data(__file__)          # lab.yaml: the service, the download, the bounds
SERVER, VERSION = DATA["server"], DATA["version"]

# the --cli stops: what to look at, and the commands to type at mininet>, one per line
STOPS = {
    "before": Stop("the service before the maintenance: every server answers version 1 "
                   "through the VIP (rr: one after the other)", [
                       "client1 curl -s -m 2 http://%(vip)s/",
                       "client1 curl -s -m 2 http://%(vip)s/"]),
    "after": Stop("after your procedure: %(server)s is back in the pool; what does it serve?", [
        "client1 curl -s -m 2 http://%(ip)s/",
        "client1 curl -s -m 2 http://%(vip)s/"]),
}


def walkthrough(ctx):
    """The service, a download held on web1, the probe; then the student's steps, each
    printed with web1's state just before it; then what the clients saw."""
    steps = load_procedure(ctx.file("procedure.yaml"))
    service = parse_service(DATA["service"])
    download = DATA["download"]
    ctx.say("The service: VIP %s:%d, %s over %s; health check %s every %g s (rise %d, "
            "fall %d)." % (service.vip, service.port, service.lb_algo,
                           ", ".join(s.name for s in service.real_servers),
                           service.health_check.type, service.health_check.interval,
                           service.health_check.rise, service.health_check.fall))
    ctx.say("Your procedure upgrades %s to %s: %s" % (SERVER, VERSION,
                                                      "; ".join(map(describe, steps))))
    with Maintenance(service, SERVER, VERSION, ctx.folder("lan"),
                     upgrade_seconds=DATA["upgrade_seconds"]) as m:
        ip = m.lab[SERVER].IP()
        ctx.pause(m.lab.network, STOPS["before"], vip=service.vip)
        m.hold_download(download["size"], download["rate"], download["buffers"],
                        download["size"] / download["rate"] + DATA["when_timeout"])
        ctx.say("client1 downloads %d kB at %d kB/s through the VIP: it landed on %s, which "
                "holds the connection (ActiveConn %d) for about %.0f s." % (
                    download["size"] // 1000, download["rate"] // 1000, SERVER,
                    m.state()["active"], download["size"] / download["rate"]))
        m.start_probe(**DATA["probe"])
        ctx.say("client1 requests the VIP every %g s. Your procedure runs now:"
                % DATA["probe"]["interval"])
        m.run(steps, DATA["when_timeout"], say=ctx.say)
        result = m.finish(DATA["after_answers"], DATA["after_timeout"])
        ctx.say(summary(result, download["size"]))
        ctx.pause(m.lab.network, STOPS["after"], server=SERVER, ip=ip, vip=service.vip)
    return dict(result, size=download["size"])


def summary(m, size):
    """What the clients saw, in three lines."""
    d = m["download"]
    got = "complete" if d["bytes"] == size else "cut after %s of %d bytes (%s)" % (
        d["bytes"], size, d["error"] or "curl exit %s" % d["exit"])
    return "\n".join([
        "probe: %d requests during and after the procedure, %d failed" % (
            m["sent"], len(m["failed"])),
        "download from %s: %s, %.1f s" % (d["server"], got, d["seconds"]),
        "after the last step: %s answered %d requests: %s; %s itself says %r" % (
            SERVER, sum(1 for s, _ in m["after"] if s == SERVER), sorted(
                {b for s, b in m["after"] if s == SERVER}) or "none", SERVER, m["page"])])


def step_that_stopped_nginx(m):
    """The step that took nginx down on the server (a stop, while it ran), or None."""
    return next((s for s in m["steps"] if s["do"] == "stop" and s["before"]["nginx"] ==
                 "running"), None)


def why_lost(m):
    """What in the procedure lost the requests: the state web1 was in when nginx stopped."""
    stop = step_that_stopped_nginx(m)
    if stop is None:
        return "nginx on %s was never stopped: look at the failures' times" % SERVER
    state = stop["before"]
    if state["weight"] > 0:
        return ("steps[%d] stopped nginx while %s was still in the pool (weight %d): "
                "drain it first (do: drain), so that no new connection is sent there"
                % (stop["n"], SERVER, state["weight"]))
    if state["active"] > 0:
        return ("steps[%d] stopped nginx while %s still carried %d established "
                "connection(s) (ActiveConn %d): wait for them to finish first (when: "
                "{active: 0} on the stop step)" % (stop["n"], SERVER, state["active"],
                                                   state["active"]))
    return "nginx stopped at +%.2f s with %s drained and idle" % (stop["t"], SERVER)


@check("procedure.yaml is valid", static=True, scored=False)
def procedure_is_valid(ctx, m):
    try:
        steps = load_procedure(ctx.file("procedure.yaml"))
    except ConfigError as exc:
        return fail(str(exc))
    return ok("%d steps: %s" % (len(steps), "; ".join(map(describe, steps))))


@check("no request lost")
def no_request_lost(ctx, m):
    d, failed = m["download"], m["failed"]
    cut = d["bytes"] != m["size"]
    measured = dict(probe_failed=len(failed), download_bytes=d["bytes"])
    if len(failed) + cut > DATA["max_lost"]:
        lost = []
        if failed:
            lost.append("client1 lost %d of %d requests (%s, from +%.2f s to +%.2f s)" % (
                len(failed), m["sent"], failed[0]["error"], failed[0]["t"], failed[-1]["t"]))
        if cut:
            lost.append("client1's download from %s was cut after %s of %d bytes (%s)" % (
                SERVER, d["bytes"], m["size"], d["error"] or "curl exit %s" % d["exit"]))
        return fail("%s: %s" % (" and ".join(lost), why_lost(m)), **measured)
    return ok("all %d requests answered and the %d-byte download from %s complete (%.1f s)"
              % (m["sent"], m["size"], SERVER, d["seconds"]), **measured)


@check("new version served")
def new_version_served(ctx, m):
    want = "%s %s" % (SERVER, VERSION)
    mine = [body for server, body in m["after"] if server == SERVER]
    refused = [s for s in m["steps"] if s["result"].startswith("refused")]
    measured = dict(answers=len(mine), page=m["page"], weight=m["final"]["weight"])
    if m["page"] != want:
        if m["stopped"]:
            why = "the procedure stopped: %s" % m["stopped"]
        elif m["final"]["nginx"] == "stopped":
            why = "nginx on %s is not running: start it after the upgrade (do: start)" % SERVER
        elif refused:
            why = ("steps[%d] (upgrade) was refused because nginx was running: stop it "
                   "before the upgrade and start it after" % refused[0]["n"])
        else:
            why = "your procedure never upgraded it (do: upgrade, with nginx stopped)"
        return fail("%s still answers %r, not %r: %s" % (SERVER, m["page"], want, why),
                    **measured)
    if len(mine) < DATA["after_answers"] or set(mine) != {want}:
        final = m["final"]
        why = ("it is still out of the pool (weight 0): end with do: undrain"
               if final["weight"] == 0 else "its health check says %s, nginx %s" % (
                   final["health"], final["nginx"]))
        return fail("after your last step %s answered %d of client1's requests through the "
                    "VIP (at least %d must say %r): %s" % (SERVER, len(mine),
                                                            DATA["after_answers"], want, why),
                    **measured)
    return ok("%s is back in the pool (weight %d) and answered %d requests with %r"
              % (SERVER, m["final"]["weight"], len(mine), want), **measured)


CHECKS = [procedure_is_valid, no_request_lost, new_version_served]
