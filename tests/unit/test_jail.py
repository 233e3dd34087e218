"""The jail for students' code (redlab/jail.py), attacked the way a submission would.

No Mininet: the jail runs in the test's own namespaces, or inside `unshare --net` where
a test needs a network namespace of its own.  Every attack is checked against what the
machine sees from outside; where it helps, a control run shows the attack works without
the protection in question.  After each test: no redlab-jail cgroup, no new mount, no
process of the test left.
"""

import os
import pwd
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from redlab import jail
from redlab.errors import RedlabError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the jail needs root (namespaces, "
                                "cgroups, setpriv): run the tests with sudo")

REPO = Path(__file__).resolve().parents[2]
Limits = jail.Limits


def marked(marker, program=None):
    """Pids (seen from here) of processes whose command line contains ``marker`` (and, with
    ``program``, that run it: the launcher's own command line names the marker too)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path("/proc", pid, "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if marker.encode() in cmdline and (
                    program is None or cmdline.startswith(program.encode() + b" ")):
                found.append(int(pid))
    return found


def mounts():
    return Path("/proc/self/mountinfo").read_text()


@pytest.fixture
def marker():
    """A unique sleep length: ``sleep <marker>`` is findable in /proc from outside."""
    return "3600.%06d" % random.randrange(10 ** 6)


@pytest.fixture
def specs():
    """The spec files of the jails a test started (their cgroups are checked after it)."""
    return []


@pytest.fixture(autouse=True)
def nothing_left(marker, specs):
    """No process, cgroup or mount of this test's jails survives it (other test sessions'
    jails may come and go meanwhile: only this test's are looked at)."""
    mounted = mounts()
    yield
    from redlab.wait import wait_until
    wait_until(lambda: (not marked(marker), marked(marker)), 3, "the jail's processes to die")
    assert [c for spec in specs for c in jail.cgroups_of(spec)] == []
    assert mounts() == mounted


@pytest.fixture
def jailed(tmp_path, specs):
    """``jailed(shell code, **options)``: run it jailed with ``bash -c``, in a fresh work
    folder under the test's 0700 tmp_path (the jail must make it reachable)."""
    runs = []

    def run(code, popen=None, shell="bash", **options):
        work = jail.work_folder(tmp_path / ("work%d" % len(runs)))
        spec = tmp_path / ("jail%d.json" % len(runs))
        runs.append(spec)
        specs.append(spec)
        started = time.monotonic()
        result = jail.run([shell, "-c", code], work, spec, popen=popen, **options)
        result.elapsed = time.monotonic() - started
        result.work = work
        return result
    return run


def in_new_netns(argv, **kwargs):
    """Like subprocess.Popen, in a network namespace of its own (as host.popen would)."""
    return subprocess.Popen(["unshare", "--net", "--"] + argv, **kwargs)


def test_a_detached_child_holding_stdout_neither_hangs_the_run_nor_survives_it(jailed,
                                                                                marker):
    result = jailed("setsid sleep %s & echo started" % marker, limits=Limits(wall=20))
    assert result.status == 0 and result.output == "started\n"
    assert result.elapsed < 5                   # not the 20 s limit, not the hour
    assert marked(marker) == []                 # killed with the jail's PID namespace


def test_thousands_of_processes_hit_the_limit_and_all_are_gone_after(jailed, marker):
    # dash gives up at the first refused fork (bash retries for 15 s, then does the same)
    result = jailed("for i in $(seq 3000); do sleep %s & done" % marker, shell="sh",
                    limits=Limits(processes=50, wall=20))
    assert result.status == "it hit the limit of 50 processes and exited with code 2"
    assert "Cannot fork" in result.output and result.elapsed < 10
    assert marked(marker) == []


def test_killing_the_parent_or_everyone_hurts_nobody_outside(jailed, marker):
    uid, gid = jail.student_ids()
    # the same user's process outside the jail: `kill -9 -1` as that user would reach it
    sentinel = subprocess.Popen(["setpriv", "--reuid", str(uid), "--regid", str(gid),
                                 "--clear-groups", "sleep", marker])
    try:
        result = jailed("kill -9 $PPID; echo ppid=$?; kill -9 %d; echo grader=$?; "
                        "kill -9 -1; echo all=$?; echo survived" % os.getpid())
        assert "survived" in result.output and result.code == 0
        assert "ppid=1" in result.output          # EPERM: its parent is the jail's init
        assert sentinel.poll() is None            # the student's kill -1 did not reach it
        os.kill(os.getpid(), 0)                   # and this test runs on
    finally:
        sentinel.kill()
        sentinel.wait()


