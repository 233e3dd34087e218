"""Two web servers sharing one VIP with keepalived VRRP, behind one switch.

::

      client1 (10.0.0.201)
          |
          s1 ---------------- web1 (10.0.0.11)  MASTER, priority 150
          |                   \\
          +------------------ web2 (10.0.0.12)  BACKUP, priority 100
                                 VIP 10.0.0.100 (VRID 51) on whichever is master

``use_vmac=True`` makes keepalived put the VIP on a macvlan with the VRRP virtual MAC
00:00:5e:00:01:33, which then moves between switch ports on a takeover.

    sudo mn --custom topologies/vrrp_pair.py --topo vrrp_pair --switch ovs,datapath=user \\
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
from redlab.nodes import Client, WebServer  # noqa: E402

VRID = 51


class VRRPPairTopo(Topo):
    def build(self, use_vmac=False, advert_int=1, servers=2, deploy_from=None):
        s1 = self.addSwitch("s1")
        client = self.addHost("client1", cls=Client, ip=ap.cidr(ap.client(1, ap.SERVICE)))
        self.addLink(client, s1)
        for n in range(1, servers + 1):
            vrrp = dict(vip=ap.cidr(ap.vip(1)), vrid=VRID,
                        priority=150 if n == 1 else 100 - n, use_vmac=use_vmac,
                        advert_int=advert_int)
            web = self.addHost("web%d" % n, cls=WebServer, ip=ap.cidr(ap.web(n)),
                               vrrp=vrrp, nginx=dict(deploy_from=deploy_from))
            self.addLink(web, s1)


topos = {"vrrp_pair": VRRPPairTopo}
