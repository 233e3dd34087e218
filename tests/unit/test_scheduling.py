"""``redlab.scenarios.scheduling`` without a network: the kernel's rules on paper, the
prediction task (variants, the predictions file, the verdict of one state), the kernel
recording's guard and the pictures.  The bench itself runs in tests/labs/test_lab_06.py."""

import json
import re

import pytest

from redlab import addressing as ap
from redlab.errors import ConfigError
from redlab.scenarios import scheduling as sch

SERVERS = ("web1", "web2", "web3")
WEIGHTS = {"web1": 3, "web2": 2, "web3": 1}
CLIENT, VIP = ap.client(1, ap.SERVICE), ap.vip()
DATA = {"picks": 3, "variants": [
    {"wlc": {"weights": [3, 2, 1], "active": [1, 1, 0], "inactive": [0, 0, 4]}},
    {"wlc": {"weights": [1, 1, 1], "active": [0, 0, 0], "inactive": [0, 0, 0]}},
    {"wlc": {"weights": [2, 2, 1], "active": [2, 1, 0], "inactive": [0, 0, 3]}}]}


def idle(weights=WEIGHTS):
    return [(n, weights[n], 0, 0) for n in SERVERS]


def spread_of(picks):
    return [picks.count(n) for n in SERVERS]


# -- when lc is fine: the rules the guide's part 1b measures -----------------------------

def test_with_only_short_connections_lc_is_rr_and_ignores_the_weights():
    lc = sch.kernel_picks("lc", idle(), "S" * 12, CLIENT, VIP)
    rr = sch.kernel_picks("rr", idle(), "S" * 12, CLIENT, VIP)
    assert lc == rr and spread_of(lc) == [4, 4, 4]
    assert spread_of(sch.kernel_picks("wlc", idle(), "S" * 12, CLIENT, VIP)) == [6, 4, 2]


def test_with_held_connections_lc_spreads_them_evenly_where_wlc_follows_the_weights():
    load = "HHS" * 6
    held = {algo: [p for p, letter in zip(sch.kernel_picks(algo, idle(), load, CLIENT, VIP),
                                          load) if letter == "H"] for algo in ("rr", "lc", "wlc")}
    assert spread_of(held["rr"]) == [6, 6, 0]
    assert spread_of(held["lc"]) == [4, 4, 4]
    assert spread_of(held["wlc"]) == [6, 4, 2]


def test_with_equal_weights_lc_and_wlc_pick_alike():
    equal = dict.fromkeys(SERVERS, 1)
    for load in ("HHS" * 6, "S" * 12, "H" * 9):
        assert sch.kernel_picks("lc", idle(equal), load, CLIENT, VIP) == \
            sch.kernel_picks("wlc", idle(equal), load, CLIENT, VIP)


def test_a_state_is_picked_by_the_kernel_rules():
    task = sch.PredictionTask(DATA, SERVERS)
    state = task.states(0)["wlc"]
    assert sch.state_picks(state, SERVERS, CLIENT, VIP) == ["web3", "web1", "web2"]


def test_sh_and_dh_buckets_are_the_guides():
    at = sch.hash_buckets(SERVERS, WEIGHTS, CLIENT, VIP)
    assert list(at["table"][:6]) == ["web1", "web1", "web1", "web2", "web2", "web3"]
    assert (at["sh"], at["sh_server"], at["dh"], at["dh_server"]) == (140, "web1", 248, "web3")


# -- the prediction task ----------------------------------------------------------------

def test_variants_expand_to_named_servers_and_a_name_never_gets_variant_0():
    task = sch.PredictionTask(DATA, SERVERS)
    state = task.states(2)["wlc"]
    assert state == {"lb_algo": "wlc", "picks": 3, "servers": {
        "web1": {"weight": 2, "active": 2, "inactive": 0},
        "web2": {"weight": 2, "active": 1, "inactive": 0},
        "web3": {"weight": 1, "active": 0, "inactive": 3}}}
    task.states(0)["wlc"]["picks"] = 99                 # a copy: the task is unchanged
    assert task.states(0)["wlc"]["picks"] == 3
    assert task.variant_of(None) == task.variant_of("  ") == 0
    assert task.variant_of(" Alice ") == task.variant_of("alice") in (1, 2)
    assert {task.variant_of("s%d" % n) for n in range(40)} == {1, 2}
    assert task.describe(state) == "wlc, weights 2/2/1, ActiveConn 2/1/0, InActConn 0/0/3"


def test_the_predictions_file_problems_are_each_one_sentence(tmp_path):
    task = sch.PredictionTask(DATA, SERVERS)
    states = task.states(0)
    assert task.read(tmp_path, states)[1][0].startswith("there is no predictions.yaml")
    (tmp_path / "predictions.yaml").write_text("wlc: [web1, web9]\nsed: []\nstudent: [a]\n")
    predictions, problems = task.read(tmp_path, states)
    assert predictions == {"wlc": ["web1", "web9"]}
    assert "state wlc names web9; the servers are web1, web2, web3" in problems
    assert "state wlc needs 3 picks, you gave 2" in problems
    assert "unknown state(s) sed; the states are wlc" in problems
    assert any(p.startswith("student must be your name") for p in problems)
    (tmp_path / "predictions.yaml").write_text("wlc: [web1\n")
    assert "is not valid YAML (line" in task.read(tmp_path, states)[1][0]
    (tmp_path / "predictions.yaml").write_text("student: Bob\nwlc: [web3, web1, web2]\n")
    assert task.read(tmp_path, states) == ({"wlc": ["web3", "web1", "web2"]}, [])
    assert task.whose(None, tmp_path) == (task.variant_of("bob"), "Bob")
    assert task.whose("carol", tmp_path) == (task.variant_of("carol"), "carol")


