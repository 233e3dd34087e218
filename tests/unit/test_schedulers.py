"""Hand-worked sequences for controllers.schedulers, derived from the kernel sources.

Every expected value below was worked out by hand from net/netfilter/ipvs/ip_vs_*.c.
The hash bucket numbers (e.g. 10.0.1.5 -> sh bucket 119) were computed with a C copy of
ip_vs_sh_hashkey()/ip_vs_dh_hashkey() and hash_32() (GOLDEN_RATIO_32 = 0x61C88647).
mh's offsets, skips and slots (e.g. 10.0.0.10:80 -> offset 159, skip 39 in 251 slots)
were computed with a C copy of lib/siphash.c's hsiphash() and ip_vs_mh.c's
ip_vs_mh_hashkey()/_permutate()/_populate()/_get_fallback(); that copy reproduces the
kernel's own hsiphash test vectors (lib/siphash_kunit.c), and the Python table matched
it slot for slot on 150 random services (64- and 32-bit, 251/509/4093 slots, weights
up to 1000, quiesced servers, fallback, mh-port).
"""

import collections
import random

import pytest

from controllers.schedulers import ALGORITHMS, RealServer, get_random_u32_below, \
    halfsiphash, hsiphash, make_scheduler, mh_hashkey, siphash


def srv(name, weight=1, active=0, inactive=0, overloaded=False, port=80):
    # web servers get distinct addresses derived from their one-letter name
    return RealServer(name=name, ip=f"10.0.0.{10 + ord(name[0]) - ord('A')}", port=port,
                      weight=weight, active_conns=active, inactive_conns=inactive,
                      overloaded=overloaded)


def name_of(server):
    return None if server is None else server.name


def picks(sched, servers, count, **kw):
    kw.setdefault("client_ip", "10.0.1.5")
    kw.setdefault("dest_ip", "10.0.0.100")
    kw.setdefault("now", 0.0)
    return [name_of(sched.pick(servers, **kw)) for _ in range(count)]


def pick(sched, servers, **kw):
    return picks(sched, servers, 1, **kw)[0]


# --- factory and RealServer ------------------------------------------------------------


def test_algorithms_are_the_fourteen_in_order():
    # the ten classic ones first (lab 06 and old service files index them), then Linux 6.x's
    assert ALGORITHMS == ("rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "dh", "lblc",
                          "lblcr", "fo", "ovf", "mh", "twos")


@pytest.mark.parametrize("name", ALGORITHMS)
def test_make_scheduler_builds_each_algorithm(name):
    assert make_scheduler(name).name == name


def test_unknown_algorithm_error_lists_all_fourteen_names():
    with pytest.raises(ValueError) as info:
        make_scheduler("maglev")
    message = str(info.value)
    assert "'maglev'" in message
    assert "rr, wrr, lc, wlc, sed, nq, sh, dh, lblc, lblcr, fo, ovf, mh, twos" in message


def test_unknown_option_is_refused():
    with pytest.raises(TypeError):
        make_scheduler("rr", fallback=True)


def test_negative_weight_is_refused_at_construction():
    with pytest.raises(ValueError) as info:
        RealServer(name="web1", ip="10.0.0.11", port=80, weight=-1)
    assert str(info.value) == "weight must be >= 0, got -1 for web1"


def test_negative_weight_is_refused_on_assignment():
    server = RealServer(name="web2", ip="10.0.0.12", port=80, weight=0)
    assert server.weight == 0
    with pytest.raises(ValueError, match="weight must be >= 0, got -5 for web2"):
        server.weight = -5
    assert server.weight == 0


def test_realserver_defaults():
    server = RealServer(name="web1", ip="10.0.0.11", port=80, weight=3)
    assert (server.active_conns, server.inactive_conns, server.overloaded) == (0, 0, False)


def test_duplicate_ip_port_in_one_service_is_refused():
    a = RealServer(name="a", ip="10.0.0.11", port=80)
    b = RealServer(name="b", ip="10.0.0.11", port=80)
    with pytest.raises(ValueError, match="duplicate"):
        make_scheduler("rr").pick([a, b], now=0)


# --- rr ----------------------------------------------------------------------------------


def test_rr_order_and_wrap():
    servers = [srv("A"), srv("B"), srv("C")]
    assert picks(make_scheduler("rr"), servers, 7) == ["A", "B", "C", "A", "B", "C", "A"]


def test_rr_skips_weight_zero_and_overloaded_and_resumes():
    a, b, c = srv("A"), srv("B", weight=0), srv("C", overloaded=True)
    sched = make_scheduler("rr")
    assert picks(sched, [a, b, c], 3) == ["A", "A", "A"]
    c.overloaded = False
    assert picks(sched, [a, b, c], 3) == ["C", "A", "C"]


def test_rr_added_server_does_not_reset_position():
    a, b, c, d = srv("A"), srv("B"), srv("C"), srv("D")
    sched = make_scheduler("rr")
    assert picks(sched, [a, b, c], 2) == ["A", "B"]
    # rr has no add_dest hook: the pointer stays on B
    assert picks(sched, [a, b, c, d], 3) == ["C", "D", "A"]


def test_rr_weight_change_does_not_reset_position():
    a, b, c = srv("A"), srv("B"), srv("C")
    sched = make_scheduler("rr")
    assert picks(sched, [a, b, c], 2) == ["A", "B"]
    a.weight = 5  # rr has no upd_dest hook
    assert picks(sched, [a, b, c], 2) == ["C", "A"]


def test_rr_deleting_current_server_continues_with_its_successor():
    a, b, c = srv("A"), srv("B"), srv("C")
    sched = make_scheduler("rr")
    assert picks(sched, [a, b, c], 2) == ["A", "B"]
    # ip_vs_rr_del_dest: pointer moves back to A, so C is next
    assert picks(sched, [a, c], 3) == ["C", "A", "C"]


def test_rr_deleting_first_server_when_current():
    a, b, c = srv("A"), srv("B"), srv("C")
    sched = make_scheduler("rr")
    assert picks(sched, [a, b, c], 1) == ["A"]
    # pointer moves back to the list head: B (the new first) is next, not C
    assert picks(sched, [b, c], 2) == ["B", "C"]


