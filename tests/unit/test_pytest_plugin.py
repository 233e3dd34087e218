"""The pytest plugin (``pytest --lab``) and ``redlab grade`` on a small lab of our own.

Both run as a user runs them (subprocesses, from a folder outside the project), on a lab
folder made here: one static check, one scored check of the walk-through's result, one
information check.  Every case the grader knows is covered: a pass, a failure, a
walk-through that stopped, a refused submission; the two tools must agree on each check.
"""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

LAB = '''
from redlab.labs import failed, passed

TITLE = "A small lab"


def walkthrough(ctx):
    text = (ctx.submission / "answer.txt").read_text().strip()
    if text == "crash":
        raise RuntimeError("the walk-through fell over")
    return {"answer": text}


def check_answer_file_exists(ctx, m):
    if (ctx.submission / "answer.txt").exists():
        return passed("answer file exists", "answer.txt is there")
    return failed("answer file exists", "there is no answer.txt")


check_answer_file_exists.static = True


def check_answer_is_42(ctx, m):
    if m["answer"] == "42":
        return passed("answer is 42", "it is 42")
    return failed("answer is 42", "the answer was %s, not 42" % m["answer"])


def check_lab_note(ctx, m):
    return failed("lab note", "this measures the lab, not the student")


check_lab_note.scored = False

CHECKS = [check_answer_file_exists, check_answer_is_42, check_lab_note]
'''


@pytest.fixture
def lab(tmp_path):
    folder = tmp_path / "91-small"
    (folder / "submission").mkdir(parents=True)
    (folder / "lab.py").write_text(LAB)
    return folder


def submission(tmp_path, answer=None, symlink=False):
    folder = tmp_path / "student"
    folder.mkdir()
    if symlink:
        (folder / "answer.txt").symlink_to("/etc/passwd")
    elif answer is not None:
        (folder / "answer.txt").write_text(answer + "\n")
    return folder


def pytest_lab(tmp_path, lab, sub, *extra):
    junit = tmp_path / "junit.xml"
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                          "--lab=%s" % lab, "--submission=%s" % sub, "--junitxml", str(junit)]
                         + list(extra), cwd=tmp_path, capture_output=True, text=True)
    return run, junit_cases(junit)


def junit_cases(junit):
    """pytest's JUnit report: item name -> ok, its properties and its failure message."""
    cases = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        failure = case.find("failure")
        cases[case.get("name")] = dict(ok=failure is None, props=props,
                                       message=None if failure is None
                                       else failure.get("message"))
    return cases


def redlab_grade(tmp_path, lab, sub):
    out = tmp_path / "grade.json"
    run = subprocess.run([sys.executable, "-m", "redlab.cli", "grade", str(lab),
                          "--submission", str(sub), "--json", str(out)],
                         cwd=tmp_path, capture_output=True, text=True)
    return run, {c["name"]: c for c in json.loads(out.read_text())["checks"]}


def agree(cases, checks):
    """Each test item passes exactly when redlab grade says PASS or INFO, and a failing
    item's message is redlab grade's reason for it."""
    for name, case in cases.items():
        check = checks.get(name)
        if check is None:                  # kept from running: named in the stopping result
            stopper = next(c for c in checks.values() if c["name"] in ("walk-through",
                                                                       "submission"))
            assert not case["ok"] and stopper["reason"] in case["message"], case
            continue
        assert case["ok"] == (check["passed"] or not check["scored"]), (name, case, check)
        assert case["props"]["scored"] == ("true" if check["scored"] else "false")
        assert case["props"]["reason"] == check["reason"]
        if not case["ok"]:
            assert check["reason"] in case["message"], (case, check)


def test_a_pass_a_failure_and_information(tmp_path, lab):
    sub = submission(tmp_path, "41")
    run, cases = pytest_lab(tmp_path, lab, sub)
    assert run.returncode == 1, run.stdout
    assert {n: c["ok"] for n, c in cases.items()} == {
        "answer file exists": True, "answer is 42": False, "lab note": True}
    assert cases["answer is 42"]["message"] == "FAIL  answer is 42: the answer was 41, not 42"
    assert cases["lab note"]["props"] == dict(scored="false", passed="false",
                                              reason="this measures the lab, not the student")
    # the end of the session is redlab grade's own report
    assert "Lab 91 A small lab: 1 of 2 checks pass" in run.stdout
    grade, checks = redlab_grade(tmp_path, lab, sub)
    assert grade.returncode == 1
    agree(cases, checks)
    assert "FAIL  answer is 42: the answer was 41, not 42" in grade.stdout


