"""Lab 05 load balancer: an HTTP check passes; a TCP check misses the 500 and the hang;
hiding the broken servers with weight 0 detects nothing and fails.  The walk-through
shows what ICMP sent to a web server sees, and that the service needs one public
address (the VIP) whatever the number of servers."""

import pytest

from redlab import labs
from redlab.system import kernel_has_ipvs

LAB = labs.find("05")
SCORED = {"catches HTTP 500", "catches a hang", "healthy server keeps serving",
          "detection time"}
INFO = {"service file is valid"}


def test_reference_passes(grade):
    results = grade(LAB, LAB.reference)
    assert not [r.line() for r in results.values() if not r.passed]
    assert {n for n, r in results.items() if r.scored} == SCORED
    assert {n for n, r in results.items() if not r.scored} == INFO
    assert "took web2 (HTTP 500) out after" in results["catches HTTP 500"].reason
    assert "the requests during the faults: all 12 served by web1 (web1 12), while web2 " \
        "itself answered HTTP 500" in results["healthy server keeps serving"].reason


def test_one_name_per_check(tmp_path):
    """Names reported = names grade() gives a check it could not run (no service.yaml:
    the walk-through stops before any network)."""
    results = LAB.grade(tmp_path)
    assert {r.name for r in results} == SCORED | INFO | {"walk-through"}
    assert {r.name for r in results if not r.scored} == INFO


def test_a_tcp_check_is_graded_failing_with_the_reason(grade, run_folder):
    results = grade(LAB, LAB.folder / "broken" / "tcp-check")
    r500 = results["catches HTTP 500"]
    assert not r500.passed and "a tcp check cannot see an HTTP error" in r500.reason
    hang = results["catches a hang"]
    assert not hang.passed and "still accepts TCP" in hang.reason
    assert results["service file is valid"].passed and not results["service file is valid"].scored
    # web1 answered some requests, which used to be enough: every one must come from it now
    healthy = results["healthy server keeps serving"]
    assert not healthy.passed, healthy.reason
    assert " not served by web1 (" in healthy.reason
    assert "web2 HTTP 500 " in healthy.reason and "no answer " in healthy.reason, healthy.reason


def test_weight_zero_hides_the_broken_servers_and_fails(grade):
    """The issue's gamed submission: the starter's TCP check with weight 0 on web2 and web3
    scored 4 of 5 -- nobody reached the broken servers, though nothing detected them."""
    results = grade(LAB, LAB.folder / "broken" / "weight-zero")
    r500 = results["catches HTTP 500"]
    assert not r500.passed and r500.reason.startswith("web2 has weight 0 in service.yaml")
    assert "give every server a weight of at least 1 and let the health check take web2 " \
        "out" in r500.reason
    hang = results["catches a hang"]
    assert not hang.passed and hang.reason.startswith("web3 has weight 0 in service.yaml")
    detect = results["detection time"]
    assert not detect.passed and "not taken out within 5 s: web2, web3" in detect.reason
    # web1 did serve everything: that part is true, and the only point it earns
    assert results["healthy server keeps serving"].passed
    assert labs.score(list(results.values())) == (1, 4)


def test_every_answer_during_the_faults_must_come_from_web1():
    """One good answer used to be enough; one wrong answer out of twelve now fails."""
    check = LAB.module.healthy_server_keeps_serving
    after = [(200, "web1")] * 11 + [(500, "web2")]
    m = dict(after=after, broken_direct={"web2": 500, "web3": 0})
    result = check(None, m)
    assert not result.passed and "1 of 12 not served by web1" in result.reason
    assert "web1 11, web2 HTTP 500 1" in result.reason
    assert check(None, dict(m, after=[(200, "web1")] * 12)).passed
    stale = check(None, dict(m, after=[(200, "web1")] * 12, broken_direct={"web2": 200}))
    assert not stale.passed and stale.reason.startswith("not measured")


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
    # the notes' ICMP check sent to the web server (their parenthesis): it saw the host
    # crash and the link down (rows above), and said "up" through every fault of nginx
    blind = m["icmp_blind_spot"]
    assert set(blind) == {"nginx stopped", "HTTP 500", "hang"}, blind
    for fault, pings in blind.items():
        assert 0 < pings["answered"] == pings["sent"], (fault, pings)
    assert "pings answered while nginx was stopped" in out
    assert "ping says the host and the path to it are up, not that the web service is" in out
    # the price of an L7 check: its checks are requests in the web server's log, the others not
    cost = m["check_cost"]
    assert 0 < cost["nginx_requests"] <= cost["checks"]["http"] and cost["paths"] == ["/health"]
    assert cost["checks"]["icmp"] > 0 and cost["checks"]["tcp"] > 0
    assert set(m["detected"]) == {"web2", "web3"}
    # the load balancer is a virtual server: its own MAC for the VIP, the VIP on no real
    # server, and the real server sees the client's own address (NAT)
    # one public address for the service: three servers answered, and client1's wire saw
    # only the VIP (DNS round robin needs one per server: lab 03)
    seen = m["public_addresses"]
    assert seen["servers"] == ["web1", "web2", "web3"], seen
    assert seen["destinations"] == ["10.0.0.100"] and seen["sources"] == ["10.0.0.100"], seen
    assert "Public addresses the service needs: 1 for 3 servers" in out
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


@pytest.mark.ipvs
@pytest.mark.skipif(not kernel_has_ipvs(load=True), reason="this kernel has no ip_vs: "
                    "tests/network/test_ipvs_guest.py runs this in a stock-kernel guest")
def test_part_c_the_kernel_s_ipvs_takes_the_broken_servers_out(run_folder):
    """Part C alone (the full walk-through runs it too where the kernel has ip_vs): the
    reference's service.yaml on keepalived + IPVS, web2 answering 500 and web3 hanging."""
    from redlab.labs import Context
    lines = []
    ctx = Context(LAB, LAB.reference, run_folder=run_folder, out=lines.append)
    m = {}
    LAB.module.part_c(ctx, m, LAB.module.read_service(LAB.reference / "service.yaml"))
    ipvs = m["ipvs"]
    assert ipvs["detected"] is not None, "\n".join(lines)
    assert {(status, server) for status, server in ipvs["after"]} == {(200, "web1")}, ipvs
    assert "Masq" in ipvs["table"], ipvs["table"]