def test_rr_reset_starts_from_head_again():
    servers = [srv("A"), srv("B"), srv("C")]
    sched = make_scheduler("rr")
    assert picks(sched, servers, 2) == ["A", "B"]
    sched.reset()
    assert picks(sched, servers, 1) == ["A"]


# --- wrr ---------------------------------------------------------------------------------


def test_wrr_432_full_cycles():
    servers = [srv("A", 4), srv("B", 3), srv("C", 2)]
    cycle = ["A", "A", "B", "A", "B", "C", "A", "B", "C"]
    assert picks(make_scheduler("wrr"), servers, 27) == cycle * 3


def test_wrr_gcd_step():
    # di = gcd(4, 2) = 2, mw = 4 - (2 - 1) = 3: passes at cw = 3 then cw = 1
    servers = [srv("A", 4), srv("B", 2)]
    assert picks(make_scheduler("wrr"), servers, 6) == ["A", "A", "B", "A", "A", "B"]


def test_wrr_weight_zero_never_chosen():
    servers = [srv("A", 2), srv("B", 0), srv("C", 1)]
    assert picks(make_scheduler("wrr"), servers, 6) == ["A", "A", "C", "A", "A", "C"]


def test_wrr_skips_overloaded_server():
    servers = [srv("A", 4, overloaded=True), srv("B", 3), srv("C", 2)]
    assert picks(make_scheduler("wrr"), servers, 10) == ["B", "B", "C", "B", "C"] * 2


def test_wrr_nobody_available():
    sched = make_scheduler("wrr")
    assert picks(sched, [srv("A", 0), srv("B", 0)], 2) == [None, None]
    overloaded = [srv("A", 2, overloaded=True), srv("B", 1, overloaded=True)]
    sched = make_scheduler("wrr")
    assert picks(sched, overloaded, 2) == [None, None]
    overloaded[1].overloaded = False
    assert picks(sched, overloaded, 2) == ["B", "B"]


def test_wrr_restarts_from_head_when_a_server_is_added():
    a, b, c, d = srv("A"), srv("B"), srv("C"), srv("D")
    sched = make_scheduler("wrr")
    assert picks(sched, [a, b, c], 2) == ["A", "B"]
    # ip_vs_wrr_dest_changed resets mark->cl to the list head
    assert picks(sched, [a, b, c, d], 4) == ["A", "B", "C", "D"]


def test_wrr_without_change_does_not_restart():
    a, b, c = srv("A"), srv("B"), srv("C")
    sched = make_scheduler("wrr")
    assert picks(sched, [a, b, c], 2) == ["A", "B"]
    assert picks(sched, [a, b, c], 1) == ["C"]


def test_wrr_weight_change_restarts_and_keeps_cw():
    a, b, c = srv("A"), srv("B"), srv("C")
    sched = make_scheduler("wrr")
    assert picks(sched, [a, b, c], 2) == ["A", "B"]
    c.weight = 3  # di = 1, mw = 3, cw stays 1, cl = head
    assert picks(sched, [a, b, c], 10) == ["A", "B", "C", "C", "C",
                                           "A", "B", "C", "C", "C"]


# --- lc / wlc / sed / nq -----------------------------------------------------------------


def test_lc_tie_first_in_list_wins():
    assert pick(make_scheduler("lc"), [srv("A"), srv("B")]) == "A"
    assert pick(make_scheduler("lc"), [srv("B"), srv("A")]) == "B"


def test_lc_counts_active_as_256_inactive():
    # A: 0*256 + 300 = 300, B: 1*256 + 0 = 256
    servers = [srv("A", inactive=300), srv("B", active=1)]
    assert pick(make_scheduler("lc"), servers) == "B"
    servers[0].inactive_conns = 255
    assert pick(make_scheduler("lc"), servers) == "A"


def test_lc_ignores_weight_except_zero():
    servers = [srv("A", weight=1, active=1), srv("B", weight=100, active=2),
               srv("C", weight=0)]
    assert pick(make_scheduler("lc"), servers) == "A"


def test_wlc_tie_first_in_list_wins():
    # A: 256/2 = 128, B: 512/4 = 128 -> loh*dw > doh*lw is false, first one stays
    a, b = srv("A", weight=2, active=1), srv("B", weight=4, active=2)
    assert pick(make_scheduler("wlc"), [a, b]) == "A"
    assert pick(make_scheduler("wlc"), [b, a]) == "B"


def test_wlc_has_no_plus_one():
    # kernel: A = 0/1, B = 256/3 -> A.  "(connections+1)/weight" would give 1 vs 2/3 -> B
    servers = [srv("A", weight=1), srv("B", weight=3, active=1)]
    assert pick(make_scheduler("wlc"), servers) == "A"


def test_wlc_mixed_weights():
    # A: 100/1 = 100, B: 200/3 = 66.7 -> B
    servers = [srv("A", weight=1, inactive=100), srv("B", weight=3, inactive=200)]
    assert pick(make_scheduler("wlc"), servers) == "B"
    # A: 256/2 = 128, B: 256/3 = 85.3 -> B ; C: 0/1 -> C
    servers = [srv("A", weight=2, active=1), srv("B", weight=3, active=1)]
    assert pick(make_scheduler("wlc"), servers) == "B"
    servers.append(srv("C", weight=1))
    assert pick(make_scheduler("wlc"), servers) == "C"


def test_sed_ignores_inactive_connections_but_wlc_does_not():
    servers = [srv("A", inactive=1000), srv("B", active=1)]
    assert pick(make_scheduler("sed"), servers) == "A"   # (0+1)/1 < (1+1)/1
    assert pick(make_scheduler("wlc"), servers) == "B"   # 1000 > 256


def test_sed_is_weighted_with_plus_one():
    # A: (1+1)/1 = 2, B: (2+1)/3 = 1 -> B although B has more active connections
    servers = [srv("A", weight=1, active=1), srv("B", weight=3, active=2)]
    assert pick(make_scheduler("sed"), servers) == "B"


def test_sed_tie_first_in_list_wins():
    # A: (0+1)/1 = 1, B: (1+1)/2 = 1
    a, b = srv("A", weight=1), srv("B", weight=2, active=1)
    assert pick(make_scheduler("sed"), [a, b]) == "A"
    assert pick(make_scheduler("sed"), [b, a]) == "B"


