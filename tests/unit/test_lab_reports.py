"""Scored checks and information in the reports (a tiny fake lab, no network).

A check that measures the lab rather than the student (``check.scored = False``) is
shown as INFO: never counted in "N of M checks pass", in the JSON score or as a JUnit
failure -- also when the walk-through did not finish or the check itself crashed.
"""

import json
import xml.etree.ElementTree as ET

import pytest

from redlab import labs

LAB_PY = '''
from redlab.labs import passed, failed
TITLE = "Fake lab"

def walkthrough(ctx):
    value = int(ctx.file("answer.txt").read_text())
    if value < 0:
        raise ValueError("negative")
    return {"value": value, "daemon_seconds": 1.5}

def check_answer_is_42(ctx, measured):
    if measured["value"] == 42:
        return passed("answer is 42", "you answered 42")
    return failed("answer is 42", "you answered %d; the lab asks for 42" % measured["value"])

def check_daemon_was_quick(ctx, measured):
    ok = measured["daemon_seconds"] < 1
    return (passed if ok else failed)("daemon was quick", "the daemon took %.1f s"
                                      % measured["daemon_seconds"])
check_daemon_was_quick.scored = False

def check_file_parses(ctx, measured):
    ok = (ctx.submission / "answer.txt").exists()
    return (passed if ok else failed)("file parses", "answer.txt is %s"
                                      % ("there" if ok else "missing"))
check_file_parses.static = True
check_file_parses.scored = False

CHECKS = [check_answer_is_42, check_daemon_was_quick, check_file_parses]
'''


@pytest.fixture
def lab(tmp_path):
    folder = tmp_path / "09-fake"
    folder.mkdir()
    (folder / "lab.py").write_text(LAB_PY)
    return labs.Lab(folder)


def graded(lab, tmp_path, answer, name="s"):
    folder = tmp_path / name
    folder.mkdir()
    if answer is not None:
        (folder / "answer.txt").write_text(answer)
    return folder, lab.grade(folder)


def test_information_is_never_counted(lab, tmp_path):
    _, results = graded(lab, tmp_path, "42")
    by_name = {r.name: r for r in results}
    assert by_name["answer is 42"].scored
    assert not by_name["daemon was quick"].scored and not by_name["daemon was quick"].passed
    assert labs.score(results) == (1, 1)
    text = labs.report_text(lab, results)
    assert text.splitlines()[0] == ("Lab 09 Fake lab: 1 of 1 checks pass (and 2 for "
                                    "information, not scored)")
    # the scored lines first, then the information apart, each marked INFO
    lines = text.splitlines()
    info_at = lines.index("  information (it measures the lab, not your submission; "
                          "not scored):")
    assert lines[1] == "  PASS  answer is 42: you answered 42"
    assert lines[info_at + 1:] == ["  INFO  daemon was quick: the daemon took 1.5 s",
                                   "  INFO  file parses: answer.txt is there"]


def test_a_walkthrough_that_did_not_finish_keeps_information_apart(lab, tmp_path):
    """grade() makes its own "not checked" result: it is information too, so every
    student is graded on the same number of checks (plus the walk-through's FAIL)."""
    _, results = graded(lab, tmp_path, None)
    by_name = {r.name: r for r in results}
    assert not by_name["daemon was quick"].scored
    assert "did not finish" in by_name["daemon was quick"].reason
    assert not by_name["file parses"].scored and not by_name["file parses"].passed
    assert labs.score(results) == (0, 2)          # the walk-through and "answer is 42"


def test_json_counts_scored_checks_and_marks_information(lab, tmp_path):
    folder, results = graded(lab, tmp_path, "42")
    labs.write_json(tmp_path / "r.json", lab, results, folder)
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["passed"] is True                  # the failing check is information
    assert data["score"] == {"passed": 1, "checks": 1}
    assert {c["name"]: c["scored"] for c in data["checks"]} == {
        "answer is 42": True, "daemon was quick": False, "file parses": False}


def test_junit_shows_information_as_a_passed_testcase_that_says_so(lab, tmp_path):
    folder, results = graded(lab, tmp_path, "7")
    labs.write_junit(tmp_path / "r.xml", lab, results, folder)
    suite = ET.parse(tmp_path / "r.xml").getroot()
    assert suite.get("tests") == "3" and suite.get("failures") == "1"
    assert suite.find("properties/property[@name='score']").get("value") == "0 of 1"
    case = suite.find("testcase[@name='daemon was quick']")
    assert case.find("failure") is None
    assert case.find("properties/property[@name='scored']").get("value") == "false"
    assert case.find("system-out").text.startswith("INFO (information, not scored")
    assert "the daemon took 1.5 s" in case.find("system-out").text
    assert suite.find("testcase[@name='answer is 42']/failure") is not None
