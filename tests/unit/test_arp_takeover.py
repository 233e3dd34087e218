"""redlab.scenarios.arp_takeover's pure parts, without a network: the bound the neighbour
timers put on a moved VIP's outage, what one move cost the client, the closing table and
the bench's topology.  (The network parts run in tests/labs/test_lab_07.py.)"""

import re

from redlab import labs
from redlab.probe import Sample
from redlab.recorders import BROADCAST
from redlab.scenarios.arp_takeover import (BenchTopo, ended, measure_move, served_streak,
                                           stale_bound, table)

LINUX_DEFAULTS = dict(base_reachable_time_ms=30000, delay_first_probe_time=5,
                      retrans_time_ms=1000, ucast_solicit=3)
VIP, CLIENT = "10.0.0.100", "02:00:0a:00:00:c9"
WEB1, WEB2 = "02:00:0a:00:00:0b", "02:00:0a:00:00:0c"


def test_the_bound_follows_the_neighbour_state_machine():
    """1.5 x REACHABLE + DELAY + the unicast PROBEs: Linux's defaults allow 53 s."""
    assert stale_bound(LINUX_DEFAULTS) == 45 + 5 + 3
    assert stale_bound(dict(LINUX_DEFAULTS, ucast_solicit=0)) == 50


def test_the_guides_quote_the_bound_of_lab_yaml():
    """Step 0 of both guides: 1.5 + 1 + 1.5 = 4 s, 4.7 s with the probe's waits."""
    lab = labs.find("07")
    data = lab.module.DATA
    bound = stale_bound(data["neigh_timers"])
    with_probe = bound + 2 * (data["probe"]["timeout"] + data["probe"]["interval"])
    assert (bound, round(with_probe, 2)) == (4.0, 4.7)
    for guide in ("guide.en.md", "guide.ja.md"):
        text = (lab.folder / guide).read_text()
        assert "1.5 + 1 + 1.5 = **4" in text and "4.7" in text, guide
        for name, value in data["neigh_timers"].items():
            assert re.search(r"\| `%s` \| %s \|" % (name, value), text), (guide, name)


def sample(seq, t, server):
    return Sample(seq, t, t + 0.01, server is not None, 200 if server else None, server,
                  None if server else "TimeoutError: timed out")


def arp(t, src, dst, op, sender_ip, sender_mac, target_ip):
    return dict(t=t, src=src, dst=dst, op=op, sender_ip=sender_ip, sender_mac=sender_mac,
                target_ip=target_ip, target_mac=None,
                gratuitous=sender_ip == target_ip or (op == "reply" and dst == BROADCAST))


def test_a_move_without_garp_costs_the_unicast_probes_then_a_broadcast():
    t0 = 100.0
    samples = ([sample(0, 99.9, "web1")] + [sample(n, t0 + 0.3 * n, None) for n in range(1, 11)]
               + [sample(11, t0 + 3.4, "web2"), sample(12, t0 + 3.5, "web2")])
    transitions = [(t0 + 0.02, "REACHABLE", WEB1), (t0 + 1.7, "PROBE", WEB1),
                   (t0 + 3.3, "FAILED", None), (t0 + 3.35, "REACHABLE", WEB2)]
    packets = [arp(t0 + 1.7 + 0.5 * n, CLIENT, WEB1, "request", "10.0.0.201", CLIENT, VIP)
               for n in range(3)]
    packets += [arp(t0 + 3.3, CLIENT, BROADCAST, "request", "10.0.0.201", CLIENT, VIP),
                arp(t0 + 3.3, WEB2, CLIENT, "reply", VIP, WEB2, "10.0.0.201")]
    m = measure_move(samples, t0, transitions, packets, VIP, CLIENT, WEB1, WEB2, True)
    assert m == dict(recovered=True, time_without_service=3.4, requests_lost=10,
                     arp_updated_after=3.35, states=["REACHABLE", "PROBE", "FAILED", "REACHABLE"],
                     unicast_probes_to_old_mac=3, broadcast_requests=1, garps_seen=0)


def test_a_move_with_garp_counts_the_new_holders_gratuitous_arps_only():
    t0 = 100.0
    samples = [sample(1, t0 + 0.05, None), sample(2, t0 + 0.4, "web1")]
    garp = arp(t0 + 0.3, WEB1, BROADCAST, "request", VIP, WEB1, VIP)
    stray = arp(t0 + 0.3, WEB2, BROADCAST, "request", VIP, WEB2, VIP)
    m = measure_move(samples, t0, [(t0 + 0.31, "STALE", WEB1)], [garp, garp, stray], VIP,
                     CLIENT, WEB2, WEB1, True)
    assert (m["garps_seen"], m["arp_updated_after"], m["requests_lost"]) == (2, 0.31, 1)


def test_a_move_that_never_recovers_has_no_time():
    m = measure_move([sample(1, 100.1, None)], 100.0, [(100.0, "REACHABLE", WEB1)], [], VIP,
                     CLIENT, WEB1, WEB2, False)
    assert m["time_without_service"] is None and m["arp_updated_after"] is None


def test_a_streak_counts_the_answers_from_one_server_at_the_end():
    samples = [sample(1, 1, "web2")] + [sample(n, n, "web1") for n in (2, 3, 4)]
    assert served_streak(samples, 0, "web1") == 3
    assert served_streak(samples, 0, "web2") == 0
    assert served_streak(samples + [sample(5, 5, None)], 0, "web1") == 0
    assert served_streak(samples, 3.5, "web1") == 1


def test_the_table_has_one_row_per_move():
    lines = []
    table(lines.append, [("by hand, no GARP", dict(recovered=True, time_without_service=3.33,
                                                   requests_lost=11, arp_updated_after=3.35,
                                                   garps_seen=0)),
                         ("move_vip.sh", dict(recovered=False, time_without_service=None,
                                              requests_lost=28, arp_updated_after=None,
                                              garps_seen=0))])
    assert re.match(r"\s+move\s+no answer for\s+ARP entry changed\s+GARPs seen$", lines[0])
    assert re.match(r"\s+by hand, no GARP\s+3\.33 s \(11 lost\)\s+\+3\.35 s\s+0$", lines[1])
    assert re.match(r"\s+move_vip\.sh\s+not recovered\s+never\s+0$", lines[2])


def test_the_bench_has_one_link_per_port_with_the_port_address_on_the_bench_side():
    topo = BenchTopo(ports=("203.0.113.10/24", "198.51.100.10/25"))
    assert sorted(topo.hosts()) == ["bench", "lan"] and topo.switches() == []
    links = topo.links(withInfo=True)
    assert [info["params1"]["ip"] for _a, _b, info in links] == ["203.0.113.10/24",
                                                                 "198.51.100.10/25"]


def test_how_a_script_ended_reads_as_words():
    """An exit code with the output's last line; a limit that ended it says so itself."""
    assert ended(0, "") == "code 0"
    assert ended(1, 'moving\nCannot find device "web1-eth0"') == 'code 1: Cannot find device "web1-eth0"'
    assert ended("stopped after its 10 s limit", "") == "stopped after its 10 s limit"
