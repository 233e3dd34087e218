"""Lab 03 (DNS round robin): the reference passes, the long TTL fails the bound with the
measured window, and the walk-through measures what the guide says it shows.

Each grade runs the whole walk-through on a real network (about 25 s); the walk-through's
measurements are read back from the ``measured.json`` it leaves in its run folder.
"""

import json
import re

import pytest

from redlab import labs

LAB = labs.find("03")


def failing(results):
    return "\n".join(r.line() for r in results.values() if not r.passed)


def measured(run_folder, case):
    return json.loads((run_folder / case / "dns-rr" / "measured.json").read_text())


def test_reference_passes_and_the_walkthrough_shows_the_lessons(grade, run_folder):
    results = grade(LAB, LAB.reference)
    assert all(r.passed for r in results.values()), failing(results)
    assert [n for n, r in results.items() if not r.scored] == ["dns.yaml is valid"]
    m = measured(run_folder, "reference")

    # 1. dns1 hands out every record, rotating by one per query; the design needs as many
    #    public addresses as servers: the distinct addresses dns1 handed out, one per server
    assert m["rotates"] and m["addresses_per_answer"] == 3
    assert len(set(m["rotation"].split()[:3])) == 3, m["rotation"]
    assert m["public_addresses"] == m["servers"] == 3, m["detail"]["rotation"]

    # 2. the PCs that ask dns1 every time split evenly; pc3's browser cache asks again
    #    with the short TTL only; the carrier gateway's Squid (5.7) keeps the name for its
    #    negative_dns_ttl whatever the TTL: one lookup and every phone on one server, both
    for key in ("busiest_share_short", "busiest_share_long"):
        assert m[key]["pcs"] <= 0.45, m["detail"]["spread"]
        assert m[key]["phones"] >= 0.9, m["detail"]["spread"]
    assert m["busiest_share_long"]["browser"] >= 0.9, m["detail"]["spread"]["long"]
    assert m["browser_lookups_short"] >= 2 and m["browser_lookups_long"] == 1
    assert m["gateway_lookups_short"] == m["gateway_lookups_long"] == 1
    # Squid's own page: right after its lookup it means to keep the name GATEWAY_HOLD
    # seconds (its clock ticks in whole seconds), far beyond the short TTL of 1 s
    proxy = LAB.module.DATA["proxy"]
    hold = proxy["negative_dns_ttl"]
    assert hold - 1 <= m["gateway_keeps_short"] <= hold > m["short_ttl"], m["detail"]["spread"]

    # 3. web2 dead, DNS unchanged: dns1 still hands it out, about a third of requests fail
    assert 0.15 <= m["dead_handed_out"] <= 0.5, m["detail"]["dead_server"]
    assert 0.15 <= m["dead_error_share"]["pcs"] <= 0.5, m["detail"]["dead_server"]
    # ... and what they saw: the PCs' requests to the dead address time out (the browser's
    # own error page); Squid tries the next address, so no phone gets an error
    kinds = m["detail"]["dead_server"]["what_failed"]
    assert kinds["pcs"] and all(not k.startswith("HTTP") for k in kinds["pcs"]), kinds
    assert m["dead_error_share"]["phones"] == 0 and not kinds["phones"], kinds

    # 4. both damage runs start from the worst case: the gateway's Squid and pc3's browser
    #    took an answer that starts with web2 before the crash, and still held it then (how
    #    long before depends on the load: each cache holds it for its own time, measured:
    #    Squid's count from its lookup, pc3 the TTL).  After the removal the PCs recover at
    #    once; pc3 fails until its cached answer expires (the TTL); the phones never fail:
    #    Squid leaves web2 for the next address, at most a slow answer
    for run, ttl in (("long", m["long_ttl"]), ("yours", m["ttl"])):
        r = {k[len(run) + 1:]: v for k, v in m.items() if k.startswith(run + "_")}
        assert r["closed"] and r["gateway_cached"].startswith("web2"), r
        assert r["browser_cached"] == "web2" and -ttl < r["browser_cached_at"] < 0, r
        assert r["window"]["pcs"] <= r["removed_after"] + 0.5, r
        assert hold - 1 <= r["gateway_keeps"] <= hold, r
        assert -r["gateway_keeps"] < r["gateway_cached_at"] < 0, r
        assert abs(r["window"]["browser"] - (r["browser_cached_at"] + ttl)) <= 0.5, r
        assert r["errors"]["phones"] == 0 and r["window"]["phones"] == 0, r
        assert all(t < proxy["patience"] + 0.5 for t in r["slow"]), r
    assert m["long_damage"] > m["yours_damage"] + 1.5
    assert m["worst_case"] == round(m["yours_removed_after"] + m["ttl"], 2)


