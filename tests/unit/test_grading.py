"""redlab.grading without a network: copy-in, and a class of fake graders that misbehave.

The class tests run real child processes -- a small Python script standing in for
``redlab grade --class-mode`` (through ``grade_class``'s ``child_argv`` seam) -- that hang
with a detached child holding stdout, kill their parent, flood their output, crash or
write a corrupt grade.  Each must end as one FAIL for that student within the limit,
the others graded, every report written, and no process left running.
"""

import csv
import json
import os
import secrets
import signal
import stat
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from redlab import grading, labs
from redlab.wait import wait_until

# -- copy in ----------------------------------------------------------------------------------


def submission(tmp_path, files=None, name="alice"):
    folder = tmp_path / name
    folder.mkdir()
    for rel, data in (files or {"deploy.sh": b"#!/bin/sh\necho hi\n"}).items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return folder


def refusal(source, dest, **limits):
    with pytest.raises(grading.SubmissionRefused) as caught:
        grading.copy_in(source, dest, grading.Limits(**limits) if limits else grading.Limits())
    assert not dest.exists(), "a refused copy must leave nothing behind"
    return str(caught.value)


def test_a_submission_is_copied_with_its_folders_and_exec_bits(tmp_path):
    source = submission(tmp_path, {"deploy.sh": b"#!/bin/sh\n", "notes/readme.txt": b"hello"})
    os.chmod(source / "deploy.sh", 0o4755)                   # setuid: not copied
    copy = grading.copy_in(source, tmp_path / "copy")
    assert (copy / "notes" / "readme.txt").read_bytes() == b"hello"
    assert stat.S_IMODE(os.stat(copy / "deploy.sh").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(copy).st_mode) == 0o700      # root-only staging


def test_a_symlink_anywhere_is_refused_with_where_it_points(tmp_path):
    source = submission(tmp_path, {"deep/er/file": b"x"})
    os.symlink("../../../bob/deploy.sh", source / "deep" / "er" / "deploy.sh")
    assert refusal(source, tmp_path / "copy") == (
        "submission holds a symlink deep/er/deploy.sh -> ../../../bob/deploy.sh; "
        "submit regular files only")


def test_a_submission_folder_that_is_a_symlink_is_refused(tmp_path):
    real = submission(tmp_path)
    os.symlink(real, tmp_path / "mallory")
    assert "is a symlink to %s" % real in refusal(tmp_path / "mallory", tmp_path / "copy")


def test_a_fifo_is_refused_without_blocking_the_copy(tmp_path):
    source = submission(tmp_path)
    os.mkfifo(source / "pipe")          # opening it for reading would wait for a writer
    assert refusal(source, tmp_path / "copy") == \
        "submission holds a FIFO (named pipe) pipe; submit regular files only"


def test_a_huge_submission_is_refused(tmp_path):
    source = submission(tmp_path)
    with open(source / "disk.img", "wb") as f:      # sparse: 21 MB on paper, nothing on disk
        f.truncate(21 * 2 ** 20)
    assert refusal(source, tmp_path / "copy") == (
        "submission is larger than 20 MB (seen at disk.img); hand in only the lab's files")


def test_a_submission_of_too_many_files_is_refused(tmp_path):
    source = submission(tmp_path, {"f%04d" % i: b"" for i in range(1001)})
    assert refusal(source, tmp_path / "copy") == (
        "submission holds more than 1000 files and folders; hand in only the lab's files")


def test_folders_nested_too_deep_are_refused(tmp_path):
    source = submission(tmp_path, {"/".join("d" * 5) + "/f": b""})
    assert "deeper than 3 levels" in refusal(source, tmp_path / "copy", max_depth=3)


def test_non_utf8_names_and_contents_copy_and_print(tmp_path):
    name = os.fsdecode(b"caf\xe9")
    source = submission(tmp_path, {name + "/r\xe9sum\xe9.txt": b"\xff\xfe\x00",
                                   os.fsdecode(b"\x80.sh"): b"echo \xc3\x28\n"})
    copy = grading.copy_in(source, tmp_path / "copy")
    assert sorted(os.listdir(os.fsencode(copy))) == [b"caf\xe9", b"\x80.sh"]
    assert (copy / name / "r\xe9sum\xe9.txt").read_bytes() == b"\xff\xfe\x00"
    os.symlink("/etc/passwd", source / os.fsdecode(b"l\xff"))
    reason = refusal(source, tmp_path / "copy2")
    assert reason == "submission holds a symlink l\\xff -> /etc/passwd; submit regular files only"
    reason.encode("utf-8")              # printable as UTF-8: no lone surrogates


