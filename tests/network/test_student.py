"""A student's script inside a host: a run is bounded by its timeout; a script daemon is
checked with bash -n, logs, and stops with the network.  Both run jailed (redlab.jail):
as redlab-student with CAP_NET_ADMIN and CAP_NET_RAW in their host, nothing left behind.
"""

import os
import random
import time
from pathlib import Path

import pytest

from redlab import jail
from redlab.errors import DaemonError
from redlab.faults import host_crash
from redlab.student import ScriptRun, StudentScript
from redlab.wait import wait_until
from topologies.service_lan import ServiceLanTopo

REPO = Path(__file__).resolve().parents[2]


def sleeping(marker):
    """Pids of ``sleep <marker>`` processes, seen from the test."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path("/proc", pid, "cmdline").read_bytes() == b"sleep\0%s\0" % marker.encode():
                found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.fixture
def lan(network):
    return network(ServiceLanTopo(servers=1, dns=False, director=False))


def test_a_run_reports_its_exit_code_output_and_environment(lan, tmp_path):
    script = tmp_path / "s.sh"
    script.write_text('echo "vip=$VIP arg=$1 host=$(hostname -I)"; exit 3\n')
    code, output = ScriptRun(lan["web1"], script, ["x"], env={"VIP": "10.0.0.100"}).finish()
    assert code == 3 and output.startswith("vip=10.0.0.100 arg=x host=10.0.0.11")


def test_a_hanging_script_is_stopped_at_its_timeout(lan, tmp_path):
    script = tmp_path / "hang.sh"
    script.write_text("echo started; sleep 60\n")
    t0 = time.time()
    run = ScriptRun(lan["web1"], script, timeout=0.5)
    code, output = run.finish()
    assert code == "a timeout: it was still running after 0.5 s"
    assert output == "started" and time.time() - t0 < 5 and run.proc.poll() is not None


def test_a_script_daemon_logs_and_a_broken_one_is_refused(lan, tmp_path):
    web1 = lan["web1"]
    good = tmp_path / "loop.sh"
    good.write_text('while true; do echo "$SELF holds $MY_VIP"; sleep 0.1; done\n')
    daemon = web1.start_daemon(StudentScript(web1, good, {"SELF": "web1", "MY_VIP": "v1"},
                                             name="loop"))
    wait_until(lambda: ("web1 holds v1" in daemon.lines(), daemon.lines()), 5, "a log line")
    assert daemon.config_file.read_text() == "SELF=web1\nMY_VIP=v1\n"
    bad = tmp_path / "bad.sh"
    bad.write_text("if then fi\n")
    with pytest.raises(DaemonError, match="bad.sh|syntax error"):
        web1.start_daemon(StudentScript(web1, bad, {}, name="bad"))


def test_a_run_is_jailed_in_its_host_and_leaves_nothing(lan, tmp_path):
    """The script configures its host (ip addr, arping) as redlab-student, cannot read the
    project, and its detached child dies with the run."""
    marker = "3600.%06d" % random.randrange(10 ** 6)
    page = tmp_path / "page.html"
    page.write_text("v2\n")
    script = tmp_path / "jailed.sh"
    script.write_text(
        'id -un; cat "$1"; ip addr add 10.0.0.200/24 dev web1-eth0 && echo added\n'
        'arping -q -U -c 1 -i web1-eth0 -S 10.0.0.200 10.0.0.200; echo arping=$?\n'
        'cat %s/README.md 2>/dev/null || echo project-hidden\n'
        'setsid sleep %s > /dev/null 2>&1 &\n' % (REPO, marker))
    run = ScriptRun(lan["web1"], script, [page])
    code, output = run.finish()
    assert code == 0, output
    assert output.splitlines()[:3] == ["redlab-student", "v2", "added"], output
    assert "arping=1" in output and "project-hidden" in output  # GARP sent: nobody answers
    assert "10.0.0.200/24" in lan["web1"].addresses("web1-eth0")
    assert run.folder.parent == lan.run.path / "web1" and (run.work / "page.html").exists()
    assert sleeping(marker) == []
    assert jail.cgroups_of(run.spec) == []


def test_the_limits_hold_inside_a_host(lan, tmp_path):
    """A Mininet host has a /sys of its own that hides the cgroup file systems: the jail
    still finds them (through its PID namespace's init) and limits the script."""
    script = tmp_path / "forks.sh"
    script.write_text("for i in $(seq 1000); do sleep 60 & done\n")
    run = ScriptRun(lan["web1"], script, shell="sh", limits=jail.Limits(processes=20, wall=10))
    code, output = run.finish()
    if jail.Cgroup.detect()[0] is None:
        pytest.skip("no usable cgroup on this machine: the jail falls back to rlimits")
    assert run.result.limits_by.startswith("cgroup"), run.result.limits_by
    assert code == "it hit the limit of 20 processes and exited with code 2", output
    assert jail.cgroups_of(run.spec) == []


def test_a_script_daemon_dies_with_its_host_and_comes_back_jailed(lan, tmp_path):
    web1 = lan["web1"]
    loop = tmp_path / "loop.sh"
    loop.write_text('while true; do echo "alive as $(id -un)"; sleep 0.1; done\n')
    daemon = web1.start_daemon(StudentScript(web1, loop, {}, name="loop"))
    wait_until(lambda: ("alive as redlab-student" in daemon.lines(), daemon.lines()), 5,
               "the daemon's first line")
    spec = daemon.path("jail.json")
    before_crash = jail.cgroups_of(spec)
    assert before_crash                              # the daemon's jail has its cgroup
    fault = host_crash(lan, "web1")
    assert not daemon.running
    assert not any(os.path.exists(c) for c in before_crash)   # killed launcher: cleaned up
    fault.undo()
    wait_until(lambda: ("alive as redlab-student" in daemon.lines(), daemon.lines()), 5,
               "the daemon's first line after the reboot")
    assert daemon.running and jail.cgroups_of(spec)  # a new jail for the rebooted daemon
    daemon.stop()
    assert jail.cgroups_of(spec) == []
