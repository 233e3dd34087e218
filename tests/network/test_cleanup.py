"""A run killed with ``kill -9`` leaves its network behind; ``redlab clean`` removes
exactly that, and the next network starts fine."""

import os
import signal
import subprocess
import time

import pytest

from redlab.errors import RedlabError
from redlab.net import Network, ovs_bridges
from redlab.runs import owner_alive, registered_runs
from redlab.wait import wait_until
from topologies.service_lan import ServiceLanTopo
from topologies.vrrp_pair import VRRPPairTopo


def start_lab_in_child(redlab_cmd, run_folder, topology="vrrp_pair"):
    out = open(run_folder / "child.out", "w")
    child = subprocess.Popen(redlab_cmd + ["up", topology, "--hold", "120"], stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True)
    wait_until(lambda: ("is up" in (run_folder / "child.out").read_text(),
                        (run_folder / "child.out").read_text()[-300:]), 30,
               "the child's network to come up")
    return child


@pytest.mark.parametrize("topology, daemons", [
    ("vrrp_pair", ["keepalived"]),
    ("dns_rr", ["named", "squid"]),          # Squid runs as user proxy, still cleaned
])
def test_kill_9_then_redlab_clean_then_a_new_network(redlab_cmd, run_folder, topology, daemons):
    child = start_lab_in_child(redlab_cmd, run_folder, topology)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()

    # what a crashed run leaves: its bridge, its daemons, its registry entry
    assert "s1" in ovs_bridges()
    stale = [e for e in registered_runs() if e["owner_pid"] == child.pid]
    assert len(stale) == 1 and not owner_alive(stale[0])
    alive = [p for p in stale[0]["processes"] if os.path.exists("/proc/%d" % p["pid"])]
    for daemon in daemons:
        assert any(daemon in p["what"] for p in alive), (daemon, alive)

    # a new network refuses to start on top of it, and says what to do
    with pytest.raises(RedlabError, match="redlab clean"):
        Network(ServiceLanTopo(servers=1, dns=False, director=False),
                run_folder=run_folder / "refused").start()

    cleaned = subprocess.run(redlab_cmd + ["clean"], capture_output=True, text=True)
    assert cleaned.returncode == 0, cleaned.stderr
    assert "OVS bridge s1" in cleaned.stdout
    assert all(daemon in cleaned.stdout for daemon in daemons), cleaned.stdout
    assert "s1" not in ovs_bridges()
    assert not [e for e in registered_runs() if e["owner_pid"] == child.pid]
    for proc in stale[0]["processes"]:
        assert not os.path.exists("/proc/%d" % proc["pid"]), proc
    # the crashed run's folder is kept as evidence
    assert os.path.isdir(stale[0]["path"])

    with Network(VRRPPairTopo(), run_folder=run_folder / "after") as net:
        assert "0% packet loss" in net["client1"].cmd("ping -c1 -W1 %s" % net["web1"].IP())


def test_sigterm_tears_the_network_down(redlab_cmd, run_folder):
    child = start_lab_in_child(redlab_cmd, run_folder)
    started = time.monotonic()
    child.send_signal(signal.SIGTERM)
    assert child.wait(20) != 0
    assert time.monotonic() - started < 20
    assert "s1" not in ovs_bridges()
    assert not [e for e in registered_runs() if e["owner_pid"] == child.pid]


def test_clean_leaves_other_programs_bridges_alone(redlab_cmd):
    subprocess.run(["ovs-vsctl", "add-br", "notredlab0", "--", "set", "bridge", "notredlab0",
                    "datapath_type=netdev"], check=True)
    try:
        out = subprocess.run(redlab_cmd + ["clean"], capture_output=True, text=True)
        assert out.returncode == 0
        assert "notredlab0" in ovs_bridges()
    finally:
        subprocess.run(["ovs-vsctl", "--if-exists", "del-br", "notredlab0"], check=True)


def test_a_node_that_fails_half_way_leaves_no_shell(run_folder, monkeypatch):
    """Mininet starts a node's shell before the node is registered anywhere: if the node's
    start fails after that, only the harness knows the shell exists (the leak check after
    this test proves it is gone)."""
    from mininet.node import Node
    original = Node.mountPrivateDirs

    def fail_for_web1(node):
        if node.name == "web1":
            raise RuntimeError("web1's start failed after its shell started")
        return original(node)
    monkeypatch.setattr(Node, "mountPrivateDirs", fail_for_web1)
    with pytest.raises(RuntimeError, match="after its shell started"):
        Network(ServiceLanTopo(servers=1, dns=False), run_folder=run_folder).start()
    assert registered_runs() == []


def test_kill_9_of_a_load_balancer_then_clean_removes_its_conntrack_zone(redlab_cmd, run_folder):
    """The load balancer's connections live in a conntrack zone with its own timeouts (OVS
    state outside any bridge): a crashed run leaves both, ``redlab clean`` removes both."""
    from controllers.ovsctl import DP_TYPES, ZONE
    from redlab.system import choose_datapath
    dp_type = DP_TYPES[choose_datapath()]

    def zone_policy():
        return "Zone:%d," % ZONE in subprocess.run(["ovs-vsctl", "list-zone-tp", dp_type],
                                                   capture_output=True, text=True).stdout

    def tracked():
        return subprocess.run(["ovs-appctl", "dpctl/dump-conntrack", "zone=%d" % ZONE],
                              capture_output=True, text=True).stdout.strip()

    out = open(run_folder / "child.out", "w")
    child = subprocess.Popen(redlab_cmd + ["run", "lb", "--hold", "120"], stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True)
    wait_until(lambda: ("load balancer up" in (run_folder / "child.out").read_text(),
                        (run_folder / "child.out").read_text()[-300:]), 60,
               "the child's load balancer to come up")
    wait_until(lambda: (tracked() != "", tracked()), 10, "the probe's connections in the zone")
    assert zone_policy()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()

    cleaned = subprocess.run(redlab_cmd + ["clean"], capture_output=True, text=True)
    assert cleaned.returncode == 0, cleaned.stderr
    assert "conntrack timeouts of zone %d" % ZONE in cleaned.stdout, cleaned.stdout
    assert not zone_policy()
    assert tracked() == ""
