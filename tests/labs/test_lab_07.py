"""Lab 07 (IP takeover and ARP): graded on the reference, on a move without GARP and on
a script that works on web1 only.

Three walk-throughs (about 20 s each): the reference passes every check, and its output
shows the client's ARP entry going REACHABLE -> STALE -> DELAY -> PROBE while the VIP
sits on web2 unannounced; broken/no-garp (``ip addr add`` only) takes the VIP but fails
"sends gratuitous ARP" with the time the client kept the old MAC; broken/hard-coded
names web1-eth0 and the VIP itself (reading $1/$2 only where it never runs) and fails
"script reads its arguments" on the bench, where it gets another interface and VIP.
"""

import re

from redlab import addressing as ap
from redlab import labs

LAB = labs.find("07")
CHECKS = {"script reads its arguments", "takes the VIP", "sends gratuitous ARP",
          "time without GARP is longer"}


def failing(results):
    return "\n".join(r.line() for r in results.values() if not r.passed)


def minimum_stale(timers):
    """A floor for how long a client keeps the old MAC: DELAY, then every unicast PROBE.

    (REACHABLE adds 1/2 to 3/2 of base_reachable_time, counted from the last confirmation,
    which may come a little before the move.)"""
    return (timers["delay_first_probe_time"]
            + timers["ucast_solicit"] * timers["retrans_time_ms"] / 1000.0)


def test_reference_passes_and_the_walkthrough_shows_the_stale_arp_cache(grade, capsys):
    results = grade(LAB, LAB.reference)
    out = capsys.readouterr().out
    assert set(results) == CHECKS, failing(results)
    assert all(r.passed for r in results.values()), failing(results)

    m = results["time without GARP is longer"].measured
    by_hand = m["by_hand_without_garp"]          # what the client went through
    bound = m["stale_bound_with_probe"] + 0.25       # give or take the kernel's timer ticks
    low = minimum_stale(LAB.module.DATA["neigh_timers"])
    # without GARP: the whole neighbour state machine, then a broadcast finds web2
    assert low <= m["time_without_garp"] <= bound, m
    assert by_hand["states"][:1] == ["REACHABLE"] and by_hand["states"][-1] == "REACHABLE"
    # (STALE lasts until the client's next packet: the 20 ms poll may miss it)
    assert re.search(r"REACHABLE (STALE )?DELAY PROBE", " ".join(by_hand["states"])), by_hand
    assert by_hand["unicast_probes_to_old_mac"] == LAB.module.DATA["neigh_timers"]["ucast_solicit"]
    assert by_hand["broadcast_requests"] >= 1 and by_hand["garps_seen"] == 0
    assert by_hand["packets_to_old_mac"] > 0      # the switch delivers by MAC, to web1
    assert [e["gratuitous"] for e in by_hand["controller"]] == [False]
    assert by_hand["controller"][0]["new_mac"] == ap.mac_for(ap.web(2))
    # with move_vip.sh: the gratuitous ARP moves the entry at once
    moved = results["sends gratuitous ARP"].measured["move_vip_sh"]
    assert moved["garps_seen"] >= 1 and moved["arp_updated_after_script"] <= 1.0, moved
    assert moved["time_without_service"] < 1.0 < m["time_without_garp"]
    assert [e["gratuitous"] for e in moved["controller"]] == [True]
    # keepalived: its own GARP is as fast; with its GARPs dropped it is as slow as by hand
    kept, dropped = m["keepalived_with_garp"], m["keepalived_without_garp"]
    assert kept["garps_seen"] >= 1 and kept["time_without_service"] < 2.0, kept
    assert [e["gratuitous"] for e in kept["controller"]] == [True]
    assert dropped["garps_seen"] == 0 and low <= dropped["time_without_service"] <= bound
    # keepalived refuses to send no GARP; Keepalived(garp=False) drops the ones it sends
    assert not m["keepalived_garp_false"]["dry_run_ok"]
    assert "garp_master_repeat must be greater than 0" in m["keepalived_garp_false"]["message"]
    assert dropped["garps_dropped"] >= 1, dropped

    # run with other arguments on the bench, it moves and announces what it is given
    args = results["script reads its arguments"]
    bench = args.measured["arguments_bench"]
    assert bench["vip_cidr"] in bench["addresses"][bench["given"]], bench
    assert bench["garps_for_vip"] >= 1 and bench["exit_code"] == 0, bench
    assert all(not ips for port, ips in bench["announced"].items() if port != bench["given"])
    assert "and announced it there" in args.reason

    # what the student reads
    assert re.search(r"REACHABLE web1 -> (\+[\d.]+ STALE web1 -> )?\+[\d.]+ DELAY web1 -> "
                     r"\+[\d.]+ PROBE web1 ->", out), out
    assert "GARP: %s is at web1" % ap.vip(1) in out
    assert "dump-flows s1" in out and "keepalived -t" in out
    row = re.search(r"by hand, no GARP\s+([\d.]+) s \((\d+) lost\)", out)
    assert row and abs(float(row.group(1)) - m["time_without_garp"]) < 0.006, out[-2000:]


