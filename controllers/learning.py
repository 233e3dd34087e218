"""Where is each MAC and each IP?  Pure logic of the learning switch.

A learning switch remembers the port behind each source MAC.  When a MAC shows up
behind *another* port -- a host moved, or keepalived's ``use_vmac`` virtual MAC went
with the VIP to the backup -- the flows that still point at the old port are wrong and
must go at once, not when they idle out.

ARP tells more: its sender fields bind an IP to a MAC.  A gratuitous ARP (sender IP ==
target IP) is how a new owner of a VIP announces itself; the table reports when an IP
is now answered by another MAC or from another port.
"""

from dataclasses import dataclass

NEW, SAME, MOVED = "new", "same", "moved"


@dataclass(frozen=True)
class Change:
    status: str             # new | same | moved
    old_port: object = None
    old_mac: object = None


def is_multicast(mac):
    return int(mac.split(":")[0], 16) & 1 == 1


def is_gratuitous(src_ip, dst_ip):
    return src_ip == dst_ip


class MacTable:
    def __init__(self):
        self._ports = {}   # (dpid, mac) -> port
        self._ips = {}     # (dpid, ip) -> (mac, port)

    def port_of(self, dpid, mac):
        return self._ports.get((dpid, mac))

    def learn(self, dpid, mac, port):
        key = (dpid, mac)
        old = self._ports.get(key)
        self._ports[key] = port
        if old is None:
            return Change(NEW)
        if old == port:
            return Change(SAME)
        return Change(MOVED, old_port=old)

    def learn_ip(self, dpid, ip, mac, port):
        """Bind ``ip`` to ``mac`` behind ``port`` (from an ARP sender field)."""
        if ip in ("0.0.0.0", None):
            return Change(SAME)
        key = (dpid, ip)
        old = self._ips.get(key)
        self._ips[key] = (mac, port)
        if old is None:
            return Change(NEW)
        if old == (mac, port):
            return Change(SAME)
        return Change(MOVED, old_port=old[1], old_mac=old[0])

    def forget_datapath(self, dpid):
        for table in (self._ports, self._ips):
            for key in [k for k in table if k[0] == dpid]:
                del table[key]

    def macs(self, dpid):
        return {mac: port for (d, mac), port in self._ports.items() if d == dpid}
