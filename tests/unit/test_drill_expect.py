"""Expectations and measures added for load-balanced and DNS drills, on hand-made
observations (no network): ``served_by``, and detection by a health check."""

from pathlib import Path

import pytest

from redlab.drill.expect import Observations, evaluate_one, measure

CRASH = {"id": "crash", "at": 2.0, "fault": "host_crash", "host": "web1"}


def answers(pattern, step=0.05, start=0.0):
    """``pattern``: one character per request, ``1``/``2``/``3`` served by web1..3,
    ``x`` failed; ``d`` a DNS answer listing web2 and web3's addresses."""
    result = []
    for n, c in enumerate(pattern):
        t = round(start + n * step, 3)
        served = {"x": None, "d": "10.0.0.12,10.0.0.13"}.get(c, "web%s" % c)
        result.append(dict(t=t, ok=c != "x", latency=0.001, served_by=served,
                           error="TimeoutError" if c == "x" else None))
    return result


def obs(samples, health=(), masters=()):
    return Observations(marks={"crash": 1.0}, entries={"crash": CRASH},
                        samples={"web": samples}, probe_interval={"web": 0.05}, end=3.0,
                        health=list(health), masters=list(masters),
                        ips={"web1": "10.0.0.11", "web2": "10.0.0.12"})


def served(pattern, host="web2", within=1.0):
    return evaluate_one({"after": "crash", "served_by": host, "probe": "web",
                         "within": within}, obs(answers(pattern)))


def test_served_by_measures_from_the_entry_to_the_last_change_of_server():
    # 20 answers before the crash (t < 1.0), then 6 failures, then web2 only
    result = served("1" * 20 + "x" * 6 + "2" * 20)
    assert result["passed"] and result["measured"] == pytest.approx(0.3)
    assert "all 20 answers" in result["reason"]


def test_served_by_fails_when_another_server_still_answers_last():
    result = served("1" * 20 + "2" * 10 + "1")
    assert not result["passed"] and "the last answer came from web1" in result["reason"]


def test_served_by_fails_with_the_measured_value_past_its_deadline():
    result = served("1" * 20 + "x" * 30 + "2" * 5, within=1.0)
    assert not result["passed"] and result["measured"] == pytest.approx(1.5)


def test_served_by_reads_a_dns_probe_s_answers_by_address():
    assert served("1" * 20 + "d" * 5)["passed"]
    assert not served("1" * 20 + "d" * 5, host="web1")["passed"]


def test_served_by_needs_a_good_answer():
    result = served("1" * 20 + "x" * 10)
    assert not result["passed"] and "no good answer" in result["reason"]


def test_a_health_check_marking_a_server_down_is_the_detection():
    o = obs(answers("1" * 20 + "x" * 10 + "2" * 20),
            health=[(0.5, "web3", "down"), (1.6, "web1", "down"), (1.7, "web1", "up")])
    values, intervals = measure(o, {"probes": [{"name": "web"}]})
    assert values["time_to_detect"] == pytest.approx(0.6)
    assert values["requests_lost"] == 10
    assert intervals[0] == dict(name="detect", start=1.0, end=1.6)


def test_the_earliest_of_vrrp_and_health_detection_counts():
    o = obs(answers("1" * 40), health=[(1.6, "web1", "down")], masters=[(1.2, "web2")])
    assert measure(o, {"probes": [{"name": "web"}]})[0]["time_to_detect"] == \
        pytest.approx(0.2)


def test_a_series_compares_a_variant_or_another_drill_file():
    from redlab.drill.engine import series_plan
    a = {"drill": "vrrp-crash", "variants": {"use_vmac": {}}}
    b = {"drill": "vrrp-crash-tuned", "variants": {}}
    assert series_plan(a) == {"default": (a, "default")}
    assert series_plan(a, "use_vmac") == {"default": (a, "default"),
                                          "use_vmac": (a, "use_vmac")}
    assert series_plan(a, b) == {"vrrp-crash": (a, "default"),
                                 "vrrp-crash-tuned": (b, "default")}
    assert list(series_plan(a, dict(b, drill="vrrp-crash"))) == ["vrrp-crash (A)",
                                                                  "vrrp-crash (B)"]


def not_served(pattern, host="web1", within=1.0):
    return evaluate_one({"after": "crash", "not_served_by": host, "probe": "web",
                         "within": within}, obs(answers(pattern)))


def test_not_served_by_measures_until_the_host_s_last_answer():
    result = not_served("1" * 20 + "1" * 6 + "x" * 4 + "2" * 20)
    assert result["passed"] and result["measured"] == pytest.approx(0.5)
    assert not not_served("1" * 20 + "1" * 30 + "2" * 5)["passed"]       # 1.5 s > 1 s
    assert "still named web1" in not_served("1" * 20 + "2" * 5 + "1")["reason"]


