"""Lab 06 -- scheduling algorithms (スケジューリングアルゴリズム).

One service (a VIP in front of web1..web3, weights 3, 2, 1; the os-ken load balancer of
``controllers/lb.py``) and one client.  The walk-through
1. runs one load (H held open, S short) under each of the ten schedulers, switched live,
   as a table and an SVG chart, each order compared with the real kernel's
   (``kernel-picks.json``), then asks when lc is "fine" (the notes) with short connections;
2. shows why sh keeps one client on one server (the source hash);
3. makes each state of the student's variant (weights, ActiveConn, InActConn) with real
   connections and records the next picks, which the checks compare with the student's
   ``predictions.yaml``; the variant comes from the student's name, and graded in class
   mode nothing shows the controller's picks;
4. (not graded) rr against wrr on links of really different capacity.
The data is lab.yaml; the machinery :mod:`redlab.scenarios.scheduling`.
"""

import time
from pathlib import Path

from controllers.schedulers import CLASSIC
from redlab import addressing as ap
from redlab.checks import check, fail, lab_data, ok
from redlab.errors import ConfigError
from redlab.labs import Stop
from redlab.lb import web_service
from redlab.scenarios import scheduling as bench_kit
from redlab.scenarios.lb import LoadBalancedService
from redlab.scenarios.scheduling import SchedulingBench, kernel_picks  # noqa: F401 (tests)

TITLE = "Scheduling algorithms: one load, ten IPVS schedulers, predict the next pick"
TOPOLOGY = "topologies/service_lan.py"
DATA = lab_data(__file__)
SERVERS, WEIGHTS = tuple(DATA["servers"]), tuple(DATA["weights"])
LOAD, SHORT_LOAD, CLOSING_TIMEOUT = DATA["load"], DATA["short_load"], DATA["closing_timeout"]
KERNEL_FILE = Path(__file__).resolve().parent / "kernel-picks.json"   # the kernel's LOAD
RECORD_COMMAND = "sudo make ipvs-record-lab06"
PREDICTIONS = "predictions.yaml"

# the --cli stops: what to look at and what to type there, one line at a time
STOPS = {
    "rr": Stop("the service runs rr now: ask a few times (X-Served-By names the server); "
               "`sudo redlab lb status` in a second shell shows the counters", [
        "client1 curl -s -D- http://%(vip)s/", "client1 curl -s -D- http://%(vip)s/"]),
    "sh": Stop("the chart is %(svg)s; the service runs sh now and client1 also has the "
               "addresses %(sources)s: ask from one of them", [
        "client1 curl -s --interface %(source)s -D- http://%(vip)s/"]),
    "state": Stop("the %(name)s state is set up: `sudo redlab lb status` in a second shell "
                  "shows its ActiveConn/InActConn; `exit` opens the %(picks)d new connections"),
    "links": Stop("the links are shaped: web3's is the slowest; time a download a few times", [
        "web3 tc class show dev web3-eth0",
        "client1 curl -s -o /dev/null -w '%%{time_total}\\n' http://%(vip)s/big.bin"]),
}


# -- whose states: the variants of lab.yaml; the kernel's recording ------------------------

TASK = bench_kit.PredictionTask(DATA, SERVERS, PREDICTIONS)
variants, load_states, variant_of, describe, variant_text = (
    TASK.variants, TASK.states, TASK.variant_of, TASK.describe, TASK.text)


def whose(ctx):
    """(variant, student or None): the grader's name, else predictions.yaml's ``student:``."""
    return TASK.whose(ctx.student, ctx.submission)


def verb_variant(ctx, args):
    """``redlab lab 06 variant [NAME]``: a student's variant and its states."""
    args = args[1:] if args[:1] == ["--student"] else args
    if len(args) > 1:
        raise ConfigError("give one name: redlab lab 06 variant NAME (your name as your "
                          "instructor uses it, e.g. your class folder's name)")
    return TASK.listing(args[0] if args else TASK.declared(ctx.submission),
                        "`redlab run 06` and `redlab grade 06`")


