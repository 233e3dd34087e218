"""Lab 02 hot standby: the reference passes; deploying to the active only fails; an
empty deploy.sh scores nothing (what keepalived does is information, not the student's)."""

from redlab import labs

LAB = labs.find("02")
SCORED = {"standby gets every update", "clients get the update after failover"}
INFO = {"deploy script present", "failover time", "ARP entry followed the GARP"}


def failing(results):
    return [r.line() for r in results.values() if not r.passed]


def test_reference_passes_every_check(grade):
    results = grade(LAB, LAB.reference)
    assert not failing(results)
    assert {n for n, r in results.items() if r.scored} == SCORED
    assert {n for n, r in results.items() if not r.scored} == INFO
    assert results["failover time"].measured["time_to_recover"] < 10


def test_one_name_per_check(tmp_path):
    """The name a check reports is the name grade() gives it when the walk-through cannot
    run (a missing deploy.sh: no network is built), so a class's columns never split."""
    results = LAB.grade(tmp_path)
    assert {r.name for r in results} == SCORED | INFO | {"walk-through"}
    assert {r.name for r in results if not r.scored} == INFO


def test_deploying_to_the_active_only_fails_with_the_reason(grade):
    results = grade(LAB, LAB.folder / "broken" / "active-only")
    standby = results["standby gets every update"]
    assert not standby.passed and "still serves 'web2 v1'" in standby.reason
    after = results["clients get the update after failover"]
    assert not after.passed and "web2 was not up to date" in after.reason
    assert results["failover time"].passed and results["ARP entry followed the GARP"].passed
    assert labs.score(list(results.values())) == (0, 2)


def test_an_empty_deploy_script_scores_nothing(grade):
    """The issue's gamed submission: an empty deploy.sh scored 3 of 5 -- "deploy script
    present", "failover time" and "ARP entry followed the GARP" passed on keepalived's
    work.  Those are information now; both scored checks fail and say what to write."""
    results = grade(LAB, LAB.folder / "broken" / "empty")
    assert labs.score(list(results.values())) == (0, 2), failing(results)
    standby = results["standby gets every update"]
    assert not standby.passed and "deploy.sh did not publish the page" in standby.reason
    assert "still serves" not in standby.reason
    assert "send the file it is given ($1) to both servers" in standby.reason
    assert "$STANDBY" in standby.reason and "/deploy/index.html" in standby.reason
    after = results["clients get the update after failover"]
    assert not after.passed and "web2 was not up to date" in after.reason
    assert "$STANDBY" in after.reason
    # keepalived still did its part: shown, not counted
    for name in INFO:
        assert not results[name].scored and results[name].passed, results[name].line()
    assert results["deploy script present"].line().startswith("INFO  deploy script present")


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
