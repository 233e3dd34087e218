"""Lab 05 load balancer: an HTTP check passes; a TCP check misses the 500 and the hang."""

from redlab import labs

LAB = labs.find("05")


def test_reference_passes(grade):
    results = grade(LAB, LAB.reference)
    assert not [r.line() for r in results.values() if not r.passed]


def test_a_tcp_check_is_graded_failing_with_the_reason(grade, run_folder):
    results = grade(LAB, LAB.folder / "broken" / "tcp-check")
    r500 = results["catches HTTP 500"]
    assert not r500.passed and "a tcp check cannot see an HTTP error" in r500.reason
    hang = results["catches a hang"]
    assert not hang.passed and "still accepts TCP" in hang.reason
    assert results["service file is valid"].passed


def test_the_walkthrough_shows_the_matrix_and_the_ipvs_comparison(run_folder):
    """What `redlab run 05` shows: the live matrix (A), the reference (B), IPVS (C)."""
    from redlab.scenarios.health_matrix import EXPECTED
    from redlab.system import kernel_has_ipvs
    lines = []
    _ctx, m = LAB.walkthrough(LAB.reference, run_folder=run_folder, out=lines.append)
    out = "\n".join(lines)
    for fault, seen_by in EXPECTED.items():
        row = m["matrix"][fault]
        assert {check for check, t in row.items() if t is not None} == seen_by, (fault, row)
    assert "| HTTP 500 | missed | missed |" in out
    # the price of an L7 check: its checks are requests in the web server's log, the others not
    cost = m["check_cost"]
    assert 0 < cost["nginx_requests"] <= cost["checks"]["http"] and cost["paths"] == ["/health"]
    assert cost["checks"]["icmp"] > 0 and cost["checks"]["tcp"] > 0
    assert set(m["detected"]) == {"web2", "web3"}
    # the load balancer is a virtual server: its own MAC for the VIP, the VIP on no real
    # server, and the real server sees the client's own address (NAT)
    vs = m["virtual_server"]
    assert vs["vip_mac"] and vs["vip_mac"] not in vs["server_macs"], vs
    assert vs["vip_holders"] == [] and vs["web1_saw_requests_from"] == ["10.0.0.201"], vs
    assert {s for _, s in m["after"]} == {"web1"}
    assert "keepalived -t: valid" in out
    # scale out: web4 joins once its checks pass and takes its share; the others keep theirs
    grow = m["scale_out"]
    assert grow["server"] == "web4" and grow["joined_after"] > 0
    assert grow["spread"] == {"web1": 6, "web2": 6, "web3": 6, "web4": 6}, grow
    # ... and the capacity grew: the same batch of downloads, each server limited to the
    # same rate, is spread over four servers instead of three and finishes sooner
    assert grow["before"]["files"] == {"web1": 4, "web2": 4, "web3": 4}, grow
    assert grow["after"]["files"] == {"web1": 3, "web2": 3, "web3": 3, "web4": 3}, grow
    assert grow["after"]["seconds"] < 0.9 * grow["before"]["seconds"], grow
    if kernel_has_ipvs():
        assert m["ipvs"]["detected"] is not None, m["ipvs"]
        assert {s for _, s in m["ipvs"]["after"]} == {"web1"}, m["ipvs"]
        assert "Masq" in m["ipvs"]["table"]
    else:
        assert m["ipvs"] is None
        assert "Part C is skipped: this kernel" in out and "has no ip_vs (IPVS)" in out