def test_all_pass_exits_zero_in_both(tmp_path, lab):
    sub = submission(tmp_path, "42")
    run, cases = pytest_lab(tmp_path, lab, sub)
    grade, checks = redlab_grade(tmp_path, lab, sub)
    assert run.returncode == 0 and grade.returncode == 0, (run.stdout, grade.stdout)
    agree(cases, checks)


def test_a_stopped_walkthrough_fails_what_it_kept_from_running(tmp_path, lab):
    sub = submission(tmp_path, "crash")
    run, cases = pytest_lab(tmp_path, lab, sub)
    assert cases["answer file exists"]["ok"]            # static: it still ran
    message = cases["answer is 42"]["message"]
    assert "not checked: the walk-through did not finish" in message
    assert "the walk-through fell over" in message       # and why, in the same line
    grade, checks = redlab_grade(tmp_path, lab, sub)
    agree(cases, checks)


def test_a_refused_submission_fails_every_scored_check_with_the_reason(tmp_path, lab):
    sub = submission(tmp_path, symlink=True)
    run, cases = pytest_lab(tmp_path, lab, sub)
    assert not cases["answer file exists"]["ok"] and not cases["answer is 42"]["ok"]
    assert "symlink" in cases["answer is 42"]["message"]
    assert cases["lab note"]["ok"] and cases["lab note"]["props"]["scored"] == "false"
    grade, checks = redlab_grade(tmp_path, lab, sub)
    assert list(checks) == ["submission"] and "symlink" in checks["submission"]["reason"]
    for name, case in cases.items():
        assert case["props"]["reason"] == checks["submission"]["reason"]


def test_k_selects_checks_by_name(tmp_path, lab):
    sub = submission(tmp_path, "41")
    run, cases = pytest_lab(tmp_path, lab, sub, "-k", "file")
    assert list(cases) == ["answer file exists"] and run.returncode == 0, run.stdout


@pytest.mark.parametrize("args, words", [
    (["--lab=no-such-lab"], "unknown lab 'no-such-lab'"),
    (["--lab=LAB", "--submission=/nonexistent"], "--submission /nonexistent is not a folder"),
    (["--lab=LAB", "--submission", "/nonexistent"], "write --submission=VALUE as one word"),
])
def test_bad_options_are_one_sentence(tmp_path, lab, args, words):
    args = [a.replace("LAB", str(lab)) for a in args]
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider"] + args,
                         cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 4 and words in run.stderr, (run.stdout, run.stderr)
    assert "Traceback" not in run.stderr


def test_without_lab_the_plugin_does_nothing(tmp_path):
    (tmp_path / "test_x.py").write_text("def test_x():\n    assert True\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0 and "1 passed" in run.stdout
    assert "redlab grade" not in run.stdout


def test_a_submission_cannot_bring_its_own_pytest_hooks(tmp_path, lab):
    """A student's conftest.py or pytest.ini (hooks that would pass every check) is never
    loaded: the session collects the lab's lab.py only, and the submission is graded from a
    copy elsewhere."""
    sub = submission(tmp_path, "41")
    marker = tmp_path / "conftest-ran"
    (sub / "conftest.py").write_text(
        "import pathlib\npathlib.Path(%r).write_text('x')\n"
        "import pytest\n@pytest.hookimpl(hookwrapper=True)\n"
        "def pytest_runtest_makereport(item, call):\n"
        "    outcome = yield\n    outcome.get_result().outcome = 'passed'\n" % str(marker))
    (sub / "pytest.ini").write_text("[pytest]\naddopts = -p no:redlab\n")
    run, cases = pytest_lab(tmp_path, lab, sub)
    assert not cases["answer is 42"]["ok"] and run.returncode == 1
    grade, checks = redlab_grade(tmp_path, lab, sub)
    assert grade.returncode == 1 and not checks["answer is 42"]["passed"]
    assert not marker.exists()