def test_nq_picks_an_idle_server_first():
    servers = [srv("A", weight=1, active=1), srv("B", weight=5, active=2),
               srv("C", weight=1)]
    assert pick(make_scheduler("nq"), servers) == "C"
    assert pick(make_scheduler("sed"), servers) == "B"  # (2+1)/5 is the sed minimum


def test_nq_first_idle_in_list_order_regardless_of_weight():
    servers = [srv("A", weight=1), srv("B", weight=100)]
    assert pick(make_scheduler("nq"), servers) == "A"


def test_nq_idle_means_no_active_connections():
    servers = [srv("A", active=1), srv("B", inactive=500)]
    assert pick(make_scheduler("nq"), servers) == "B"


def test_nq_without_idle_server_is_sed():
    servers = [srv("A", weight=1, active=1), srv("B", weight=3, active=2)]
    assert pick(make_scheduler("nq"), servers) == "B"
    # tie: (1+1)/1 = 2 and (3+1)/2 = 2 -> first
    a, b = srv("A", weight=1, active=1), srv("B", weight=2, active=3)
    assert pick(make_scheduler("nq"), [a, b]) == "A"
    assert pick(make_scheduler("nq"), [b, a]) == "B"


# --- every algorithm: weight 0, overloaded, nobody ------------------------------------


def _varied_picks(sched, servers, count=300):
    chosen = []
    for i in range(count):
        chosen.append(name_of(sched.pick(
            servers, client_ip=f"10.1.{i // 250}.{i % 250 + 1}",
            dest_ip=f"10.2.{i // 250}.{i % 250 + 1}", client_port=30000 + i,
            now=float(i))))
    return chosen


@pytest.mark.parametrize("name", ALGORITHMS)
def test_weight_zero_server_never_chosen(name):
    servers = [srv("A", weight=1), srv("B", weight=0), srv("C", weight=2)]
    chosen = _varied_picks(make_scheduler(name), servers)
    assert "B" not in chosen
    assert "A" in chosen or "C" in chosen


@pytest.mark.parametrize("name", ALGORITHMS)
def test_overloaded_server_never_chosen(name):
    servers = [srv("A", weight=2, overloaded=True), srv("B", weight=1), srv("C", weight=1)]
    chosen = _varied_picks(make_scheduler(name), servers)
    assert "A" not in chosen
    assert "B" in chosen or "C" in chosen


@pytest.mark.parametrize("name", ALGORITHMS)
def test_nobody_available_gives_none(name):
    for servers in ([], [srv("A", weight=0), srv("B", weight=0)],
                    [srv("A", overloaded=True), srv("B", overloaded=True)]):
        assert set(_varied_picks(make_scheduler(name), servers, 20)) == {None}


# --- sh ------------------------------------------------------------------------------------


def test_sh_table_is_filled_by_weight_in_list_order():
    sched = make_scheduler("sh")
    servers = [srv("A", weight=3), srv("B", weight=1)]
    sched.pick(servers, client_ip="10.0.1.5", now=0)
    assert sched.buckets == ("A", "A", "A", "B") * 64
    assert collections.Counter(sched.buckets) == {"A": 192, "B": 64}


def test_sh_weight_zero_server_still_takes_one_bucket_per_round():
    sched = make_scheduler("sh")
    sched.pick([srv("A", weight=2), srv("B", weight=0), srv("C", weight=1)],
               client_ip="10.0.1.5", now=0)
    assert sched.buckets[:8] == ("A", "A", "B", "C", "A", "A", "B", "C")
    assert collections.Counter(sched.buckets) == {"A": 128, "B": 64, "C": 64}


def test_sh_table_rebuilt_when_a_weight_changes():
    sched = make_scheduler("sh")
    servers = [srv("A"), srv("B")]
    sched.pick(servers, client_ip="10.0.1.5", now=0)
    assert sched.buckets[:4] == ("A", "B", "A", "B")
    servers[0].weight = 3
    sched.pick(servers, client_ip="10.0.1.5", now=0)
    assert sched.buckets[:4] == ("A", "A", "A", "B")


def test_sh_same_client_same_server():
    # buckets: 10.0.1.5 -> 119, 10.0.1.6 -> 217, 192.168.1.1 -> 136; table (A A A B)*64
    sched = make_scheduler("sh")
    servers = [srv("A", weight=3), srv("B", weight=1)]
    assert picks(sched, servers, 5, client_ip="10.0.1.5") == ["B"] * 5
    assert picks(sched, servers, 5, client_ip="10.0.1.6") == ["A"] * 5
    assert picks(sched, servers, 1, client_ip="192.168.1.1") == ["A"]
    # the source port does not matter without sh-port
    assert pick(sched, servers, client_ip="10.0.1.5", client_port=1234) == "B"


def test_sh_port_flag_mixes_in_the_client_port():
    # table (A B C) repeated; 10.0.1.5 -> bucket 119 -> C; with port 40000 -> 27 -> A
    servers = [srv("A"), srv("B"), srv("C")]
    plain = make_scheduler("sh")
    assert pick(plain, servers, client_ip="10.0.1.5", client_port=40000) == "C"
    with_port = make_scheduler("sh", port=True)
    assert pick(with_port, servers, client_ip="10.0.1.5", client_port=40000) == "A"


def test_sh_fallback_when_hashed_server_has_weight_zero():
    # table (A A B C)*64; 10.0.0.101 hashes to bucket 90 -> B (weight 0)
    servers = [srv("A", weight=2), srv("B", weight=0), srv("C", weight=1)]
    assert pick(make_scheduler("sh"), servers, client_ip="10.0.0.101") is None
    # sh-fallback probes (90 + roffset) & 255 with roffset = 90, 91, ...: 180 -> A
    fallback = make_scheduler("sh", fallback=True)
    assert pick(fallback, servers, client_ip="10.0.0.101") == "A"
    # with A overloaded: 180 -> A, 181 -> A, 182 -> B, 183 -> C
    servers[0].overloaded = True
    assert pick(fallback, servers, client_ip="10.0.0.101") == "C"


# --- dh ------------------------------------------------------------------------------------


