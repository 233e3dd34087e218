"""Two LANs joined by a Linux router: the smallest routed network.

::

    client1 (10.0.1.101)          r1           web1 (10.0.0.11)
         |                   .1 /    \\ .1            |
         s1 ---------- r1-eth0      r1-eth1 ------- s2
       client LAN 10.0.1.0/24          service LAN 10.0.0.0/24

Hosts reach the other LAN through r1 (their default route); r1 forwards (IP
forwarding on) and can carry static ``routes``.

    sudo mn --custom topologies/routed.py --topo routed --switch ovs,datapath=user \\
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
from redlab.nodes import Client, Router, WebServer  # noqa: E402


class RoutedTopo(Topo):
    def build(self, routes=()):
        s1, s2 = self.addSwitch("s1"), self.addSwitch("s2")
        r1 = self.addHost("r1", cls=Router, ip=ap.CLIENTS.iface(ap.ROUTER), routes=list(routes))
        self.addLink(r1, s1, intfName1="r1-eth0", params1=dict(ip=ap.CLIENTS.iface(ap.ROUTER)))
        self.addLink(r1, s2, intfName1="r1-eth1", params1=dict(ip=ap.SERVICE.iface(ap.ROUTER)))
        client = self.addHost("client1", cls=Client, ip=ap.cidr(ap.client(1), ap.CLIENTS),
                              defaultRoute="via %s" % ap.router(ap.CLIENTS))
        self.addLink(client, s1)
        web = self.addHost("web1", cls=WebServer, ip=ap.cidr(ap.web(1)),
                           defaultRoute="via %s" % ap.router(ap.SERVICE))
        self.addLink(web, s2)


topos = {"routed": RoutedTopo}