def test_not_served_by_reads_dns_answers_and_holds_from_the_entry():
    result = not_served("1" * 20 + "d" * 10)
    assert result["passed"] and result["measured"] == 0.0
    assert not not_served("1" * 20 + "d" * 10, host="web2")["passed"]


def test_fails_within_is_when_the_first_failure_ended():
    item = {"after": "crash", "fails_within": 0.5, "probe": "web"}
    failing = answers("1" * 20 + "1" * 4 + "x" * 6 + "2" * 5)   # sent at 1.2 s, ends 1.201
    result = evaluate_one(item, obs(failing))
    assert result["passed"] and result["measured"] == pytest.approx(0.201)
    assert "TimeoutError" in result["reason"]
    assert not evaluate_one(dict(item, fails_within=0.1), obs(failing))["passed"]
    result = evaluate_one(item, obs(answers("1" * 40)))
    assert not result["passed"] and "never failed" in result["reason"]


def test_the_measures_of_the_first_fault_stop_at_the_next_fault():
    second = {"id": "second", "at": 2.0, "fault": "host_crash", "host": "web2"}
    o = obs(answers("1" * 20 + "x" * 4 + "2" * 16 + "x" * 10 + "3" * 10))
    o.entries["second"], o.marks["second"] = second, 2.0
    values, _ = measure(o, {"probes": [{"name": "web"}]})
    assert values["requests_lost"] == 4 and values["time_to_recover"] == pytest.approx(0.2)


def test_the_matrix_declares_down_after_fall_failures_in_a_row():
    from redlab.scenarios.health_matrix import detected
    samples = answers("1" * 20 + "x" + "1" + "x" * 3 + "1" * 5, step=0.2)
    assert detected(samples, 4.0, 6.0, fall=2) == pytest.approx(0.601)
    assert detected(samples, 4.0, 6.0, fall=1) == pytest.approx(0.001)
    assert detected(samples, 4.0, 4.5, fall=2) is None


def test_compare_takes_a_variant_or_another_drill_file(tmp_path):
    from redlab.cli import _compared
    from redlab.drill.schema import load_drill
    from redlab.errors import RedlabError
    root = Path(__file__).parents[2] / "drills"
    drill = load_drill(root / "vrrp-crash.yaml")
    assert _compared("use_vmac", drill) == "use_vmac"
    assert _compared(None, drill) is None
    other = _compared(str(root / "advert-int.yaml"), drill)
    assert other["drill"] == "advert-int"
    with pytest.raises(RedlabError) as info:
        _compared(str(tmp_path / "nope.yaml"), drill)
    assert str(info.value).startswith("--compare %s: no such drill file; give a variant of "
                                      "vrrp-crash (use_vmac, no_garp_reaction)"
                                      % (tmp_path / "nope.yaml"))


def test_runs_go_where_the_daemons_that_drop_root_can_enter(tmp_path):
    from redlab.cli import others_can_enter
    assert others_can_enter(Path("/usr/share/not-yet/report"))
    closed = Path(tmp_path.parts[0], *tmp_path.parts[1:3])     # /tmp/pytest-of-root: 0700
    assert closed.stat().st_mode & 0o001 == 0
    assert not others_can_enter(tmp_path / "report")


def test_a_request_in_flight_when_the_window_closes_is_not_the_window_s_failure():
    hang = {"id": "hang", "at": 2.0, "fault": "hang", "host": "web1"}
    o = obs(answers("1" * 40 + "x" * 5))        # the last five fail from t=2.0 on
    o.entries["hang"], o.marks["hang"] = hang, 2.0
    o.samples["web"][39].update(ok=False, latency=0.5, served_by=None, error="TimeoutError")
    item = {"during": ["crash", "hang"], "never_failed": "web"}
    # sent at 1.95 s, still in flight at 2.0 s when the hang began: the hang's failure
    assert evaluate_one(item, o)["passed"]
    o.samples["web"][38].update(ok=False, latency=0.001, error="HTTP 500")
    result = evaluate_one(item, o)
    assert not result["passed"] and "1 of" in result["reason"] and "HTTP 500" in result["reason"]


def test_a_window_that_ends_at_a_step_ends_when_the_step_began():
    # web1 drained at 1.0 s (web2 serves), undrained by a step that began at 1.9 s and
    # returned at 2.0 s: a request web1 served at 1.95 s came after the undrain took effect
    back = {"id": "back", "when": {"server": "web1", "health": "up"}, "step": "undo",
            "of": "crash"}
    o = obs(answers("1" * 20 + "2" * 19 + "1" * 6))
    o.entries["back"], o.marks["back"] = back, 2.0
    item = {"during": ["crash", "back"], "not_served_by": "web1", "probe": "web",
            "within": 0.5}
    assert not evaluate_one(item, o)["passed"]     # without the step's beginning: web1 at 1.95
    o.began["back"] = 1.9
    result = evaluate_one(item, o)
    assert result["passed"], result