def test_dh_by_destination():
    # table (A B C) repeated; 10.0.0.100 -> 248 -> C, .101 -> 90 -> A, .102 -> 187 -> B
    sched = make_scheduler("dh")
    servers = [srv("A"), srv("B"), srv("C")]
    assert pick(sched, servers, dest_ip="10.0.0.100") == "C"
    assert pick(sched, servers, dest_ip="10.0.0.101") == "A"
    assert pick(sched, servers, dest_ip="10.0.0.102") == "B"
    # the client does not matter
    for client in ("10.0.1.5", "10.0.1.6", "192.168.1.1"):
        assert pick(sched, servers, client_ip=client, dest_ip="10.0.0.100") == "C"


def test_dh_table_ignores_weights_and_has_no_fallback():
    sched = make_scheduler("dh")
    servers = [srv("A", weight=5), srv("B", weight=1)]
    sched.pick(servers, dest_ip="10.0.0.100", now=0)
    assert collections.Counter(sched.buckets) == {"A": 128, "B": 128}
    servers = [srv("A"), srv("B"), srv("C", weight=0)]
    assert pick(sched, servers, dest_ip="10.0.0.100") is None


# --- lblc ----------------------------------------------------------------------------------


def test_lblc_stays_until_overloaded_and_a_half_empty_server_exists():
    a, b = srv("A", weight=2), srv("B", weight=2)
    sched = make_scheduler("lblc")
    assert pick(sched, [a, b], now=1) == "A"          # no entry: wlc, tie -> A
    a.active_conns, b.active_conns = 3, 1
    # A exceeds its weight, but no server has active*2 < weight (1*2 < 2 is false)
    assert pick(sched, [a, b], now=2) == "A"
    b.active_conns = 0
    assert pick(sched, [a, b], now=3) == "B"          # now B is half empty: switch
    assert sched.entry("10.0.0.100") == "B"
    a.active_conns, b.active_conns = 0, 2
    assert pick(sched, [a, b], now=4) == "B"          # 2 > 2 is false: stay on B


def test_lblc_switch_goes_to_wlc_choice_not_to_the_half_empty_server():
    a = srv("A", weight=4)
    b = srv("B", weight=10)
    c = srv("C", weight=2)
    sched = make_scheduler("lblc")
    assert pick(sched, [a, b, c], now=1) == "A"
    a.active_conns = 5                                 # 5 > 4
    b.active_conns = 6                                 # 12 < 10 false: not half empty
    c.inactive_conns = 1000                            # 0*2 < 2: half empty
    # wlc: A 1280/4 = 320, B 1536/10 = 153.6, C 1000/2 = 500 -> B
    assert pick(sched, [a, b, c], now=2) == "B"


def test_lblc_leaves_removed_or_quiesced_server():
    a, b, c = srv("A"), srv("B"), srv("C")
    sched = make_scheduler("lblc")
    assert pick(sched, [a, b, c], now=1) == "A"
    assert pick(sched, [b, c], now=2) == "B"
    b.weight = 0
    assert pick(sched, [b, c], now=3) == "C"


def test_lblc_entries_are_per_destination_ip():
    a, b = srv("A"), srv("B")
    sched = make_scheduler("lblc")
    assert pick(sched, [a, b], dest_ip="192.0.2.1", now=1) == "A"
    a.active_conns = 1
    assert pick(sched, [a, b], dest_ip="192.0.2.2", now=2) == "B"
    assert pick(sched, [a, b], dest_ip="192.0.2.1", now=3) == "A"


def test_lblc_keeps_flagged_overloaded_cached_server():
    # ip_vs_lblc_schedule checks AVAILABLE, weight > 0 and is_overloaded(), not the flag
    a, b = srv("A"), srv("B")
    sched = make_scheduler("lblc")
    assert pick(sched, [a, b], now=1) == "A"
    a.overloaded = True
    assert pick(sched, [a, b], now=2) == "A"
    assert pick(sched, [a, b], dest_ip="192.0.2.9", now=3) == "B"   # new entry: skipped


def _lblc_expiry_setup(sched):
    a, b = srv("A", weight=2), srv("B", weight=2)
    assert pick(sched, [a, b], now=0) == "A"
    a.active_conns = 1   # 1 > 2 is false: A stays cached, but wlc would now pick B
    return [a, b]


def test_lblc_entry_expires_after_24h_at_the_full_check():
    sched = make_scheduler("lblc")
    servers = _lblc_expiry_setup(sched)
    assert sched.entry("10.0.0.100") == "A"
    # full checks run at t = 1800, 3600, ... ; 86400 >= 0 + 86400 drops the entry
    assert pick(sched, servers, dest_ip="192.0.2.1", now=86399.5) == "B"
    assert sched.entry("10.0.0.100") == "A"
    assert pick(sched, servers, now=86400) == "B"


def test_lblc_entry_still_used_just_before_expiry():
    sched = make_scheduler("lblc")
    servers = _lblc_expiry_setup(sched)
    assert pick(sched, servers, now=86399.5) == "A"


def test_lblc_use_refreshes_lastuse():
    sched = make_scheduler("lblc")
    servers = _lblc_expiry_setup(sched)
    assert pick(sched, servers, now=50000) == "A"
    # the full check at t = 86400 keeps it (picks for another destination run the timer)
    assert pick(sched, servers, dest_ip="192.0.2.1", now=86400) == "B"
    assert sched.entry("10.0.0.100") == "A"
    # lastuse 50000 + 86400 = 136400: dropped at the next full check, t = 136800
    assert pick(sched, servers, dest_ip="192.0.2.1", now=136799) == "B"
    assert sched.entry("10.0.0.100") == "A"
    assert pick(sched, servers, dest_ip="192.0.2.1", now=136800) == "B"
    assert sched.entry("10.0.0.100") is None


def test_lblc_short_expiration_waits_for_the_30_minute_full_check():
    sched = make_scheduler("lblc", expiration=120)
    servers = _lblc_expiry_setup(sched)
    assert pick(sched, servers, dest_ip="192.0.2.1", now=1799) == "B"
    assert sched.entry("10.0.0.100") == "A"
    assert pick(sched, servers, now=1800) == "B"


# --- lblcr ---------------------------------------------------------------------------------


