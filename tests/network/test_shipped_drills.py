"""Every drill shipped in drills/ runs once, its default variant on a fresh network, and
meets every expectation it states: a shipped drill is a claim of the course notes that
a student or an engineer can run (`redlab drill drills/NAME.yaml`)."""

from pathlib import Path

import pytest

from redlab.drill.engine import run_drill
from redlab.drill.schema import load_drill

ROOT = Path(__file__).parents[2]
DRILLS = sorted(ROOT.joinpath("drills").glob("*.yaml"))
# drills another test runs (with more assertions than "every expectation met")
ELSEWHERE = {"vrrp-crash.yaml": "tests/network/test_drill.py",
             "detection-matrix.yaml": "tests/network/test_health_matrix.py",
             "cold-standby-gameday.yaml": "tests/network/test_gameday.py"}


def test_the_drills_run_elsewhere_are_run_there():
    for name, test in ELSEWHERE.items():
        assert ROOT.joinpath("drills", name).is_file(), name
        text = ROOT.joinpath(test).read_text()
        assert name in text or name.removesuffix(".yaml") in text, (name, test)


@pytest.mark.parametrize("path", [p for p in DRILLS if p.name not in ELSEWHERE],
                         ids=lambda p: p.stem)
def test_a_shipped_drill_meets_its_expectations(path, run_folder):
    drill = load_drill(path)
    assert drill["expect"], "a shipped drill states what must hold"
    record = run_drill(drill, run_folder=run_folder / "run")
    failed = [(e["name"], e["reason"]) for e in record["expectations"] if not e["passed"]]
    assert not failed, failed
    assert record["samples"] and all(record["samples"].values())
