"""Just enough parsing of a TCP/IPv4 frame for the load balancer's hot path.

``os_ken.lib.packet`` builds an object per protocol layer; for the few fields the load
balancer needs on every new connection (addresses, ports, flags) a slice of the raw
frame is several times cheaper.  Anything that is not TCP over IPv4 (ARP, ICMP, VLAN
tags) returns None and takes the general path.

Junk is None too, so that it can never look like a connection's segment: an IPv4 header
shorter than 20 bytes, a TCP header cut short, and a fragment other than the first (its
bytes where the ports would be are payload; OVS does not parse them as TCP either).
"""

import socket
import struct
from collections import namedtuple

TcpFrame = namedtuple("TcpFrame", "eth_src eth_dst ip_src ip_dst src_port dst_port flags")

_ETH_IPV4 = b"\x08\x00"
_TCP = 6
_FRAG_OFFSET = 0x1FFF


def mac_text(raw):
    return raw.hex(":")


def _tcp_at(data):
    """Where the TCP header of a TCP/IPv4 Ethernet frame starts, else None."""
    if len(data) < 34 or data[12:14] != _ETH_IPV4 or data[23] != _TCP:
        return None
    ihl = data[14] & 0x0F
    if ihl < 5 or struct.unpack_from("!H", data, 20)[0] & _FRAG_OFFSET:
        return None
    tcp_at = 14 + ihl * 4
    if len(data) < tcp_at + 20:         # the fixed TCP header, flags at byte 13
        return None
    return tcp_at


def tcp_ports(data):
    """``(source port, destination port)`` of a TCP/IPv4 Ethernet frame, else None."""
    tcp_at = _tcp_at(data)
    return None if tcp_at is None else struct.unpack_from("!HH", data, tcp_at)


def parse_tcp(data):
    """A :class:`TcpFrame` for a TCP/IPv4 Ethernet frame, else None."""
    tcp_at = _tcp_at(data)
    if tcp_at is None:
        return None
    src_port, dst_port = struct.unpack_from("!HH", data, tcp_at)
    return TcpFrame(mac_text(data[6:12]), mac_text(data[0:6]), socket.inet_ntoa(data[26:30]),
                    socket.inet_ntoa(data[30:34]), src_port, dst_port, data[tcp_at + 13])
