"""``redlab``: doctor, clean, demo, up, run.

Every error is one sentence on stderr and a non-zero exit; nothing is left half-started
(the network's ``stop()`` runs on any error, on Ctrl-C and on SIGTERM).
"""

import argparse
import json
import logging
import signal
import sys
import time

from redlab.errors import RedlabError

SCENARIOS = {
    "vrrp-failover": "crash the keepalived master of a VRRP pair under a probe "
                     "(--vmac: use_vmac; --no-garp-reaction: controller without its GARP reaction)",
    "lb": "the os-ken load balancer in front of web1..web3 with health checks from the director "
          "(--service FILE or --algo/--kind/--check; --cli or --hold N to operate it with `redlab lb`)",
}


def _terminate_gracefully():
    """Turn SIGTERM into SystemExit so ``with Network(...)`` tears down."""
    def handler(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def hold_or_cli(args, network):
    """--cli: the Mininet CLI; --hold N: keep the network up N seconds (Ctrl-C ends it)."""
    if args.cli:
        from mininet.cli import CLI
        CLI(network.net)
        return True
    deadline = time.monotonic() + args.hold
    while time.monotonic() < deadline:
        time.sleep(0.2)
    return bool(args.hold)


def cmd_doctor(args):
    from redlab.system import checks
    failed = 0
    for check in checks():
        mark = "ok  " if check.ok else ("FAIL" if check.required else "note")
        print("%s %-22s %s%s" % (mark, check.name, check.detail,
                                 ("  -> " + check.fix) if check.fix and not check.ok else ""))
        failed += (not check.ok) and check.required
    print("\n%s" % ("redlab is ready" if not failed else
                    "%d problem(s): fix them, then run `redlab doctor` again" % failed))
    return 1 if failed else 0


def cmd_clean(args):
    from redlab.clean import clean
    from redlab.system import check_root
    root = check_root()
    if not root.ok:
        raise RedlabError(root.sentence())
    report, cleaned = clean(include_live=args.all, keep_runs=args.keep)
    for line in report:
        print(line)
    if not report:
        print("nothing to clean")
    return 0


def cmd_demo(args):
    from redlab.scenarios import vrrp_failover
    print("redlab demo: a VRRP pair (keepalived) behind an os-ken switch; the master crashes "
          "while a client keeps requesting the VIP.\n")
    modes = {"default": [False], "vmac": [True], "both": [False, True]}[args.mode]
    for use_vmac in modes:
        result = vrrp_failover.run(use_vmac=use_vmac)
        print(result.summary())
        print()
    return 0


def cmd_up(args):
    import topologies
    from redlab.net import Network
    topo_cls = topologies.get(args.topology)
    topo = topo_cls()
    with Network(topo, name=args.topology, services=not args.no_services) as net:
        print("network %s is up; run folder %s" % (args.topology, net.run.path), flush=True)
        for host in net.hosts:
            print("  %-8s %-9s %s  daemons: %s" % (host.name, getattr(host, "role", "host"),
                                                  host.IP(), ", ".join(host.daemons) or "-"))
        sys.stdout.flush()
        hold_or_cli(args, net)
    return 0


def cmd_run(args):
    from redlab import labs
    if args.list or not args.name:
        for lab in labs.all_labs():
            print("%02d %-22s lab: %s" % (lab.number, lab.slug, lab.title))
        for name, text in SCENARIOS.items():
            print("%-25s %s" % (name, text))
        return 0
    if args.name not in SCENARIOS:
        try:
            lab = labs.find(args.name)
        except RedlabError:
            raise RedlabError("unknown lab or scenario %r; `redlab run --list` shows them: %s"
                              % (args.name, ", ".join(
                                  ["%02d %s" % (lab.number, lab.slug) for lab in labs.all_labs()]
                                  + list(SCENARIOS)))) from None
        print("== Lab %02d: %s ==" % (lab.number, lab.title))
        print("guide: %s (日本語: %s)\n" % (lab.folder / "guide.en.md", lab.folder / "guide.ja.md"))
        _ctx, measured = lab.walkthrough(args.submission, cli=args.cli)
        print("\nmeasured (for the table at the end of the guide):")
        for key, value in measured.items():
            text = json.dumps(value, default=str)
            print("  %-22s %s" % (key, text if len(text) <= 100 else text[:97] + "..."))
        print("grade it with: redlab grade %02d" % lab.number)
        return 0
    if args.name == "lb":
        return run_lb(args)
    from redlab.scenarios import vrrp_failover
    result = vrrp_failover.run(use_vmac=args.vmac, garp_reaction=not args.no_garp_reaction)
    print(result.summary())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result.as_dict(), f, indent=1)
    return 0


