"""The hot-path parser agrees with scapy on frames scapy builds."""

import pytest
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.l2 import ARP, Ether

from controllers.fastpkt import parse_tcp


@pytest.mark.parametrize("flags", ["S", "SA", "A", "FA", "R", "PA"])
def test_tcp_fields_match_scapy(flags):
    frame = Ether(src="02:00:0a:00:00:c9", dst="02:fe:0a:00:00:64") / \
        IP(src="10.0.0.201", dst="10.0.0.100") / TCP(sport=40000, dport=80, flags=flags)
    got = parse_tcp(bytes(frame))
    assert got.eth_src == "02:00:0a:00:00:c9" and got.eth_dst == "02:fe:0a:00:00:64"
    assert (got.ip_src, got.ip_dst) == ("10.0.0.201", "10.0.0.100")
    assert (got.src_port, got.dst_port) == (40000, 80)
    assert got.flags == int(frame[TCP].flags)


def test_ip_options_move_the_tcp_header():
    frame = Ether() / IP(src="10.0.0.1", dst="10.0.0.2", options=b"\x01\x01\x01\x00") / \
        TCP(sport=1234, dport=80, flags="S")
    assert bytes(frame)[14] & 0x0F == 6
    got = parse_tcp(bytes(frame))
    assert (got.src_port, got.dst_port, got.flags) == (1234, 80, 0x02)


@pytest.mark.parametrize("frame", [
    Ether() / ARP(pdst="10.0.0.100"),
    Ether() / IP(dst="10.0.0.100") / ICMP(),
    Ether() / IP(dst="10.0.0.100", proto=6),           # claims TCP but is truncated
    Ether() / IP(dst="10.0.0.100", proto=6) / bytes(TCP(dport=80, flags="S"))[:19],
    Ether() / IP(dst="10.0.0.100", proto=6, frag=3) / bytes(TCP(dport=80, flags="S")),
    Ether() / IP(dst="10.0.0.100", ihl=4) / TCP(dport=80, flags="S"),
])
def test_anything_else_is_none(frame):
    assert parse_tcp(bytes(frame)) is None


def test_a_first_fragment_still_has_its_tcp_header():
    frame = Ether() / IP(src="10.0.0.1", dst="10.0.0.2", flags="MF") / \
        TCP(sport=1234, dport=80, flags="S")
    got = parse_tcp(bytes(frame))
    assert (got.src_port, got.dst_port, got.flags) == (1234, 80, 0x02)