def _lblcr_grown(expiration=100):
    """Set for 10.0.0.100 grows from {A} to {B, A} at t = 10."""
    a, b = srv("A"), srv("B")
    sched = make_scheduler("lblcr", expiration=expiration)
    assert pick(sched, [a, b], now=0) == "A"
    assert sched.entry("10.0.0.100") == ("A",)
    a.active_conns = 2                                 # 2 > 1, and B: 0*2 < 1
    assert pick(sched, [a, b], now=10) == "B"
    assert sched.entry("10.0.0.100") == ("B", "A")     # newest first
    return sched, a, b


def test_lblcr_set_grows_when_least_loaded_member_is_overloaded():
    _lblcr_grown()


def test_lblcr_serves_the_least_loaded_member_not_the_whole_service():
    sched, a, b = _lblcr_grown()
    c = srv("C")
    a.active_conns, b.active_conns = 1, 0
    # set members: B = 0, A = 256 -> B, although C is just as idle
    assert pick(sched, [a, b, c], now=20) == "B"
    a.active_conns, b.active_conns = 0, 1
    assert pick(sched, [a, b, c], now=21) == "A"
    assert sched.entry("10.0.0.100") == ("B", "A")


def test_lblcr_set_shrinks_after_expiration_without_change():
    sched, a, b = _lblcr_grown(expiration=100)
    a.active_conns, b.active_conns = 2, 1              # A is the most loaded member
    assert pick(sched, [a, b], now=110) == "B"         # 110 > 10 + 100 is false
    assert sched.entry("10.0.0.100") == ("B", "A")
    assert pick(sched, [a, b], now=110.5) == "B"       # drop the most loaded: A
    assert sched.entry("10.0.0.100") == ("B",)
    a.active_conns = 0                                 # A would now be the better member
    assert pick(sched, [a, b], now=111) == "B"


def test_lblcr_equal_loads_remove_the_member_just_chosen():
    # set_min and set_max both keep the first of equals (B); B is erased but returned
    sched, a, b = _lblcr_grown(expiration=100)
    a.active_conns = 0
    assert pick(sched, [a, b], now=200) == "B"
    assert sched.entry("10.0.0.100") == ("A",)


def test_lblcr_does_not_replicate_when_nobody_is_half_empty():
    # course notes: "when all exceed, picks the one with fewest connections" -- the kernel
    # stays on the set's member unless some server has active*2 < weight
    a, b, c = srv("A", weight=2), srv("B", weight=2), srv("C", weight=2)
    sched = make_scheduler("lblcr")
    assert pick(sched, [a, b, c], now=0) == "A"
    a.active_conns, b.active_conns, c.active_conns = 5, 3, 1
    assert pick(sched, [a, b, c], now=1) == "A"
    assert sched.entry("10.0.0.100") == ("A",)
    c.active_conns = 0
    assert pick(sched, [a, b, c], now=2) == "C"
    assert sched.entry("10.0.0.100") == ("C", "A")


def test_lblcr_whole_entry_expires_on_the_timer():
    sched, a, b = _lblcr_grown(expiration=100)
    # lastuse 10; first full check at t = 1800 drops it (1800 >= 10 + 100)
    pick(sched, [a, b], dest_ip="192.0.2.1", now=1799)
    assert sched.entry("10.0.0.100") == ("B", "A")
    pick(sched, [a, b], dest_ip="192.0.2.1", now=1800)
    assert sched.entry("10.0.0.100") is None


# --- fo ------------------------------------------------------------------------------------


def test_fo_first_of_the_highest_weight_whatever_its_load():
    # ip_vs_fo_schedule, hw starting at 0: A 2 > 0 -> A (hw 2); B 5 > 2 -> B (hw 5);
    # C 5 > 5 is false (the first of equals stays); D 1 > 5 is false -> B
    a, b, c, d = srv("A", 2), srv("B", 5), srv("C", 5), srv("D", 1)
    sched = make_scheduler("fo")
    assert picks(sched, [a, b, c, d], 3) == ["B"] * 3
    b.active_conns, b.inactive_conns = 1000, 1000       # the load is never read
    assert pick(sched, [a, b, c, d]) == "B"


def test_fo_fails_over_by_weight_and_overload_flag():
    a, b, c, d = srv("A", 2), srv("B", 5), srv("C", 5), srv("D", 1)
    sched = make_scheduler("fo")
    b.weight = 0                      # 0 > 2 is false; C 5 > 2 -> C
    assert pick(sched, [a, b, c, d]) == "C"
    c.overloaded = True               # C skipped: A 2 stays, D 1 > 2 is false -> A
    assert pick(sched, [a, b, c, d]) == "A"
    b.weight = 3                      # B 3 > 2 -> B
    assert pick(sched, [a, b, c, d]) == "B"
    c.overloaded = False              # C 5 > 3 -> C
    assert pick(sched, [a, b, c, d]) == "C"


# --- ovf -----------------------------------------------------------------------------------


def _held_picks(sched, servers, count):
    """Picks of new connections that stay open: each adds 1 ActiveConn to its server."""
    chosen = []
    for _ in range(count):
        dest = sched.pick(servers, client_ip="10.0.1.5", now=0.0)
        chosen.append(name_of(dest))
        if dest is not None:
            dest.active_conns += 1
    return chosen


def test_ovf_fills_the_heaviest_server_to_weight_plus_one_then_overflows():
    # ip_vs_ovf_schedule skips a server with activeconns > weight, then keeps the first
    # of the highest weight.  A (weight 3) is chosen at 0, 1, 2 and 3 active (3 > 3 is
    # false) and skipped at 4; then B (weight 2) at 0, 1, 2; C has B's weight but comes
    # later, so it waits until B is at 3, and takes 3 too; then nobody is left (NULL).
    # A's 500 inactive connections are never read.
    a, b, c = srv("A", 3, inactive=500), srv("B", 2), srv("C", 2)
    assert _held_picks(make_scheduler("ovf"), [a, b, c], 11) == \
        ["A"] * 4 + ["B"] * 3 + ["C"] * 3 + [None]