def run_lb(args):
    from redlab.lb import load, web_service
    from redlab.scenarios.lb import run_scenario
    service = load(args.service) if args.service else web_service(
        lb_algo=args.algo, lb_kind=args.kind, check=args.check)
    run_scenario(service, requests=args.requests, cli=args.cli, hold=args.hold)
    return 0


def cmd_lb(args):
    from redlab.lb import format_status, live_socket
    from redlab.lbctl import LBClient, LBError, LBUnavailable
    path, entry = live_socket()
    ctl = LBClient(path)
    actions = {
        "status": lambda: print(format_status(ctl.status(), _last_checks(entry))),
        "weight": lambda: ctl.set_weight(args.server, args.weight),
        "drain": lambda: ctl.drain(args.server),
        "add": lambda: ctl.add_server(args.server, args.ip, port=args.port, weight=args.weight),
        "remove": lambda: ctl.remove_server(args.server),
        "path": lambda: ctl.set_fast_path(args.path == "fast"),
    }
    try:
        actions[args.action]()
    except LBUnavailable:
        raise
    except LBError as exc:
        raise RedlabError("the load balancer refused: %s" % exc.reason) from None
    if args.action != "status":
        print("done: %s" % args.action)
    return 0


def _last_checks(entry):
    import glob
    last = {}
    for path in glob.glob("%s/director/*.jsonl" % entry.get("path", "")):
        with open(path) as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if "event" not in record:
                    last[record["server"]] = record
    return last


def cmd_grade(args):
    from redlab import grading, labs
    lab = labs.find(args.lab)
    if args.class_dir:
        for option, given in (("--submission", args.submission), ("--json", args.json),
                              ("--junit", args.junit), ("--student", args.student),
                              ("--class-mode", args.class_mode)):
            if given:
                raise RedlabError("%s is for one submission; with --class every student gets "
                                  "its reports in the --reports folder" % option)
        reports = args.reports or "reports-%s" % lab.name
        graded = grading.grade_class(lab, args.class_dir, reports, jobs=args.jobs,
                                     timeout=args.student_timeout)
        print("\n== class summary (%s/summary.csv) ==" % reports)
        print("\n".join(grading.summary_lines(graded)))
        return 0 if all(grading.all_pass(results) for results in graded.values()) else 1
    for option, given in (("--jobs", args.jobs), ("--student-timeout", args.student_timeout),
                          ("--reports", args.reports)):
        if given is not None:
            raise RedlabError("%s is for a class: add --class DIR (one folder per student)"
                              % option)
    submission = args.submission or lab.submission
    # in a class the narration goes to the student's log: how far a stopped grade got
    # through the pytest plugin, so that `pytest --lab` gives the same verdicts and reasons
    from redlab.pytest_plugin import grade_with_pytest
    results = grade_with_pytest(lab, submission, student=args.student,
                                class_mode=args.class_mode,
                                narrate=bool(args.verbose or args.class_mode))
    print(labs.report_text(lab, results))
    if args.json:
        labs.write_json(args.json, lab, results, submission)
    if args.junit:
        labs.write_junit(args.junit, lab, results, submission)
    return 0 if grading.all_pass(results) else 1


