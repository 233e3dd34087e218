"""Lab 04, DNS round robin + VIP takeover: the reference passes, the broken cases fail GARP.

Four real networks (reference about 30-40 s with parts 2 and 3, each broken case 8-14 s:
parts 2 and 3 run only once part 1 passes); the observers' parsers and the check logic are
judged without a network (here and in tests/unit/test_vip_takeover.py).
"""

import json
from pathlib import Path

from redlab import addressing as ap
from redlab import labs
from redlab.scenarios.vip_takeover import wrong_sender

LAB = labs.find("04")
M = LAB.module
V1 = ap.vip(1)


def failing(results):
    return "\n".join(r.line() for r in results.values() if not r.passed)


def measured_of(run_folder, submission):
    return json.loads((run_folder / submission / "vip-takeover" / "measured.json").read_text())


def test_reference_passes_and_three_servers_show_the_notes_problems(grade, run_folder, capsys):
    results = grade(LAB, LAB.reference)
    out = capsys.readouterr().out
    assert all(r.passed for r in results.values()), failing(results) + "\n" + out[-4000:]
    assert set(results) == {"script is valid bash", "takes over failed peer vip",
                            "sends gratuitous arp", "releases own vip when service broken",
                            "no duplicate vip with two servers",
                            "gives vip back to recovered owner",
                            "returning server waits until its vip is free"}
    assert [n for n, r in results.items() if not r.scored] == [
        "script is valid bash", "returning server waits until its vip is free"]
    m = measured_of(run_folder, "reference")
    two, three = m["details"]["two"], m["details"]["three"]

    # DNS round robin: every VIP, in turn
    assert sorted(two["dns"][0]) == [ap.vip(n) for n in (1, 2, 3)]
    assert two["dns"][0] != two["dns"][1]
    assert V1 in two["dns_during"]                     # DNS does not know web1 is broken
    assert two["ping_web1_ok"] and two["curl_web1"] == "000"    # L3 says up, L7 says down

    # two servers: release first, then takeover, the client's entry follows the GARP
    assert 0 <= two["own_released_after"] < two["peer_took_after"] < M.DATA["takeover_wait"]
    assert two["arp_before"] == M.mac_of(1) and two["arp_after"] == M.mac_of(2)
    assert 0 <= two["arp_moved_after_take"] < 0.5
    assert two["garps_from_taker"] >= 1
    t = two["takeover"]
    assert t["recovered"] and t["served_before"] == "web1" and t["served_after"] == "web2"
    assert two["peer_took_after"] <= t["time_to_recover"] < two["peer_took_after"] + 1.0
    assert 0 < t["requests_lost"] < t["requests_sent"]
    back = two["return"]
    assert back["back"] and back["holders"] == ["web1"]
    assert 0 <= back["peer_released_after"] < back["owner_took_after"]
    assert back["arp_after"] == M.mac_of(1) and back["timeline"]["served_after"] == "web1"
    assert two["duplicates"] == []
    # "... and the other way round": web2 breaks, web1 takes VIP2, web2 gets it back
    way = two["other_way"]
    assert way["own_released_after"] is not None and way["peer_took_after"] is not None, way
    assert way["back"] and way["owner_took_after"] is not None, way

    # three servers: both survivors take over, two MACs answer for one IP, the client flaps
    assert set(three["takers"]) == {"web2", "web3"}, three
    assert three["duplicate_holders"] == ["web2", "web3"]
    assert three["dad_answers"] == ["web3" if three["dad_from"] == "web2" else "web2"]
    assert three["arping_d_exit"] == 1 and three["arping_d_answers"] == ["web2", "web3"]
    for name in ("web2", "web3"):
        assert any("taking over %s" % V1 in line for line in three["logs"][name]), three["logs"]
        assert three["garps"][name] >= 2
    seq = three["client_arp_sequence"]
    assert seq[0] == "web1" and {"web2", "web3"} <= set(seq) and three["client_arp_changes"] >= 2
    # ... and bringing web1 back needed both to let go
    ret = three["return"]
    assert ret["back"] and ret["holders"] == ["web1"]
    assert set(ret["released_after"]) == {"web2", "web3"}
    assert max(ret["released_after"].values()) <= ret["owner_took_after"]
    assert ret["arp_after"] == "web1"

    # the narration says it with the same numbers
    assert "TWO SERVERS HOLD %s: web2 and web3" % V1 in out
    assert "web2 took %s over: %.2f s after the fault" % (V1, two["peer_took_after"]) in out

    # part 3, "a stopped server is hard to bring back": web1 returns while web2 holds VIP1
    naive, careful = m["details"]["rejoin"]["naive"], m["details"]["rejoin"]["careful"]
    # naive: web1 claims at once -> two holders (redlab.observe.holders), two ARP answers,
    # client1's entry follows the last announcement and its requests go to both servers
    assert naive["max_holders"] == 2 and ["web1", "web2"] in [
        h["holders"] for h in naive["holders"]], naive["holders"]
    assert naive["dad_answers"] == ["web1", "web2"]
    assert naive["client_arp_sequence"][:3] == ["web2", "web1", "web2"], naive
    assert naive["served_after_claim"] == ["web1", "web2"], naive["served_sequence"]
    # careful: web2 answered web1's question, released, and only then web1 took VIP1
    assert careful["asked"] == ["web2"]
    assert [h["holders"] for h in careful["holders"]] == [["web2"], ["web2"], [], ["web1"]]
    assert careful["max_holders"] == 1 and careful["dad_answers"] == ["web1"]
    assert careful["served_after_claim"] == ["web1"]
    assert careful["fresh"] == ["web1"] * M.DATA["fresh_resolutions"]
    assert 0 <= careful["lost"] <= M.DATA["rejoin_max_lost"], careful
    assert results["returning server waits until its vip is free"].passed
    assert "%d of %d requests lost" % (careful["lost"], careful["requests"]) in out


