"""Lab 05: the load balancer and its health checks (ロードバランサ, ヘルスチェック).

Part A shows the detection matrix live: ICMP, TCP and HTTP checkers watch web1 crash,
lose its link, stop nginx, answer HTTP 500 and hang.  Part B runs the os-ken load
balancer with the student's ``service.yaml``: one public address (the VIP) for every
real server; web2 answers HTTP 500 and web3 hangs, and the student's health check must
take both out (weight 0 hides a server, it detects nothing) while every request is
answered by the healthy web1; a server added live makes the same downloads finish
sooner.  Part C runs the same service.yaml with the kernel's IPVS (keepalived +
ipvsadm), or says plainly that the kernel lacks ip_vs.
"""

from controllers.service import ServiceConfigError, load_service
from redlab import addressing as ap
from redlab.checks import check, fail, lab_data, ok, served_by
from redlab.errors import ConfigError
from redlab.labs import Stop
from redlab.lb import render_keepalived_lvs
from redlab.scenarios import health_checks as hc
from redlab.scenarios import health_matrix
from redlab.scenarios.ipvs import IpvsService
from redlab.scenarios.lb import LoadBalancedService
from redlab.system import ipvs_missing_reason, kernel_has_ipvs

TITLE = "Load balancer and health checks"
TOPOLOGY = "topologies/service_lan.py"
DATA = lab_data(__file__)                # lab.yaml: the detection bound, the step sizes
SERVERS = ("web1", "web2", "web3")       # Part B: web1 healthy, web2 HTTP 500, web3 hangs
BROKEN = ("web2", "web3")

# the --cli stops: what to look at and what to type there, one line at a time
STOPS = {
    "matrix": Stop("after the five faults, the Mininet CLI on the matrix's network: hang web1's "
                   "nginx yourself (all its processes: the master alone does not serve), see "
                   "what HTTP and ICMP say from the director, then let it go", [
        "web1 pkill -STOP -f nginx", "director curl -sS -m1 http://%(web1)s/",
        "director ping -c 1 %(web1)s", "web1 pkill -CONT -f nginx",
        "director curl -sS -m1 http://%(web1)s/"]),
    "failures": Stop("web2 answers 500 and web3 hangs: who serves now? (`sudo redlab lb status` "
                     "in another shell shows each server's health)", [
        "client1 curl -s -m1 http://%(vip)s/", "client1 curl -s -m1 http://%(vip)s/"]),
    "ipvs": Stop("the same service with keepalived and IPVS", [
        "director ipvsadm -Ln", "client1 curl -s -m1 http://%(vip)s/"]),
}


def read_service(path):
    """The student's service.yaml, with web1, web2 and web3 in it (Part B breaks web2
    and web3: a service without them has nothing to detect)."""
    try:
        service = load_service(path)
    except ServiceConfigError as exc:
        raise ConfigError(str(exc)) from None
    missing = [name for name in SERVERS if name not in {s.name for s in service.real_servers}]
    if missing:
        raise ConfigError("service.yaml has no %s in real_servers: keep web1, web2 and web3 in "
                          "the service (%s) and let the health check take a broken server out"
                          % (" or ".join(missing), ", ".join(
                              "%s %s" % (name, ap.web(n)) for n, name in enumerate(SERVERS, 1))))
    return service


def walkthrough(ctx):
    service = read_service(ctx.file("service.yaml"))
    m = {"check_type": service.health_check.type, "lb_algo": service.lb_algo,
         "weights": {s.name: s.weight for s in service.real_servers}}
    ctx.say("Step 1 -- assume the failure: a real server dies, or its web service breaks.\n"
            "Step 2 -- the spare: the other real servers behind the same VIP.\n"
            "Step 3 -- the switch-over: the load balancer chooses only servers whose health\n"
            "check passes.  Which check sees which failure?")
    if not ctx.grading:           # a demonstration: grading skips it
        part_a(ctx, m)
    part_b(ctx, m, service)
    if not ctx.grading:
        part_c(ctx, m, service)
    return m


