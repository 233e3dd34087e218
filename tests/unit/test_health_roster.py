"""The checker's pure core (redlab.health.roster, redlab.health.records): what a check
result is logged and sent as, the server list followed, the states re-sent after a
reconnect, when the next check starts.  No threads, no sockets, no clock."""

import json
from types import SimpleNamespace

import pytest

from controllers.health import DOWN, UP, CheckResult
from redlab.health import records
from redlab.health.roster import Roster, check_interval, next_check, plan_follow


def server(name, ip="10.0.0.11", port=80):
    return SimpleNamespace(name=name, ip=ip, port=port, weight=1)


def result(name, ok, at, detail=None, latency=None):
    detail = detail or ("http: HTTP 200 in 1.0 ms" if ok else "http: connection refused")
    return CheckResult(server=name, ok=ok, detail=detail, at=at, latency=latency)


@pytest.fixture
def roster():
    return Roster([server("web1"), server("web2", "10.0.0.12")], rise=2, fall=2,
                  check_type="http")


# --- the log lines and messages ------------------------------------------------------

def test_a_check_is_one_log_line_and_no_message(roster):
    recorded = roster.record(result("web1", True, 100.0, latency=0.001))
    assert recorded.lines == [{"t": 100.0, "server": "web1", "ok": True,
                               "detail": "http: HTTP 200 in 1.0 ms", "latency": 0.001,
                               "type": "http"}]
    assert recorded.transition is None and recorded.message is None


def test_a_state_change_is_logged_and_sent_with_the_last_detail_as_reason(roster):
    assert roster.record(result("web2", False, 100.0)).message is None      # fall 2: 1 of 2
    recorded = roster.record(result("web2", False, 100.5, detail="http: HTTP 500, expected 200"))
    check, change = recorded.lines
    assert check["ok"] is False and check["latency"] is None
    assert change == {"t": 100.5, "event": "health", "server": "web2", "state": DOWN,
                      "reason": "http: HTTP 500, expected 200", "checks": 2, "type": "http"}
    assert recorded.message == {"cmd": "health", "server": "web2", "state": DOWN,
                                "reason": "http: HTTP 500, expected 200", "t": 100.5,
                                "type": "http"}
    assert (recorded.transition.server, recorded.transition.state) == ("web2", DOWN)


def test_a_result_of_a_server_removed_during_its_check_is_dropped(roster):
    roster.follow([dict(name="web1", ip="10.0.0.11", port=80)], now=50.0)
    recorded = roster.record(result("web2", False, 100.0))
    assert recorded.lines == [] and recorded.message is None


def test_lines_are_one_json_object_each():
    line = records.encode(records.roster_line("added", "web3", 12.5))
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == {"t": 12.5, "event": "added", "server": "web3"}


def test_the_server_list_in_a_controller_reply():
    listed = [dict(name="web1", ip="10.0.0.11", port=80)]
    assert records.servers_in({"ok": True, "servers": listed}) == listed
    assert records.servers_in({"ok": True, "servers": []}) == []             # all removed
    assert records.servers_in({"ok": True}) is None                          # no such command
    assert records.servers_in({"ok": False, "servers": listed}) is None
    assert records.servers_in(None) is None                                  # not JSON


# --- following the server list -------------------------------------------------------

def test_plan_follow_keeps_the_orders_and_a_repeated_name_once():
    wanted = [dict(name="web3", ip="10.0.0.13", port=80), dict(name="web1", ip="x", port=1),
              dict(name="web4", ip="10.0.0.14", port=80),
              dict(name="web3", ip="10.0.0.33", port=8080)]
    added, removed = plan_follow(["web1", "web2", "web5"], wanted)
    assert [(s["name"], s["ip"]) for s in added] == [("web3", "10.0.0.33"),
                                                     ("web4", "10.0.0.14")]
    assert removed == ["web2", "web5"]
    assert plan_follow(["web1"], [dict(name="web1", ip="x", port=1)]) == ([], [])


def test_follow_adds_servers_down_and_drops_removed_ones(roster):
    web2 = roster.servers[1]
    added, removed, lines = roster.follow(
        [dict(name="web1", ip="10.0.0.11", port=80),
         dict(name="web3", ip="10.0.0.13", port="8080")], now=60.0)
    assert [(s.name, s.ip, s.port) for s in added] == [("web3", "10.0.0.13", 8080)]
    assert removed == ["web2"]
    assert lines == [{"t": 60.0, "event": "removed", "server": "web2"},
                     {"t": 60.0, "event": "added", "server": "web3"}]
    assert [s.name for s in roster.servers] == ["web1", "web3"]
    assert roster.state.state("web3") == DOWN                      # keepalived's alpha
    assert not roster.follows(web2) and roster.follows(added[0])
    # web3 joins after rise (2) passing checks
    assert roster.record(result("web3", True, 61.0)).transition is None
    assert roster.record(result("web3", True, 61.5)).message["state"] == UP


def test_a_server_removed_and_added_again_is_a_new_one(roster):
    old = roster.servers[1]
    roster.follow([dict(name="web1", ip="10.0.0.11", port=80)], now=1.0)
    added, _, _ = roster.follow([dict(name="web1", ip="10.0.0.11", port=80),
                                 dict(name="web2", ip="10.0.0.12", port=80)], now=2.0)
    assert not roster.follows(old)              # the old thread stops
    assert roster.follows(added[0])


# --- the states re-sent after a reconnect ---------------------------------------------

def test_snapshot_leaves_out_unchecked_servers_and_says_why_for_the_others(roster):
    assert roster.snapshot(now=10.0) == []                       # nothing checked yet
    roster.record(result("web1", True, 11.0))
    assert roster.snapshot(now=12.0) == [
        {"cmd": "health", "server": "web1", "state": UP, "reason": "http: HTTP 200 in 1.0 ms",
         "t": 12.0, "type": "http"}]                             # never changed: last check
    roster.record(result("web2", False, 13.0))
    roster.record(result("web2", False, 13.5, detail="http: HTTP 500, expected 200"))
    roster.record(result("web2", False, 14.0, detail="http: connection refused"))
    assert roster.snapshot(now=15.0)[1] == {
        "cmd": "health", "server": "web2", "state": DOWN,
        "reason": "http: HTTP 500, expected 200", "t": 13.5, "type": "http"}  # the change


# --- when the next check starts ------------------------------------------------------

def test_checks_keep_to_their_grid():
    assert next_check(100.0, 0.2, now=100.05) == (100.2, pytest.approx(0.15))


def test_a_check_that_overran_is_followed_at_once_and_the_grid_restarts():
    assert next_check(100.0, 0.2, now=100.7) == (100.7, 0)
    assert next_check(100.0, 0.2, now=100.2) == (100.2, 0)      # due exactly now: no wait
    due, delay = next_check(100.7, 0.2, now=100.75)
    assert (due, delay) == (pytest.approx(100.9), pytest.approx(0.15))


def test_an_interval_of_zero_does_not_spin():
    assert check_interval(SimpleNamespace(interval=0)) == 0.01
    assert check_interval(SimpleNamespace(interval=2)) == 2.0