def test_long_ttl_breaks_the_bound_with_the_measured_window(grade):
    results = grade(LAB, LAB.folder / "broken" / "long-ttl")
    bound = results["damage window within the bound"]
    assert not bound.passed
    assert "still got errors" in bound.reason and "ttl: 30 s" in bound.reason, bound.reason
    assert "bound 4 s" in bound.reason and "still failing: " in bound.reason, bound.reason
    assert "pc3 (browser cache)" in bound.reason, bound.reason
    worst = results["worst case within the bound"]
    assert not worst.passed and "choose ttl <=" in worst.reason, worst.reason
    # the rest of the submission is right: only the TTL is wrong
    for name in ("dns.yaml is valid", "every server gets users", "dead server leaves DNS"):
        assert results[name].passed, results[name].line()
    assert labs.score(list(results.values())) == (2, 4)


def test_an_invalid_dns_yaml_stops_the_walkthrough_and_its_check_is_information(tmp_path):
    """"dns.yaml is valid" is information: the untouched starter passes it, and an invalid
    file (broken/bad-ttl) stops the walk-through with the same sentence, a scored FAIL.
    Its name is the same whether it ran or not (a non-UTF-8 file makes it raise)."""
    results = {r.name: r for r in LAB.grade(LAB.folder / "broken" / "bad-ttl")}
    sentence = "dns.yaml: ttl must be a whole number of seconds from 1 to 86400, not 0"
    assert results["walk-through"].scored and sentence in results["walk-through"].reason
    valid = results["dns.yaml is valid"]
    assert not valid.scored and sentence in valid.reason
    for name in ("every server gets users", "dead server leaves DNS",
                 "damage window within the bound", "worst case within the bound"):
        assert results[name].scored and "did not finish" in results[name].reason
    assert labs.score(list(results.values())) == (0, 5)
    (tmp_path / "dns.yaml").write_bytes(b"ttl: 2\nrecords: [\xff]\n")
    names = [r.name for r in LAB.grade(tmp_path)]
    assert names.count("dns.yaml is valid") == 1 and "dns yaml is valid" not in names


@pytest.mark.parametrize("text, words", [
    ("ttl: 0\nrecords: [10.0.0.11]\nwhen_a_server_dies: keep-record\n", "ttl must be a whole number"),
    ("ttl: 2\nrecords: [10.0.0.21]\nwhen_a_server_dies: keep-record\n", "10.0.0.21 is not a web server"),
    ("ttl: 2\nrecords: [10.0.0.11, 10.0.0.11]\nwhen_a_server_dies: remove-record\n", "listed twice"),
    ("ttl: 2\nrecords: [10.0.0.11]\nwhen_a_server_dies: pray\n", "when_a_server_dies must be one of"),
])
def test_a_bad_dns_yaml_is_refused_naming_the_field(tmp_path, text, words):
    (tmp_path / "dns.yaml").write_text(text)
    result = LAB.module.check_dns_yaml_is_valid(labs.Context(LAB, tmp_path), {})
    assert not result.passed and words in result.reason, result.reason


def test_the_time_scaling_cannot_be_misread():
    """1 s in the lab stands for 1 minute: the starter's ttl 300 is five hours, and the
    starter, the guide and the grade say so (not 'five minutes')."""
    real_time = LAB.module.real_time
    assert [real_time(t) for t in (1, 4, 300, 86400)] == [
        "1 minute", "4 minutes", "5 hours", "60 days"]
    starter = (LAB.folder / "submission" / "dns.yaml").read_text()
    assert "ttl: 300" in starter and "five hours" in starter and "LAB seconds" in starter
    assert "**five hours**" in (LAB.folder / "guide.en.md").read_text()
    result = LAB.module.check_dns_yaml_is_valid(labs.Context(LAB, LAB.folder / "submission"), {})
    assert "ttl 300 s (lab seconds: 5 hours of a real service)" in result.reason, result.reason


def test_the_guides_cli_commands_show_squids_cache(run_folder):
    """`redlab run 03 --cli`, first stop: the guide's commands, typed at mininet> (their
    output saved to files, to be read here)."""
    headers, cache = run_folder / "headers.txt", run_folder / "ipcache.txt"
    first_stop = ("phone1 curl -s -i -m 3 -x http://10.0.1.1:3128 http://www.lab.example/ > %s\n"
                  "carriergw curl -s -m 2 http://127.0.0.1:3128/squid-internal-mgr/ipcache "
                  "| tail -5 > %s\n" % (headers, cache))
    _ctx, m = LAB.walkthrough(LAB.reference, run_folder=run_folder,
                              cli_script=[first_stop, ""])
    reply = headers.read_text()
    assert re.search(r"(?m)^X-Served-By: web[123]", reply) and "(squid/" in reply, reply
    # Squid's cached answer: the name, then all three addresses in the order it tries them
    page = cache.read_text()
    assert any(line.split()[:1] == ["www.lab.example"] for line in page.splitlines()), page
    assert all("%s-OK" % a in page for a in ("10.0.0.11", "10.0.0.12", "10.0.0.13")), page
    assert m["rotates"]
