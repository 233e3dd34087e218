"""The one check model (redlab.checks): a check is declared once under its name, and the
reusable checks say what a student can act on."""

import pytest

from redlab import checks, labs
from redlab.checks import check, fail, ok
from redlab.errors import ConfigError
from redlab.observe import Neighbour


def test_a_declared_check_reports_under_its_one_name_with_its_kind():
    @check("VIP moved", static=True, scored=False)
    def moved(ctx, m):
        return ok("it moved", after=m["after"])

    result = moved(None, {"after": 1.5})
    assert (result.name, result.passed, result.scored) == ("VIP moved", True, False)
    assert result.measured == {"after": 1.5}
    assert labs.check_name(moved) == "VIP moved" and moved.static and moved.scored is False


def test_a_check_that_returns_something_else_is_an_error_naming_it():
    @check("broken check")
    def broken(ctx, m):
        return True

    with pytest.raises(TypeError, match="broken check"):
        broken(None, {})


def test_the_framework_runs_declared_checks_by_their_kind(tmp_path):
    lab_folder = tmp_path / "09-model"
    (lab_folder / "submission").mkdir(parents=True)
    (lab_folder / "lab.py").write_text(
        "from redlab.checks import check, ok, fail\n"
        "from redlab.errors import ConfigError\n"
        "TITLE = 'model'\n"
        "def walkthrough(ctx):\n"
        "    raise ConfigError('no network today')\n"
        "@check('files are there', static=True, scored=False)\n"
        "def files(ctx, m):\n"
        "    return ok('yes')\n"
        "@check('served')\n"
        "def served(ctx, m):\n"
        "    return fail('never reached')\n"
        "CHECKS = [files, served]\n")
    results = labs.Lab(lab_folder).grade(out=None)
    assert [(r.name, r.passed, r.scored) for r in results] == [
        ("walk-through", False, True), ("files are there", True, False),
        ("served", False, True)]
    assert "did not finish" in results[2].reason


def test_lab_data_reads_the_yaml_beside_the_lab_and_names_a_bad_one(tmp_path):
    (tmp_path / "lab.yaml").write_text("bound: 3.5\n")
    assert checks.lab_data(tmp_path / "lab.py") == {"bound": 3.5}
    (tmp_path / "lab.yaml").write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        checks.lab_data(tmp_path / "lab.py")
    (tmp_path / "lab.yaml").unlink()
    with pytest.raises(ConfigError, match="cannot be read"):
        checks.lab_data(tmp_path / "lab.py")


def test_within_compares_with_the_bound_and_says_where_it_comes_from():
    good = checks.within(1.2, 3.0, "client1 was without service for", "3 x advert_int 1 s")
    assert good.passed and "1.20 s" in good.reason and "3 x advert_int 1 s" in good.reason
    late = checks.within(3.4, 3.0, "client1 was without service for", "3 x advert_int 1 s")
    assert not late.passed and "more than the bound 3.00 s" in late.reason
    never = checks.within(None, 3.0, "takeover", "3 x advert_int 1 s")
    assert not never.passed and "never" in never.reason


def test_arp_moved_names_the_mac_seen_and_the_one_expected():
    new = "00:00:00:00:00:02"
    assert checks.arp_moved(Neighbour("10.0.0.100", new, "REACHABLE"), new, "client1",
                            "10.0.0.100").passed
    stale = checks.arp_moved(Neighbour("10.0.0.100", "00:00:00:00:00:01", "STALE"), new,
                             "client1", "10.0.0.100", owner="web2", why="web2 sent no GARP")
    assert not stale.passed and "00:00:00:00:00:01" in stale.reason and "web2's" in stale.reason
    assert "nothing" in checks.arp_moved(None, new, "client1", "10.0.0.100").reason


def test_held_by_one_fails_for_none_and_for_a_split():
    assert checks.held_by_one(["web2"], "10.0.0.100").passed
    assert "gone" in checks.held_by_one([], "10.0.0.100").reason
    split = checks.held_by_one(["web1", "web2"], "10.0.0.100")
    assert not split.passed and "web1 and web2" in split.reason


def test_script_parses_quotes_the_shells_complaint(tmp_path):
    good = tmp_path / "check.sh"
    good.write_text("#!/bin/bash\nif true; then echo ok; fi\n")
    assert checks.script_parses(good).passed
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/bash\nif true; then echo ok\n")
    result = checks.script_parses(bad)
    assert not result.passed and "bad.sh does not parse" in result.reason
    assert str(tmp_path) not in result.reason
    assert "missing" in checks.script_parses(tmp_path / "none.sh").reason


def test_served_by_counts_who_answered():
    good = checks.served_by(["web1", "web2", "web1"], {"web1", "web2"})
    assert good.passed and good.measured["counts"] == {"web1": 2, "web2": 1}
    wrong = checks.served_by(["web1", None, "web3"], {"web1", "web2"})
    assert not wrong.passed and "no answer 1" in wrong.reason and "web3 1" in wrong.reason
    assert not checks.served_by([], {"web1"}).passed


def test_at_most_counts_against_its_bound():
    good = checks.at_most(3, 5, "requests lost", of=40)
    assert good.passed and good.reason == "3 of 40 requests lost, at most 5 allowed"
    bad = checks.at_most(6, 5, "requests lost")
    assert not bad.passed and bad.reason == "6 requests lost, more than the 5 allowed"
    assert (bad.measured["value"], bad.measured["bound"]) == (6, 5)


def test_a_drill_expectation_is_a_check_of_the_same_model():
    """The drill's recover_within and a lab's time bound are the one ``within`` check, and
    a drill record keeps the result as ``CheckResult.record()``."""
    from redlab.drill.expect import Observations, evaluate_one

    samples = [dict(t=n / 10, ok=not 10 <= n < 25, latency=0.001, served_by="web1",
                    error=None) for n in range(50)]
    obs = Observations(marks={"crash": 1.0}, entries={"crash": {"fault": "host_crash"}},
                       samples={"web": samples}, probe_interval={"web": 0.1}, end=5.0)
    record = evaluate_one({"after": "crash", "recover_within": 2.0, "probe": "web"}, obs)
    same = checks.within(1.5, 2.0, "service back after", "the drill's recover_within")
    same.name = "service back within 2 s after crash (probe web)"
    assert record == same.record()
    assert record["measured"] == 1.5 and record["bound"] == 2.0 and record["passed"]
    lost = evaluate_one({"after": "crash", "max_lost": 10, "probe": "web"}, obs)
    assert lost["reason"] == checks.at_most(15, 10, "requests lost", of=40).reason


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="the jail needs root")
def test_a_hostile_deploy_script_is_parsed_never_run_and_a_link_is_refused(tmp_path):
    """Lab 02's deploy.sh through checks.script_parses: a script that would mark the disk
    and kill its parent only parses; a symbolic link to a secret is a failed check with the
    jail's sentence (not an exception that stops grading, not the secret)."""
    from redlab.labs import Context, find

    lab = find("02")
    check_deploy = lab.module.deploy_script_present
    marker = tmp_path / "ran"
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "deploy.sh").write_text("touch %s\nkill -9 $PPID\necho $(touch %s)\n"
                                   % (marker, marker))
    result = check_deploy(Context(lab, sub), {})
    assert result.passed and not marker.exists(), result.reason
    (sub / "deploy.sh").unlink()
    (sub / "deploy.sh").symlink_to("/etc/shadow")
    result = check_deploy(Context(lab, sub), {})
    assert not result.passed and "deploy.sh is a symbolic link" in result.reason, result.reason
    assert str(sub) not in result.reason and "root:" not in result.reason
