"""Each fault breaks what it says, and its undo restores exactly that."""

import time

import pytest

from redlab import addressing as ap
from redlab import faults
from redlab.errors import WaitTimeout
from redlab.wait import wait_until
from topologies.service_lan import ServiceLanTopo


@pytest.fixture
def lan(network):
    return network(ServiceLanTopo(servers=1, dns=False, director=False))


def status(client, ip=None, timeout=1):
    """HTTP status code from the client ("000" when no answer came)."""
    return client.cmd("curl -s -o /dev/null -m %s -w '%%{http_code}' http://%s/"
                      % (timeout, ip or ap.web(1))).strip()


def serving(client):
    return wait_until(lambda: (status(client) == "200", status(client)), 10, "web1 to serve")


def test_link_down_and_up(lan):
    client = lan["client1"]
    fault = faults.link_down(lan, "web1", "s1")
    assert "link web1-s1 down" == fault.description
    assert status(client) == "000"
    assert "state DOWN" in lan["web1"].cmd("ip link show web1-eth0")
    fault.undo()
    serving(client)


def test_host_crash_kills_everything_and_reboot_restores_it(lan):
    web1, client = lan["web1"], lan["client1"]
    web1.cmd("sleep 300 &")                       # a process the harness did not start
    assert web1.processes()
    fault = faults.host_crash(lan, web1)
    assert web1.processes() == []
    assert not web1.daemons["nginx"].running
    assert "100% packet loss" in client.cmd("ping -c1 -W1 %s" % ap.web(1))
    fault.undo()
    assert web1.daemons["nginx"].running
    assert "0% packet loss" in client.cmd("ping -c1 -W1 %s" % ap.web(1))
    serving(client)


def test_daemon_stop_and_start(lan):
    nginx, client = lan["web1"].daemons["nginx"], lan["client1"]
    fault = faults.daemon_stop(nginx)
    assert not nginx.running
    reply = client.cmd("curl -s -m 1 http://%s/; echo rc=$?" % ap.web(1))
    assert "rc=7" in reply                        # connection refused: host up, port closed
    fault.undo()
    serving(client)


def test_http_500_then_healthy_again(lan):
    nginx, client = lan["web1"].daemons["nginx"], lan["client1"]
    fault = faults.http_500(nginx)
    assert status(client) == "500"
    assert nginx.running
    fault.undo()
    assert status(client) == "200"


def test_hang_accepts_tcp_but_never_answers(lan):
    nginx, client = lan["web1"].daemons["nginx"], lan["client1"]
    fault = faults.hang(nginx)
    # TCP handshake completes (the kernel's listen backlog) ...
    connect = client.cmd("curl -s -o /dev/null -m 1 -w '%%{time_connect}' http://%s/"
                         % ap.web(1)).strip()
    assert float(connect) > 0
    # ... but the request is never answered
    assert status(client) == "000"
    fault.undo()
    serving(client)


def test_controller_kill_keeps_flows_and_restart_rebuilds(lan):
    client = lan["client1"]
    serving(client)                               # flows for client <-> web1 learned
    old_pid = lan.controller.proc.pid
    fault = faults.controller_kill(lan)
    assert not lan.controller.running
    # fail-secure switch: installed flows keep forwarding without a controller
    assert status(client) == "200"
    fault.undo()
    assert lan.controller.running and lan.controller.proc.pid != old_pid
    connected = lan.controller.events("switch_connected")
    assert connected[-1]["t"] >= fault.at
    serving(client)


def test_fault_as_context_manager_undoes_on_exit(lan):
    client = lan["client1"]
    with faults.http_500(lan["web1"].daemons["nginx"]) as fault:
        assert status(client) == "500"
    assert fault.undone_at is not None and fault.undone_at >= fault.at
    assert status(client) == "200"


def test_fault_records_when_it_happened(lan):
    before = time.time()
    fault = faults.hang(lan["web1"].daemons["nginx"])
    fault.undo()
    assert before <= fault.at <= fault.undone_at <= time.time()


def test_drop_garp_stops_gratuitous_arp_but_not_ordinary_replies(lan):
    web1, client = lan["web1"], lan["client1"]
    vip, intf, cintf = ap.vip(1), web1.defaultIntf().name, client.defaultIntf().name
    web1.cmd("ip addr add %s dev %s" % (ap.cidr(vip), intf))
    stale = "02:00:00:00:00:99"

    def entry():
        return client.cmd("ip neigh show %s dev %s" % (vip, cintf)).strip()

    def garp_and_look():
        client.cmd("ip neigh replace %s lladdr %s dev %s nud stale" % (vip, stale, cintf))
        web1.cmd("arping -q -U -c 1 -S %s -i %s %s" % (vip, intf, vip))
        return wait_until(lambda: (web1.MAC() in entry(), entry()), 2,
                          "client1's entry to follow the GARP")

    fault = faults.drop_garp(web1, vip)
    assert "u32" in web1.cmd("tc filter show dev %s" % intf)
    with pytest.raises(WaitTimeout, match="entry to follow the GARP"):
        garp_and_look()
    assert stale in entry()
    assert fault.dropped() == 1
    client.cmd("ip neigh flush dev %s" % cintf)       # an ordinary ARP request is answered
    assert "1 received" in client.cmd("ping -c1 -W1 %s" % vip)
    assert web1.MAC() in entry()
    fault.undo()
    assert "htb" not in web1.cmd("tc qdisc show dev %s" % intf)
    garp_and_look()
