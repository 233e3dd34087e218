"""Lab 01, cold standby router: the reference passes, each broken case fails the right check.

Four real networks (reference, drifted spare, no arp_notify, starter), 3-7 s each;
the diff and the cold-spare check logic are also judged without a network.
"""

import re
import shutil
from pathlib import Path

import pytest
import yaml

from redlab import addressing as ap
from redlab import labs
from redlab.errors import ConfigError
from redlab.scenarios import cold_standby as cs

LAB = labs.find("01")
GATEWAY = ap.router(ap.CLIENTS)


def values(folder, router):
    """A router's values, read from the case's own YAML (addresses live in data files)."""
    return yaml.safe_load((folder / ("%s.yaml" % router)).read_text())


def failing(results):
    return "\n".join(r.line() for r in results.values() if not r.passed)


def test_reference_passes_and_the_walkthrough_measures_the_rewire(grade, capsys):
    results = grade(LAB, LAB.reference)
    out = capsys.readouterr().out
    assert all(r.passed for r in results.values()), failing(results) + "\n" + out[-3000:]
    assert set(results) == {"configs identical", "service returns after rewire",
                            "spare was unplugged before the failure"}
    # the lab keeps the spare cold whatever the submission: information, not a score
    assert [n for n, r in results.items() if not r.scored] == [
        "spare was unplugged before the failure"]
    # the walk-through's narration, with its numbers
    assert "(no difference: r2 will do exactly what r1 did)" in out
    assert re.search(r"r2 on the shelf sent/received 0 packets; client1's ARP entry for %s "
                     r"still holds \S+ \(r1, " % re.escape(GATEWAY), out), out
    for switch, ip in (("s1", GATEWAY), ("s2", ap.router(ap.SERVICE))):
        assert "%s saw r2's gratuitous ARP for %s" % (switch, ip) in out, out
    assert re.search(r"client1's ARP entry for %s: \S+ \(r2, " % re.escape(GATEWAY), out), out
    back = re.search(r"service back (\d+\.\d+) s after the cables moved", out)
    assert back, out
    time_to_recover = results["service returns after rewire"].measured["time_to_recover"]
    assert abs(float(back.group(1)) - time_to_recover) < 0.01
    # GARP, not ARP aging: back well within the bound, far below the 15 s an entry stays REACHABLE
    assert 0 < time_to_recover <= LAB.module.DATA["recovery_bound"]
    refreshed = re.search(r"refreshed (\d+\.\d+) s after the cables moved", out)
    assert refreshed and float(refreshed.group(1)) <= time_to_recover, out
    aging = re.search(r"i\.e\. (\d+)-(\d+) s after its last answer", out)
    assert aging and int(aging.group(1)) >= 10 * time_to_recover, out
    # the notes: ICMP suits a router -- it sees r1 die and the gateway come back
    assert "an ICMP health check of the gateway" in out and "seen down " in out, out[-1500:]
    assert re.search(r"r1 seen down \d+\.\d+ s after the crash, the gateway answering again "
                     r"\d+\.\d+ s after the cables moved", out), out[-1500:]
    assert "r2 carried 0 packets until the rewire" in \
        results["spare was unplugged before the failure"].reason
    # the notes' three steps of redundancy, each seen happen with what this run measured
    steps = re.search(
        r"== the three steps of redundancy, measured ==\n"
        r"  1\. the failure: r1 died at t=0; client1's requests failed from t=(\d+\.\d+) s: "
        r"(\d+) of (\d+) sent until the cables moved failed\n"
        r"  2\. the spare: what r2 runs against what r1 ran \(.*\): no difference in (\d+) facts\n"
        r"  3\. the procedure: `rewire r1 r2` by the walk-through, r2 had loaded r2\.conf "
        r"\d+\.\d+ s after the cables moved; service back (\d+\.\d+) s after", out)
    assert steps, out[-2500:]
    first_failed, failed, sent, facts, back = steps.groups()
    probe = LAB.module.DATA["probe"]
    # 1: broken from t=0 -- the first request after the crash (sent once the one in flight
    # timed out) failed, and every one after it until the procedure
    assert float(first_failed) <= 2 * (probe["interval"] + probe["timeout"]), out[-2500:]
    assert failed == sent and int(sent) >= LAB.module.DATA["notice_failures"]
    # 2: the same 2 ports up, 2 addresses, 3 routes (2 connected, the default), ip_forward
    # and arp_notify, read from each router's kernel
    assert int(facts) == 9
    # 3: the procedure's time to recover is the graded one
    assert abs(float(back) - time_to_recover) < 0.01
    # what the design rests on: Linux announces on a port coming up, not on a cable
    assert re.search(r"its arp_notify is 1\)\? client1 heard 0 gratuitous ARP\(s\) when r2's "
                     r"cable was pulled and plugged in again, [1-9]\d* when r2's port", out), out


