"""A lab made by `redlab new-lab` runs and grades as it is: its reference passes, its broken
submission fails the check it is named for, and the test it wrote says so."""

import subprocess
import sys

from redlab.labs import Lab
from redlab.newlab import new_lab
from redlab.pytest_plugin import grade_with_pytest


def test_a_new_lab_grades_its_reference_and_broken_submission(tmp_path):
    folder, test = new_lab("test-drive", labs_dir=tmp_path, number=8)
    lab = Lab(folder)
    reference = {r.name: r for r in grade_with_pytest(lab, lab.reference)}
    assert all(r.passed for r in reference.values()), [r.line() for r in reference.values()]
    assert "5 of 5 requests answered HTTP 200 by web1" in reference["client is served"].reason
    broken = {r.name: r for r in grade_with_pytest(lab, folder / "broken" / "not-a-server")}
    assert not broken["client is served"].passed and "10.0.0.99" in broken["client is served"].reason
    starter = {r.name: r for r in grade_with_pytest(lab, lab.submission)}
    assert not starter["client is served"].passed      # the starter is not an answer
    # the test the scaffold wrote passes too
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(test)], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-2000:]
