"""Grading past one machine (deploy/): the GitHub Classroom workflow and the Kubernetes
Indexed Job parse, and each runs exactly one ``redlab grade`` that redlab's own parser
accepts.  Neither engine runs here: the pod's script runs with a stand-in ``redlab`` that
records its arguments (docs/grading-at-scale.md says what was not run)."""

import csv
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from redlab import bundle, cli, labs
from redlab.labs import failed, passed

REPO = Path(__file__).resolve().parent.parent.parent
DEPLOY = REPO / "deploy"
WORKFLOW = DEPLOY / "github-classroom" / "redlab.yml"
JOB = DEPLOY / "kubernetes" / "grade-class.yaml"


def grade_args(argv):
    """``redlab grade ...`` as redlab's parser reads it."""
    assert argv[:2] == ["redlab", "grade"], argv
    args = cli.build_parser().parse_args(argv[1:])
    assert args.func is cli.cmd_grade
    return args


# -- GitHub Classroom -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def workflow():
    return yaml.safe_load(WORKFLOW.read_text())


def expand(text, env, repository="lab06-alice"):
    """GitHub's ``${{ ... }}`` expressions, for the ones the template uses."""
    values = {"github.event.repository.name": repository}
    values.update({"env.%s" % k: str(v) for k, v in env.items()})
    return re.sub(r"\$\{\{\s*([\w.-]+)\s*\}\}", lambda m: values[m.group(1)], text)


def test_the_workflow_runs_on_a_push_on_a_github_hosted_runner(workflow):
    assert "push" in workflow["on"]
    job = workflow["jobs"]["grade"]
    assert job["runs-on"] == "ubuntu-latest"
    # Debian 12 as on every other redlab machine, privileged for namespaces and OVS
    assert job["container"]["image"] == "debian:12"
    assert "--privileged" in job["container"]["options"]
    assert workflow["permissions"]["checks"] == "write"


def test_the_workflow_installs_redlab_from_the_bundle_with_setup_sh(workflow):
    steps = workflow["jobs"]["grade"]["steps"]
    install = "\n".join(s.get("run", "") for s in steps)
    assert 'curl -fsSL "$REDLAB_BUNDLE_URL"' in install
    assert "sha256sum -c" in install                           # the bundle, as published
    assert "--strip-components=1" in install and "/opt/redlab/scripts/setup.sh" in install
    assert "ln -sf /opt/redlab/.venv/bin/redlab /usr/local/bin/redlab" in install
    assert workflow["env"]["REDLAB_BUNDLE_URL"].endswith("/redlab-student.tar.gz")
    assert Path(bundle.DEFAULT_OUT).name == "redlab-student.tar.gz"


def test_the_classroom_grader_runs_exactly_one_redlab_grade(workflow):
    steps = workflow["jobs"]["grade"]["steps"]
    graders = [s for s in steps if s.get("uses", "").startswith(
        "classroom-resources/autograding-command-grader@")]
    assert len(graders) == 1
    grader = graders[0]["with"]
    argv = shlex.split(expand(grader["command"], workflow["env"]))
    args = grade_args(argv)
    assert labs.find(args.lab).number == 6
    assert args.submission == "." and args.junit == "report.xml"
    assert args.student == "lab06-alice" and args.class_mode      # no answer in the log
    assert not args.class_dir and int(grader["max-score"]) > 0
    # the reporter reads the grader's result (the exit code: 0 only when all checks pass)
    reporter = [s for s in steps if s.get("uses", "").startswith(
        "classroom-resources/autograding-grading-reporter@")]
    assert reporter[0]["with"]["runners"] == graders[0]["id"]
    assert reporter[0]["env"]["GRADE_RESULTS"] == "${{ steps.grade.outputs.result }}"
    # the grade command is the only redlab grade of the workflow
    assert sum("redlab grade" in str(s) for s in steps) == 1


# -- Kubernetes Indexed Job -----------------------------------------------------------------

@pytest.fixture(scope="module")
def job():
    return yaml.safe_load(JOB.read_text())


def container(job):
    (only,) = job["spec"]["template"]["spec"]["containers"]
    return only


def test_the_job_is_indexed_with_one_privileged_pod_per_student(job):
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert isinstance(spec["completions"], int) and spec["completions"] >= 1
    assert isinstance(spec["parallelism"], int) and 1 <= spec["parallelism"] <= spec["completions"]
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"                 # a retry is a new pod
    assert container(job)["securityContext"]["privileged"] is True
    mounts = {m["name"]: m for m in container(job)["volumeMounts"]}
    assert mounts["class"]["readOnly"] is True and "readOnly" not in mounts["reports"]
    claims = {v["name"]: v["persistentVolumeClaim"] for v in pod["volumes"]}
    assert claims["class"]["readOnly"] is True and set(claims) == {"class", "reports"}
    rule = spec["podFailurePolicy"]["rules"][0]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [3]


