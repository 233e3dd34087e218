"""Reading what the recorders wrote: ARP packets (pcap, scapy) and ``ip monitor`` lines."""

from scapy.layers.l2 import ARP, Ether
from scapy.utils import wrpcap

from redlab.recorders import ADDR_LINE, NEIGH_LINE, ip_monitor_time, read_arp_pcap

WEB1, WEB2, CLIENT = "02:00:0a:00:00:0b", "02:00:0a:00:00:0c", "02:00:0a:00:00:c9"
VIP = "10.0.0.100"


def packet(t, eth_src, eth_dst, **arp):
    p = Ether(src=eth_src, dst=eth_dst) / ARP(**arp)
    p.time = t
    return p


def test_pcap_packets_requests_replies_and_gratuitous(tmp_path):
    path = tmp_path / "arp.pcap"
    wrpcap(str(path), [
        # client asks by broadcast, web1 answers
        packet(1.0, CLIENT, "ff:ff:ff:ff:ff:ff", op=1, hwsrc=CLIENT, psrc="10.0.0.201",
               pdst=VIP),
        packet(1.1, WEB1, CLIENT, op=2, hwsrc=WEB1, psrc=VIP, hwdst=CLIENT, pdst="10.0.0.201"),
        # keepalived / arping -U: a request with sender IP = target IP
        packet(2.0, WEB2, "ff:ff:ff:ff:ff:ff", op=1, hwsrc=WEB2, psrc=VIP, pdst=VIP),
        # arping -A: a reply broadcast to everybody
        packet(3.0, WEB2, "ff:ff:ff:ff:ff:ff", op=2, hwsrc=WEB2, psrc=VIP, pdst=VIP,
               hwdst="ff:ff:ff:ff:ff:ff"),
        # arping -U VIP without -S: announces web2's own address, not the VIP
        packet(4.0, WEB2, "ff:ff:ff:ff:ff:ff", op=1, hwsrc=WEB2, psrc="10.0.0.12", pdst=VIP)])
    packets = read_arp_pcap(path)
    assert [(p["op"], p["gratuitous"]) for p in packets] == [
        ("request", False), ("reply", False), ("request", True), ("reply", True),
        ("request", False)]
    assert packets[1]["sender_ip"] == VIP and packets[1]["sender_mac"] == WEB1
    assert packets[1]["dst"] == CLIENT and packets[0]["target_ip"] == VIP
    assert [p["t"] for p in read_arp_pcap(path, since=2.0, until=3.0)] == [2.0, 3.0]


def test_a_pcap_cut_short_keeps_the_whole_packets(tmp_path):
    path = tmp_path / "arp.pcap"
    wrpcap(str(path), [packet(1.0, WEB2, "ff:ff:ff:ff:ff:ff", op=1, hwsrc=WEB2, psrc=VIP,
                              pdst=VIP)] * 2)
    data = path.read_bytes()
    path.write_bytes(data[:-10])                  # tcpdump is writing the second one
    assert len(read_arp_pcap(path)) == 1
    path.write_bytes(data[:10])                   # not even the file header yet
    assert read_arp_pcap(path) == []
    assert read_arp_pcap(tmp_path / "none.pcap") == []


def test_ip_monitor_lines():
    m = NEIGH_LINE.match("[2026-11-28T10:00:00.250000]10.0.0.100 dev client1-eth0 lladdr "
                         "02:00:0a:00:00:0c REACHABLE")
    assert m and m.group("ip") == VIP and not m.group("deleted")
    m = NEIGH_LINE.match("[2026-11-28T10:00:01.000000]Deleted 10.0.0.100 dev client1-eth0 "
                         "lladdr 02:00:0a:00:00:0b STALE")
    assert m.group("deleted")
    m = ADDR_LINE.match("[2026-11-28T10:00:02.000000]Deleted 2: web1-eth0    inet 10.0.0.100/24 "
                        "scope global secondary web1-eth0")
    assert m and m.group("ip") == VIP and m.group("deleted")
    assert ip_monitor_time("2026-11-28T10:00:00.250000") % 1 == 0.25


def test_ip_monitor_lines_as_ip_prints_them():
    """Lines copied from ``ip -ts monitor`` in lab 04's run folder."""
    addr = ("[2026-11-28T08:36:17.689825] 3: web2-eth0    inet 10.0.0.100/24 scope global "
            "secondary web2-eth0")
    m = ADDR_LINE.match(addr)
    assert m and m.group("ip") == VIP and not m.group("deleted")
    assert ADDR_LINE.match("[2026-11-28T08:36:17.695460] Deleted " + addr.split("] ", 1)[1]) \
        .group("deleted")
    neigh = NEIGH_LINE.match("[2026-11-28T08:36:17.693345] 10.0.0.100 lladdr "
                             "02:00:0a:00:00:0c STALE ")
    assert neigh.group("ip") == VIP and WEB2 in neigh.group("rest")
