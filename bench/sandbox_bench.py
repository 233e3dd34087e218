"""What a sandbox costs: ratios against a baseline measured in the same run.

    sudo .venv/bin/python bench/sandbox_bench.py [--rounds 10] [--grade-rounds 3]

1. A trivial command (``true``) run directly, inside a new sandbox (namespaces,
   private ovsdb-server + ovs-vswitchd, teardown), and jailed as a student's code is.
2. ``redlab grade 02`` of lab 02's reference, as before sandboxes (the grader in the
   machine's namespaces, the machine's Open vSwitch) and as now (in a sandbox of its
   own).  The first needs the machine's OVS running (``make setup`` starts it).

Prints medians and the difference per student; no assertion (speed is not a test).
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from redlab import sandbox  # noqa: E402


def timed(function, rounds):
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times


def grade(sandboxed):
    env = dict(os.environ)
    env.pop(sandbox.ENV, None)
    if not sandboxed:
        # the path every grade took before sandboxes: no namespaces of its own
        env[sandbox.ENV] = "bench-unsandboxed"
    done = subprocess.run([sys.executable, "-m", "redlab.cli", "grade", "02", "--submission",
                           str(REPO / "labs/02-hot-standby/reference")], cwd=REPO, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit("grading failed:\n%s%s" % (done.stdout, done.stderr))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--grade-rounds", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: sandboxes need namespaces")

    direct, _ = timed(lambda: subprocess.run(["true"], check=True), args.rounds)
    boxed, _ = timed(lambda: sandbox.run(["true"], name="bench"), args.rounds)
    print("trivial command   direct %.3f s   in a sandbox %.3f s   (+%.3f s, x%.0f)"
          % (direct, boxed, boxed - direct, boxed / direct))

    import tempfile
    from redlab import jail
    with tempfile.TemporaryDirectory(dir="/var/lib/redlab") as scratch:
        def jailed(i=[0]):
            i[0] += 1
            work = jail.work_folder(Path(scratch) / ("work%d" % i[0]))
            jail.run(["true"], work, Path(scratch) / ("jail%d.json" % i[0]), caps=())
        jailed_time, _ = timed(jailed, args.rounds)
    print("trivial command   direct %.3f s   jailed %.3f s   (+%.3f s)"
          % (direct, jailed_time, jailed_time - direct))

    if args.grade_rounds:
        before, _ = timed(lambda: grade(False), args.grade_rounds)
        now, _ = timed(lambda: grade(True), args.grade_rounds)
        print("grade lab 02      unsandboxed %.2f s   sandboxed %.2f s   (%+.2f s per student, "
              "x%.3f)" % (before, now, now - before, now / before))


if __name__ == "__main__":
    main()
