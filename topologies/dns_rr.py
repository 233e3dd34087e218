"""DNS round robin with a carrier gateway: phones behind a caching resolver, PCs direct.

::

    phone1 (10.0.1.101)  phone2 (.102)  phone3 (.103)      carrier LAN 10.0.1.0/24
          \\                 |              /
           +--------------- s1 -----------+
                            |
                      .1 carriergw .1        router + caching BIND (forwards to dns1)
                            |                + Squid, the phones' HTTP proxy (port 3128)
                            |
           +--------------- s2 ------------+-------------+      service LAN 10.0.0.0/24
          /        |        |        \\       \\             \\
    web1 (.11) web2 (.12) web3 (.13) dns1 (.53)  pc1 (.201) pc2 (.202) pc3 (.203)

dns1 is authoritative for ``lab.example``: ``www`` has one A record per web server
(round robin, ``rrset-order cyclic``) with TTL ``ttl``.  carriergw is the phones'
default router and their only resolver: a BIND that forwards to dns1 and keeps each
answer for its TTL, like the carrier gateway (キャリアゲートウェイ) of the course notes.
Its Squid is the proxy every phone's request goes through: it resolves the name
through that BIND and keeps the answer in its own cache (Debian 12's Squid 5.7 keeps
every name for ``negative_dns_ttl``, whatever the record's TTL: ``proxy=dict(...)``
sets it).  The PCs ask dns1 directly.  Hosts share one filesystem, so nobody has a
resolv.conf of its own: clients name their resolver (``dig @server``).

    sudo mn --custom topologies/dns_rr.py --topo dns_rr --switch ovs,datapath=user \\
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
from redlab.nodes import Client, DNSServer, Router, WebServer  # noqa: E402

ZONE = "lab.example"
NAME = "www"


class CarrierGateway(Router):
    """A router with a caching BIND and a Squid proxy for the hosts behind it."""

    role = "gateway"

    def services(self):
        from redlab.daemons import Bind, Squid
        carrier = self.params.get("dns", {}).get("listen", self.IP())
        proxy = dict(resolvers=[carrier], allow=[ap.CLIENTS.cidr])
        proxy.update(self.params.get("proxy", {}))
        return [Bind(self, **self.params.get("dns", {})), Squid(self, **proxy)]


class DNSRoundRobinTopo(Topo):
    def build(self, servers=3, phones=3, pcs=3, ttl=60, records=None, proxy=None):
        s1, s2 = self.addSwitch("s1"), self.addSwitch("s2")
        gateway = self.addHost(
            "carriergw", cls=CarrierGateway, ip=ap.CLIENTS.iface(ap.ROUTER),
            dns=dict(forwarders=[ap.dns(1)], listen=ap.router(ap.CLIENTS), querylog=True),
            proxy=dict(proxy or {}))
        self.addLink(gateway, s1, intfName1="carriergw-eth0",
                     params1=dict(ip=ap.CLIENTS.iface(ap.ROUTER)))
        self.addLink(gateway, s2, intfName1="carriergw-eth1",
                     params1=dict(ip=ap.SERVICE.iface(ap.ROUTER)))
        for n in range(1, phones + 1):
            phone = self.addHost("phone%d" % n, cls=Client, ip=ap.cidr(ap.client(n), ap.CLIENTS),
                                 defaultRoute="via %s" % ap.router(ap.CLIENTS))
            self.addLink(phone, s1)
        back = "via %s" % ap.router(ap.SERVICE)
        for n in range(1, servers + 1):
            self.addLink(self.addHost("web%d" % n, cls=WebServer, ip=ap.cidr(ap.web(n)),
                                      defaultRoute=back), s2)
        if records is None:
            records = [(NAME, ap.web(n)) for n in range(1, servers + 1)]
        dns1 = self.addHost("dns1", cls=DNSServer, ip=ap.cidr(ap.dns(1)), defaultRoute=back,
                            dns=dict(zone=ZONE, records=list(records), ttl=ttl))
        self.addLink(dns1, s2)
        for n in range(1, pcs + 1):
            pc = self.addHost("pc%d" % n, cls=Client, ip=ap.cidr(ap.client(n, ap.SERVICE)),
                              defaultRoute=back)
            self.addLink(pc, s2)


topos = {"dns_rr": DNSRoundRobinTopo}
