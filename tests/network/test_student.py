"""A student's script inside a host: a run is bounded by its timeout; a script daemon is
checked with bash -n, logs, and stops with the network."""

import time

import pytest

from redlab.errors import DaemonError
from redlab.student import ScriptRun, StudentScript
from topologies.service_lan import ServiceLanTopo


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
    from redlab.wait import wait_until
    wait_until(lambda: ("web1 holds v1" in daemon.lines(), daemon.lines()), 5, "a log line")
    assert daemon.config_file.read_text() == "SELF=web1\nMY_VIP=v1\n"
    bad = tmp_path / "bad.sh"
    bad.write_text("if then fi\n")
    with pytest.raises(DaemonError, match="bad.sh|syntax error"):
        web1.start_daemon(StudentScript(web1, bad, {}, name="bad"))