VERBS = {"variant": (verb_variant, "variant [NAME]: the states you predict (your variant, "
                                   "chosen from your name)")}


def kernel_setting():
    """What kernel-picks.json must have been recorded for (sh and dh hash the addresses)."""
    return dict(pattern=LOAD, servers=list(SERVERS), weights=list(WEIGHTS),
                client=ap.client(1, ap.SERVICE), vip=ap.vip())


def kernel_orders():
    return bench_kit.kernel_orders(KERNEL_FILE, kernel_setting(), RECORD_COMMAND)


# -- the walk-through -----------------------------------------------------------------------

def walkthrough(ctx):
    started = time.monotonic()
    variant, student = whose(ctx)
    weights = dict(zip(SERVERS, WEIGHTS))
    ctx.say("Lab 06: scheduling algorithms.  Three web servers of different capacity "
            "(weights web1=3, web2=2, web3=1) behind the VIP; the os-ken load balancer picks "
            "a server for each new connection with the kernel's rules for the scheduler "
            "in use.")
    ctx.say("Your prediction task: %s (`redlab lab 06 variant NAME` shows a name's states)."
            % variant_text(variant, student))
    kernel = kernel_orders()        # before the network: a stale recording stops here
    service = web_service(CLASSIC[0], weights=WEIGHTS, check="tcp")
    measured = dict(weights=weights, load=LOAD, closing_timeout=CLOSING_TIMEOUT,
                    variant=variant)
    with LoadBalancedService(service, name="lab06", run_folder=ctx.folder("scheduling"),
                             checker=False, closing_timeout=CLOSING_TIMEOUT) as lab:
        bench = SchedulingBench(lab, SERVERS, CLOSING_TIMEOUT, DATA["half_open_ports"],
                                DATA["ephemeral_ports"])
        try:
            ctx.say("service up: VIP %s:%d, run folder %s"
                    % (service.vip, service.port, lab.network.run.path))
            ctx.pause(lab.network, STOPS["rr"], vip=service.vip)
            measured["spread"], measured["svg"] = one_load_ten_schedulers(
                ctx, bench, kernel, weights, lab.network.run.path / "spread.svg")
            measured["short"] = is_lc_fine(ctx, bench, measured["spread"])
            measured["sh_sources"] = sh_and_dh(ctx, bench, weights)
            ctx.pause(lab.network, STOPS["sh"], svg=measured["svg"], vip=service.vip,
                      sources=", ".join(measured["sh_sources"]),
                      source=next(iter(measured["sh_sources"])))
            measured["states"] = predicted_states(ctx, lab, bench, variant, student)
            bench.drain()
        finally:
            bench.stop()
    if not ctx.grading:             # a demonstration: grading skips it
        measured["capacity"] = capacity(ctx)
    measured["seconds"] = round(time.monotonic() - started, 1)
    ctx.say("\nwalk-through took %.1f s" % measured["seconds"])
    return measured


def one_load_ten_schedulers(ctx, bench, kernel, weights, svg):
    ctx.say("\n1. The same load under each scheduler: %d new connections from client1, "
            "%s (H is held open: ESTABLISHED, it counts in ActiveConn; S is a short "
            "request: after its FINs it counts in InActConn for %d s).  The scheduler "
            "is switched live with set_scheduler (ipvsadm -E -s) on the same network."
            % (len(LOAD), LOAD, CLOSING_TIMEOUT))
    spread = {}
    for algo in CLASSIC:
        run = bench.run_load(algo, LOAD)
        run["kernel"] = run["order"] == kernel[algo] if run.pop("counted_alike") else None
        run["order"] = bench_kit.digits(run["order"])       # 1 = web1, 2 = web2, ...
        spread[algo] = run
    ctx.say(bench_kit.spread_table(spread, SERVERS, weights, CLOSING_TIMEOUT))
    svg.write_text(bench_kit.svg_chart(spread, SERVERS, weights, "The same %d connections (%s) "
                                       "under the ten IPVS schedulers" % (len(LOAD), LOAD)))
    ctx.say("\nbar chart: %s" % svg)
    for line in bench_kit.spread_sentences(spread, SERVERS, weights):
        ctx.say("  " + line)
    return spread, str(svg)