def test_ovf_returns_to_the_heaviest_server_when_it_has_room_again():
    a, b, c = srv("A", 3, active=4), srv("B", 2, active=1), srv("C", 2)
    sched = make_scheduler("ovf")
    assert pick(sched, [a, b, c]) == "B"     # A: 4 > 3, skipped; B: first of weight 2
    a.active_conns = 3                       # one of A's connections closed: 3 > 3 false
    assert pick(sched, [a, b, c]) == "A"
    a.active_conns, a.weight = 4, 5          # weight raised: 4 > 5 is false
    assert pick(sched, [a, b, c]) == "A"
    a.overloaded = True                      # the flag skips A whatever its counts
    b.weight = 0                             # weight 0 is skipped too -> C
    assert pick(sched, [a, b, c]) == "C"


# --- twos ----------------------------------------------------------------------------------


def scripted(*words):
    """A twos random source that returns these get_random_u32() words, in order."""
    it = iter(words)
    return lambda: next(it)


# With A (weight 1), B (2), C (3), twos draws r in 0..7-1 (total weight + 1 = 7) from a
# word w as r = (7 * w) >> 32 = floor(7 * w / 2**32): 0x20000000 -> 0 (0.875),
# 0x40000000 -> 1 (1.75), 0x80000000 -> 3 (3.5), 0xFFFFFFFF -> 6 (6.99...).  The walk
# subtracts 1, 2, 3: r in {0, 1} -> A (r - 1 <= 0), {2, 3} -> B (r - 3 <= 0), {4, 5, 6}
# -> C.  So A has 2 chances in 7 with weight 1: a draw of 0 also lands on it.
A_, C_ = 0x20000000, 0xFFFFFFFF     # words drawing A and C
B_ = 0x80000000


def test_get_random_u32_below_multiply_shift_and_rejection():
    assert [get_random_u32_below(7, scripted(w)) for w in (A_, 0x40000000, B_, C_)] == \
        [0, 1, 3, 6]
    # word 0: 7 * 0 has the low half 0 < 7, and 0 < 2**32 % 7 = 4: rejected, next word
    assert get_random_u32_below(7, scripted(0, C_)) == 6
    # word 1: the low half 7 is not < 7: kept, r = 0
    assert get_random_u32_below(7, scripted(1, C_)) == 0
    # word 0x49249252: 7 * w = 2 * 2**32 + 6, low half 6 < 7 but not < 4: kept, r = 2
    assert get_random_u32_below(7, scripted(0x49249252, C_)) == 2


def test_twos_idle_servers_keep_the_first_draw():
    # r1 = 0 -> A, r2 = 6 -> C; overheads 0 and 0: 3 * 0 > 1 * 0 is false -> A
    sched = make_scheduler("twos", rng=scripted(A_, C_))
    assert pick(sched, [srv("A", 1), srv("B", 2), srv("C", 3)]) == "A"


def test_twos_second_draw_wins_only_with_a_lower_load_per_weight():
    a, b, c = srv("A", 1), srv("B", 2), srv("C", 3)
    sched = make_scheduler("twos", rng=scripted(A_, C_, A_, C_, A_, C_, B_, B_))
    a.active_conns = 1            # choice1 A: 256, choice2 C: 0; 3 * 256 > 1 * 0 -> C
    assert pick(sched, [a, b, c]) == "C"
    c.active_conns = 1            # 256 / 1 against 256 / 3: 768 > 256 -> C
    assert pick(sched, [a, b, c]) == "C"
    a.active_conns, a.inactive_conns = 0, 3   # 3 / 1 against 256 / 3: 9 > 256 is false
    assert pick(sched, [a, b, c]) == "A"
    assert pick(sched, [a, b, c]) == "B"      # both draws land on B


def test_twos_draws_only_among_available_servers():
    # B (weight 0) and C (flagged) are left out: total = 1 + 2 + 1 = 4, A for r in
    # {0, 1}, D for {2, 3}; 0x80000000 -> r = 2 -> D, 0x20000000 -> r = 0 -> A; both
    # idle: D (the first draw) stays
    a, b, c, d = srv("A", 1), srv("B", 0), srv("C", 3, overloaded=True), srv("D", 2)
    sched = make_scheduler("twos", rng=scripted(B_, A_))
    assert pick(sched, [a, b, c, d]) == "D"


def test_twos_rejected_draw_takes_one_more_word():
    # word 0 is rejected (see above), so r1 = 6 -> C from the second word, r2 = 0 -> A
    sched = make_scheduler("twos", rng=scripted(0, C_, A_))
    assert pick(sched, [srv("A", 1), srv("B", 2), srv("C", 3)]) == "C"


def test_twos_compares_in_wrapping_c_int_arithmetic():
    # A (weight 65535) with 32768 active: overhead 2**23; B (weight 1) with 200 active:
    # overhead 51200.  total = 65537: 0x80000000 -> r = 32768 -> A, 0xFFFFFFFF -> 65536
    # -> B.  weight2 * overhead1 = 8388608; weight1 * overhead2 = 65535 * 51200 =
    # 3355392000, which a C int wraps to -939575296: 8388608 > -939575296, so B wins,
    # although A is far less loaded per weight (128 against 51200).
    a, b = srv("A", 65535, active=32768), srv("B", 1, active=200)
    assert pick(make_scheduler("twos", rng=scripted(B_, C_)), [a, b]) == "B"


def test_twos_with_a_seed_is_reproducible_and_follows_the_weights():
    servers = [srv("A", 1), srv("B", 2), srv("C", 3)]
    first = picks(make_scheduler("twos", rng=42), servers, 200)
    assert picks(make_scheduler("twos", rng=random.Random(42)), servers, 200) == first
    # idle servers, so the first draw always wins: A 2/7, B 2/7, C 3/7 of the picks
    counts = collections.Counter(picks(make_scheduler("twos", rng=1), servers, 7000))
    for name, expected in (("A", 2000), ("B", 2000), ("C", 3000)):
        assert abs(counts[name] - expected) < 200, counts


def test_twos_random_source_is_checked():
    with pytest.raises(TypeError, match="rng must be"):
        make_scheduler("twos", rng="seed")
    sched = make_scheduler("twos", rng=scripted(-1))
    with pytest.raises(ValueError, match="from 0 to 4294967295"):
        sched.pick([srv("A")], now=0)


# --- SipHash (lib/siphash.c) ---------------------------------------------------------------


