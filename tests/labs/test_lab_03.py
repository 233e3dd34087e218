"""Lab 03 (DNS round robin): the reference passes, the long TTL fails the bound with the
measured window, and the walk-through measures what the guide says it shows.

Each grade runs the whole walk-through on a real network (about 25 s); the walk-through's
measurements are read back from the ``measured.json`` it leaves in its run folder.
"""

import json

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
    m = measured(run_folder, "reference")

    # 1. dns1 hands out every record, rotating by one per query
    assert m["rotation"]["rotates"] and m["rotation"]["addresses"] == 3
    assert len(set(m["rotation"]["first"][:3])) == 3

    # 2. the PCs that ask dns1 every time split evenly; behind the carrier gateway with a
    #    long TTL every phone goes to one server; a short TTL makes the gateway ask again
    short, long = m["spread"]["short"], m["spread"]["long"]
    for spread in (short, long):
        assert spread["max_share"]["PCs"] <= 0.45, spread["table"]
    assert long["max_share"]["phones"] >= 0.9, long["table"]
    assert long["gateway_lookups"] == 1 and short["gateway_lookups"] >= 2

    # 3. web2 dead, DNS unchanged: dns1 still hands it out, about a third of requests fail
    dead = m["dead_server"]
    assert 0.15 <= dead["handed_out"] <= 0.5, dead
    assert 0.15 <= dead["error_share"]["PCs"] <= 0.5, dead

    # 4. after the removal the PCs recover at once; the phones behind the gateway keep
    #    failing until its cached answer expires: about the TTL, long or short
    long_run, yours = m["long_ttl"], m["yours"]
    for run in (long_run, yours):
        assert run["closed"] and run["gateway_cached"][0] == "web2", run
        assert run["window"]["PCs"] <= run["removed_after"] + 0.5, run
        assert run["ttl"] - 1.2 <= run["window"]["phones"] <= run["ttl"] + 0.8, run
    assert long_run["damage"] > yours["damage"] + 1.5


def test_long_ttl_breaks_the_bound_with_the_measured_window(grade):
    results = grade(LAB, LAB.folder / "broken" / "long-ttl")
    bound = results["damage window within the bound"]
    assert not bound.passed
    assert "still got errors" in bound.reason and "ttl: 30" in bound.reason, bound.reason
    assert "bound 4 s" in bound.reason
    worst = results["worst case within the bound"]
    assert not worst.passed and "choose ttl <=" in worst.reason, worst.reason
    # the rest of the submission is right: only the TTL is wrong
    for name in ("dns.yaml is valid", "every server gets users", "dead server leaves DNS"):
        assert results[name].passed, results[name].line()
