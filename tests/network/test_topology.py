"""A topology comes up, forwards ICMP *and* TCP across the OVS switch, and goes away."""

import re

from redlab import addressing as ap
from redlab.system import choose_datapath
from topologies.vrrp_pair import VRRPPairTopo


def test_ping_and_tcp_work_across_the_switch(network):
    net = network(VRRPPairTopo(), services=False)
    client, web1 = net["client1"], net["web1"]
    assert "0% packet loss" in client.cmd("ping -c2 -W1 %s" % ap.web(2))
    # TCP: the userspace datapath drops segments with unfilled checksums unless
    # TX offload is off on every host interface (PLATFORM.md trap 1)
    web1.cmd("python3 -m http.server 8080 --bind %s >/dev/null 2>&1 &" % ap.web(1))
    out = client.cmd("for i in $(seq 50); do curl -s -m 1 -o /dev/null -w '%%{http_code}' "
                     "http://%s:8080/ && break; sleep 0.1; done" % ap.web(1))
    web1.cmd("kill %1")
    assert "200" in out


def test_datapath_choice_and_tx_offload(network):
    net = network(VRRPPairTopo(), services=False)
    datapath = choose_datapath()
    assert net.datapath == datapath
    bridge_type = net["s1"].cmd("ovs-vsctl get bridge s1 datapath_type").strip()
    assert bridge_type.strip('"') == ("netdev" if datapath == "user" else "")
    if datapath == "user":
        for host in net.hosts:
            features = host.cmd("ethtool -k %s" % host.defaultIntf().name)
            assert re.search(r"^tx-checksumming: off", features, re.M), (host.name, features)


def test_hosts_get_addresses_and_macs_from_the_plan(network):
    net = network(VRRPPairTopo(), services=False)
    for name, ip in (("web1", ap.web(1)), ("web2", ap.web(2)), ("client1", ap.client(1, ap.SERVICE))):
        host = net[name]
        assert host.IP() == ip
        assert host.MAC() == ap.mac_for(ip)


def test_controller_learns_and_installs_flows(network):
    net = network(VRRPPairTopo(), services=False)
    net["client1"].cmd("ping -c1 -W1 %s" % ap.web(1))
    flows = net.dump_flows("s1")
    assert "dl_dst=%s" % ap.mac_for(ap.web(1)) in flows
    assert "dl_dst=%s" % ap.mac_for(ap.client(1, ap.SERVICE)) in flows
    assert "priority=20,arp actions=CONTROLLER" in flows
