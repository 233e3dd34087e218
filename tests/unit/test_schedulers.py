"""Hand-worked sequences for controllers.schedulers, derived from the kernel sources.

Every expected value below was worked out by hand from net/netfilter/ipvs/ip_vs_*.c.
The hash bucket numbers (e.g. 10.0.1.5 -> sh bucket 119) were computed with a C copy of
ip_vs_sh_hashkey()/ip_vs_dh_hashkey() and hash_32() (GOLDEN_RATIO_32 = 0x61C88647).
"""

import collections

import pytest

from controllers.schedulers import ALGORITHMS, RealServer, make_scheduler


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


def test_algorithms_are_the_ten_in_order():
    assert ALGORITHMS == ("rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "dh", "lblc",
                          "lblcr")


@pytest.mark.parametrize("name", ALGORITHMS)
def test_make_scheduler_builds_each_algorithm(name):
    assert make_scheduler(name).name == name


def test_unknown_algorithm_error_lists_all_ten_names():
    with pytest.raises(ValueError) as info:
        make_scheduler("fo")
    message = str(info.value)
    assert "'fo'" in message
    assert "rr, wrr, lc, wlc, sed, nq, sh, dh, lblc, lblcr" in message


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