def test_siphash_2_4_paper_test_vector():
    # SipHash paper (Aumasson, Bernstein 2012), appendix A: key 00..0f, message 00..0e
    assert siphash(bytes(range(16)), bytes(range(15))) == 0xA129CA6149BE45E5
    # more of the reference vectors (lib/siphash_kunit.c test_vectors_siphash[n]: n bytes)
    assert siphash(bytes(range(16)), b"") == 0x726FDB47DD0E0E31
    assert siphash(bytes(range(16)), bytes(range(8))) == 0x93F5F5799A932462
    assert siphash(bytes(range(16)), bytes(range(63))) == 0x958A324CEB064572


@pytest.mark.parametrize("length, on64, on32", [
    (0, 0x050FC4DC, 0x5814C896), (4, 0x88D38328, 0x7E059EA6), (7, 0x9BB11140, 0x9D38D9D6),
    (8, 0x8D299A8E, 0x577999B1), (15, 0x2A519956, 0xD0257B04), (63, 0xB7BBB3A8, 0x87178304)])
def test_hsiphash_matches_the_kernels_test_vectors(length, on64, on32):
    # lib/siphash_kunit.c test_vectors_hsiphash: SipHash-1-3 truncated to 32 bits with the
    # key {0x0706050403020100, 0x0f0e0d0c0b0a0908} on 64-bit kernels, HalfSipHash-1-3
    # with {0x03020100, 0x07060504} on 32-bit ones
    data = bytes(range(length))
    assert hsiphash(data, (0x0706050403020100, 0x0F0E0D0C0B0A0908)) == on64
    assert hsiphash(data, (0x03020100, 0x07060504), bits_per_long=32) == on32
    assert halfsiphash(bytes(range(8)), data) == on32


# --- mh ------------------------------------------------------------------------------------
# A = 10.0.0.10:80 and D = 10.0.0.13:80 in 251 slots (tab_index 8), from the C copy:
#   A: offset 159, skip 39        D: offset 36, skip 240
# offset = hsiphash(u32 80 + 0x0a00000a, hash1) % 251, skip = hsiphash(.., hash2) % 250 + 1


def _mh(servers, **options):
    sched = make_scheduler("mh", **options)
    sched.pick(servers, client_ip="10.0.1.5", now=0)
    return sched


def test_mh_permutation_of_each_server_comes_from_its_address_and_port():
    sched = _mh([srv("A"), srv("D")], tab_index=8)
    assert sched.size == 251
    assert sched.permutations() == {"A": (159, 39, 1), "D": (36, 240, 1)}
    assert mh_hashkey("10.0.0.10", 80) % 251 == 159
    assert mh_hashkey("10.0.0.10", 80, (2654446892, 2654446892)) % 250 + 1 == 39
    # a 32-bit kernel hashes with HalfSipHash: other places (C copy: A 180, 45)
    assert _mh([srv("A")], tab_index=8, bits_per_long=32).permutations() == \
        {"A": (180, 45, 1)}


def test_mh_populate_hand_worked():
    # ip_vs_mh_populate, one turn each, A then D, each taking the next free slot of its
    # permutation (perm stays on the slot it took, so the next visit moves on by skip):
    #   A 159;  D 36;  A 159+39 = 198;  D 36+240 = 276-251 = 25;  A 198+39 = 237;
    #   D 25+240 = 265-251 = 14;  A 237+39 = 276-251 = 25, taken by D: 25+39 = 64;
    #   D 14+240 = 254-251 = 3;  A 64+39 = 103 ...
    table = _mh([srv("A"), srv("D")], tab_index=8).buckets
    for slot, owner in ((159, "A"), (36, "D"), (198, "A"), (25, "D"), (237, "A"),
                        (14, "D"), (64, "A"), (3, "D"), (103, "A")):
        assert table[slot] == owner, slot
    # 251 slots taken one by one in turn: A, who starts, gets the odd one
    assert collections.Counter(table) == {"A": 126, "D": 125}


@pytest.mark.parametrize("weights, tab_index, turns, counts", [
    # one round = the turns; 4093 = 682 rounds of 6 + 1 (A starts the last round)
    ((3, 2, 1), 12, (3, 2, 1), (2047, 1364, 682)),
    ((3, 2, 1), 8, (3, 2, 1), (126, 84, 41)),          # 251 = 41 * 6 + 5 (A 3, B 2)
    ((4, 2), 12, (2, 1), (2729, 1364)),                # gcd 2; 4093 = 1364 * 3 + 1
    # max weight / gcd = 100: fls(100) = 7 bits, 6 allowed: rshift 1; 1 >> 1 = 0 but the
    # weight is not 0, so 1 turn; 4093 = 80 * 51 + 13 -> A 80 * 50 + 13, B 80
    ((100, 1), 12, (50, 1), (4013, 80)),
])
def test_mh_table_shares_follow_the_turns(weights, tab_index, turns, counts):
    servers = [srv(name, w) for name, w in zip("ABC", weights)]
    sched = _mh(servers, tab_index=tab_index)
    assert tuple(t for _o, _s, t in sched.permutations().values()) == turns
    assert collections.Counter(sched.buckets) == dict(zip("ABC", counts))


def test_mh_lookup_hashes_the_client_address_and_with_mh_port_its_port():
    # slot = hsiphash(u32 port + ntohl(client), hash1) % 251 (C copy):
    # 10.0.1.5 -> 50 (A), 10.0.1.2 -> 243 (D); with port 40000, 10.0.1.5 -> 202 (D)
    servers = [srv("A"), srv("D")]
    sched = _mh(servers, tab_index=8)
    assert (sched.buckets[50], sched.buckets[243], sched.buckets[202]) == ("A", "D", "D")
    assert picks(sched, servers, 3, client_ip="10.0.1.5", client_port=40000) == ["A"] * 3
    assert pick(sched, servers, client_ip="10.0.1.2") == "D"
    with_port = _mh(servers, tab_index=8, port=True)
    assert pick(with_port, servers, client_ip="10.0.1.5", client_port=40000) == "D"
    assert pick(with_port, servers, client_ip="10.0.1.5", client_port=0) == "A"