def test_a_wrong_state_names_the_first_difference_but_never_the_answer_in_a_class():
    task = sch.PredictionTask(DATA, SERVERS)
    picked, mine = ["web3", "web1", "web2"], ["web1", "web1", "web2"]
    right = task.judge("wlc", picked, picked, "state wlc", "no +1", class_mode=True)
    assert right.passed and "picked" not in right.measured
    helpful = task.judge("wlc", picked, mine, "state wlc", "no +1", class_mode=False)
    assert not helpful.passed and helpful.measured["picked"] == picked
    assert "first difference at pick 1: the controller picked web3, you predicted web1" \
        in helpful.reason and "Hint: no +1" in helpful.reason
    hidden = task.judge("wlc", picked, mine, "state wlc", "no +1", class_mode=True)
    assert not hidden.passed and "web3" not in hidden.reason and "picked" not in hidden.measured
    assert "pick 1 of 3 is the first wrong one" in hidden.reason
    empty = task.judge("wlc", picked, [], "state wlc", "no +1", class_mode=False)
    assert not empty.passed and "has no prediction for it" in empty.reason
    short = task.judge("wlc", picked, picked[:2], "state wlc", "no +1", class_mode=False)
    assert "you gave 2 picks, not 3" in short.reason


def test_the_listing_shows_a_names_states_and_what_to_write():
    task = sch.PredictionTask(DATA, SERVERS)
    text = task.listing("alice", "`redlab run 06`")
    assert text.startswith("student alice: variant %d" % task.variant_of("alice"))
    assert "Write `student: alice` at the top of predictions.yaml" in text
    assert task.listing(None, "x").startswith("no student name: variant 0")


# -- the kernel recording's guard and the pictures ---------------------------------------

def test_a_recording_of_another_load_is_refused_with_the_command_to_record(tmp_path):
    setting = dict(pattern="HS", servers=list(SERVERS), weights=[3, 2, 1], client=CLIENT,
                   vip=VIP)
    path = tmp_path / "kernel-picks.json"
    with pytest.raises(ConfigError, match="is missing: record the kernel's picks with `rec`"):
        sch.kernel_orders(path, setting, "rec")
    schedulers = {algo: {"order": ["web1"]} for algo in sch.CLASSIC}
    path.write_text(json.dumps(dict(setting, schedulers=schedulers)))
    assert sch.kernel_orders(path, setting, "rec")["wlc"] == ["web1"]
    path.write_text(json.dumps(dict(setting, pattern="SS", schedulers=schedulers)))
    with pytest.raises(ConfigError, match="recorded for the load SS.*this lab has the load HS"):
        sch.kernel_orders(path, setting, "rec")


def spread(kernel=True):
    return {algo: dict(order="123", total=dict(zip(SERVERS, t)), held=dict(zip(SERVERS, h)),
                       kernel=kernel)
            for algo, t, h in (("rr", (6, 6, 6), (6, 6, 0)), ("wrr", (9, 6, 3), (9, 3, 0)),
                               ("lc", (6, 6, 6), (4, 4, 4)), ("wlc", (8, 6, 4), (6, 4, 2)),
                               ("sed", (10, 6, 2), (6, 4, 2)), ("nq", (10, 5, 3), (6, 4, 2)),
                               ("sh", (18, 0, 0), (12, 0, 0)), ("dh", (0, 0, 18), (0, 0, 12)),
                               ("lblc", (5, 5, 8), (4, 3, 5)), ("lblcr", (8, 7, 3), (6, 4, 2)))}


def test_the_table_marks_an_uncompared_run_and_says_why():
    assert "?" not in sch.spread_table(spread(), SERVERS, WEIGHTS, 1)
    table = sch.spread_table(spread(kernel=None), SERVERS, WEIGHTS, 1)
    assert re.search(r"(?m)^lc +6 \(4 held\) +6 \(4 held\) +6 \(4 held\) +123 +\?$", table)
    assert "longer than the closing timeout (1 s)" in table


def test_the_sentences_and_the_chart_carry_the_measured_numbers():
    runs = spread()
    runs["lblc"]["order"] = "111112222233333333"
    sentences = sch.spread_sentences(runs, SERVERS, WEIGHTS)
    assert "lc held 4/4/4" in sentences[2] and "wlc held 6/4/2" in sentences[3]
    assert "the last 8 connections all went to web3 (weight 1)" in sentences[6]
    svg = sch.svg_chart(runs, SERVERS, WEIGHTS, "title")
    assert svg.startswith("<svg") and svg.count("<rect") == 1 + 2 * 3 * 10 + 3
    assert "<title>lc web3: 4 held open</title>" in svg
