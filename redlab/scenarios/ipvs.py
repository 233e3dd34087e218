"""The same load-balanced service with the kernel's IPVS: keepalived + ipvsadm on the director.

    with IpvsService(load_service("service.yaml")) as lvs:
        lvs.get()                 # one HTTP request from client1 to the VIP
        print(lvs.ipvsadm())      # ipvsadm -Ln in the director

The topology, real servers, faults and requests are those of
:class:`redlab.scenarios.lb.LoadBalancedService`; only the director differs.  Here the
director is a Linux host: it holds the VIP on its interface, the kernel's IPVS forwards
(``lb_kind`` NAT or DR) and keepalived's checkers add and remove real servers.  The
switch is an ordinary learning switch.

Everything is on one LAN, so for NAT the real servers must send their replies back
through the director (otherwise the client gets an answer from the real server's own
address and resets it): each real server gets a host route to each client via the
director, and the director sends no ICMP redirects -- the LVS HOWTO's "LVS-NAT on one
network".  For DR the real servers hold the VIP on ``lo`` and never answer ARP for it
(:func:`redlab.lb.prepare_dr`).

Needs a kernel with ip_vs: without it, starting raises one sentence that says so and
leaves nothing behind.
"""

import re

from redlab.daemons.keepalived import KeepalivedLvs
from redlab.errors import RedlabError
from redlab.lb import load, prepare_dr
from redlab.net import Network
from redlab.scenarios.lb import http_get
from redlab.system import ipvs_missing_reason, kernel_has_ipvs, require_binary
from redlab.wait import startup, wait_until

_REAL = re.compile(r"^\s+->\s+(\d+\.\d+\.\d+\.\d+):(\d+)\s+(\w+)\s+(\d+)\s+(\d+)\s+(\d+)")


def parse_ipvsadm(text):
    """``ipvsadm -Ln`` -> ``{real server ip: dict(forward, weight, active, inactive)}``."""
    servers = {}
    for line in text.splitlines():
        m = _REAL.match(line)
        if m:
            servers[m.group(1)] = dict(port=int(m.group(2)), forward=m.group(3),
                                       weight=int(m.group(4)), active=int(m.group(5)),
                                       inactive=int(m.group(6)))
    return servers


class IpvsService:
    def __init__(self, service, name="ipvs", run_folder=None, topo=None):
        from topologies.service_lan import ServiceLanTopo
        self.service = load(service)
        self.topo = topo or ServiceLanTopo(servers=len(self.service.real_servers), dns=False)
        self.name, self.run_folder = name, run_folder
        self.network = None
        self.keepalived = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.network:
            self.network.__exit__(*exc)
        return False

    def start(self):
        # before anything is built: a kernel without IPVS leaves nothing half-started
        require_binary("ipvsadm", "the IPVS comparison")
        if not kernel_has_ipvs(load=True):
            raise RedlabError(ipvs_missing_reason())
        self.network = Network(self.topo, name=self.name, run_folder=self.run_folder)
        net = self.network.start()
        try:
            self._prepare(net)
            self.keepalived = net["director"].start_daemon(
                KeepalivedLvs(net["director"], self.service))
            n = len(self.service.real_servers)
            wait_until(lambda: (len(self.servers()) == n, self.ipvsadm()), startup(15),
                       "keepalived's first checks to put all %d real servers in IPVS" % n)
        except BaseException:
            net.stop()
            raise
        return self

    def _prepare(self, net):
        svc, director = self.service, net["director"]
        intf = director.defaultIntf().name
        director.cmd("ip addr add %s/%d dev %s" % (svc.vip, self._prefix(director), intf))
        director.cmd("arping -q -U -c 1 -S %s -i %s %s" % (svc.vip, intf, svc.vip))
        director.cmd("sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 "
                     "net.ipv4.conf.%s.send_redirects=0" % intf)
        if svc.lb_kind == "DR":
            prepare_dr(net, svc)
            return
        clients = [h for h in net.hosts if h.name.startswith("client")]
        for spec in svc.real_servers:
            real = self._host(spec.ip)
            for client in clients:
                real.cmd("ip route replace %s/32 via %s" % (client.IP(), director.IP()))

    @staticmethod
    def _prefix(host):
        return int(host.defaultIntf().prefixLen or 24)

    def _host(self, ip):
        return next(h for h in self.network.hosts if h.IP() == ip)

    def __getitem__(self, name):
        return self.network[name]

    @property
    def client(self):
        return self.network["client1"]

    def get(self, path="/", timeout=2, host=None):
        """One HTTP request to the VIP; returns (status, served_by)."""
        return http_get(host or self.client, self.service.vip, self.service.port, path, timeout)

    def ipvsadm(self):
        return self.network["director"].cmd("ipvsadm -Ln -t %s:%d" % (
            self.service.vip, self.service.port)).rstrip()

    def servers(self):
        """The real servers IPVS may choose now, by name (weight 0 = out, as inhibit_on_failure)."""
        names = {s.ip: s.name for s in self.service.real_servers}
        return {names.get(ip, ip): row for ip, row in parse_ipvsadm(self.ipvsadm()).items()
                if row["weight"] > 0}