def test_drifted_spare_does_not_come_back_and_the_diff_names_the_line(grade, capsys):
    folder = LAB.folder / "broken" / "drifted-spare"
    active, spare = (values(folder, r)["interfaces"][1]["address"] for r in ("r1", "r2"))
    assert active == ap.SERVICE.iface(ap.ROUTER) != spare      # the case's one drifted address
    results = grade(LAB, folder)
    out = capsys.readouterr().out
    # step 2 measured: what r2 runs is not what r1 ran -- the address and its subnet's route
    ran = "r1 only: address %s dev eth1" % active
    runs = "r2 only: address %s dev eth1" % spare
    step = re.search(r"  2\. the spare: what r2 runs against what r1 ran \(.*\): "
                     r"(\d+) difference\(s\): (.*)", out)
    assert step and ran in step.group(2) and runs in step.group(2), out[-2500:]
    assert "r2 only: route 10.0.0.0/24 dev eth1 src %s" % spare.split("/")[0] in step.group(2)
    assert int(step.group(1)) == 4
    assert "service not back 3 s after the cables moved" in out
    identical = results["configs identical"]
    assert not identical.passed
    assert "r1.conf line 14 `ip addr add %s dev eth1`" % active in identical.reason
    assert "r2.conf line 14 `ip addr add %s dev eth1`" % spare in identical.reason
    service = results["service returns after rewire"]
    assert not service.passed
    assert "client1 now sends to r2" in service.reason          # the GARP did its part ...
    assert "does not route like r1" in service.reason           # ... the drift broke it
    assert "What r2 runs differs from what r1 ran: " in service.reason
    assert ran in service.reason and runs in service.reason
    assert results["spare was unplugged before the failure"].passed


def test_without_arp_notify_the_client_keeps_the_dead_routers_mac(grade, capsys):
    results = grade(LAB, LAB.folder / "broken" / "no-arp-notify")
    out = capsys.readouterr().out
    # step 2 holds (r2 runs what r1 ran, arp_notify off on both); step 3 still fails
    assert "): no difference in 9 facts\n" in out, out[-2500:]
    assert "service not back 3 s after the cables moved" in out
    assert results["configs identical"].passed                  # identical, and still broken
    service = results["service returns after rewire"]
    assert not service.passed
    assert "still holds r1's MAC" in service.reason
    assert "sent no gratuitous ARP" in service.reason
    assert "net.ipv4.conf.all.arp_notify=1" in service.reason
    assert results["spare was unplugged before the failure"].passed


def test_starter_fails_with_the_diff_as_the_reason(grade, capsys):
    active, spare = (values(LAB.submission, r)["routes"][0]["via"] for r in ("r1", "r2"))
    assert active != spare                                    # the starter's drifted route
    results = grade(LAB, LAB.submission)
    out = capsys.readouterr().out
    assert ("2 difference(s): r1 only: route default via %s dev eth1; r2 only: route default "
            "via %s dev eth1" % (active, spare)) in out, out[-2500:]
    identical = results["configs identical"]
    assert not identical.passed
    assert "r1.conf line 12 `ip route add default via %s`" % active in identical.reason
    assert "r2.conf line 12 `ip route add default via %s`" % spare in identical.reason
    # the naive template: no GARP, so not back either (the other thing the student fixes)
    assert "arp_notify=1" in results["service returns after rewire"].reason


def test_one_name_per_check(tmp_path):
    """Names reported = names grade() gives a check it could not run (no router.j2: the
    walk-through stops before any network)."""
    results = LAB.grade(tmp_path)
    assert {r.name for r in results} == {"walk-through", "configs identical",
                                         "service returns after rewire",
                                         "spare was unplugged before the failure"}
    assert not {r.name: r for r in results}["spare was unplugged before the failure"].scored


def test_an_empty_template_is_not_identical_configurations(grade):
    """Issue 8: a template that renders nothing made r1.conf and r2.conf "identical"
    (identically empty) and passed "configs identical" while r1 never routed."""
    results = grade(LAB, LAB.folder / "broken" / "empty-template")
    identical = results["configs identical"]
    assert not identical.passed and identical.scored
    assert "r1.conf, rendered from router.j2 with r1.yaml, configures nothing" in identical.reason
    assert "Render r1's sysctls, addresses and routes from the values in r1.yaml" \
        in identical.reason
    walk = results["walk-through"]
    assert not walk.passed and "client1 cannot reach web1" in walk.reason
    assert "did not finish" in results["service returns after rewire"].reason
    assert not results["spare was unplugged before the failure"].scored
    assert labs.score(list(results.values())) == (0, 3)


def test_a_template_that_reaches_for_python_is_refused_and_runs_nothing(grade):
    """Issue 8: router.j2 rendered in the grader could run Python as root there."""
    ran = Path("/tmp/redlab-template-exec-ran")      # what the template's os.system makes
    ran.unlink(missing_ok=True)
    results = grade(LAB, LAB.folder / "broken" / "template-exec")
    identical = results["configs identical"]
    assert not identical.passed
    assert ("router.j2 tried something a template may not do (it is rendered in a sandbox): "
            "access to attribute '__init__'" in identical.reason), identical.reason
    assert "the lab could not run with this submission" in results["walk-through"].reason
    assert not ran.exists()