def test_writes_outside_the_work_folder_fail_or_stay_in_the_jail(jailed, marker):
    targets = ["/root/%s" % marker, "/var/lib/redlab/%s" % marker, str(REPO / marker),
               "/tmp/%s" % marker, "/dev/shm/%s" % marker]
    code = "".join("echo x > %s && echo wrote %s; " % (t, t) for t in targets)
    result = jailed(code + "echo mine > mine.txt")
    for target in targets[:3]:
        assert "wrote %s" % target not in result.output      # refused
    for target in targets:
        assert not os.path.exists(target)                   # /tmp, /dev/shm: its own tmpfs
    assert (result.work / "mine.txt").read_text() == "mine\n"


def test_answers_other_students_and_the_project_are_hidden(jailed, tmp_path):
    reference = REPO / "labs" / "02-hot-standby" / "reference" / "deploy.sh"
    assert reference.is_file()
    other = Path("/srv") / ("redlab-jail-test-%d" % os.getpid())
    (other / "alice").mkdir(parents=True)
    try:
        os.chmod(other, 0o755)
        (other / "alice" / "deploy.sh").write_text("alice's answer\n")
        os.chmod(other / "alice" / "deploy.sh", 0o644)
        read = "cat %s %s/alice/deploy.sh" % (reference, other)
        control = jailed(read, hide=())
        assert "alice's answer" in control.output       # readable unless named as hidden
        result = jailed(read, hide=[other])
        assert "alice's answer" not in result.output
        assert "hot standby" not in result.output.lower()
        assert "No such file or directory" in result.output
    finally:
        import shutil
        shutil.rmtree(other)


def test_the_host_namespaces_cannot_be_entered(jailed):
    result = jailed("nsenter -t 1 -a true; echo rc=$?; "
                    "nsenter --mount=/proc/1/ns/mnt true; echo rc=$?")
    assert "rc=0" not in result.output
    assert "Permission denied" in result.output or "not permitted" in result.output


def test_hundreds_of_mb_of_output_are_capped(jailed):
    result = jailed("head -c 300M /dev/zero; echo done", limits=Limits(output_mb=4))
    assert result.status == "its output exceeded 4 MB and was cut there"
    assert os.path.getsize(result.work / jail.OUTPUT) == 4 * jail.MB
    assert len(result.output) <= 4 * jail.MB


def test_a_memory_hog_is_stopped(jailed):
    result = jailed("python3 -c 'x = b\"a\" * (600 << 20)'; echo rc=$?",
                    limits=Limits(memory_mb=64))
    assert result.status == "killed by the memory limit of 64 MB"


def test_output_that_is_not_utf8_is_read(jailed):
    result = jailed(r"printf 'caf\xe9 \xff\xfe ok\n'")
    assert result.code == 0 and result.output == "caf\ufffd \ufffd\ufffd ok\n"


def test_the_wall_clock_limit_kills_the_whole_jail(jailed, marker):
    result = jailed("sleep %s & sleep %s" % (marker, marker), limits=Limits(wall=0.5))
    assert result.status == "a timeout: it was still running after 0.5 s"
    assert result.elapsed < 3


def test_the_student_user_has_net_admin_and_net_raw_only(jailed):
    uid, gid = jail.student_ids()
    result = jailed("grep -E '^Cap(Eff|Prm|Bnd|Amb):' /proc/self/status; id -u; id -G; "
                    "grep NoNewPrivs /proc/self/status")
    caps = dict(line.split(":\t") for line in result.output.splitlines() if ":\t" in line)
    bits = 1 << 12 | 1 << 13                     # CAP_NET_ADMIN, CAP_NET_RAW
    assert {k: int(v, 16) for k, v in caps.items() if k.startswith("Cap")} == {
        "CapEff": bits, "CapPrm": bits, "CapBnd": bits, "CapAmb": bits}
    assert caps["NoNewPrivs"].strip() == "1"
    assert "%d\n%d\n" % (uid, gid) in result.output   # no supplementary groups
    assert pwd.getpwuid(uid).pw_name == jail.USER
    none = jailed("grep -E '^CapBnd:' /proc/self/status", caps=())
    assert int(none.output.split(":\t")[1], 16) == 0


