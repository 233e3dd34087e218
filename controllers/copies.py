"""Copies of the packets that change a connection's IPVS state, sent by the switch.

IPVS counts a connection *active* from the client's ACK that completes the handshake
and *inactive* again from its first FIN or RST (:mod:`controllers.conntrack`).  In the
exact mode the load balancer picks each new connection from the counts of that moment;
reading them from a dump of the connection tracker costs about 20 us per tracked
connection (README, Benchmark), so under a flood of new connections -- thousands of
closing entries in the zone -- each SYN waited for a dump of 100 ms and more.

Instead the switch tells the controller of each transition as it happens
(:meth:`controllers.lb.LoadBalancer.count_transitions`): per real server i, a flow
matches the connection's first packet of the kind and

* commits the connection again with a ``ct_mark`` bit that says the transition was
  copied (:data:`controllers.ctdump.MARK_OPEN`, :data:`~controllers.ctdump.MARK_CLOSING`),
  so the next packets no longer match -- one copy per transition, or two when the
  client's ACK and its first data segment arrive in one batch of the datapath (the
  controller counts a transition once);
* writes a copy, cut to :data:`COPY_BYTES`, to the *counting port*: an internal port of
  the bridge (:class:`CopyPort`), read by the controller with a raw socket.  A copy says
  what happened in its tagged MAC address -- ``02:72:6c:KK:II:II``, kind KK, server II --
  in the destination for the client's packets and in the source for the server's,
  both put back before the packet goes on.

A copy costs the datapath one write and the controller one read, no OpenFlow message.
The copies and the SYNs reach the controller by two paths: before each pick the
controller reads every copy already written (:meth:`CopyPort.read_all`), and the switch
wrote a connection's copy before it forwarded the packets that follow it.  What the
copies cannot say -- an entry that the tracker expired -- still comes from dumps
(:meth:`controllers.lb.LoadBalancer.refill`).
"""

from __future__ import annotations

import errno
import socket
import struct
import subprocess
from typing import NamedTuple

from controllers.fastpkt import tcp_ports
from controllers.ovsctl import vsctl

__all__ = ["OPENED", "CLOSED", "CLOSED_BY_SERVER", "Copy", "tag", "parse", "CopyPort",
           "COPY_BYTES"]

OPENED, CLOSED, CLOSED_BY_SERVER = 1, 2, 3
KINDS = {OPENED: "opened", CLOSED: "closed", CLOSED_BY_SERVER: "closed"}
_PREFIX = bytes((0x02, 0x72, 0x6C))        # locally administered, unicast: "rl"
COPY_BYTES = 96          # Ethernet, IPv4 with options, the fixed TCP header
ETH_P_IP = 0x0800
SOL_PACKET, PACKET_STATISTICS = 263, 6


class Copy(NamedTuple):
    """One copied transition: ``kind`` (:data:`OPENED`, :data:`CLOSED`,
    :data:`CLOSED_BY_SERVER`), the real server's id, and the client's address and port."""

    kind: int
    server: int
    client_ip: str
    client_port: int


def tag(kind, server_id):
    """The MAC address that marks a copy of ``kind`` for server ``server_id``."""
    if kind not in KINDS or not 0 < server_id <= 0xFFFF:
        raise ValueError("no copy tag for kind %r, server %r" % (kind, server_id))
    return "02:72:6c:%02x:%02x:%02x" % (kind, server_id >> 8, server_id & 0xFF)


def parse(frame):
    """The :class:`Copy` a frame of the counting port carries, or None (anything else:
    a flooded broadcast, junk, a frame cut too short)."""
    if frame[0:3] == _PREFIX:
        mac, client_side = frame[0:6], True
    elif frame[6:9] == _PREFIX:
        mac, client_side = frame[6:12], False
    else:
        return None
    kind, server = mac[3], (mac[4] << 8) | mac[5]
    if kind not in KINDS or not server or (kind == CLOSED_BY_SERVER) == client_side:
        return None
    ports = tcp_ports(frame)
    if ports is None:
        return None
    if client_side:
        return Copy(kind, server, socket.inet_ntoa(frame[26:30]), ports[0])
    return Copy(kind, server, socket.inet_ntoa(frame[30:34]), ports[1])


class CopyPortError(RuntimeError):
    pass


class CopyPort:
    """The bridge's counting port and a raw socket on it.

    ``open(dpid)`` adds an internal port named ``<bridge>-lbc`` to the bridge of datapath
    ``dpid`` (it goes with the bridge: nothing else to remove), without IPv6 so that its
    kernel never sends on it, and binds a packet socket to it with a large receive
    buffer.  Raises :class:`CopyPortError` with the reason when it cannot.
    """

    RCVBUF = 16 << 20

    def __init__(self, name, ofport, sock):
        self.name, self.ofport, self.sock = name, ofport, sock

    @classmethod
    def open(cls, dpid):
        found = vsctl("--bare", "--columns=name", "find", "Bridge",
                       "datapath_id=%016x" % dpid)
        bridge = found.stdout.strip()
        if found.returncode != 0 or not bridge or "\n" in bridge:
            raise CopyPortError("no single bridge has datapath id %016x: %s"
                                % (dpid, found.stderr.strip() or bridge or "none"))
        name = "%s-lbc" % bridge[:11]
        added = vsctl("--may-exist", "add-port", bridge, name, "--", "set", "Interface",
                       name, "type=internal")
        if added.returncode != 0:
            raise CopyPortError("cannot add the counting port %s to %s: %s"
                                % (name, bridge, added.stderr.strip()))
        ofport = vsctl("get", "Interface", name, "ofport").stdout.strip()
        if not ofport.isdigit() or int(ofport) <= 0:
            raise CopyPortError("the counting port %s has no OpenFlow port number (%r)"
                                % (name, ofport))
        try:
            with open("/proc/sys/net/ipv6/conf/%s/disable_ipv6" % name, "w") as f:
                f.write("1")
        except OSError:
            pass            # no IPv6 in this kernel: nothing to silence
        subprocess.run(["ip", "link", "set", name, "up"], capture_output=True)
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, 33, cls.RCVBUF)   # SO_RCVBUFFORCE
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, cls.RCVBUF)
            sock.bind((name, ETH_P_IP))
        except OSError as exc:
            sock.close()
            raise CopyPortError("cannot read the counting port %s: %s" % (name, exc)) from None
        sock.setblocking(False)
        return cls(name, int(ofport), sock)

    def read_all(self, limit=100000):
        """Every copy waiting in the socket now, in the order written."""
        copies = []
        recv = self.sock.recv
        for _ in range(limit):
            try:
                frame = recv(COPY_BYTES)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    break
                if exc.errno == errno.ENETDOWN:     # the bridge is going: said once
                    break
                raise CopyPortError("cannot read the counting port %s: %s"
                                    % (self.name, exc)) from None
            copy = parse(frame)      # (what the port's own kernel sends carries no tag)
            if copy is not None:
                copies.append(copy)
        return copies

    def lost(self):
        """Copies the socket dropped since the last call (its buffer was full)."""
        raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        return struct.unpack("II", raw)[1]

    def close(self):
        self.sock.close()