def test_the_image_is_debian_12_with_the_bundle_and_setup_sh():
    text = (DEPLOY / "kubernetes" / "Containerfile").read_text()
    assert re.search(r"^FROM \S*debian:12$", text, re.M)
    assert "ADD redlab-student.tar.gz /opt/" in text and "mv /opt/%s /opt/redlab" % bundle.TOP \
        in text
    assert "/opt/redlab/scripts/setup.sh" in text
    assert "reference" not in text.split("FROM", 1)[1]       # built from the bundle only


@pytest.fixture
def pod(job, tmp_path):
    """Runs the pod's script as Kubernetes would, with a stand-in ``redlab`` on PATH that
    records its arguments and exits with $STAND_IN_EXIT."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "redlab"
    stand_in.write_text('#!/bin/sh\nprintf "%%s\\0" "$@" > "%s"\necho "graded"\n'
                        'exit "$STAND_IN_EXIT"\n' % (tmp_path / "argv"))
    stand_in.chmod(0o755)
    class_dir, reports = tmp_path / "class", tmp_path / "reports"
    for name in ("carol", "alice", "Bob", "-dash", ".git"):
        (class_dir / name).mkdir(parents=True)
    (class_dir / "notes.txt").write_text("not a student")
    reports.mkdir()
    env = {e["name"]: e["value"] for e in container(job)["env"]}
    script = container(job)["args"][0]
    assert container(job)["command"] == ["/bin/bash", "-c"]

    def run(index, exit_code=0):
        (tmp_path / "argv").unlink(missing_ok=True)
        done = subprocess.run(
            ["/bin/bash", "-c", script], capture_output=True, text=True, timeout=30,
            env=dict(env, CLASS=str(class_dir), REPORTS=str(reports), PATH="%s:%s" % (
                bin_dir, os.environ["PATH"]), JOB_COMPLETION_INDEX=str(index),
                STAND_IN_EXIT=str(exit_code)))
        argv = (tmp_path / "argv").read_text().split("\0")[:-1] \
            if (tmp_path / "argv").exists() else None
        return done, argv
    run.class_dir, run.reports, run.env = class_dir, reports, env
    return run


def test_each_pod_grades_the_student_of_its_index_in_the_class_order(pod):
    from redlab.grading import students_of
    order = list(students_of(pod.class_dir, pod.reports))
    assert order == ["-dash", "Bob", "alice", "carol"]          # the order of --class
    for index, student in enumerate(order):
        done, argv = pod(index)
        assert done.returncode == 0, done.stderr
        args = grade_args(["redlab"] + argv)
        assert args.lab == pod.env["LAB"] and labs.find(args.lab).number == 6
        assert args.submission == str(pod.class_dir / student)
        assert args.student == student and args.class_mode     # a name like -dash stays a name
        assert args.junit == str(pod.reports / ("%s.xml" % student))
        assert args.json == str(pod.reports / ("%s.json" % student))
        assert "pod %d grades %s" % (index, student) in done.stdout
        assert (pod.reports / ("%s.txt" % student)).read_text() == "graded\n"


def test_a_failed_grade_is_a_finished_pod_an_error_is_retried_a_wrong_index_stops_the_job(pod):
    assert pod(1, exit_code=1)[0].returncode == 0      # some checks fail: still a grade
    assert pod(1, exit_code=2)[0].returncode == 2      # redlab could not grade: retried
    done, argv = pod(4)
    assert done.returncode == 3 and argv is None       # FailJob (podFailurePolicy)
    assert "no student folder number 4" in done.stderr and "completions to 4" in done.stderr


def test_the_reports_of_the_pods_make_one_summary(tmp_path):
    """deploy/kubernetes/summary.py: summary.csv from the pods' JSON reports, a row for a
    student whose pod left none."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("k8s_summary", DEPLOY / "kubernetes" /
                                                  "summary.py")
    summary = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(summary)
    lab = labs.find("06")
    reports, class_dir = tmp_path / "reports", tmp_path / "class"
    reports.mkdir()
    for name in ("alice", "bob", "carol"):
        (class_dir / name).mkdir(parents=True)
    labs.write_json(reports / "alice.json", lab, [passed("wlc state", "ok")], "alice")
    labs.write_json(reports / "bob.json", lab, [failed("wlc state", "wrong")], "bob")
    graded = summary.summary(reports, class_dir)
    rows = list(csv.reader((reports / "summary.csv").open()))
    assert rows[0][:3] == ["student", "passed", "checks"]
    cells = {row[0]: row for row in rows[1:]}
    assert cells["alice"][1:3] == ["1", "1"] and cells["bob"][1:3] == ["0", "1"]
    assert not graded["carol"][0].passed and "no usable report" in graded["carol"][0].reason
