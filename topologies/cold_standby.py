"""A router in service and a cold spare beside it (コールドスタンバイ).

::

    client1 (10.0.1.101)                                     web1 (10.0.0.11)
         |                                                        |
         s1 ------ eth0 [ r1 ] eth1 ----------------------------- s2     r1: in service
         |                                                        |
         + - - - - eth0 [ r2 ] eth1 - - - - - - - - - - - - - - - +     r2: the spare
       client LAN 10.0.1.0/24                 service LAN 10.0.0.0/24

Both routers are cabled to both switches, port for port (eth0 to the client LAN,
eth1 to the service LAN), but they come up *blank*, like a Linux box before its
network configuration runs: no address, IP forwarding off, ports down.  Whoever uses
the topology configures them (lab 01 renders one template for both); until then
nothing is routed.  The spare's cables are "out of the switch" once its switch-side
ports are set down (lab 01 does that at once).

Hosts keep the address plan's gateway (``.1`` of their LAN) as their default route:
whichever router holds that address serves them.

    sudo mn --custom topologies/cold_standby.py --topo cold_standby --switch ovs,datapath=user \\
        --controller remote
"""

import inspect
import os
import sys

from mininet.topo import Topo

# `mn --custom` runs this file without __file__ and without redlab on its path
_HERE = os.path.abspath(inspect.getframeinfo(inspect.currentframe()).filename)
sys.path.insert(0, os.path.dirname(os.path.dirname(_HERE)))

from redlab import addressing as ap  # noqa: E402
from redlab.nodes import Client, RedlabHost, WebServer  # noqa: E402

# router port -> (switch, LAN): the same on every router of this model
PORTS = {"eth0": ("s1", ap.CLIENTS), "eth1": ("s2", ap.SERVICE)}


class BlankRouter(RedlabHost):
    """A Linux router before its configuration runs: factory defaults, ports down.

    A new network namespace inherits IPv4 settings (ip_forward, arp_notify...) from
    the machine; they are reset to the kernel's defaults here so that the router's
    own configuration is the only thing that turns them on.
    """

    role = "router"

    def config(self, **params):
        result = super().config(**params)
        self.cmd("sysctl -qw net.ipv4.ip_forward=0 net.ipv4.conf.all.arp_notify=0 "
                 "net.ipv4.conf.default.arp_notify=0")
        for intf in self.intfList():
            if intf.name != "lo":
                self.cmd("ip -4 addr flush dev %s" % intf.name)
                self.cmd("ip link set dev %s down" % intf.name)
        return result

    def port(self, name):
        """This router's interface for port ``name`` ("eth0" -> "r2-eth0")."""
        return "%s-%s" % (self.name, name)

    def terminate(self):
        if self.shell:
            self.cmd("sysctl -qw net.ipv4.ip_forward=0")
        super().terminate()


class ColdStandbyTopo(Topo):
    def build(self, routers=("r1", "r2")):
        switches = {name: self.addSwitch(name) for name, _lan in PORTS.values()}
        for name in routers:
            router = self.addHost(name, cls=BlankRouter, ip=None)
            for port, (switch, _lan) in sorted(PORTS.items()):
                self.addLink(router, switches[switch], intfName1="%s-%s" % (name, port))
        client = self.addHost("client1", cls=Client, ip=ap.cidr(ap.client(1), ap.CLIENTS),
                              defaultRoute="via %s" % ap.router(ap.CLIENTS))
        self.addLink(client, switches["s1"])
        web = self.addHost("web1", cls=WebServer, ip=ap.cidr(ap.web(1)),
                           defaultRoute="via %s" % ap.router(ap.SERVICE))
        self.addLink(web, switches["s2"])


# the spare is unplugged by design, so a `pingall` cannot reach it: build and stop only
MN_CUSTOM_TEST = "none"

topos = {"cold_standby": ColdStandbyTopo}
