"""The recorders see what happened in the network, with times, and stop with the test."""

from redlab import addressing as ap
from redlab.recorders import AddressMonitor, ArpCapture, NeighbourMonitor
from redlab.wait import wait_until
from topologies.service_lan import ServiceLanTopo


def test_a_vip_appears_is_announced_and_the_client_follows(network):
    net = network(ServiceLanTopo(servers=2, dns=False, director=False))
    client, web1, web2 = net["client1"], net["web1"], net["web2"]
    vip = ap.vip(1)
    with ArpCapture(client) as arp, NeighbourMonitor(client) as neigh, \
            AddressMonitor(web2) as addr:
        web1.cmd("ip addr add %s dev %s" % (ap.cidr(vip), web1.defaultIntf().name))
        client.cmd("ping -c1 -W1 %s" % vip)             # an ordinary ARP exchange
        assert neigh.mark(vip) == web1.MAC()
        web1.cmd("ip addr del %s dev %s" % (ap.cidr(vip), web1.defaultIntf().name))
        web2.cmd("ip addr add %s dev %s" % (ap.cidr(vip), web2.defaultIntf().name))
        moved = web2.cmd("date +%s.%N").strip()
        web2.cmd("arping -q -U -c 1 -S %s -i %s %s" % (vip, web2.defaultIntf().name, vip))
        wait_until(lambda: (neigh.moved_to(vip, web2.MAC(), float(moved)),
                            neigh.entries(vip)), 3, "client1's entry to move to web2")
        at = neigh.moved_to(vip, web2.MAC(), float(moved))
        wait_until(lambda: (arp.garps(vip, web2.MAC()), arp.packets()), 3,
                   "the capture to show web2's GARP")
        garps = arp.garps(vip, web2.MAC())
        assert len(garps) == 1 and garps[0] <= at + 0.001, (garps, at)
        assert neigh.sequence(vip, 0) == [web1.MAC(), web2.MAC()]
        assert neigh.mac_at(vip, float(moved) - 0.001) == web1.MAC()
        replies = [p for p in arp.packets() if p["op"] == "reply" and p["sender_ip"] == vip]
        assert replies and replies[0]["sender_mac"] == web1.MAC()
        assert wait_until(lambda: ([(ip, held) for _, ip, held in addr.changes()] ==
                                   [(vip, True)], addr.changes()), 3, "web2's address event")
