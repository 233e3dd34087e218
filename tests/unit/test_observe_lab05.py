"""Lab 05's harness (redlab.scenarios.health_checks) read without a network: what ICMP said
during the detection matrix's faults, and which addresses a client used on its wire."""

from scapy.layers.inet import IP, TCP, ICMP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from redlab.scenarios import health_checks as hc

CLIENT, VIP, DIRECTOR, WEB1 = "10.0.0.201", "10.0.0.100", "10.0.0.2", "10.0.0.11"


def record(icmp):
    """A detection-matrix run record as the drill engine writes it (the parts read here)."""
    return {"observed": {"marks": {"crash": 1.0, "stopped": 10.0, "error500": 20.0,
                                   "hang": 30.0},
                         "undone": {"crash": 3.0, "stopped": 12.0, "error500": 22.0},
                         "end": 32.0},
            "samples": {"icmp": icmp}}


def test_answered_during_counts_the_window_only():
    samples = [{"t": t, "ok": ok} for t, ok in [(0.9, False), (1.0, True), (1.5, False),
                                                 (2.0, True)]]
    assert hc.answered_during(samples, 1.0, 2.0) == (1, 2)
    assert hc.answered_during(samples, 5.0, 6.0) == (0, 0)


def test_icmp_blind_spot_reads_the_three_service_faults():
    pings = [{"t": t / 10, "ok": True} for t in range(0, 330, 2)]
    pings += [{"t": 31.05, "ok": False}]                  # one lost while nginx hung
    blind = hc.icmp_blind_spot(record(pings))
    assert list(blind) == ["nginx stopped", "HTTP 500", "hang"]
    assert blind["nginx stopped"] == {"answered": 10, "sent": 10}
    # the hang was never undone: its window runs to the end of the run
    assert blind["hang"] == {"answered": 10, "sent": 11}


def test_icmp_text_says_what_was_measured():
    matrix = {"host crash": {"icmp": 0.71}, "link down": {"icmp": None}}
    text = hc.icmp_text(matrix, {"nginx stopped": {"answered": 9, "sent": 10}})
    assert "host crash after 0.71 s and the link down missed" in text
    assert "9 of 10 pings answered while nginx was stopped" in text


def test_peers_are_the_addresses_the_client_itself_used(tmp_path):
    """A client's wire through the load balancer: it talks to the VIP only; a flooded
    health check between the director and web1 (tcpdump is promiscuous) is not its own."""
    path = tmp_path / "tcp.pcap"
    wrpcap(str(path), [
        Ether() / IP(src=CLIENT, dst=VIP) / TCP(sport=40000, dport=80, flags="S"),
        Ether() / IP(src=VIP, dst=CLIENT) / TCP(sport=80, dport=40000, flags="SA"),
        Ether() / IP(src=DIRECTOR, dst=WEB1) / TCP(sport=41000, dport=80, flags="S"),
        Ether() / IP(src=CLIENT, dst=VIP) / ICMP(),
    ])
    packets = hc.read_ip_pcap(path)
    assert packets[:3] == [(CLIENT, VIP), (VIP, CLIENT), (DIRECTOR, WEB1)]
    assert hc.peers(packets, CLIENT) == ([VIP], [VIP])
    assert hc.peers(packets, WEB1) == ([], [DIRECTOR])


def test_virtual_server_text_names_who_holds_the_vip():
    vs = dict(vip_mac="02:fe:0a:00:00:64", server_macs=["02:00:0a:00:00:0b"],
              vip_holders=[], web1_saw_requests_from=[CLIENT])
    assert "no real server holds %s (it is on no interface)" % VIP in hc.virtual_server_text(
        vs, VIP)
    held = hc.virtual_server_text(dict(vs, vip_holders=["web1"]), VIP)
    assert "(held by web1)" in held
