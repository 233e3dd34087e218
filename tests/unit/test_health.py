"""controllers.health: UP/DOWN per real server with HAProxy rise/fall counting."""

import pytest

from controllers.health import DOWN, UP, CheckResult, HealthState, Transition


def feed(health, server, pattern, start=0.0, step=1.0):
    """Record results from a string ("x" = failed, "o" = ok); return the transitions."""
    out = []
    for i, mark in enumerate(pattern):
        result = CheckResult(server, mark == "o", "HTTP 200" if mark == "o" else "timeout",
                             at=start + i * step)
        out.append(health.record(result))
    return out


def states_after_each(health, server, pattern):
    states = []
    for i, mark in enumerate(pattern):
        health.record(CheckResult(server, mark == "o", "", at=float(i)))
        states.append(health.state(server))
    return states


# --- rise and fall ---------------------------------------------------------------------


def test_default_rise_and_fall_of_one_follow_every_result():
    health = HealthState(["web1"])
    assert states_after_each(health, "web1", "xoxxo") == [DOWN, UP, DOWN, DOWN, UP]


def test_fall_three_needs_three_failures_in_a_row():
    health = HealthState(["web1"], fall=3)
    assert states_after_each(health, "web1", "xxoxxx") == [UP, UP, UP, UP, UP, DOWN]


def test_rise_two_needs_two_successes_in_a_row():
    health = HealthState(["web1"], rise=2, fall=1)
    assert states_after_each(health, "web1", "xoxoo") == [DOWN, DOWN, DOWN, DOWN, UP]


def test_alternating_results_never_flap_with_fall_two():
    health = HealthState(["web1"], rise=2, fall=2)
    transitions = feed(health, "web1", "xo" * 50)
    assert transitions == [None] * 100
    assert health.state("web1") == UP
    assert health.transitions == []


def test_alternating_results_never_bring_a_down_server_up_with_rise_two():
    health = HealthState(["web1"], rise=2, fall=2, initial=DOWN)
    assert feed(health, "web1", "ox" * 50) == [None] * 100
    assert health.state("web1") == DOWN


def test_transition_tells_state_time_checks_and_reason():
    health = HealthState(["web1", "web2"], rise=2, fall=3)
    out = feed(health, "web1", "oxxx", start=10.0)
    assert out[:3] == [None, None, None]
    assert out[3] == Transition(server="web1", state=DOWN, at=13.0, checks=3,
                                reason="3 failed checks in a row (fall 3): timeout")
    out = feed(health, "web1", "oo", start=20.0)
    assert out[1] == Transition(server="web1", state=UP, at=21.0, checks=2,
                                reason="2 successful checks in a row (rise 2): HTTP 200")


def test_single_check_reason_is_singular():
    health = HealthState(["web1"])
    transition = health.record(CheckResult("web1", False, "connection refused", at=1.0))
    assert transition.reason == "1 failed check in a row (fall 1): connection refused"
    assert transition.checks == 1


def test_further_failures_while_down_report_nothing():
    health = HealthState(["web1"], fall=2)
    assert feed(health, "web1", "xxxxx") == [None, Transition(
        "web1", DOWN, 1.0, "2 failed checks in a row (fall 2): timeout", 2), None, None,
        None]


def test_servers_are_counted_separately():
    health = HealthState(["web1", "web2"], fall=2)
    health.record(CheckResult("web1", False, "", at=0))
    health.record(CheckResult("web2", False, "", at=0))
    health.record(CheckResult("web2", True, "", at=1))
    health.record(CheckResult("web1", False, "", at=1))
    assert (health.state("web1"), health.state("web2")) == (DOWN, UP)


def test_initial_down_needs_rise_successes():
    health = HealthState(["web1"], rise=3, initial=DOWN)
    assert health.up() == []
    assert states_after_each(health, "web1", "ooo") == [DOWN, DOWN, UP]


# --- history, last result, membership --------------------------------------------------


def test_history_is_kept_oldest_first():
    health = HealthState(["web1", "web2"])
    feed(health, "web1", "x", start=1.0)
    feed(health, "web2", "x", start=2.0)
    feed(health, "web1", "o", start=3.0)
    assert [(t.server, t.state, t.at) for t in health.transitions] == [
        ("web1", DOWN, 1.0), ("web2", DOWN, 2.0), ("web1", UP, 3.0)]


def test_last_result_is_remembered():
    health = HealthState(["web1"], fall=3)
    assert health.last("web1") is None
    result = CheckResult("web1", False, "timeout", at=4.0, latency=None)
    health.record(CheckResult("web1", True, "HTTP 200", at=3.0, latency=0.002))
    health.record(result)
    assert health.last("web1") is result


def test_up_lists_servers_in_insertion_order():
    health = HealthState(["web3", "web1", "web2"])
    health.record(CheckResult("web1", False, "", at=0))
    assert health.up() == ["web3", "web2"]
    health.add("web0")
    assert health.up() == ["web3", "web2", "web0"]


def test_add_with_initial_state_and_remove():
    health = HealthState(["web1"])
    health.add("web2", initial=DOWN)
    assert health.state("web2") == DOWN
    assert health.servers() == ["web1", "web2"]
    health.record(CheckResult("web1", False, "", at=0))
    health.remove("web1")
    assert health.servers() == ["web2"]
    assert len(health.transitions) == 1            # history survives removal
    with pytest.raises(KeyError, match="web1"):
        health.state("web1")
    with pytest.raises(KeyError, match="web1"):
        health.record(CheckResult("web1", True, "", at=1))


def test_readding_a_server_starts_fresh():
    health = HealthState(["web1"], fall=2)
    health.record(CheckResult("web1", False, "", at=0))
    health.remove("web1")
    health.add("web1")
    assert health.record(CheckResult("web1", False, "", at=1)) is None  # count restarted
    assert health.last("web1").at == 1


def test_adding_a_followed_server_twice_is_refused():
    health = HealthState(["web1"])
    with pytest.raises(ValueError, match="already followed"):
        health.add("web1")
    with pytest.raises(ValueError):
        HealthState(["web1", "web1"])


def test_unknown_server_error_lists_known_ones():
    health = HealthState(["web1", "web2"])
    with pytest.raises(KeyError) as info:
        health.state("web9")
    assert "'web9'" in str(info.value) and "known: web1, web2" in str(info.value)
    with pytest.raises(KeyError):
        health.remove("web9")


@pytest.mark.parametrize("kwargs", [{"rise": 0}, {"fall": 0}, {"fall": True},
                                    {"rise": 1.5}, {"initial": "UP"}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        HealthState(["web1"], **kwargs)
