"""The address plan: the one place where addresses are decided.

Every topology, daemon template and test asks this module for an address; no IP or
MAC literal appears anywhere else in the code.

    service LAN 10.0.0.0/24   web servers .11-.19, VIPs .100-.109, DNS .53-.59,
                              director .2, router .1, clients on this LAN .201-
    client LAN  10.0.1.0/24   router .1, clients .101-
    spare LANs  10.0.2.0/24 ... for router labs

MACs are derived from the first IPv4 address of a host (``02:00:`` + the four octets),
so a MAC in a capture or an ARP table tells at once whose it is.
"""

import ipaddress
from dataclasses import dataclass

from redlab.errors import ConfigError


@dataclass(frozen=True)
class Lan:
    name: str
    cidr: str

    @property
    def network(self):
        return ipaddress.ip_network(self.cidr)

    @property
    def prefixlen(self):
        return self.network.prefixlen

    def host(self, number):
        """The address of host ``number`` on this LAN (``SERVICE.host(11)`` -> ``10.0.0.11``)."""
        if not 0 < number < self.network.num_addresses - 1:
            raise ConfigError("host number %d is outside %s (%s)" % (number, self.name, self.cidr))
        return str(self.network.network_address + number)

    def iface(self, number):
        """The address with its prefix, as Mininet's ``ip=`` wants it."""
        return "%s/%d" % (self.host(number), self.prefixlen)


SERVICE = Lan("service", "10.0.0.0/24")
CLIENTS = Lan("clients", "10.0.1.0/24")
SPARE = Lan("spare", "10.0.2.0/24")

ROUTER = 1
DIRECTOR = 2
WEB_BASE = 10       # webN -> .10+N
DNS_BASE = 52       # dnsN -> .52+N
VIP_BASE = 99       # VIP N -> .99+N
CLIENT_BASE = 100   # clientN on the client LAN -> .100+N
SERVICE_CLIENT_BASE = 200   # clientN on the service LAN -> .200+N


def _numbered(role, n, base, count, lan):
    if not 1 <= n <= count:
        raise ConfigError("%s number %r is outside the address plan (1-%d on the %s LAN); "
                          "see redlab/addressing.py" % (role, n, count, lan.name))
    return lan.host(base + n)


def web(n, lan=SERVICE):
    return _numbered("web server", n, WEB_BASE, 9, lan)


def vip(n=1, lan=SERVICE):
    return _numbered("VIP", n, VIP_BASE, 10, lan)


def dns(n=1, lan=SERVICE):
    return _numbered("DNS server", n, DNS_BASE, 7, lan)


def director(lan=SERVICE):
    return lan.host(DIRECTOR)


def router(lan=SERVICE):
    return lan.host(ROUTER)


def client(n, lan=CLIENTS):
    base = SERVICE_CLIENT_BASE if lan == SERVICE else CLIENT_BASE
    return _numbered("client", n, base, 254 - base, lan)


def mac_for(ip):
    """A locally administered MAC that spells the IPv4 address: 10.0.0.11 -> 02:00:0a:00:00:0b."""
    octets = ipaddress.ip_address(ip.split("/")[0]).packed
    return "02:00:" + ":".join("%02x" % b for b in octets)


def check_unique(assignments):
    """Refuse two interfaces with one address.

    assignments: iterable of ``(node, address_or_cidr)``.
    """
    owner = {}
    for node, address in assignments:
        if not address:
            continue
        ip = address.split("/")[0]
        if ip in owner and owner[ip] != node:
            raise ConfigError(
                "duplicate IP %s on %s and %s; give each host its own address "
                "(see redlab/addressing.py)" % (ip, owner[ip], node))
        owner[ip] = node


def cidr(ip, lan=SERVICE):
    """``10.0.0.11`` -> ``10.0.0.11/24`` (the prefix of ``lan``)."""
    return "%s/%d" % (ip, lan.prefixlen)
