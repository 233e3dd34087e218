"""DNS round robin over per-server VIPs: three web servers, a DNS server and a client.

::

      client1 (10.0.0.201)           dns1 (10.0.0.53)
            \\                       /   www.lab.example -> 10.0.0.100
             +-------------------- s1     www.lab.example -> 10.0.0.101
                                /   |   \\  www.lab.example -> 10.0.0.102
                 web1 (10.0.0.11) web2 (.12) web3 (.13)
                 VIP1 10.0.0.100  VIP2 .101  VIP3 .102

Each web server runs nginx on its own address; its VIP (``addressing.vip(n)``) is
*not* configured by the topology: the takeover script running on each server adds
it, takes over a failed peer's VIP, and gives it back (labs/04-dns-vip-takeover).
dns1 answers ``www.lab.example`` with every VIP (one A record per server, cyclic
order): DNS round robin.

    sudo mn --custom topologies/vip_takeover.py --topo vip_takeover --switch ovs,datapath=user \\
        --controller remote --test pingall
"""

import inspect
import os
import sys

# `mn --custom` runs this file without __file__ and without redlab on its path
_HERE = os.path.abspath(inspect.getframeinfo(inspect.currentframe()).filename)
sys.path.insert(0, os.path.dirname(os.path.dirname(_HERE)))

from topologies.service_lan import ZONE, ServiceLanTopo  # noqa: E402,F401


class VipTakeoverTopo(ServiceLanTopo):
    """service_lan without a director, whose DNS lists one VIP per server."""

    def build(self, servers=3, dns=True, ttl=30):
        super().build(servers=servers, dns=dns, director=False, ttl=ttl, dns_to="vip")


topos = {"vip_takeover": VipTakeoverTopo}