def is_lc_fine(ctx, bench, spread):
    """The notes: lc "is fine in most cases".  Held connections were measured in part 1;
    here lc and wlc get only short ones, which never count in ActiveConn."""
    def counted(run):               # as `ipvsadm -Ln` shows them at the end of the run
        return "ActiveConn %s, InActConn %s" % tuple("/".join(
            str(run["counts"][n][k]) for n in SERVERS) for k in (0, 1))
    ctx.say("\n1b. Is lc fine?  With long connections (above) it counts the held ones that rr "
            "does not see: lc %s where rr left held %s.  But it ignores the weights: wlc %s."
            % (counted(spread["lc"]), "/".join(str(spread["rr"]["held"][n]) for n in SERVERS),
               counted(spread["wlc"])))
    ctx.say("   Only short connections now, %d of them (%s), each closed before the next:"
            % (len(SHORT_LOAD), SHORT_LOAD))
    short = {}
    for algo in ("lc", "wlc"):
        run = bench.run_load(algo, SHORT_LOAD)
        run["order"] = bench_kit.digits(run["order"])
        short[algo] = run
        ctx.say("     %-4s order %s   %s" % (algo, run["order"], counted(run)))
    ctx.say("   lc sees ActiveConn 0 everywhere and compares InActConn alone: its order is "
            "rr's (%s...), whatever the weights.  So lc is fine when the servers are alike; "
            "with servers of different capacity use wlc, which keeps the weights for both "
            "kinds of connection." % spread["rr"]["order"][:6])
    return short


def sh_and_dh(ctx, bench, weights):
    at = bench_kit.hash_buckets(SERVERS, weights, bench.client_ip, bench.vip)
    ctx.say("\n2. sh and dh look at an address, not at the load.  sh: client1 %s hashes to "
            "bucket %d of 256; the buckets go to the servers in list order, each server "
            "`weight` buckets in a row (%s ...), so bucket %d is %s and every connection of "
            "client1 goes there.  dh: the destination %s (the VIP, the same for every "
            "connection) hashes to bucket %d = %s.  lblc and lblcr keep their server per "
            "destination too: with one VIP there is one entry."
            % (bench.client_ip, at["sh"], " ".join(at["table"][:6]), at["sh"], at["sh_server"],
               bench.vip, at["dh"], at["dh_server"]))
    sources = bench.sh_sources(DATA["sh_clients"], weights)
    got = bench.run_sh_sources(sources)
    ctx.say("   sh with %d more addresses on client1 (2 short requests from each):"
            % len(sources))
    for ip, served in got.items():
        ctx.say("     from %-12s -> %s   (the hash says %s)" % (ip, " ".join(served),
                                                               sources[ip]))
    return {ip: " ".join(served) for ip, served in got.items()}


def predicted_states(ctx, lab, bench, variant, student):
    states = load_states(variant)
    predictions, problems = TASK.read(ctx.submission, states)
    ctx.say("\n3. Your predictions, %s: each of its states (lab.yaml) is made with real "
            "connections, then client1 opens new connections one after another and keeps "
            "them open (each adds 1 ActiveConn to its server)." % variant_text(variant, student))
    if problems:
        ctx.say("   (your %s: %s)" % (PREDICTIONS, "; ".join(problems)))
    results = {}
    for index, (name, state) in enumerate(states.items()):
        bench.make_state(state)
        ctx.say("\n   state %s: %s" % (name, describe(state)))
        if index == 0 and ctx.cli:
            ctx.pause(lab.network, STOPS["state"], name=name, picks=state["picks"])
            bench.check_state(state)                # what you did at the CLI is gone
            bench.set_scheduler(state["lb_algo"])   # and the scheduler starts afresh
        picked = bench.next_picks(state["picks"])
        paper = bench_kit.state_picks(state, SERVERS, bench.client_ip, bench.vip)
        bench.end_state(state)
        mine = (predictions or {}).get(name)
        results[name] = dict(lb_algo=state["lb_algo"], picked=" ".join(picked),
                             kernel_rules=" ".join(p or "-" for p in paper),
                             predicted=" ".join(mine) if mine else None)
        if not ctx.class_mode:      # grading a class: no answer in the output
            ctx.say("     the controller picked:  %s" % " ".join(picked))
            ctx.say("     controllers/schedulers: %s" % results[name]["kernel_rules"])
        ctx.say("     you predicted:          %s%s" % (" ".join(mine) if mine else "(nothing)",
                                                     "   right" if mine == picked else ""))
    return results


