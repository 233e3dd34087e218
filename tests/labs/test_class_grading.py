"""An instructor grades a whole class: one report per student and a summary, each student
in a process and a sandbox of its own, several at once, hostile ones contained."""

import csv
import json
import os
import re
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET

from redlab import labs

LAB = labs.find("01")
LAB02 = labs.find("02")


def summary(reports):
    return {r["student"]: r for r in csv.DictReader(open(reports / "summary.csv"))}


def test_grade_a_class_writes_a_report_per_student(run_folder, redlab_cmd):
    klass = run_folder / "class"
    shutil.copytree(LAB.reference, klass / "alice")
    shutil.copytree(LAB.folder / "broken" / "drifted-spare", klass / "bob")
    (klass / "carol").mkdir()                       # handed in nothing
    shutil.copytree(LAB.folder / "broken" / "template-exec", klass / "mallory")
    ran = "/tmp/redlab-template-exec-ran"           # what mallory's os.system would make
    if os.path.exists(ran):
        os.unlink(ran)
    reports = run_folder / "reports"
    out = subprocess.run(redlab_cmd + ["grade", "01", "--class", str(klass), "--reports",
                                       str(reports)], capture_output=True, text=True)
    assert out.returncode == 1, out.stderr            # not everybody passed
    alice = re.search(r"^  alice +(\d+) of (\d+) checks pass$", out.stdout, re.M)
    assert alice and alice.group(1) == alice.group(2) != "0", out.stdout[-2000:]
    rows = summary(reports)
    assert set(rows) == {"alice", "bob", "carol", "mallory"}
    mallory = json.loads((reports / "mallory.json").read_text())["checks"]
    assert "router.j2 tried something a template may not do" in json.dumps(mallory)
    assert rows["mallory"]["configs identical"] == "FAIL" and not os.path.exists(ran)
    assert rows["alice"]["configs identical"] == "PASS" and rows["alice"]["passed"] == \
        rows["alice"]["checks"] == alice.group(1)
    assert rows["bob"]["configs identical"] == "FAIL"
    assert rows["carol"]["passed"] == "0"
    carol = json.loads((reports / "carol.json").read_text())
    assert not carol["passed"] and "the submission has no router.j2" in json.dumps(carol["checks"])
    # reasons name the student's folder, never the copy that was graded
    assert "(looked in %s)" % (klass / "carol") in json.dumps(carol["checks"])
    suite = ET.parse(reports / "bob.xml").getroot()
    assert suite.get("failures") != "0" and suite.find("properties/property").get("value") \
        == str(klass / "bob")
    assert "configs identical" in (reports / "bob.log").read_text()      # the child's output


def hostile(klass, name, line):
    """The reference deploy.sh with one more line at the end (after its work is done)."""
    folder = klass / name
    shutil.copytree(LAB02.reference, folder)
    with open(folder / "deploy.sh", "a") as f:
        f.write(line + "\n")


REFERENCE_LINE = "the update is only done when the server really serves it"
ESCAPED = "ESC" "APED"        # printed by a hostile line that got through (never in its text)