def _positive(kind):
    """An argparse type: a number above zero."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if value <= 0:
            raise argparse.ArgumentTypeError("%r is not a number above zero" % text)
        return value
    return parse


def cmd_new_lab(args):
    from redlab.labs import LABS_DIR
    from redlab.newlab import new_lab
    folder, test = new_lab(args.name, labs_dir=args.into or LABS_DIR, title=args.title,
                           number=args.number)
    print("wrote %s/ and %s" % (folder, test))
    print("next: redlab run %s ; redlab grade %s --submission %s/reference ; pytest %s"
          % (folder, folder, folder, test))
    return 0


def cmd_lab(args):
    from redlab import labs
    lab = labs.find(args.lab)
    text = lab.run_verb(args.verb, args.args, args.submission)
    if text:
        print(text)
    return 0


def cmd_bundle(args):
    """The student bundle: every lab without its reference/ and broken/ (redlab/bundle.py)."""
    from pathlib import Path
    from redlab import bundle
    out = Path(args.out) if args.out else bundle.DEFAULT_OUT
    plan = bundle.build(out)
    print("wrote %s: %d files of %s for students (unpacks to %s/)"
          % (out, len(plan.files), bundle.describe(), bundle.TOP))
    for reason, paths in sorted(plan.left_out.items()):
        print("  left out %3d file(s): %s" % (len(paths), reason))
    return 0



def cmd_drill(args):
    """Run a drill file (redlab/drill/engine.py), repeated or compared, and report it; or
    one game day (--gameday, redlab/drill/gameday.py); or one run with the Mininet CLI
    after its timeline (--cli)."""
    from pathlib import Path
    from redlab.drill import engine, gameday, stats
    from redlab.drill.report import write_report
    from redlab.drill.schema import load_drill
    from redlab.runs import run_root
    _refuse_drill_options(args)
    drill = load_drill(args.file)
    if args.gameday:
        gameday.check_gameday(drill)
    elif gameday.gameday_only(drill):
        raise RedlabError("drill %s is a game day (its timeline holds only the game day's "
                          "faults and it expects nothing); run it with --gameday"
                          % drill["drill"])
    name = "drill-%s-%s" % (drill["drill"], time.strftime("%Y%m%d-%H%M%S"))
    folder = Path(args.report).resolve() if args.report else run_root() / name
    runs_in = folder if others_can_enter(folder) else run_root() / name
    if runs_in != folder:
        print("the runs go to %s: the daemons that drop root (nginx's workers) cannot enter "
              "%s" % (runs_in, folder), flush=True)
    if args.gameday:
        record = gameday.run_gameday(drill, seed=args.seed,
                                     run_folder=runs_in / "runs" / "gameday-run1")
        report = write_report(folder, {"gameday": [record]})
        print("\n".join(gameday.result_lines(record)))
        print("report: %s" % report.html)
        return 0 if record["gameday"]["met"] else 1
    if args.cli:
        record = gameday.run_with_cli(drill, run_folder=runs_in / "runs" / "default-run1")
        print(engine.run_line(record))
        runs = {"default": [record]}
    else:
        runs = engine.run_series(drill, repeat=args.repeat,
                                 compare=_compared(args.compare, drill),
                                 folder=runs_in, progress=lambda line: print(line, flush=True))
    labels = list(runs)
    comparison = stats.compare(runs[labels[0]], runs[labels[1]]) if args.compare else None
    report = write_report(folder, runs, comparison)
    _print_drill_table(runs, comparison)
    print("report: %s" % report.html)
    return 0 if engine.all_met(runs) else 1


def others_can_enter(folder):
    """Whether a user other than root can reach ``folder`` (every existing folder on the
    way has the x bit for others): run folders must be, as nginx's workers and Squid
    run as other users and read their files there."""
    import stat
    from pathlib import Path
    for part in [Path(folder), *Path(folder).parents]:
        if part.exists():
            if not part.stat().st_mode & stat.S_IXOTH:
                return False
    return True


def _compared(compare, drill):
    """``--compare``: a variant of the drill file, or another drill file (a path)."""
    from pathlib import Path
    from redlab.drill.schema import load_drill
    if compare is None or compare in drill["variants"] or compare == "default":
        return compare
    if compare.endswith((".yaml", ".yml")) or "/" in compare:
        if not Path(compare).is_file():
            raise RedlabError("--compare %s: no such drill file; give a variant of %s (%s) "
                              "or the path of another drill file" % (
                                  compare, drill["drill"],
                                  ", ".join(drill["variants"]) or "it has none"))
        return load_drill(compare)
    return compare          # an unknown variant: run_series refuses it with the known ones


def _refuse_drill_options(args):
    """Options of `redlab drill` that do not go together, refused before anything starts."""
    if args.seed is not None and not args.gameday:
        raise RedlabError("--seed chooses a game day's fault; add --gameday or drop --seed")
    if args.gameday and args.cli:
        raise RedlabError("--gameday already opens the Mininet CLI; drop --cli")
    one = "--gameday" if args.gameday else "--cli" if args.cli else None
    if one and (args.repeat != 1 or args.compare):
        raise RedlabError("%s is one run on one network with you at its CLI; drop %s"
                          % (one, "--repeat" if args.repeat != 1 else "--compare"))


def _print_drill_table(runs, comparison):
    from rich.console import Console
    from rich.table import Table
    from redlab.drill import stats
    console = Console(highlight=False)
    table = Table(title="measures (median / p95 over the runs that reached them)")
    table.add_column("variant")
    for measure in ("time_to_detect", "time_to_recover", "requests_lost"):
        table.add_column(stats.wording(measure).label, justify="right")
    summaries = {label: stats.summarize(records) for label, records in runs.items()}
    for label, summary in summaries.items():
        cells = []
        for measure in ("time_to_detect", "time_to_recover", "requests_lost"):
            m = summary.measure(measure)
            cells.append("never" if m.median is None else "%s / %s%s" % (
                _drill_value(measure, m.median), _drill_value(measure, m.p95),
                " (%d never)" % m.not_reached if m.not_reached else ""))
        table.add_row("%s (%d runs)" % (label, summary.runs), *cells)
    console.print(table)
    for label, summary in summaries.items():
        for e in summary.expectations:
            print("%-6s %s: %s, met in %d of %d runs%s" % (
                e.status, label, e.name, e.passed, e.runs,
                "" if not e.failures else " -- " + e.failures[0]["reason"]))
    if comparison is not None:
        for m in comparison.measures:
            print("compare: " + m.sentence)


def _drill_value(measure, value):
    from redlab.drill import stats
    return "%g" % value if measure == "requests_lost" else stats.format_value(measure, value)


def build_parser():
    parser = argparse.ArgumentParser(prog="redlab", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("doctor", help="check this machine: root, OVS, datapath, binaries")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("clean", help="remove what crashed runs left behind (only redlab's)")
    p.add_argument("--all", action="store_true", help="also runs whose owner is still alive")
    p.add_argument("--keep", type=int, default=10, help="run folders to keep (default 10)")
    p.set_defaults(func=cmd_clean)

    p = sub.add_parser("demo", help="VRRP failover, default keepalived and use_vmac")
    p.add_argument("--mode", choices=("default", "vmac", "both"), default="both")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("up", help="start a topology with its daemons")
    p.add_argument("topology")
    p.add_argument("--cli", action="store_true", help="open the Mininet CLI")
    p.add_argument("--hold", type=float, default=0, help="keep it up for N seconds")
    p.add_argument("--no-services", action="store_true", help="do not start daemons")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("run", help="run a lab or scenario")
    p.add_argument("name", nargs="?")
    p.add_argument("--list", action="store_true")
    p.add_argument("--vmac", action="store_true")
    p.add_argument("--no-garp-reaction", action="store_true")
    p.add_argument("--json", help="write the measurements to this file")
    p.add_argument("--submission", help="lab: the student's folder (default: the lab's submission/)")
    p.add_argument("--service", help="lb: a service YAML file")
    p.add_argument("--algo", default="wlc", help="lb: scheduler (rr, wrr, lc, wlc, ...)")
    p.add_argument("--kind", default="NAT", choices=("NAT", "DR"), help="lb: forwarding method")
    p.add_argument("--check", default="http", choices=("icmp", "tcp", "http"),
                   help="lb: health check type")
    p.add_argument("--requests", type=int, default=12, help="lb: requests to send")
    p.add_argument("--cli", action="store_true", help="open the Mininet CLI")
    p.add_argument("--hold", type=float, default=0, help="keep it up for N seconds")
    p.set_defaults(func=cmd_run)

    from redlab.grading import STUDENT_TIMEOUT
    p = sub.add_parser("grade", help="grade a lab submission: each check pass/fail with a reason",
                       description="Grade one submission (a copy of it: links are refused), "
                       "or with --class every student of a class, each in a process and a "
                       "sandbox of its own, several at once.")
    p.add_argument("lab", help="lab number or name (redlab run --list)")
    p.add_argument("--submission", help="the student's folder (default: the lab's submission/)")
    p.add_argument("--junit", help="write a JUnit XML report")
    p.add_argument("--json", help="write a JSON report")
    p.add_argument("--student", help="the student's name (a lab may derive a variant from it)")
    p.add_argument("--class-mode", action="store_true",
                   help="grading in a class: reasons do not print expected answers")
    p.add_argument("--class", dest="class_dir", metavar="DIR",
                   help="grade every student: DIR/<student>/ is one submission")
    p.add_argument("--reports", metavar="DIR", help="with --class: where the reports go "
                   "(<student>.json, .xml, .log and summary.csv; default reports-<lab>)")
    p.add_argument("--jobs", type=_positive(int), metavar="N",
                   help="with --class: students graded at once (default: the smaller of the "
                   "CPU cores, the GiB of available memory and the students; at least 1)")
    p.add_argument("--student-timeout", type=_positive(float), metavar="S",
                   help="with --class: seconds one student's grade may take before it is "
                   "stopped and failed (default: the lab's GRADE_TIMEOUT, else %g)"
                   % STUDENT_TIMEOUT)
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("new-lab", help="scaffold a new lab: data, walk-through, checks, guides "
                       "en+ja, starter, reference, broken, test (docs/writing-a-lab.md)")
    p.add_argument("name", help="the lab's name, lower-case words joined by '-'")
    p.add_argument("--title", help="its title (default: from the name)")
    p.add_argument("--number", type=int, help="its number (default: the next free one)")
    p.add_argument("--into", metavar="DIR",
                   help="the folder of labs to add it to (default: the project's labs/)")
    p.set_defaults(func=cmd_new_lab)

    p = sub.add_parser("lab", help="a lab's own command that needs no network "
                       "(e.g. `redlab lab 01 diff`)")
    p.add_argument("lab", help="lab number or name")
    p.add_argument("verb", help="the command (the lab's guide lists them)")
    p.add_argument("args", nargs="*")
    p.add_argument("--submission", help="the student's folder (default: the lab's submission/)")
    p.set_defaults(func=cmd_lab)

    p = sub.add_parser("bundle", help="write the student bundle: the labs without their "
                       "reference/ and broken/ folders, no tests (for the student VM)")
    p.add_argument("--out", metavar="FILE",
                   help="the tarball to write (default dist/redlab-student.tar.gz)")
    p.set_defaults(func=cmd_bundle)

    p = sub.add_parser("drill", help="run a drill file: faults, probes and expectations on a "
                                     "real network, repeated, compared and reported")
    p.add_argument("file", help="the drill file (YAML), e.g. drills/vrrp-crash.yaml")
    p.add_argument("--repeat", type=_positive(int), default=1, metavar="N",
                   help="run it N times, each on a fresh network (default 1)")
    p.add_argument("--compare", metavar="VARIANT|FILE2",
                   help="also run this variant of the file (or another drill file), "
                        "interleaved, and say whether they differ")
    p.add_argument("--report", metavar="DIR",
                   help="the report folder (default: a new folder in the run root)")
    p.add_argument("--gameday", action="store_true",
                   help="a game day: one of the file's gameday faults, chosen at random and "
                        "not shown, breaks the service; you restore it at the Mininet CLI "
                        "and are scored against the file's targets")
    p.add_argument("--seed", type=int, metavar="N",
                   help="with --gameday: the seed of the choice (the same seed, the same "
                        "fault at the same moment)")
    p.add_argument("--cli", action="store_true",
                   help="the Mininet CLI on the drill's network after its timeline ran, "
                        "before it is torn down (your commands are recorded)")
    p.set_defaults(func=cmd_drill)

    p = sub.add_parser("lb", help="operate the running load balancer (like ipvsadm)")
    lb = p.add_subparsers(dest="action", required=True)
    lb.add_parser("status", help="ipvsadm -Ln, plus health")
    q = lb.add_parser("weight", help="set a real server's weight")
    q.add_argument("server")
    q.add_argument("weight", type=int)
    q = lb.add_parser("drain", help="weight 0: no new connections, established ones stay")
    q.add_argument("server")
    q = lb.add_parser("add", help="add a real server")
    q.add_argument("server")
    q.add_argument("ip")
    q.add_argument("--port", type=int, default=80)
    q.add_argument("--weight", type=int, default=1)
    q = lb.add_parser("remove", help="remove a real server (established connections stay)")
    q.add_argument("server")
    q = lb.add_parser("path", help="schedule new connections in the switch (fast) or each "
                      "with the kernel's exact rule in the controller (exact)")
    q.add_argument("path", choices=("fast", "exact"))
    p.set_defaults(func=cmd_lb)
    return parser


def needs_sandbox(args):
    """Commands that build a network run in a sandbox of their own (redlab.sandbox)."""
    if args.func is cmd_run:
        return bool(args.name) and not args.list
    if args.func is cmd_grade:      # a class: each student is graded in a sandbox of its own
        return not getattr(args, "class_dir", None)
    return args.func in (cmd_demo, cmd_up, cmd_drill)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    from redlab import sandbox
    if needs_sandbox(args) and not sandbox.inside() and sandbox.available() is None:
        return sandbox.run([sys.executable, "-m", "redlab.cli"] + argv, name=args.command)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    _terminate_gracefully()
    try:
        return args.func(args)
    except RedlabError as exc:
        print("redlab: error: %s" % exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("redlab: interrupted; the network was torn down", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
