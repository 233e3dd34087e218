"""`pytest --lab=NN` and `redlab grade NN` agree on every shipped lab: the same items in
the same order, the same verdicts and reasons (both as a user runs them: subprocesses,
from a folder outside the project).

On an empty submission: most walk-throughs stop at the first file they read, before any
network, and the file-level checks still run; lab 06's runs its network (its measurement
needs no file) and grades the missing predictions.  Every reference and broken case of
tests/labs is checked for agreement too, on its own network run: the ``grade`` fixture
(tests/conftest.py) compares pytest's JUnit report of the items with the report
``redlab grade --json`` writes from the same results."""

import pytest

from redlab import labs
from tests.unit.test_pytest_plugin import agree, pytest_lab, redlab_grade


@pytest.mark.parametrize("number", ["%02d" % lab.number for lab in labs.all_labs()])
def test_both_tools_agree_on_an_empty_submission(tmp_path, number):
    sub = tmp_path / "empty"
    sub.mkdir()
    run, cases = pytest_lab(tmp_path, number, sub)
    grade, checks = redlab_grade(tmp_path, number, sub)
    assert run.returncode == grade.returncode == 1, (run.stdout[-2000:], grade.stdout)
    lab = labs.find(number)
    assert list(cases) == [labs.check_name(c) for c in lab.module.CHECKS], cases
    assert not all(c["ok"] for c in cases.values()), cases
    agree(cases, checks)
