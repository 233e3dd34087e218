"""Grading a class: one job against several, and one student against an older checkout.

    sudo .venv/bin/python bench/grading_bench.py [--jobs 4] [--baseline-checkout DIR]

1. A class of 8 lab 02 submissions (4 references, 2 ``broken/active-only``, 2
   ``broken/empty``) graded with ``--jobs 1`` and with ``--jobs N``: wall times, their
   ratio, and whether ``summary.csv`` gives every student the same verdicts.
2. With ``--baseline-checkout DIR`` (e.g. ``git worktree add /tmp/base ce1aa2e``, the
   last commit before sandboxes and jails; it needs the machine's Open vSwitch running):
   ``redlab grade 02`` of the reference from that checkout and from this one, each
   ``--rounds`` times, medians and the difference per student.

Prints measurements only; speed is never a test.
"""

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAB = REPO / "labs" / "02-hot-standby"


def make_class(folder):
    cases = {"ref": LAB / "reference", "active-only": LAB / "broken" / "active-only",
             "empty": LAB / "broken" / "empty"}
    for name, count in (("ref", 4), ("active-only", 2), ("empty", 2)):
        for i in range(count):
            shutil.copytree(cases[name], folder / ("%s-%d" % (name, i)))


def grade_class(klass, reports, jobs):
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "redlab.cli", "grade", "02", "--class",
                           str(klass), "--reports", str(reports), "--jobs", str(jobs)],
                          cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit("grading failed:\n%s%s" % (done.stdout[-2000:], done.stderr[-2000:]))
    with open(reports / "summary.csv") as f:
        rows = {r["student"]: {k: v for k, v in r.items() if k != "student"}
                for r in csv.DictReader(f)}
    return seconds, rows


def one_grade(checkout):
    env = dict(os.environ)
    env.pop("REDLAB_SANDBOX", None)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "redlab.cli", "grade", "02", "--submission",
                           str(LAB / "reference")], cwd=checkout, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit("grading in %s failed:\n%s%s" % (checkout, done.stdout, done.stderr))
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--baseline-checkout", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")

    work = Path(tempfile.mkdtemp(prefix="grading-bench-", dir="/var/lib/redlab"))
    try:
        make_class(work / "class")
        one, rows1 = grade_class(work / "class", work / "reports-1", 1)
        many, rows_n = grade_class(work / "class", work / ("reports-%d" % args.jobs), args.jobs)
        print("class of 8 lab 02 students: --jobs 1 %.1f s, --jobs %d %.1f s (x%.2f faster); "
              "verdicts %s" % (one, args.jobs, many, one / many,
                               "identical" if rows1 == rows_n else "DIFFER"))
        for student, row in sorted(rows1.items()):
            print("  %-14s %s of %s  %s" % (student, row["passed"], row["checks"],
                                            "" if row == rows_n[student] else
                                            "(--jobs %d: %s)" % (args.jobs, rows_n[student])))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if args.baseline_checkout:
        before = [one_grade(args.baseline_checkout) for _ in range(args.rounds)]
        now = [one_grade(REPO) for _ in range(args.rounds)]
        b, n = statistics.median(before), statistics.median(now)
        print("one lab 02 grade: %s %.2f s, this checkout (sandbox + jails) %.2f s: %+.2f s "
              "per student (x%.3f)" % (args.baseline_checkout, b, n, n - b, n / b))


if __name__ == "__main__":
    main()
