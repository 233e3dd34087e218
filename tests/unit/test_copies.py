"""The switch's copies of each connection's transitions (controllers.copies), read from
frames built with scapy as the switch writes them."""

import pytest

from controllers import copies
from controllers.copies import CLOSED, CLOSED_BY_SERVER, OPENED, Copy

scapy = pytest.importorskip("scapy.all")

CLIENT_MAC, VMAC = "02:00:0a:00:00:c9", "02:fe:0a:00:00:64"


def frame(src, dst, ip_src, ip_dst, sport, dport, flags, payload=b""):
    return bytes(scapy.Ether(src=src, dst=dst) / scapy.IP(src=ip_src, dst=ip_dst)
                 / scapy.TCP(sport=sport, dport=dport, flags=flags) / payload)


def test_a_copy_of_the_clients_packet_names_the_client_from_its_source():
    data = frame(CLIENT_MAC, copies.tag(OPENED, 2), "10.0.0.201", "10.0.0.100", 40000, 80, "A")
    assert copies.parse(data) == Copy(OPENED, 2, "10.0.0.201", 40000)
    fin = frame(CLIENT_MAC, copies.tag(CLOSED, 258), "10.0.0.201", "10.0.0.100", 40001, 80,
                "FA", b"x" * 40)
    assert copies.parse(fin[:copies.COPY_BYTES]) == Copy(CLOSED, 258, "10.0.0.201", 40001)


def test_a_copy_of_the_servers_packet_names_the_client_from_its_destination():
    # NAT: the switch has already rewritten the reply's source to the VIP
    data = frame(copies.tag(CLOSED_BY_SERVER, 3), CLIENT_MAC, "10.0.0.100", "10.0.0.201", 80,
                 40002, "FA")
    assert copies.parse(data) == Copy(CLOSED_BY_SERVER, 3, "10.0.0.201", 40002)


@pytest.mark.parametrize("data", [
    # a flooded broadcast, an untagged segment, an ARP request
    frame(CLIENT_MAC, "ff:ff:ff:ff:ff:ff", "10.0.0.201", "10.0.0.100", 1, 80, "S"),
    frame(CLIENT_MAC, VMAC, "10.0.0.201", "10.0.0.100", 1, 80, "A"),
    bytes(scapy.Ether(dst=copies.tag(OPENED, 1)) / scapy.ARP()),
    # a tag on the wrong side for its kind, server 0, an unknown kind
    frame(copies.tag(OPENED, 1), CLIENT_MAC, "10.0.0.100", "10.0.0.201", 80, 1, "A"),
    frame(CLIENT_MAC, copies.tag(CLOSED_BY_SERVER, 1), "10.0.0.201", "10.0.0.100", 1, 80, "F"),
    frame(CLIENT_MAC, "02:72:6c:01:00:00", "10.0.0.201", "10.0.0.100", 1, 80, "A"),
    frame(CLIENT_MAC, "02:72:6c:07:00:01", "10.0.0.201", "10.0.0.100", 1, 80, "A"),
    # cut inside the TCP header
    frame(CLIENT_MAC, copies.tag(OPENED, 1), "10.0.0.201", "10.0.0.100", 1, 80, "A")[:40],
], ids=["broadcast", "untagged", "arp", "wrong-side", "wrong-side-server", "server-0",
        "kind-7", "cut"])
def test_anything_else_on_the_port_is_no_copy(data):
    assert copies.parse(data) is None


@pytest.mark.parametrize("kind, server", [(0, 1), (OPENED, 0), (OPENED, 0x10000)])
def test_a_tag_exists_only_for_a_kind_and_a_server_id(kind, server):
    with pytest.raises(ValueError):
        copies.tag(kind, server)
