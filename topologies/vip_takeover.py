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

from mininet.topo import Topo

# `mn --custom` runs this file without __file__ and without redlab on its path
_HERE = os.path.abspath(inspect.getframeinfo(inspect.currentframe()).filename)
sys.path.insert(0, os.path.dirname(os.path.dirname(_HERE)))

from redlab import addressing as ap  # noqa: E402
from redlab.nodes import Client, DNSServer, WebServer  # noqa: E402

ZONE = "lab.example"


class VipTakeoverTopo(Topo):
    def build(self, servers=3, dns=True, ttl=30):
        s1 = self.addSwitch("s1")
        self.addLink(self.addHost("client1", cls=Client, ip=ap.cidr(ap.client(1, ap.SERVICE))), s1)
        for n in range(1, servers + 1):
            self.addLink(self.addHost("web%d" % n, cls=WebServer, ip=ap.cidr(ap.web(n))), s1)
        if dns:
            records = [("www", ap.vip(n)) for n in range(1, servers + 1)]
            dns1 = self.addHost("dns1", cls=DNSServer, ip=ap.cidr(ap.dns(1)),
                                dns=dict(zone=ZONE, records=records, ttl=ttl))
            self.addLink(dns1, s1)


topos = {"vip_takeover": VipTakeoverTopo}
