"""Lab 08 maintenance without loss: the reference drains web1, lets its download finish,
upgrades it and returns it with nothing lost; each broken procedure fails the check it is
named for, with a reason that says what to change."""

from redlab import labs

LAB = labs.find("08")
SCORED = {"no request lost", "new version served"}
INFO = {"procedure.yaml is valid"}


def graded(grade, case):
    """The checks of a broken case; its walk-through must have run to the end."""
    results = grade(LAB, LAB.folder / "broken" / case)
    walk = results.get("walk-through")
    assert walk is None, walk.reason
    return results


def test_reference_passes(grade):
    results = grade(LAB, LAB.reference)
    assert not [r.line() for r in results.values() if not r.passed]
    assert {n for n, r in results.items() if r.scored} == SCORED
    assert {n for n, r in results.items() if not r.scored} == INFO
    lost = results["no request lost"]
    assert "the 600000-byte download from web1 complete" in lost.reason, lost.reason
    assert lost.measured["probe_failed"] == 0 and lost.measured["download_bytes"] == 600000
    served = results["new version served"]
    assert "web1 is back in the pool (weight 1)" in served.reason, served.reason
    assert "with 'web1 v2'" in served.reason and served.measured["page"] == "web1 v2"


def test_one_name_per_check(tmp_path):
    """Names reported = names grade() gives a check it could not run (no procedure.yaml:
    the walk-through stops before any network)."""
    results = LAB.grade(tmp_path)
    assert {r.name for r in results} == SCORED | INFO | {"walk-through"}
    walk = next(r for r in results if r.name == "walk-through")
    assert "has no procedure.yaml" in walk.reason


def test_no_drain_loses_requests_and_cuts_the_download(grade):
    """nginx stopped while web1 is in the pool: the requests sent there before its health
    check takes it out are refused, and the download it serves is cut."""
    results = graded(grade, "no-drain")
    lost = results["no request lost"]
    assert not lost.passed and lost.scored, lost.reason
    assert "client1's download from web1 was cut after" in lost.reason, lost.reason
    assert "steps[0] stopped nginx while web1 was still in the pool (weight 1): drain it " \
        "first" in lost.reason, lost.reason
    assert lost.measured["download_bytes"] != 600000, lost.reason
    served = results["new version served"]
    assert served.passed, served.reason         # it did get upgraded and returned


def test_no_wait_cuts_the_download(grade):
    """Drained, but stopped at once: no new request reaches web1, and the one connection
    it still carries is cut -- the reason says which wait is missing."""
    results = graded(grade, "no-wait")
    lost = results["no request lost"]
    assert not lost.passed, lost.reason
    assert lost.measured["probe_failed"] == 0, lost.reason    # drained: the probe is fine
    assert "client1's download from web1 was cut after" in lost.reason, lost.reason
    assert "steps[1] stopped nginx while web1 still carried 1 established connection(s) " \
        "(ActiveConn 1): wait for them to finish first (when: {active: 0}" in lost.reason
    served = results["new version served"]
    assert served.passed, served.reason


def test_no_restart_serves_the_old_version(grade):
    """Drained and waited, but the upgrade is tried while nginx runs: nothing is lost and
    nothing changes."""
    results = graded(grade, "no-restart")
    lost = results["no request lost"]
    assert lost.passed, lost.reason
    served = results["new version served"]
    assert not served.passed
    assert served.reason.startswith("web1 still answers 'web1 v1', not 'web1 v2': steps[1] "
                                    "(upgrade) was refused because nginx was running"), \
        served.reason