def test_no_garp_fails_only_the_garp_check_with_the_reason(grade, run_folder):
    results = grade(LAB, LAB.folder / "broken" / "no-garp")
    garp = results["sends gratuitous arp"]
    assert not garp.passed
    assert "after web2 took VIP %s, client1 still had web1's MAC %s" % (V1, M.mac_of(1)) \
        in garp.reason
    assert "the takeover sent no gratuitous ARP" in garp.reason
    assert "received 0 from web2" in garp.reason
    others = {name: r for name, r in results.items()
              if name != "sends gratuitous arp" and r.scored}
    assert all(r.passed for r in others.values()), failing(others)
    assert "not run: part 3" in results["returning server waits until its vip is free"].reason
    # the client kept sending to web1 for the whole bounded watch: no recovery before the return
    m = measured_of(run_folder, "no-garp")
    two = m["details"]["two"]
    assert two["arp_after"] == M.mac_of(1) and not two["takeover"]["recovered"]
    assert "three" not in m["details"] and "rejoin" not in m["details"]   # after part 1


def test_iputils_arping_command_with_debians_arping_announces_the_wrong_address(grade):
    """`arping -U -c 2 -I intf VIP` is iputils syntax (arping(8), not the course notes');
    Habets' arping sends "tell <own IP>"."""
    results = grade(LAB, LAB.folder / "broken" / "garp-wrong-source")
    garp = results["sends gratuitous arp"]
    assert not garp.passed
    assert "client1 still had web1's MAC %s" % M.mac_of(1) in garp.reason
    assert "but with sender address %s" % ap.web(2) in garp.reason
    assert "Thomas Habets" in garp.reason and "arping -U -S %s" % V1 in garp.reason
    others = {name: r for name, r in results.items()
              if name != "sends gratuitous arp" and r.scored}
    assert all(r.passed for r in others.values()), failing(others)


def test_a_script_that_only_claims_its_vip_scores_nothing(grade, run_folder):
    """Issue 8: nothing moves, so no VIP is ever on two servers and web1 "has its VIP back"
    after the repair -- two checks passed on doing nothing, and "script is valid bash" on
    any file.  Now every scored check fails, each saying what is missing."""
    results = grade(LAB, LAB.folder / "broken" / "claim-only")
    assert labs.score(list(results.values())) == (0, 5), failing(results)
    assert results["script is valid bash"].passed and not results["script is valid bash"].scored
    took = results["takes over failed peer vip"]
    assert "web2 never added %s" % V1 in took.reason and "ip addr add" in took.reason
    released = results["releases own vip when service broken"]
    assert "web1 kept its VIP %s" % V1 in released.reason and "ip addr del" in released.reason
    for name in ("no duplicate vip with two servers", "gives vip back to recovered owner"):
        reason = results[name].reason
        assert "not checked: web2 never took %s over" % V1 in reason, reason
        assert "see 'takes over failed peer vip'" in reason, reason
    m = measured_of(run_folder, "claim-only")
    two = m["details"]["two"]
    assert two["vips_up"] and two["duplicates"] == [] and two["return"]["back"], two


def test_one_name_per_check(tmp_path):
    """Names reported = names grade() gives a check it could not run (no takeover.sh: the
    walk-through stops before any network)."""
    results = LAB.grade(tmp_path)
    assert {r.name for r in results} == {
        "walk-through", "script is valid bash", "takes over failed peer vip",
        "sends gratuitous arp", "releases own vip when service broken",
        "no duplicate vip with two servers", "gives vip back to recovered owner",
        "returning server waits until its vip is free"}


# -- without a network ---------------------------------------------------------------------

