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


def test_a_dead_web_service_is_invisible_to_vrrp_alone(run_folder):
    """The notes: a correct failover needs a health check (not graded: a demonstration)."""
    from redlab.labs import Context
    lines = []
    m = LAB.module.service_down(Context(LAB, LAB.reference, run_folder=run_folder,
                                        out=lines.append))
    alone, checked = m["vrrp_alone"], m["with_check"]
    # VRRP alone: web1 keeps the VIP over the whole master-down interval; nothing answers
    assert alone["web1"] == "MASTER" and alone["web2"] == "BACKUP" and alone["vip_on_web1"]
    assert alone["sent"] > 10 and alone["answered"] == 0, alone
    # with the vrrp_script: web1 goes FAULT, web2 takes over and serves
    assert checked["web1"] == "FAULT" and checked["web2"] == "MASTER", checked
    assert checked["time_to_detect"] is not None and checked["served_after"] == "web2"
    assert checked["time_to_recover"] >= checked["time_to_detect"] > 0, checked
    assert "VRRP saw a live host, not a dead service" in "\n".join(lines)
