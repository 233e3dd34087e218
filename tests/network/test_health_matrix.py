"""The detection matrix the course notes claim, measured and asserted: the drill
drills/detection-matrix.yaml, run by the drill engine and read as a matrix."""

import json

from redlab.scenarios import health_matrix
from redlab.scenarios.health_matrix import CHECKS, EXPECTED, markdown

WINDOW = 2 * (0.2 + 0.5) + 1.5      # fall x (interval + timeout), and a margin


def test_detection_matrix(run_folder):
    record = health_matrix.run(run_folder / "run")
    failed = [e for e in record["expectations"] if not e["passed"]]
    assert not failed, failed
    measured = health_matrix.matrix(record)
    table = markdown(measured)
    (run_folder / "matrix.md").write_text(table + "\n")
    (run_folder / "matrix.json").write_text(json.dumps(measured, indent=1))
    print(table)
    assert list(measured) == list(EXPECTED)
    for name, row in measured.items():
        assert {c for c in CHECKS if row[c] is not None} == EXPECTED[name], (name, row)
        for c in EXPECTED[name]:
            assert row[c] <= WINDOW, (name, c, row[c])
    sent = health_matrix.checks_sent(record)
    assert all(n > len(record["samples"][c]) for c, n in sent.items()), sent