# -- judging a child's outcome ---------------------------------------------------------------


def test_a_sandbox_exit_of_128_plus_n_is_a_signal():
    assert grading.Outcome(returncode=137).signal == 9
    assert grading.Outcome(returncode=-15).signal == 15
    assert grading.Outcome(supervisor_code=-9).signal == 9
    assert grading.Outcome(returncode=1).signal is None


def test_a_grade_whose_exit_code_disagrees_is_not_trusted(tmp_path):
    grade = tmp_path / "grade.json"
    grade.write_text(json.dumps({"checks": [{"name": "answer", "passed": False,
                                             "reason": "wrong"}]}))
    results = grading.judge(grading.Outcome(returncode=0), grade, 300, tmp_path / "no.log")
    assert [(r.name, r.passed) for r in results] == [("grading", False)]
    assert "exited with code 0, but its grade would exit with 1" in results[0].reason
    assert not grading.judge(grading.Outcome(returncode=1), grade, 300, tmp_path / "x")[0].passed


@pytest.mark.parametrize("data, why", [
    ({"checks": "all passed"}, "no list of checks"),
    ({"checks": []}, "no list of checks"),
    ({"checks": [{"name": "a", "passed": "yes", "reason": ""}]}, "check 0 of its grade"),
    ([1, 2], "no list of checks"),
])
def test_a_grade_of_the_wrong_shape_is_refused(tmp_path, data, why):
    grade = tmp_path / "grade.json"
    grade.write_text(json.dumps(data))
    with pytest.raises(grading.BadGrade, match=why):
        grading.load_grade(grade)


def test_a_grade_is_cleaned_of_terminal_escapes(tmp_path):
    grade = tmp_path / "grade.json"
    grade.write_text(json.dumps({"checks": [{"name": "a", "passed": True,
                                             "reason": "ok\x1b]0;pwned\x07 \udcff"}]}))
    (result,) = grading.load_grade(grade)
    assert result.reason == "ok\\x1b]0;pwned\\x07 \\udcff"


# -- a class of fake graders ---------------------------------------------------------------------

FAKE_GRADER = textwrap.dedent('''
    """Stands in for `redlab grade --class-mode`: what it does is in the submission's case.txt."""
    import json, os, signal, subprocess, sys, time
    args = sys.argv[1:]
    submission, out = args[args.index("--submission") + 1], args[args.index("--json") + 1]
    case = open(os.path.join(submission, "case.txt")).read().strip()
    print("grading", case, flush=True)

    def grade(answer_passes):
        with open(out, "w") as f:
            json.dump({"lab": "09-fake", "checks": [
                {"name": "answer", "passed": answer_passes, "reason": "answer is %s" % case,
                 "measured": {}, "scored": True},
                {"name": "keepalived ran", "passed": True, "reason": "VRRP adverts seen",
                 "measured": {}, "scored": False}]}, f)
        sys.exit(0 if answer_passes else 1)

    if case in ("good", "wrong"):
        grade(case == "good")
    elif case == "hang":                    # a detached child keeps stdout; SIGTERM ignored
        subprocess.Popen(["setsid", "sleep", "3600"])
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(3600)
    elif case == "kill-parent":             # the student's line, run by the grader
        subprocess.run(["sh", "-c", "kill -9 $PPID"])
        time.sleep(60)
    elif case == "kill-supervisor":         # the grader's own parent
        os.kill(os.getppid(), signal.SIGKILL)
        time.sleep(60)
    elif case == "flood":                   # 300 MB of output, then a good grade
        chunk = b"x" * 2 ** 20
        for _ in range(300):
            os.write(1, chunk)
        grade(True)
    elif case == "exit3":
        print("boom: the grader crashed", file=sys.stderr)
        sys.exit(3)
    elif case == "corrupt":
        open(out, "w").write('{"checks": [{"name": "answer", "pass')
        sys.exit(0)
''')

FAKE_LAB = '''
TITLE = "Fake lab"
def walkthrough(ctx):
    return {}
CHECKS = []
'''

