"""Failover under load, controller restart, live changes, bad configuration."""

import subprocess
import time

import pytest

from redlab import addressing as ap
from redlab import faults
from redlab.errors import ConfigError
from redlab.lb import web_service
from redlab.lbctl import LBError
from redlab.net import ovs_bridges
from redlab.probe import Probe, analyse
from redlab.scenarios.lb import LoadBalancedService
from redlab.wait import wait_until
from tests.network.test_lb import Holder


def test_failover_under_load_no_request_fails_after_detection(run_folder):
    service = web_service("rr", check="http", interval=0.2, timeout=0.5, rise=2, fall=2)
    with LoadBalancedService(service, run_folder=run_folder) as lab:
        probe = Probe(lab.client, "http://%s/" % service.vip, interval=0.05, max_seconds=40)
        with probe:
            probe.wait_good(6)
            fault = faults.host_crash(lab.network, "web1")
            wait_until(lambda: (lab.checker.transitions("web1", "down", since=fault.at),
                                lab.checker.transitions()), 5, "the checker to mark web1 down")
            detected = lab.checker.transitions("web1", "down", since=fault.at)[0]["t"]
            probe.wait_good(20, timeout=10, since=detected)
            after = [s for s in probe.samples() if s.t > detected + 0.1]
            assert after and all(s.ok for s in after), [s for s in after if not s.ok][:3]
            assert {s.server for s in after} == {"web2", "web3"}
            back = time.time()
            fault.undo()
            wait_until(lambda: (lab.checker.transitions("web1", "up", since=back),
                                lab.checker.transitions()), 10, "web1 to pass `rise` checks")
            up_at = lab.checker.transitions("web1", "up", since=back)[0]["t"]
            wait_until(lambda: ("web1" in {s.server for s in probe.samples() if s.t > up_at},
                                "web1 not served yet"), 5, "web1 to serve again")
        timeline = analyse(probe.samples(), fault.at, detected_at=detected)
        assert timeline.recovered and timeline.time_to_detect < 2
        assert timeline.time_to_recover <= timeline.time_to_detect + 1
        (run_folder / "failover.txt").write_text(timeline.summary())


def test_controller_restart_keeps_established_connections(run_folder):
    with LoadBalancedService(web_service("rr", check="tcp"), run_folder=run_folder) as lab:
        holder = Holder(lab, 3)
        # (the last SYN-ACK copy may still be on its way to the controller)
        wait_until(lambda: (lab.counts() == {"web1": (1, 0), "web2": (1, 0), "web3": (1, 0)},
                            lab.counts()), 5, "one active connection on each server")
        fault = faults.controller_kill(lab.network)
        fault.undo()
        # rebuilt from the switch's flows
        wait_until(lambda: (lab.counts() == {"web1": (1, 0), "web2": (1, 0), "web3": (1, 0)},
                            lab.counts()), 10, "the connection table to be rebuilt")
        assert holder.request() == ["200:web1", "200:web2", "200:web3"]
        assert lab.get()[0] == 200
        holder.stop()


def test_live_weight_drain_add_remove(run_folder, redlab_cmd):
    service = web_service("rr", servers=2, check="tcp")
    topo_servers = 3
    from topologies.service_lan import ServiceLanTopo
    with LoadBalancedService(service, run_folder=run_folder,
                             topo=ServiceLanTopo(servers=topo_servers, dns=False)) as lab:
        holder = Holder(lab, 2)                           # one to web1, one to web2
        # drain web1 through the CLI, as an operator would
        out = subprocess.run(redlab_cmd + ["lb", "drain", "web1"], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert {lab.get()[1] for _ in range(4)} == {"web2"}
        # add web3 live while its nginx is still down: the health checker follows the
        # controller's list, and web3 gets nothing until its checks pass (rise 2)
        nginx3 = lab["web3"].daemons["nginx"]
        nginx3.stop()
        lab.ctl.add_server("web3", ap.web(3), port=80, weight=1)
        added = lab.ctl.status().server("web3")
        assert added.health == "down" and "waiting for its first health checks" in added.reason
        wait_until(lambda: (any(r["server"] == "web3" for r in lab.checker.results()),
                            lab.checker.results()[-3:]), 5, "the checker to check web3")
        assert {lab.get()[1] for _ in range(4)} == {"web2"}
        nginx3.start()
        wait_until(lambda: (lab.ctl.status().server("web3").health == "up",
                            lab.status_text()), 5, "web3 to pass its checks")
        assert {lab.get()[1] for _ in range(4)} == {"web2", "web3"}
        # remove web2: no new connections, but its established one keeps working
        lab.ctl.remove_server("web2")
        assert {lab.get()[1] for _ in range(3)} == {"web3"}
        # the connections to drained web1 and removed web2 still work
        assert holder.request() == ["200:web1", "200:web2"]
        status = subprocess.run(redlab_cmd + ["lb", "status"], capture_output=True, text=True)
        assert status.returncode == 0, status.stderr
        assert "TCP  %s:80 rr" % service.vip in status.stdout
        assert "(web1)" in status.stdout and "(web3)" in status.stdout
        assert "(web2)" not in status.stdout
        with pytest.raises(LBError, match="refused set_weight: weight must be an integer >= 0"):
            lab.ctl.set_weight("web1", -1)
        holder.stop()


def test_bad_service_config_is_refused_before_anything_starts(redlab_cmd, run_folder):
    with pytest.raises(ConfigError, match="lb_algo 'fastest' is unknown"):
        web_service("fastest")
    bad = run_folder / "bad.yaml"
    bad.write_text("name: web\nvip: %s\nlb_algo: wrr\nreal_servers:\n"
                   "  - {name: web1, ip: %s, weight: -1}\n" % (ap.vip(1), ap.web(1)))
    out = subprocess.run(redlab_cmd + ["run", "lb", "--service", str(bad)], capture_output=True,
                         text=True)
    assert out.returncode == 2
    assert "real_servers[0].weight must be an integer >= 0, got -1" in out.stderr
    assert "s1" not in ovs_bridges()
