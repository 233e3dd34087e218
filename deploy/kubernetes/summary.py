"""summary.csv of a class graded by the Kubernetes Job (grade-class.yaml), in the form of
``redlab grade NN --class``: one row per student, one column per check.

    .venv/bin/python deploy/kubernetes/summary.py REPORTS [CLASS]

REPORTS holds the pods' ``<student>.json``; with CLASS (the class folder) a student whose
pod left no report gets a row too, failed with that reason.
"""

import sys
from pathlib import Path

from redlab.grading import BadGrade, load_grade, students_of, write_summary
from redlab.labs import failed


def summary(reports, class_dir=None):
    """{student: [CheckResult]} from the reports, written to ``reports/summary.csv``."""
    reports = Path(reports)
    names = sorted(students_of(class_dir, reports)) if class_dir else \
        sorted(p.stem for p in reports.glob("*.json"))
    graded = {}
    for name in names:
        try:
            graded[name] = load_grade(reports / ("%s.json" % name))
        except BadGrade as exc:
            graded[name] = [failed("grade", "no usable report: %s (see %s.txt and the pod's "
                                   "log)" % (exc, name))]
    write_summary(reports / "summary.csv", graded)
    return graded


if __name__ == "__main__":
    if not 1 <= len(sys.argv) - 1 <= 2:
        sys.exit(__doc__)
    for student, results in summary(*sys.argv[1:]).items():
        print("%-24s %d of %d checks pass" % (student, sum(r.passed for r in results if r.scored),
                                              sum(1 for r in results if r.scored)))