TIMEOUT, GRACE = 4.0, 1.0
CASES = ["good", "wrong", "hang", "kill-parent", "kill-supervisor", "flood", "exit3", "corrupt"]
EXPECTED = {
    "good": None, "wrong": None,
    "hang": "the grader stopped after 4 s: the submission hung",
    "kill-parent": "the grade process was killed by signal 9 (SIGKILL)",
    "kill-supervisor": "the grade process was killed by signal 9 (SIGKILL)",
    "flood": "output flooded: the grade process wrote more than 5 MB, so it was stopped",
    "exit3": "the grade process exited with code 3 and it wrote no grade; "
             "it said: boom: the grader crashed",
    "corrupt": "the grade process exited with code 0 and its grade is not valid JSON",
    "linky": "submission holds a symlink case.txt -> ../good/case.txt; submit regular files only",
    "piped": "submission holds a FIFO (named pipe) case.txt; submit regular files only",
}
NON_UTF8 = os.fsdecode(b"jos\xe9")      # a good student whose folder name is not UTF-8


def processes_marked(token):
    """Processes whose environment carries ``token`` (every process a fake class started)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if token.encode() in Path("/proc", pid, "environ").read_bytes():
                found.append("%s %s" % (pid, Path("/proc", pid, "cmdline").read_bytes()))
        except OSError:
            continue
    return found


def make_class(folder):
    klass = folder / "class"
    for case in CASES:
        (klass / case).mkdir(parents=True)
        (klass / case / "case.txt").write_text(case + "\n")
    (klass / NON_UTF8).mkdir()
    (klass / NON_UTF8 / "case.txt").write_text("good\n")
    (klass / "linky").mkdir()
    os.symlink("../good/case.txt", klass / "linky" / "case.txt")
    (klass / "piped").mkdir()
    os.mkfifo(klass / "piped" / "case.txt")
    return klass


def grade_fake_class(folder, jobs):
    lab_folder = folder / "09-fake"
    lab_folder.mkdir(parents=True, exist_ok=True)
    (lab_folder / "lab.py").write_text(FAKE_LAB)
    (folder / "fake_grader.py").write_text(FAKE_GRADER)
    klass = folder / "class" if (folder / "class").exists() else make_class(folder)
    reports = folder / ("reports-jobs%d" % jobs)
    token = "redlab-test-%s" % secrets.token_hex(6)
    lines = []

    def child_argv(lab, copy, grade_file, student):
        return [sys.executable, str(folder / "fake_grader.py"), "--submission", str(copy),
                "--json", str(grade_file), "--student=" + student]
    began = time.monotonic()
    graded = grading.grade_class(labs.Lab(lab_folder), klass, reports, jobs=jobs,
                                 timeout=TIMEOUT, grace=GRACE, out=lines.append,
                                 child_argv=child_argv, env=dict(os.environ, REDLAB_MARK=token))
    return dict(graded=graded, reports=reports, seconds=time.monotonic() - began, token=token,
                lines=lines, klass=klass)


@pytest.fixture(scope="module")
def fake_class(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    return {jobs: grade_fake_class(folder, jobs) for jobs in (3, 1)}


def outcome(results):
    return [(r.name, r.passed, r.scored) for r in results]


def test_every_hostile_student_gets_one_fail_with_its_reason(fake_class):
    graded = fake_class[3]["graded"]
    assert sorted(graded) == sorted(list(EXPECTED) + ["jos\\xe9"])
    for student, reason in EXPECTED.items():
        if reason is None:
            continue
        (result,) = graded[student]
        assert result.name in ("grading", "submission") and not result.passed, student
        assert result.reason.startswith(reason), (student, result.reason)


def test_the_good_students_get_their_own_grade(fake_class):
    graded = fake_class[3]["graded"]
    assert outcome(graded["good"]) == [("answer", True, True), ("keepalived ran", True, False)]
    assert outcome(graded["jos\\xe9"]) == outcome(graded["good"])
    assert outcome(graded["wrong"]) == [("answer", False, True), ("keepalived ran", True, False)]
    assert graded["wrong"][0].reason == "answer is wrong"


def test_every_student_has_reports_and_a_summary_row(fake_class):
    reports = fake_class[3]["reports"]
    rows = {r["student"]: r for r in csv.DictReader(open(reports / "summary.csv"))}
    assert sorted(rows) == sorted(fake_class[3]["graded"])
    assert rows["good"]["answer"] == "PASS" and rows["good"]["keepalived ran"] == "INFO"
    assert (rows["good"]["passed"], rows["good"]["checks"]) == ("1", "1")    # scored only
    assert rows["hang"]["grading"] == "FAIL" and rows["hang"]["passed"] == "0"
    assert rows["linky"]["submission"] == "FAIL"
    for student in rows:
        data = json.loads((reports / ("%s.json" % student)).read_text())
        assert data["checks"], student
        ET.parse(reports / ("%s.xml" % student))                   # well-formed JUnit
        assert (reports / ("%s.log" % student)).exists()
    good = json.loads((reports / "good.json").read_text())
    assert good["submission"] == str(fake_class[3]["klass"] / "good")   # the original
    assert not (reports / grading.STAGING).exists()                # copies removed


def test_output_is_capped_and_leftovers_are_named_in_the_log(fake_class):
    reports = fake_class[3]["reports"]
    assert grading.LOG_CAP <= (reports / "flood.log").stat().st_size < grading.LOG_CAP + 200
    assert "killed 1 process(es) the grade left behind" in (reports / "hang.log").read_text()
    assert (reports / "hang.log").read_text().startswith("grading hang\n")


def test_each_student_ends_within_its_limit(fake_class):
    for jobs, run in fake_class.items():
        for line in run["lines"][1:]:
            if line.startswith("["):
                seconds = float(line.split("(")[1].split(" s)")[0])
                assert seconds <= TIMEOUT + 2 * GRACE + 1, line
    # one hang at a time is the longest path; everything else takes well under a second
    assert fake_class[3]["seconds"] < TIMEOUT + 2 * GRACE + 5


def test_nothing_is_left_running(fake_class):
    for run in fake_class.values():
        wait_until(lambda: (not processes_marked(run["token"]), processes_marked(run["token"])),
                   5, "every process of the fake class to be gone")


def test_jobs_1_and_jobs_3_give_identical_results(fake_class):
    one, three = fake_class[1]["graded"], fake_class[3]["graded"]
    assert list(one) == list(three)
    assert {s: outcome(r) for s, r in one.items()} == {s: outcome(r) for s, r in three.items()}
    assert (fake_class[1]["reports"] / "summary.csv").read_text() == \
        (fake_class[3]["reports"] / "summary.csv").read_text()


def test_the_plain_progress_says_how_far_the_class_is(fake_class):
    lines = fake_class[3]["lines"]
    assert lines[0] == "grading lab 09-fake: 11 students, 3 at a time, at most 4 s each"
    assert sum(line.startswith("[") for line in lines) == 11
    assert any(line.startswith("[11/11] ") for line in lines)


def test_the_supervisor_stops_its_grader_when_the_class_process_dies(tmp_path):
    """A class process killed with -9 leaves no grader behind: the supervisor gets SIGTERM
    from the kernel (parent-death signal), stops the grader and whatever it detached."""
    token = "redlab-test-%s" % secrets.token_hex(6)
    script = tmp_path / "class.py"
    script.write_text(textwrap.dedent('''
        import subprocess, sys
        subprocess.Popen([sys.executable, "-m", "redlab.grading", "_supervise", "--status",
                          sys.argv[1], "--grace", "1", "--parent", str(__import__("os").getpid()),
                          "--", "sh", "-c", "setsid sleep 3600 & sleep 3600"])
        print("started", flush=True)
        __import__("time").sleep(3600)
    '''))
    import subprocess
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path / "status.json")],
                              stdout=subprocess.PIPE, env=dict(os.environ, REDLAB_MARK=token))
    try:
        assert parent.stdout.readline() == b"started\n"
        wait_until(lambda: len(processes_marked(token)) >= 4, 5,
                   "the supervisor, the grader and its two sleeps")
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    wait_until(lambda: (not processes_marked(token), processes_marked(token)), 5,
               "the supervisor to take everything with it")
    assert json.loads((tmp_path / "status.json").read_text())["returncode"] == -signal.SIGTERM


def test_ctrl_c_stops_the_class_and_still_writes_the_summary(tmp_path):
    """Ctrl-C while a student hangs: that grade is stopped, the next is never started, and
    summary.csv still has a row for everybody."""
    import subprocess
    lab_folder = tmp_path / "09-fake"
    lab_folder.mkdir()
    (lab_folder / "lab.py").write_text(FAKE_LAB)
    (tmp_path / "fake_grader.py").write_text(FAKE_GRADER)
    for case in ("good", "hang", "wrong"):
        (tmp_path / "class" / case).mkdir(parents=True)
        (tmp_path / "class" / case / "case.txt").write_text(case)
    token = "redlab-test-%s" % secrets.token_hex(6)
    script = tmp_path / "grade.py"
    script.write_text(textwrap.dedent('''
        import sys
        from pathlib import Path
        from redlab import grading, labs
        here = Path(sys.argv[1])
        def child_argv(lab, copy, grade_file, student):
            return [sys.executable, str(here / "fake_grader.py"), "--submission", str(copy),
                    "--json", str(grade_file)]
        grading.grade_class(labs.Lab(here / "09-fake"), here / "class", here / "reports",
                            jobs=1, timeout=600, grace=1, child_argv=child_argv)
    '''))
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)],
                            env=dict(os.environ, REDLAB_MARK=token), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        hang_log = tmp_path / "reports" / "hang.log"
        wait_until(lambda: hang_log.exists() and "grading hang" in hang_log.read_text(), 20,
                   "the second student to start")
        began = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert b"KeyboardInterrupt" in err and time.monotonic() - began < 2 * GRACE + 5
    rows = {r["student"]: r for r in csv.DictReader(open(tmp_path / "reports" / "summary.csv"))}
    assert (rows["good"]["answer"], rows["hang"]["grading"], rows["wrong"]["grading"]) == \
        ("PASS", "FAIL", "FAIL")
    hang = json.loads((tmp_path / "reports" / "hang.json").read_text())["checks"][0]
    assert hang["reason"] == "the class run was interrupted before this grade was complete"
    assert not (tmp_path / "reports" / "wrong.json").exists()       # never started
    wait_until(lambda: (not processes_marked(token), processes_marked(token)), 5,
               "every process of the interrupted class to be gone")


def test_default_jobs_is_bounded_by_cores_and_students():
    assert grading.default_jobs(1) == 1
    assert 1 <= grading.default_jobs(1000) <= len(os.sched_getaffinity(0))


# -- one submission: copied in, links refused the same way ---------------------------------------


def test_one_submission_is_graded_on_a_copy_and_reasons_name_the_original(tmp_path):
    lab_folder = tmp_path / "09-fake"
    lab_folder.mkdir()
    (lab_folder / "lab.py").write_text('''
from redlab.labs import passed
TITLE = "Fake lab"
def walkthrough(ctx):
    return {"seen": str(ctx.submission)}
def check_where(ctx, measured):
    return passed("where", "graded %s" % measured["seen"])
CHECKS = [check_where]
''')
    source = submission(tmp_path)
    (result,) = grading.grade_submission(labs.Lab(lab_folder), source)
    assert result.reason == "graded %s" % source        # the copy's path is not shown
    os.symlink("/etc/shadow", source / "shadow")
    (result,) = grading.grade_submission(labs.Lab(lab_folder), source)
    assert (result.name, result.passed) == ("submission", False)
    assert result.reason == "submission holds a symlink shadow -> /etc/shadow; submit regular " \
        "files only"


def test_the_grade_command_refuses_a_linked_submission_with_exit_1(tmp_path, capsys):
    """Through cmd_grade (no sandbox or network: the copy is refused before the lab runs)."""
    from redlab import cli
    source = submission(tmp_path)
    os.symlink("../bob/deploy.sh", source / "other.sh")
    args = cli.build_parser().parse_args(["grade", "02", "--submission", str(source), "--json",
                                          str(tmp_path / "r.json")])
    assert args.func(args) == 1
    assert "FAIL  submission: submission holds a symlink other.sh -> ../bob/deploy.sh" in \
        capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["checks"][0]["name"] == "submission"


def test_class_options_need_a_class(tmp_path):
    from redlab import cli
    args = cli.build_parser().parse_args(["grade", "02", "--jobs", "2"])
    with pytest.raises(labs.RedlabError, match="--jobs is for a class"):
        args.func(args)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["grade", "02", "--class", "x", "--jobs", "0"])