def test_one_name_per_check(tmp_path):
    """Names reported = names grade() gives a check it could not run (no move_vip.sh: the
    walk-through stops before any network)."""
    results = LAB.grade(tmp_path)
    assert {r.name for r in results} == CHECKS | {"walk-through"}
    assert all(r.scored for r in results)


def test_a_script_that_names_web1_and_the_vip_itself_fails_on_the_bench(grade):
    """Issue 8: the old static check was a regex over the script's text; this script
    fooled it ($1 and $2 on a branch that never runs, web1-eth0 and the VIP spelled so
    that no search finds them) and, on web1, passed everything else too."""
    results = grade(LAB, LAB.folder / "broken" / "hard-coded")
    assert set(results) == CHECKS, failing(results)
    args = results["script reads its arguments"]
    assert not args.passed
    bench = args.measured["arguments_bench"]
    given, vip_cidr = bench["given"], bench["vip_cidr"]
    assert (given, vip_cidr) == ("bench-eth1", "198.51.100.77/25")     # not the lab's
    assert "run as `bash move_vip.sh %s %s` on a bench host" % (given, vip_cidr) in args.reason
    assert "did not put %s on %s" % (vip_cidr, given) in args.reason
    assert 'Cannot find device "web1-eth0"' in args.reason, args.reason     # what it did
    assert "take the interface from $1 and the VIP/prefix from $2" in args.reason
    # what the script sent on the bench: nothing for the VIP it was given
    assert bench["garps_for_vip"] == 0 and vip_cidr not in bench["addresses"][given], bench
    # in the lab, on web1, it does move and announce the VIP
    for name in CHECKS - {"script reads its arguments"}:
        assert results[name].passed, results[name].line()
    assert labs.score(list(results.values())) == (3, 4)


def test_move_without_arping_fails_sends_gratuitous_arp_with_the_stale_time(grade):
    results = grade(LAB, LAB.folder / "broken" / "no-garp")
    assert set(results) == CHECKS, failing(results)
    args = results["script reads its arguments"]
    assert args.passed, args.reason         # it announces nothing anywhere: the GARP check says so
    assert "(it announces nothing: see 'sends gratuitous ARP')" in args.reason
    assert results["takes the VIP"].passed, results["takes the VIP"].reason
    garp = results["sends gratuitous ARP"]
    assert not garp.passed
    stale = re.search(r"client1 kept web2's MAC for ([\d.]+) s after move_vip.sh", garp.reason)
    assert stale, garp.reason
    assert float(stale.group(1)) >= minimum_stale(LAB.module.DATA["neigh_timers"]), garp.reason
    assert "no gratuitous ARP" in garp.reason and "arping -U" in garp.reason
    assert re.search(r"REACHABLE -> (STALE -> )?DELAY -> PROBE", garp.reason), garp.reason
    assert not results["time without GARP is longer"].passed