def part_a(ctx, m):
    ctx.say("\nPart A: the detection matrix (ICMP = L3, TCP connect = L4, HTTP GET = L7) on "
            "web1\n(the drill drills/detection-matrix.yaml: `redlab drill "
            "drills/detection-matrix.yaml` draws it as swimlanes)")
    with ctx.stop_elsewhere(STOPS["matrix"], web1=ap.web(1)) as typed:
        record = health_matrix.run(ctx.folder("matrix"), cli=ctx.cli, out=ctx.say, stdin=typed)
    m["matrix"] = health_matrix.matrix(record)
    m["check_cost"] = cost = hc.check_cost(record)
    m["icmp_blind_spot"] = blind = hc.icmp_blind_spot(record)
    ctx.say(health_matrix.markdown(m["matrix"]))
    ctx.say(hc.icmp_text(m["matrix"], blind))
    ctx.say(hc.check_cost_text(cost))


def part_b(ctx, m, service):
    from topologies.service_lan import ServiceLanTopo
    ctx.say("\nPart B: your service.yaml (health check: %s) behind the VIP %s"
            % (service.health_check.type, service.vip))
    spare = len(service.real_servers) + 1         # one more server, racked but not in service
    with LoadBalancedService(service, name="lab05-lb", run_folder=ctx.folder("lb"),
                             topo=ServiceLanTopo(servers=spare, dns=False)) as lab:
        one_address(ctx, m, lab)
        m["virtual_server"] = vs = hc.virtual_server(lab)
        ctx.say(hc.virtual_server_text(vs, service.vip))
        ctx.say(lab.status_text())
        failures(ctx, m, lab)
        if not ctx.grading:
            scale_out(ctx, m, lab, "web%d" % spare)
        path = lab.network.run.file("director", "keepalived-lvs.conf")
        valid, output = render_keepalived_lvs(service, "director", path)
    ctx.say("\nThe same service for keepalived (IPVS) is in %s (keepalived -t: %s)"
            % (path, "valid" if valid else output))


def one_address(ctx, m, lab):
    """The notes: the load balancer holds *the service's* global address; DNS round robin
    needs one per server.  Count both sides of client1's requests."""
    seen = hc.public_addresses(lab, 2 * len(lab.service.real_servers))
    m["before"], m["public_addresses"] = seen.pop("answers"), seen
    ctx.say("  client1 sent %d requests to the VIP and %d servers answered (%s); on client1's "
            "wire they went to %s and the answers came from %s.  Public addresses the service "
            "needs: %d for %d servers -- the VIP, whatever the number of real servers (DNS "
            "round robin: one per server, lab 03)." % (
                len(m["before"]), len(seen["servers"]), ", ".join(seen["servers"]),
                " ".join(seen["destinations"]), " ".join(seen["sources"]),
                len(seen["destinations"]), len(seen["servers"])))


def failures(ctx, m, lab):
    """web2 answers HTTP 500, web3 hangs: what the student's check took out, and who
    answered the next requests through the VIP."""
    broke, repair = hc.break_servers(lab, *BROKEN)
    ctx.say("\n  web2 now answers HTTP 500; web3 hangs (accepts TCP, never answers).")
    m["detected"] = hc.wait_taken_out(lab, BROKEN, broke,
                                      hc.detection_window(lab.service, DATA["max_detect"]))
    m["after"] = [lab.get(timeout=1) for _ in range(DATA["requests"])]
    m["broken_direct"] = hc.asked_directly(lab, BROKEN)       # the faults still held
    ctx.say("  detected: %s" % ({k: "%.2f s" % v for k, v in m["detected"].items()}
                                 or "nothing"))
    ctx.say("  %d requests after the failures: %s" % (len(m["after"]), hc.tally(m["after"])))
    ctx.say(lab.status_text())
    ctx.pause(lab.network, STOPS["failures"], vip=lab.service.vip)
    repair()


