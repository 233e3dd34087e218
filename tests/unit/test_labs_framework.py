"""The grading framework on a tiny fake lab (no network)."""

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
    ctx.say("measured %d" % value)
    return {"value": value}

def check_answer_is_42(ctx, measured):
    if measured["value"] == 42:
        return passed("answer is 42", "you answered 42")
    return failed("answer is 42", "you answered %d; the lab asks for 42" % measured["value"])

def check_file_exists(ctx, measured):
    ok = (ctx.submission / "answer.txt").exists()
    return (passed if ok else failed)("file exists", "answer.txt is %s" % ("there" if ok else "missing"))
check_file_exists.static = True

CHECKS = [check_answer_is_42, check_file_exists]
'''


@pytest.fixture
def lab(tmp_path):
    folder = tmp_path / "09-fake"
    folder.mkdir()
    (folder / "lab.py").write_text(LAB_PY)
    return labs.Lab(folder)


def submit(tmp_path, text, name="s"):
    folder = tmp_path / name
    folder.mkdir()
    if text is not None:
        (folder / "answer.txt").write_text(text)
    return folder


def test_number_slug_and_title(lab):
    assert (lab.number, lab.slug, lab.title) == (9, "fake", "Fake lab")


def test_all_checks_pass_for_a_right_answer(lab, tmp_path):
    results = lab.grade(submit(tmp_path, "42"))
    assert [r.passed for r in results] == [True, True]


def test_a_wrong_answer_fails_with_an_actionable_reason(lab, tmp_path):
    results = {r.name: r for r in lab.grade(submit(tmp_path, "7"))}
    assert not results["answer is 42"].passed
    assert "you answered 7; the lab asks for 42" == results["answer is 42"].reason


def test_a_crashing_walkthrough_still_runs_static_checks(lab, tmp_path):
    results = {r.name: r for r in lab.grade(submit(tmp_path, "-1"))}
    assert not results["walk-through"].passed and "ValueError: negative" in results["walk-through"].reason
    assert "did not finish" in results["answer is 42"].reason
    assert results["file exists"].passed


def test_missing_file_is_a_clear_failure(lab, tmp_path):
    results = {r.name: r for r in lab.grade(submit(tmp_path, None))}
    assert "the submission has no answer.txt" in results["walk-through"].reason
    assert not results["file exists"].passed


def test_json_and_junit_reports(lab, tmp_path):
    submission = submit(tmp_path, "7")
    results = lab.grade(submission)
    labs.write_json(tmp_path / "r.json", lab, results, submission)
    labs.write_junit(tmp_path / "r.xml", lab, results, submission)
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["passed"] is False and data["checks"][0]["name"] == "answer is 42"
    suite = ET.parse(tmp_path / "r.xml").getroot()
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    failure = suite.find("testcase[@name='answer is 42']/failure")
    assert "the lab asks for 42" in failure.get("message")
    assert "FAIL  answer is 42" in labs.report_text(lab, results)


def test_unknown_lab_lists_the_labs():
    with pytest.raises(labs.ConfigError, match="unknown lab 'nope'"):
        labs.find("nope")