def capacity(ctx):
    """The notes: spread evenly over servers of different capacity, the load is uneven.
    The links really differ here (tc htb), and client1 fetches files at once under rr and
    under wrr with weights in the same 3:2:1 ratio."""
    from topologies.service_lan import ServiceLanTopo
    size, n, mbit = (DATA["capacity"][key] for key in ("bytes", "downloads", "mbit"))
    ctx.say("\n4. Capacity for real: web1, web2, web3 now sit behind links of %s Mbit/s "
            "(tc htb), and client1 downloads %d files of %d kB at once through the VIP."
            % ("/".join(map(str, mbit)), n, size // 1000))
    service = web_service("rr", weights=WEIGHTS, check="tcp")
    with LoadBalancedService(service, name="lab06-capacity", checker=False,
                             run_folder=ctx.folder("capacity"),
                             topo=ServiceLanTopo(servers=3, dns=False, bw=mbit)) as lab:
        result = bench_kit.measure_downloads(
            lab, SERVERS, ("rr", "wrr"), n, size,
            at_stop=lambda net: ctx.pause(net, STOPS["links"], vip=service.vip))
    for line in bench_kit.download_lines(result, SERVERS):
        ctx.say(line)
    ctx.say("   rr gives every server the same number of files, so the small server (web3) "
            "is still sending long after web1 is idle: the load is uneven.  wrr with weights "
            "for the capacities gives each server work in proportion, and all finish "
            "together, sooner.")
    return result


# -- checks ---------------------------------------------------------------------------------

@check("predictions file", static=True)
def check_predictions_file(ctx, m):
    variant, student = whose(ctx)
    predictions, problems = TASK.read(ctx.submission, load_states(variant))
    declared = TASK.declared(ctx.submission)
    if ctx.student and declared and bench_kit.normal_name(declared) != \
            bench_kit.normal_name(ctx.student):
        problems.append("it says student: %s, but it is graded as %s's work: write student: "
                        "%s and predict the states of variant %d (`redlab lab 06 variant %s`)"
                        % (declared, ctx.student, ctx.student, variant, ctx.student))
    if problems:
        return fail("%s, %s: %s" % (variant_text(variant, student), PREDICTIONS,
                                    "; ".join(problems)), variant=variant)
    return ok("%s: %s has %d picks for each of the states %s" % (
        variant_text(variant, student), PREDICTIONS, DATA["picks"], ", ".join(predictions)),
        variant=variant)


def graded_state(ctx, m, name):
    """The student's picks for one state against the controller's, as measured."""
    variant, student = whose(ctx)
    state = load_states(variant)[name]
    result = m.get("states", {}).get(name)
    if result is None or m.get("variant") != variant:
        return fail("the walk-through did not reach the %s state" % name)
    mine = (TASK.read(ctx.submission, load_states(variant))[0] or {}).get(name) or []
    setting = "state %s of %s (%s)" % (name, variant_text(variant, student), describe(state))
    return TASK.judge(name, result["picked"].split(), mine, setting,
                      DATA["hints"][state["lb_algo"]], ctx.class_mode)


def state_check(name):
    """The check of the student's predicted picks for one graded state (``wlc state``)."""
    @check("%s state" % name)
    def graded(ctx, m):
        return graded_state(ctx, m, name)
    return graded


check_wlc_state, check_sed_state, check_lblc_state, check_lblcr_state = map(
    state_check, ("wlc", "sed", "lblc", "lblcr"))

CHECKS = [check_predictions_file, check_wlc_state, check_sed_state, check_lblc_state,
          check_lblcr_state]
