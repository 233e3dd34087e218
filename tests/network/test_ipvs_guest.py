"""The kernel's IPVS, tested on a machine whose kernel has no ip_vs: in a stock Debian
kernel booted by ``scripts/ipvs-vm`` (qemu; this machine's root filesystem read-only).

The tests marked ``ipvs`` (``tests/network/test_ipvs.py``: NAT and DR, a failed server
leaving the table; lab 05's Part C: keepalived's checkers and ipvsadm on the director) run
inside the guest with the project's own pytest; their JUnit report comes back over the
console and each of them must have passed there -- a skip is a failure (the guest's
kernel has ip_vs). Where this kernel has ip_vs, they run here and this test is skipped.
"""

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from redlab.system import kernel_has_ipvs

REPO = Path(__file__).resolve().parent.parent.parent
VM = REPO / "scripts" / "ipvs-vm"
GUEST_TESTS = ["tests/network/test_ipvs.py", "tests/labs/test_lab_05.py"]
BEGIN, END = "=== guest junit begin ===", "=== guest junit end ==="
TIMEOUT = 1500          # seconds: the guest is emulated (TCG), ~10x slower than here


def _guest_unavailable():
    if kernel_has_ipvs(load=True):
        return "this kernel has ip_vs: the ipvs tests run here, not in a guest"
    if not shutil.which("qemu-system-x86_64"):
        return "qemu is not installed (`make setup` installs it)"
    ready = subprocess.run([str(VM), "--prepare"], capture_output=True, text=True)
    if ready.returncode:
        return "scripts/ipvs-vm --prepare failed: %s" % (ready.stderr.strip()[-300:])
    return None


# read once before the tests (an emulated disk over 9p, files read cold): the modules a
# network and its controller import, so that the first test's start-up is not that read
WARM = ("controllers.launch", "controllers.lb", "controllers.l2switch",
        "os_ken.controller.controller", "os_ken.ofproto.ofproto_v1_3_parser",
        "os_ken.base.app_manager", "mininet.net", "redlab.net", "redlab.scenarios.ipvs")


def guest_command():
    """What the guest runs: OVS, the warm-up, then pytest on the ipvs tests, then its
    JUnit report."""
    python = REPO / ".venv" / "bin" / "python"
    return " && ".join([
        "cd %s" % REPO,
        "/usr/share/openvswitch/scripts/ovs-ctl start --system-id=random >/dev/null",
        "%s -c 'import %s'" % (python, ", ".join(WARM)),
    ]) + "; %s -m pytest -q -p no:cacheprovider -m ipvs -rA --junitxml=/tmp/guest.xml %s; " \
        "rc=$?; echo '%s'; cat /tmp/guest.xml; echo; echo '%s'; exit $rc" % (
            python, " ".join(GUEST_TESTS), BEGIN, END)


def outcomes(console):
    """``{test id: (outcome, message)}`` from the JUnit XML between the markers."""
    match = re.search(re.escape(BEGIN) + r"\s*(.*?)\s*" + re.escape(END), console, re.S)
    if not match:
        return None
    found = {}
    for case in ET.fromstring(match.group(1)).iter("testcase"):
        test = "%s::%s" % (case.get("classname"), case.get("name"))
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            node = case.find(kind)
            if node is not None:
                outcome, message = kind, (node.get("message") or "")[:500]
                break
        found[test] = (outcome, message)
    return found


def test_outcomes_are_read_from_the_guest_s_junit_report():
    console = ("boot noise\n%s\n<?xml version=\"1.0\"?><testsuites><testsuite>"
               "<testcase classname=\"tests.network.test_ipvs\" name=\"test_a[NAT]\"/>"
               "<testcase classname=\"tests.network.test_ipvs\" name=\"test_b\">"
               "<skipped message=\"no ip_vs\"/></testcase></testsuite></testsuites>\n%s\n"
               % (BEGIN, END))
    assert outcomes(console) == {"tests.network.test_ipvs::test_a[NAT]": ("passed", ""),
                                 "tests.network.test_ipvs::test_b": ("skipped", "no ip_vs")}
    assert outcomes("the guest died before pytest ran") is None


@pytest.mark.early
@pytest.mark.network
def test_the_ipvs_tests_pass_in_a_stock_kernel_guest(tmp_path):
    reason = _guest_unavailable()
    if reason:
        pytest.skip(reason)
    # emulated, and sharing two cores with the rest of the suite: things start 10-20 times
    # slower there (redlab.wait.startup; a controller once took over 120 s to take its
    # switch while four workers ran beside it)
    run = subprocess.run([str(VM), "-n", "-t", str(TIMEOUT), "-e", "REDLAB_STARTUP_SCALE=15",
                          "--", guest_command()],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=TIMEOUT + 120, env=dict(os.environ, TERM="dumb"))
    (tmp_path / "console.txt").write_text(run.stdout)
    found = outcomes(run.stdout)
    assert found is not None, "the guest gave no test report (exit %d):\n%s" % (
        run.returncode, run.stdout[-3000:])
    # the guest has ip_vs: no ipvs test may skip there, and the two kinds must be there
    bad = {test: result for test, result in found.items() if result[0] != "passed"}
    assert not bad, "in the stock-kernel guest: %s\n%s" % (bad, run.stdout[-3000:])
    assert any("NAT" in test for test in found) and any("DR" in test for test in found), found
    assert run.returncode == 0, run.stdout[-3000:]