def test_a_hostile_class_is_graded_in_parallel_and_contained(run_folder, redlab_cmd):
    """Lab 02 with --jobs 3: the reference and broken/active-only among students whose
    deploy.sh does the work and then one hostile thing each.  Each gets a report with its
    grade or its reason; the good ones get their normal grade; what the hostile lines
    tried had no effect outside their jail; nothing is left behind (the leak check); the
    class ends within its limits."""
    from redlab.runs import run_root
    klass = run_folder / "class"
    reports = run_folder / "reports"
    repo = LAB02.folder.parents[1]
    shutil.copytree(LAB02.reference, klass / "alice")
    shutil.copytree(LAB02.folder / "broken" / "active-only", klass / "bob")
    hostile(klass, "holder", "setsid sleep 3600 &")           # keeps the stdout pipe open
    hostile(klass, "killer", "kill -9 $PPID")
    targets = ["/root/pwned-writer", "/var/lib/redlab/pwned-writer", str(repo / "pwned-writer"),
               str(run_root() / "pwned-writer"), "/tmp/pwned-writer", str(klass / "pwned-writer")]
    hostile(klass, "writer", "; ".join("echo pwned > %s" % t for t in targets))
    hostile(klass, "reader", "cat %s %s %s 2>&1; ls %s %s 2>&1" % (
        LAB02.reference / "deploy.sh", klass / "alice" / "deploy.sh",
        reports / ".grading" / "alice" / "deploy.sh", klass, LAB02.folder))
    hostile(klass, "escaper", "nsenter -t 1 -a true && echo %s-nsenter; "
            "kill -9 1 && echo %s-kill" % (ESCAPED, ESCAPED))
    hostile(klass, "forker", "for i in $(seq 3000); do sleep 30 & done")
    hostile(klass, "flooder", "yes AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA | head -c 400000000")
    hostile(klass, "bytes", "printf 'caf\\351 \\377\\376\\n'")
    with open(os.fsencode(klass / "bytes") + b"/notes-\xff.txt", "wb") as f:
        f.write(b"\xff\xfe not UTF-8\n")
    (klass / "linker").mkdir()
    os.symlink("../alice/deploy.sh", klass / "linker" / "deploy.sh")
    limit = 120
    began = time.monotonic()
    out = subprocess.run(redlab_cmd + ["grade", "02", "--class", str(klass), "--reports",
                                       str(reports), "--jobs", "3", "--student-timeout",
                                       str(limit)], capture_output=True, text=True,
                         timeout=5 * limit)
    seconds = time.monotonic() - began
    print("class of 11 lab 02 students, --jobs 3: %.1f s\n%s" % (seconds, out.stdout))
    assert out.returncode == 1, out.stderr
    assert seconds < 4 * limit + 30          # four rounds at most, each within the limit

    rows = summary(reports)
    assert set(rows) == {"alice", "bob", "holder", "killer", "writer", "reader", "escaper",
                         "forker", "flooder", "bytes", "linker"}
    for target in targets:
        assert not os.path.exists(target), target
    for student in ("reader", "escaper"):
        text = (reports / (student + ".log")).read_text(errors="replace") + \
            (reports / (student + ".json")).read_text()
        assert REFERENCE_LINE not in text and ESCAPED not in text, student
        # `ls` of the class would have named the other students
        assert "flooder" not in (reports / (student + ".log")).read_text(errors="replace")
    assert (reports / "flooder.log").stat().st_size < 1024 * 1024
    for student in ("writer", "reader", "escaper", "forker", "flooder", "bytes"):
        assert rows[student]["passed"] == rows[student]["checks"] == "2", student
    for student in rows:
        for suffix in (".json", ".xml", ".log"):
            assert (reports / (student + suffix)).exists(), student + suffix
    grades = {s: {c["name"]: c for c in json.loads((reports / (s + ".json")).read_text())
                  ["checks"]} for s in rows}

    # the good ones: their normal grade
    assert rows["alice"]["passed"] == rows["alice"]["checks"] == "2", grades["alice"]
    assert rows["bob"]["standby gets every update"] == "FAIL"
    assert "send the page to $STANDBY" in grades["bob"]["standby gets every update"]["reason"]

    # the link: refused before anything ran, with the reason
    assert grades["linker"]["submission"]["reason"] == (
        "submission holds a symlink deploy.sh -> ../alice/deploy.sh; submit regular files only")

    # the hostile scripts did their work first, then the jail (redlab.jail) ended what they
    # left: the detached child and the kill hit only the jail, so they get their normal grade
    for student in ("holder", "killer"):
        assert rows[student]["passed"] == rows[student]["checks"] == "2", grades[student]
    assert not (reports / ".grading").exists()


def test_a_student_over_the_time_limit_is_stopped_and_leaves_nothing(run_folder, redlab_cmd):
    """A grade still running at --student-timeout is stopped in the middle of its network
    (SIGTERM through the student's sandbox: the network tears down) and failed with the
    reason; the class still writes every report; the leak check finds nothing."""
    klass = run_folder / "class"
    shutil.copytree(LAB02.reference, klass / "slow")
    (klass / "linker").mkdir()
    os.symlink("/etc/passwd", klass / "linker" / "deploy.sh")
    reports = run_folder / "reports"
    began = time.monotonic()
    out = subprocess.run(redlab_cmd + ["grade", "02", "--class", str(klass), "--reports",
                                       str(reports), "--student-timeout", "3"],
                         capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - began
    assert out.returncode == 1, out.stderr
    rows = summary(reports)
    assert set(rows) == {"slow", "linker"}
    slow = json.loads((reports / "slow.json").read_text())["checks"]
    assert [(c["name"], c["passed"]) for c in slow] == [("grading", False)]
    assert slow[0]["reason"].startswith("the grader stopped after 3 s: the submission hung")
    assert rows["slow"]["grading"] == "FAIL" and rows["linker"]["submission"] == "FAIL"
    # 3 s, then the network's teardown (within the 10 s grace), then the next student
    assert seconds < 3 + 2 * 10 + 10, seconds


def test_the_grades_do_not_depend_on_the_number_of_jobs(run_folder, redlab_cmd):
    """The same lab 02 class graded one student at a time and three at once: the same
    pass/fail for every check of every student (timing checks hold under the load of
    three networks at once)."""
    klass = run_folder / "class"
    shutil.copytree(LAB02.reference, klass / "alice")
    shutil.copytree(LAB02.folder / "broken" / "active-only", klass / "bob")
    shutil.copytree(LAB02.folder / "broken" / "empty", klass / "carol")
    verdicts = {}
    for jobs in (1, 3):
        reports = run_folder / ("reports-%d" % jobs)
        out = subprocess.run(redlab_cmd + ["grade", "02", "--class", str(klass), "--reports",
                                           str(reports), "--jobs", str(jobs)],
                             capture_output=True, text=True, timeout=600)
        assert out.returncode == 1, out.stderr
        verdicts[jobs] = {student: {k: v for k, v in row.items() if k != "student"}
                          for student, row in summary(reports).items()}
    assert verdicts[1] == verdicts[3]
    assert verdicts[1]["alice"]["passed"] == verdicts[1]["alice"]["checks"]
    assert verdicts[1]["bob"]["standby gets every update"] == "FAIL"
    assert verdicts[1]["carol"]["passed"] == "0"
