"""Lab 02 hot standby: the reference passes; deploying to the active only fails."""

from redlab import labs

LAB = labs.find("02")


def failing(results):
    return [r.line() for r in results.values() if not r.passed]


def test_reference_passes_every_check(grade):
    results = grade(LAB, LAB.reference)
    assert not failing(results)
    assert results["failover time"].measured["time_to_recover"] < 10


def test_deploying_to_the_active_only_fails_with_the_reason(grade):
    results = grade(LAB, LAB.folder / "broken" / "active-only")
    standby = results["standby gets every update"]
    assert not standby.passed and "still serves 'web2 v1'" in standby.reason
    after = results["clients get the update after failover"]
    assert not after.passed and "web2 was not up to date" in after.reason
    assert results["failover time"].passed and results["ARP entry followed the GARP"].passed