def scale_out(ctx, m, lab, name):
    """The notes: more traffic than the servers can take -> add a server, keep the old
    ones.  The same batch of parallel downloads before and after ``name`` joins, each
    server's link limited to the same rate (its capacity)."""
    size = DATA["scale_out"]
    servers = [s.name for s in lab.service.real_servers] + [name]
    hc.wait_all_up(lab, "web2 and web3 to be back in the service after the repair")
    hc.give_capacity(lab, servers, size["mbit"], size["size"])
    ctx.say("\nScale out.  Every web server can now send %d Mbit/s (tc tbf on its link): its "
            "capacity.  client1 downloads %d files of %d kB at once through the VIP, more "
            "than the three servers can send quickly:"
            % (size["mbit"], size["files"], size["size"] // 1000))
    with hc.downloader(lab) as agent:
        before = hc.download_batch(lab, agent, size["files"])
        ctx.say(hc.batch_text("  with %d servers:" % (len(servers) - 1), before))
        ctx.say("  %s (%s) is racked and running; the operator adds it to the service while "
                "clients keep using the VIP:\n  # redlab lb add %s %s"
                % (name, lab[name].IP(), name, lab[name].IP()))
        joined = hc.add_server(lab, name)
        after = hc.download_batch(lab, agent, size["files"])
        ctx.say(hc.batch_text("  with %d servers:" % len(servers), after))
    spread = hc.spread(lab, 2 * DATA["requests"])
    m["scale_out"] = dict(server=name, joined_after=round(joined, 3), spread=spread,
                          mbit=size["mbit"], files=size["files"], size=size["size"],
                          before=before, after=after)
    ctx.say("  %s joined after %.2f s (its health checks had to pass first, rise %d); the same "
            "batch took %.2f s instead of %.2f s (x%.2f), and %d small requests now go %s -- "
            "the old servers keep serving, the new one takes its share of the work"
            % (name, joined, lab.service.health_check.rise, after["seconds"],
               before["seconds"], after["seconds"] / before["seconds"],
               sum(spread.values()), spread))
    ctx.say(lab.status_text())


def part_c(ctx, m, service):
    """The same service, the same faults, with the kernel's IPVS (keepalived + ipvsadm)."""
    if not kernel_has_ipvs(load=True):
        ctx.say("\nPart C is skipped: " + ipvs_missing_reason() + ".")
        m["ipvs"] = None
        return
    ctx.say("\nPart C: the same service.yaml with the kernel's IPVS: keepalived's checkers and "
            "ipvsadm on the director (a Linux host holding the VIP), an ordinary switch")
    with IpvsService(service, name="lab05-ipvs", run_folder=ctx.folder("ipvs")) as lvs:
        ctx.say("  director# ipvsadm -Ln\n" + lvs.ipvsadm())
        broke, repair = hc.break_servers(lvs, *BROKEN)
        window = hc.detection_window(service, DATA["max_detect"])
        detected = hc.ipvs_taken_out(lvs, BROKEN, broke, window)
        after = [lvs.get(timeout=1) for _ in range(DATA["requests"])]
        m["ipvs"] = dict(detected=detected, after=after, table=lvs.ipvsadm())
        ctx.say("  web2 answers HTTP 500, web3 hangs: %s" % (
            "both out of the IPVS table after %.2f s" % detected if detected is not None else
            "keepalived's %s check did not take both out within %.0f s"
            % (service.health_check.type, window)))
        ctx.say("  %d requests: %s" % (len(after), hc.tally(after)))
        ctx.say("  director# ipvsadm -Ln\n" + lvs.ipvsadm())
        ctx.pause(lvs.network, STOPS["ipvs"], vip=service.vip)
        repair()


# -- checks ---------------------------------------------------------------------------------

@check("service file is valid", static=True, scored=False)  # the starter passes it; an
def service_file_is_valid(ctx, m):                          # invalid file fails the
    try:                                                    # walk-through with the same
        service = read_service(ctx.submission / "service.yaml")   # sentence
    except ConfigError as exc:
        return fail(str(exc))
    return ok("%s:%d, %s, %s check" % (service.vip, service.port, service.lb_algo,
                                       service.health_check.type))


def hidden(m, server, fault):
    """Why ``server`` got no requests without any check (None: it was in the service).
    Weight 0 hides a server from the clients without detecting anything."""
    if m["weights"].get(server, 0) == 0:
        return ("%s has weight 0 in service.yaml: a server with weight 0 is never chosen, "
                "healthy or not, so that none reached it says nothing about %s; give every "
                "server a weight of at least 1 and let the health check take %s out"
                % (server, fault, server))
    return None


def not_detected(m, server, fault, fix):
    return ("%s (%s) got none of the %d requests only by chance of the %s scheduler: your %s "
            "check never took it out; %s" % (server, fault, len(m["after"]), m["lb_algo"],
                                             m["check_type"], fix))


@check("catches HTTP 500")
def catches_http_500(ctx, m):
    if hidden(m, "web2", "its HTTP 500"):
        return fail(hidden(m, "web2", "its HTTP 500"), weights=m["weights"])
    bad = [status for status, s in m["after"] if s == "web2"]
    if bad:
        return fail("web2 answered %d of %d requests with HTTP %s: a %s check cannot see an "
                    "HTTP error -- only an http check (L7) reads the status"
                    % (len(bad), len(m["after"]), bad[0], m["check_type"]))
    if "web2" not in m["detected"]:
        return fail(not_detected(m, "web2", "HTTP 500", "only an http check (L7) reads the "
                                 "status and takes it out"))
    return ok("your %s check took web2 (HTTP 500) out after %.2f s; it got none of %d "
              "requests" % (m["check_type"], m["detected"]["web2"], len(m["after"])))


@check("catches a hang")
def catches_a_hang(ctx, m):
    if hidden(m, "web3", "its hang"):
        return fail(hidden(m, "web3", "its hang"), weights=m["weights"])
    hung = sum(1 for status, _ in m["after"] if status == 0)
    if hung or any(s == "web3" for _, s in m["after"]):
        return fail("%d of %d requests got no answer: they went to the hung web3, which still "
                    "accepts TCP -- a %s check passes; an http check with a timeout fails it"
                    % (hung, len(m["after"]), m["check_type"]))
    if "web3" not in m["detected"]:
        return fail(not_detected(m, "web3", "hung", "an http check with a timeout fails on a "
                                 "server that accepts TCP but never answers"))
    return ok("your %s check took the hung web3 out after %.2f s; no request went to it"
              % (m["check_type"], m["detected"]["web3"]))


@check("healthy server keeps serving")
def healthy_server_keeps_serving(ctx, m):
    if m["broken_direct"]["web2"] != 500:
        return fail("not measured: asked directly, web2 answered %s instead of HTTP 500, so the "
                    "lab's fault did not hold; run the grading again (the run folder keeps the "
                    "evidence)" % (m["broken_direct"]["web2"] or "nothing"))
    # who answered each request: web1 only if it answered HTTP 200 (the reusable check)
    answers = [s if (status, s) == (200, "web1") else "%s HTTP %s" % (s or "-", status)
               if status else None for status, s in m["after"]]
    served = served_by(answers, {"web1"}, "the requests during the faults")
    if served.passed:
        return ok(served.reason + ", while web2 itself answered HTTP 500", **served.measured)
    return fail("%s (web2 answering HTTP 500, web3 hung); every request must reach a healthy "
                "server -- the check must take the broken servers out and keep web1 in"
                % served.reason, after=m["after"], **served.measured)


@check("detection time")
def detection_time(ctx, m):
    bound = DATA["max_detect"]
    slow = {s: t for s, t in m["detected"].items() if t > bound}
    missing = set(BROKEN) - set(m["detected"])
    if not slow and not missing:
        return ok("web2 out after %.2f s, web3 after %.2f s"
                  % (m["detected"]["web2"], m["detected"]["web3"]), bound=bound)
    return fail("not taken out within %.0f s: %s; the check must see the fault (a %s check may "
                "not) and fall x (interval + timeout) must stay under %.0f s" % (
                    bound, ", ".join(sorted(missing)) or ", ".join(
                        "%s %.1f s" % kv for kv in sorted(slow.items())),
                    m["check_type"], bound), bound=bound)


CHECKS = [service_file_is_valid, catches_http_500, catches_a_hang,
          healthy_server_keeps_serving, detection_time]