def test_in_its_own_network_namespace_it_configures_the_network_and_nothing_else(jailed):
    code = ("ip link set lo up && ip addr add 192.0.2.1/32 dev lo && echo addr-ok; "
            "sysctl -w net.ipv4.conf.all.arp_notify=1 net.ipv4.ip_forward=1 && echo sysctl-ok; "
            "sysctl -w kernel.domainname=jail || echo kernel-refused; "
            "ip -o addr show dev lo")
    result = jailed(code, popen=in_new_netns)
    assert "addr-ok" in result.output and "sysctl-ok" in result.output, result.output
    assert "kernel-refused" in result.output and "192.0.2.1/32" in result.output
    without = jailed("ip addr add 192.0.2.1/32 dev lo || echo refused", popen=in_new_netns,
                     caps=())
    assert "refused" in without.output


def test_the_environment_is_clean(jailed, monkeypatch):
    monkeypatch.setenv("REDLAB_SECRET_OF_THE_GRADER", "answer")
    result = jailed("env", env={"VIP": "10.0.0.100"})
    env = dict(line.split("=", 1) for line in result.output.splitlines())
    assert env["VIP"] == "10.0.0.100" and env["LANG"] == "C.UTF-8"
    assert env["HOME"] == str(result.work) and env["PATH"] == jail.PATH
    assert "REDLAB_SECRET_OF_THE_GRADER" not in env
    assert set(env) <= {"VIP", "LANG", "HOME", "PATH", "PWD", "SHLVL", "_"}


def test_a_student_symlink_is_never_followed_by_root(jailed, tmp_path, specs):
    secret = tmp_path / "secret"
    secret.write_text("root's secret\n")
    result = jailed("ln -sf %s %s; ln -s %s evidence; echo planted" % (
        secret, jail.OUTPUT, secret))
    assert result.code == 0
    assert jail.read_output(result.work / "evidence", 1000) == ""     # a symlink: not read
    # the next run in the same folder gets a fresh output file, the target is untouched
    spec = tmp_path / "again.json"
    specs.append(spec)
    jail.run(["bash", "-c", "echo again"], result.work, spec)
    assert secret.read_text() == "root's secret\n"
    assert jail.read_result(spec).output == "again\n"


def test_a_killed_launcher_leaves_an_empty_cgroup_that_cleaning_removes(tmp_path, marker,
                                                                       specs):
    work = jail.work_folder(tmp_path / "work")
    spec = tmp_path / "jail.json"
    specs.append(spec)
    launcher = subprocess.Popen(jail.command(["sleep", marker], work, spec))
    from redlab.wait import wait_until
    wait_until(lambda: marked(marker, "sleep"), 5, "the jailed sleep to start")
    made = jail.cgroups_of(spec)
    assert made, "the jail made no cgroup"
    launcher.send_signal(signal.SIGKILL)          # no time to clean up
    launcher.wait()
    wait_until(lambda: (not marked(marker), marked(marker)), 3, "the jail to die with its launcher")
    # left behind, empty -- unless another session's jail start already cleaned it
    assert all(not Path(c, "cgroup.procs").read_text() for c in jail.cgroups_of(spec))
    jail.clean_stale_cgroups(min_age=0)       # (a jail start waits until it is 30 s old)
    assert jail.cgroups_of(spec) == []


def test_a_missing_user_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setattr(jail, "USER", "redlab-no-such-user")
    with pytest.raises(RedlabError, match="the user redlab-no-such-user does not exist.*"
                                          "useradd --system"):
        jail.command(["true"], tmp_path, tmp_path / "jail.json")


def test_hiding_a_system_folder_is_refused(tmp_path):
    work = jail.work_folder(tmp_path / "work")
    with pytest.raises(RedlabError, match="/usr cannot be hidden from a student's code"):
        jail.command(["true"], work, tmp_path / "jail.json", hide=["/usr"])


def test_a_symlinked_submission_file_is_refused(tmp_path):
    (tmp_path / "deploy.sh").symlink_to("/etc/shadow")
    with pytest.raises(RedlabError, match="deploy.sh is a symbolic link; a submission holds"):
        jail.work_folder(tmp_path / "work", [tmp_path / "deploy.sh"])
    assert not (tmp_path / "work").exists()
