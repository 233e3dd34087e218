"""One LAN with everything a web service needs: web servers, DNS, a director, a client.

::

      client1 (10.0.0.201)      dns1 (10.0.0.53)      director (10.0.0.2)
            \\                      |                      /
             +-------------------- s1 -------------------+
                                /   |   \\
                 web1 (10.0.0.11) web2 (.12) web3 (.13)

dns1 serves zone ``lab.example`` where ``www`` has one A record per web server
(round robin).  The director runs nothing by itself: load balancers and health
checkers are started on it by the scenario.

    sudo mn --custom topologies/service_lan.py --topo service_lan --switch ovs,datapath=user \\
        --controller remote --test pingall
"""

import inspect
import os
import sys

from mininet.link import TCLink
from mininet.topo import Topo

# `mn --custom` runs this file without __file__ and without redlab on its path
_HERE = os.path.abspath(inspect.getframeinfo(inspect.currentframe()).filename)
sys.path.insert(0, os.path.dirname(os.path.dirname(_HERE)))

from redlab import addressing as ap  # noqa: E402
from redlab.nodes import Client, Director, DNSServer, WebServer  # noqa: E402

ZONE = "lab.example"


class ServiceLanTopo(Topo):
    def build(self, servers=3, dns=True, director=True, ttl=60, bw=None, dns_to="web"):
        """``bw``: each web server's link capacity in Mbit/s (web1 first; tc htb on
        both ends), for servers of different capacity; None: unshaped links.
        ``dns_to``: the A records name the servers' own addresses ("web") or one VIP
        per server ("vip", see topologies/vip_takeover.py)."""
        if bw is not None and len(bw) != servers:
            raise ValueError("bw needs one capacity per web server (%d), got %r" % (servers, bw))
        s1 = self.addSwitch("s1")
        self.addLink(self.addHost("client1", cls=Client, ip=ap.cidr(ap.client(1, ap.SERVICE))), s1)
        for n in range(1, servers + 1):
            shaped = dict(cls=TCLink, bw=bw[n - 1]) if bw else {}
            self.addLink(self.addHost("web%d" % n, cls=WebServer, ip=ap.cidr(ap.web(n))), s1,
                         **shaped)
        if dns:
            address = {"web": ap.web, "vip": ap.vip}[dns_to]
            records = [("www", address(n)) for n in range(1, servers + 1)]
            dns1 = self.addHost("dns1", cls=DNSServer, ip=ap.cidr(ap.dns(1)),
                                dns=dict(zone=ZONE, records=records, ttl=ttl))
            self.addLink(dns1, s1)
        if director:
            self.addLink(self.addHost("director", cls=Director, ip=ap.cidr(ap.director())), s1)


topos = {"service_lan": ServiceLanTopo}