def test_templates_render_in_a_separate_sandboxed_process(tmp_path):
    """The other classic escape is refused too, and a template that would eat the grader's
    memory and time ends in its own process, at its limit, with a reason."""
    render_all = cs.render_all
    attacks = {"mro": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
               "bomb": "{% for i in range(99999) %}{% for j in range(99999) %}"
                       "{{ hostname * 1000 }}{% endfor %}{% endfor %}"}
    for name, template in attacks.items():
        folder = tmp_path / name
        shutil.copytree(LAB.reference, folder)
        (folder / "router.j2").write_text(template)
        with pytest.raises(ConfigError) as error:
            render_all(folder, ["r1"])
        message = str(error.value)
        if name == "mro":
            assert "tried something a template may not do" in message, message
            assert "'__class__'" in message
        else:
            assert message.startswith("router.j2 could not be rendered: the renderer "), message
            assert "memory limit" in message or "timeout" in message, message
    # the reference still renders, in the same way
    assert render_all(LAB.reference, ["r1"])["r1"].startswith("# r1: rendered from router.j2")


def test_diff_ignores_the_hostname_and_comments_only():
    diff = cs.diff
    active = "# r1\nhostname r1\nsysctl -w net.ipv4.ip_forward=1\nip link set dev eth0 up\n"
    assert diff(active, active.replace("r1", "r2")) == []
    lines = [str(d) for d in diff(active, active.replace("r1", "r2").replace("=1", "=0"))]
    assert lines == ["r1.conf line 3: sysctl -w net.ipv4.ip_forward=1",
                     "r2.conf line 3: sysctl -w net.ipv4.ip_forward=0"]


def test_a_spare_that_carried_traffic_fails_the_cold_check():
    check = LAB.module.spare_was_unplugged_before_the_failure
    measured = dict(spare_traffic_before_rewire={"r2-eth0": [4, 2], "r2-eth1": [0, 0]},
                    spare_switch_ports_before_rewire={"s1-eth2": "UP", "s2-eth2": "DOWN"},
                    spare_packets_after_rewire=40)
    result = check(None, measured)
    assert not result.passed
    assert "r2-eth0 carried 4 packets in, 2 out" in result.reason
    assert "switch ports s1-eth2 were up" in result.reason


def test_a_copied_values_file_with_the_wrong_hostname_is_named(tmp_path):
    import shutil
    submission = tmp_path / "copied"
    shutil.copytree(LAB.reference, submission)
    (submission / "r2.yaml").write_text((submission / "r1.yaml").read_text())
    result = LAB.module.configs_identical(labs.Context(LAB, submission), {})
    assert not result.passed
    assert "r2.yaml says hostname 'r1'" in result.reason


def test_the_student_does_the_procedure_at_the_cli(run_folder, capsys):
    """`redlab run 01 --cli`: typed at the "r1 is dead" pause, `rewire r1 r2` is the procedure."""
    pauses = ["", "diff\nrewire r1\nrewire r1 r2\nrewire r1 r2\n", ""]
    _ctx, m = LAB.walkthrough(LAB.reference, run_folder=run_folder, cli_script=pauses)
    out = capsys.readouterr().out
    assert m["rewired_by"] == "student at the CLI"
    # the three steps as measured: every request between the crash and the rewire failed,
    # from the first; r2 runs what r1 ran; back after the student's procedure
    failure = m["failure"]
    assert failure["failed"] == failure["sent"] >= LAB.module.DATA["notice_failures"]
    assert failure["first_failed_after"] == failure["first_sent_after"]
    assert m["running_diff"] == [] and m["running"]["r1"] == m["running"]["r2"]
    assert {"address 10.0.1.1/24 dev eth0", "address 10.0.0.1/24 dev eth1", "port eth0 up",
            "sysctl net.ipv4.conf.all.arp_notify=1"} <= set(m["running"]["r2"])
    assert "3. the procedure: `rewire r1 r2` by the student, " in out
    assert m["recovered"] and m["time_to_recover"] <= LAB.module.DATA["recovery_bound"], out[-2000:]
    assert m["spare_traffic_before_rewire"] and "this lab's commands: diff:" in out
    assert "(no difference: r2 will do exactly what r1 did)" in out
    assert "rewire: this bench has one failed router and one spare: type `rewire r1 r2`" in out
    assert "cables moved (s1: s1-eth" in out and "r2 loaded r2.conf" in out
    assert "rewire: the cables already moved" in out


def test_diff_is_a_command_too(redlab_cmd):
    import subprocess
    out = subprocess.run(redlab_cmd + ["lab", "01", "diff"], capture_output=True, text=True)
    assert out.returncode == 0 and "-> 2 line(s) differ: r2 is not a copy of r1." in out.stdout
    out = subprocess.run(redlab_cmd + ["lab", "01", "dif"], capture_output=True, text=True)
    assert out.returncode == 2 and "lab 01 has no command 'dif'; it has: diff" in out.stderr