def _two(**over):
    two = dict(vips_up=True, peer_took_after=1.8, own_released_after=0.1,
               arp_moved_after_take=0.01, garps_from_taker=2, wrong_sender=[],
               takeover=dict(recovered=True, served_after="web2", time_to_recover=1.85,
                             requests_lost=30), duplicates=[],
               **{"return": dict(back=True, holders=["web1"], peer_released_after=0.3,
                                 owner_took_after=0.9, arp_ok=True,
                                 timeline=dict(requests_lost=12))})
    two.update(over)
    return {"details": {"two": two, "rejoin": _rejoin()}}


def _rejoin(careful_holders=1, lost=2):
    naive = dict(holders=[dict(step="", holders=["web2"]), dict(step="", holders=["web1", "web2"])],
                 served_after_claim=["web1", "web2"])
    careful = dict(max_holders=careful_holders, lost=lost, requests=50)
    return dict(naive=naive, careful=careful)


def test_check_reasons_point_at_the_fix():
    ctx = labs.Context(LAB, LAB.submission)
    assert all(check(ctx, _two()).passed for check in M.CHECKS)
    r = M.sends_gratuitous_arp(ctx, _two(arp_moved_after_take=None,
                                               wrong_sender=[ap.web(2)], garps_from_taker=0))
    assert not r.passed and "Thomas Habets" in r.reason and "-S %s" % V1 in r.reason
    r = M.releases_own_vip_when_service_broken(ctx, _two(own_released_after=None))
    assert not r.passed and "ip addr del" in r.reason
    r = M.no_duplicate_vip_with_two_servers(ctx, _two(duplicates=[dict(
        vip=V1, hosts=["web1", "web2"], after=0.4, seconds=None)]))
    assert not r.passed and "%s was on web1 and web2 at the same time for the rest of the run" \
        % V1 in r.reason
    r = M.gives_vip_back_to_recovered_owner(ctx, _two(**{"return": dict(
        back=False, holders=["web1", "web2"])}))
    assert not r.passed and "on web1 + web2 instead of web1 alone" in r.reason
    r = M.takes_over_failed_peer_vip(ctx, {"details": {"two": dict(
        vips_up=False, holders_at_start="VIP1 on nobody")}})
    assert not r.passed and "add its own VIP" in r.reason
    for check in (M.no_duplicate_vip_with_two_servers, M.gives_vip_back_to_recovered_owner):
        r = check(ctx, _two(peer_took_after=None))
        assert not r.passed and "nothing moved" in r.reason
    r = M.returning_server_waits(ctx, {"details": {"rejoin": _rejoin(careful_holders=2)}})
    assert not r.passed and not r.scored and "2 holders at most" in r.reason
    r = M.returning_server_waits(ctx, {"details": {"rejoin": _rejoin(lost=11)}})
    assert not r.passed and "11 requests lost (bound 10)" in r.reason
    r = M.returning_server_waits(ctx, {"details": {"rejoin": _rejoin()}})
    assert r.passed and "VIP1 on web1 + web2 at once, client1 served by web1 and web2" in r.reason


def test_starter_is_valid_bash_but_unfinished():
    ctx = labs.Context(LAB, LAB.submission)
    assert M.script_is_valid_bash(ctx, {}).passed
    text = Path(LAB.submission / M.SCRIPT).read_text()
    assert "ip addr del" not in text and "arping" not in text      # the student's work


def test_only_an_announcement_naming_another_address_counts_as_wrong_sender(tmp_path):
    """Captured from a CI run: web2's kernel kept asking who has the VIP (tell web2's own
    address, target MAC 00:..:00) after it took the VIP; that is not a student's GARP."""
    from scapy.layers.l2 import ARP, Ether
    from scapy.utils import wrpcap

    from redlab.recorders import read_arp_pcap
    web2_mac, web2 = M.mac_of(2), ap.web(2)

    def request(psrc, hwdst, pdst=V1):
        return Ether(src=web2_mac, dst="ff:ff:ff:ff:ff:ff") / ARP(
            op=1, hwsrc=web2_mac, psrc=psrc, hwdst=hwdst, pdst=pdst)

    kernel = request(web2, "00:00:00:00:00:00")          # the neighbour table's own probe
    probe = request("0.0.0.0", "00:00:00:00:00:00")     # arping -0 (is anyone holding it?)
    garp = request(V1, "ff:ff:ff:ff:ff:ff")              # arping -U -S VIP VIP
    habets = request(web2, "ff:ff:ff:ff:ff:ff")          # arping -U VIP (no -S)
    other_vip = request(web2, "ff:ff:ff:ff:ff:ff", pdst=ap.vip(2))

    def wrong(*packets):
        path = tmp_path / "arp.pcap"
        wrpcap(str(path), list(packets))
        return wrong_sender(read_arp_pcap(path), V1, web2_mac)

    assert wrong(kernel, probe, garp, other_vip) == []
    assert wrong(kernel, habets) == [web2]