def test_mh_quiesced_server_keeps_its_slots_and_fallback_walks_on():
    a, d = srv("A"), srv("D")
    plain = _mh([a, d], tab_index=8)
    fallback = _mh([a, d], tab_index=8, fallback=True)
    before = plain.buckets
    a.weight = 0        # upd_dest: last_weight stays 1, the table is rebuilt the same
    assert pick(plain, [a, d], client_ip="10.0.1.5") is None       # slot 50 is A's
    assert plain.buckets == before
    assert pick(plain, [a, d], client_ip="10.0.1.2") == "D"        # D's clients stay
    # ip_vs_mh_get_fallback for 10.0.1.7 (slot 86, A): roffset = 86 + offset, each
    # rehashed as hsiphash(roffset + client) % 251 (C copy): offset 0 -> slot 4 (A),
    # offset 1 -> 147 (A), offset 2 -> 98 (D)
    assert (before[86], before[4], before[147], before[98]) == ("A", "A", "A", "D")
    assert pick(fallback, [a, d], client_ip="10.0.1.7") == "D"
    # 10.0.1.8 (slot 38, A): offset 0 -> slot 154, D's
    assert (before[38], before[154]) == ("A", "D")
    assert pick(fallback, [a, d], client_ip="10.0.1.8") == "D"
    a.weight = 1        # back: the same table, the same clients on A
    assert pick(plain, [a, d], client_ip="10.0.1.5") == "A"


def test_mh_fallback_rehashes_from_the_first_slot_on():
    # A, D, E in 251 slots, A quiesced (C copy).  The kernel's walk hashes roffset =
    # ihash + offset, not offset alone: for 10.0.1.7 (slot 86, A) it visits 4 (A), 147
    # (A), 98 (D) and gives D; hashing 0, 1, ... would visit 86 (A), 38 (E) and give E.
    # 10.0.1.1 (slot 148, A): roffset 148 -> slot 185, E's; 10.0.1.15 (135, A): 128 (A),
    # 57 (A), 146 (E).
    a, d, e = srv("A"), srv("D"), srv("E")
    sched = _mh([a, d, e], tab_index=8, fallback=True)
    table = sched.buckets
    assert [table[slot] for slot in (86, 4, 147, 98, 38)] == ["A", "A", "A", "D", "E"]
    a.weight = 0
    assert [pick(sched, [a, d, e], client_ip=client)
            for client in ("10.0.1.7", "10.0.1.1", "10.0.1.15")] == ["D", "E", "E"]


def test_mh_overloaded_server_is_unavailable_like_weight_zero():
    a, d = srv("A"), srv("D")
    plain, fallback = _mh([a, d], tab_index=8), _mh([a, d], tab_index=8, fallback=True)
    a.overloaded = True
    assert pick(plain, [a, d], client_ip="10.0.1.7") is None
    assert pick(fallback, [a, d], client_ip="10.0.1.7") == "D"
    d.overloaded = True                                  # every slot unavailable
    assert pick(fallback, [a, d], client_ip="10.0.1.7") is None


def test_mh_last_weight_is_the_latest_non_zero_weight():
    # weights 3, 1 in 251 slots: 62 rounds of 4 + 3 -> A 189, D 62
    a, d = srv("A", 3), srv("D", 1)
    sched = _mh([a, d], tab_index=8)
    assert collections.Counter(sched.buckets) == {"A": 189, "D": 62}
    a.weight = 0                                 # quiesced: last_weight stays 3
    sched.pick([a, d], client_ip="10.0.1.5", now=1)
    assert collections.Counter(sched.buckets) == {"A": 189, "D": 62}
    a.weight = 1                                 # a new non-zero weight is taken
    sched.pick([a, d], client_ip="10.0.1.5", now=2)
    assert collections.Counter(sched.buckets) == {"A": 126, "D": 125}


def test_mh_server_added_with_weight_zero_has_no_slot_until_weighted():
    a, d, e = srv("A"), srv("D"), srv("E", 0)
    sched = _mh([a, d], tab_index=8)
    before = sched.buckets
    sched.pick([a, d, e], client_ip="10.0.1.5", now=1)   # add_dest: last_weight 0
    assert sched.buckets == before                       # 0 turns: skipped by populate
    e.weight = 1
    sched.pick([a, d, e], client_ip="10.0.1.5", now=2)
    assert collections.Counter(sched.buckets) == {"A": 84, "D": 84, "E": 83}


def test_mh_removing_a_server_moves_almost_only_its_slots():
    # Maglev's minimal disruption, 4093 slots (C copy): of the 3274 slots of A, B, D and
    # E, 3250 keep their server when C (819 slots) is removed, and C's slots are spread
    # over all four.  sh refills its 256 buckets in list order: 50 of 205 stay.
    servers = [srv(name) for name in "ABCDE"]
    survivors = [s for s in servers if s.name != "C"]
    sched = _mh(servers)
    before = sched.buckets
    sched.pick(survivors, client_ip="10.0.1.5", now=1)
    after = sched.buckets
    kept = sum(1 for b, a in zip(before, after) if b != "C" and a == b)
    assert (kept, sum(1 for b in before if b != "C")) == (3250, 3274)
    heirs = collections.Counter(a for b, a in zip(before, after) if b == "C")
    assert set(heirs) == {"A", "B", "D", "E"} and min(heirs.values()) > 150, heirs

    sh = make_scheduler("sh")
    sh.pick(servers, client_ip="10.0.1.5", now=0)
    before = sh.buckets
    sh.pick(survivors, client_ip="10.0.1.5", now=1)
    kept = sum(1 for b, a in zip(before, sh.buckets) if b != "C" and a == b)
    assert (kept, sum(1 for b in before if b != "C")) == (50, 205)


def test_mh_options_are_checked_and_kept_by_reset():
    for options, message in (({"tab_index": 7}, "from 8 to 17"),
                             ({"tab_index": 18}, "from 8 to 17"),
                             ({"bits_per_long": 16}, "64 or 32"),
                             ({"hash1": (1,)}, "pair of integers"),
                             ({"hash2": (1, 2 ** 32), "bits_per_long": 32}, "from 0 to")):
        with pytest.raises(ValueError, match=message):
            make_scheduler("mh", **options)
    sched = make_scheduler("mh", fallback=True, port=True, tab_index=9)
    sched.pick([srv("A")], client_ip="10.0.1.5", now=0)
    sched.reset()
    assert (sched.fallback, sched.port, sched.size) == (True, True, 509)
    assert set(sched.buckets) == {None}              # the table starts afresh
