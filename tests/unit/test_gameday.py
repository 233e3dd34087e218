"""Game day without a network: the seeded choice, the score on hand-made probe samples,
the printed result, the recording CLI, network.setup in a drill file, and the options of
`redlab drill` that do not go together."""

import time
from pathlib import Path

import pytest

from redlab import cli
from redlab.drill import gameday
from redlab.drill.engine import RECOVERED_GOOD
from redlab.drill.schema import load_drill
from redlab.errors import ConfigError, RedlabError
from redlab.probe import Sample
from redlab.wait import wait_until

DRILLS = Path(__file__).parents[2] / "drills"
GAMEDAY = DRILLS / "cold-standby-gameday.yaml"
GOAL = dict(restore_within=5.0, max_lost=20, probe="web")


@pytest.fixture(scope="module")
def drill():
    return load_drill(GAMEDAY)


def samples(outage=(2.0, 4.0), end=12.0, step=0.1):
    """A probe every 100 ms from 0 to ``end``, failed in ``[outage)`` (None: never back)."""
    result = []
    for n in range(round(end / step)):
        t = round(n * step, 3)
        down = outage is not None and outage[0] <= t < (outage[1] if outage[1] else end + 1)
        result.append(dict(t=t, ok=not down, latency=0.002, served_by=None if down else "web1",
                           error="TimeoutError" if down else None))
    return result


def commands(*times):
    return [dict(t=t, command="cmd %d" % i) for i, t in enumerate(times)]


# -- the choice ---------------------------------------------------------------------------

def test_the_same_seed_chooses_the_same_fault_at_the_same_moment(drill):
    assert gameday.choose(drill, 7) == gameday.choose(drill, 7)
    choices = [gameday.choose(drill, seed) for seed in range(60)]
    assert {c.fault for c in choices} == set(drill["gameday"]["faults"])
    assert all(gameday.DELAY[0] <= c.delay <= gameday.DELAY[1] for c in choices)
    assert len({c.delay for c in choices}) > 50


def test_the_targets_default_to_the_first_probe(drill):
    data = dict(drill, gameday={"faults": ["r1-crash"], "restore_within": 30})
    assert gameday.targets(data) == dict(restore_within=30, max_lost=None, probe="web")
    assert gameday.targets(drill) == dict(restore_within=60, max_lost=600, probe="web")


def test_a_drill_without_a_gameday_section_is_refused():
    vrrp = load_drill(DRILLS / "vrrp-crash.yaml")
    with pytest.raises(ConfigError, match=r"^drill vrrp-crash has no gameday section; add "
                                          r"gameday: \{faults: "):
        gameday.check_gameday(vrrp)
    assert not gameday.gameday_only(vrrp)


def test_a_drill_made_only_for_game_days_is_recognised(drill):
    assert gameday.gameday_only(drill)
    expecting = dict(drill, expect=[{"after": "r1-crash", "max_lost": 5, "probe": "web"}])
    assert not gameday.gameday_only(expecting)
    scripted = dict(drill, timeline=drill["timeline"] + [
        {"id": "back", "when": {"probe": "web", "good": 5}, "step": "undo", "of": "r1-crash"}])
    assert not gameday.gameday_only(scripted)


# -- the score ------------------------------------------------------------------------------

def test_restored_in_time_meets_both_targets():
    result = gameday.score(samples((2.0, 4.0)), 2.0, 12.0, GOAL, commands(2.5, 3.5))
    assert result["time_to_restore"] == 2.0
    assert result["requests_lost"] == 20 and result["requests_sent"] == 100
    assert result["met"] and not result["by_itself"] and result["broke"]
    assert result["commands_typed"] == 2 and result["first_command_after"] == 0.5
    assert [(i["passed"], i["measured"], i["bound"], i["reason"]) for i in result["score"]] == [
        (True, 2.0, 5.0, "service restored after 2.00 s, within 5.00 s "
                         "(the drill's restore_within)"),
        (True, 20, 20, "20 of 100 requests lost, at most 20 allowed")]


def test_restored_too_late_misses_with_the_measured_values():
    result = gameday.score(samples((2.0, 9.0)), 2.0, 12.0, GOAL, commands(3.0))
    restore, lost = result["score"]
    assert not result["met"]
    assert (restore["passed"], restore["measured"]) == (False, 7.0)
    assert restore["reason"] == "service restored after 7.00 s, more than the bound 5.00 s " \
                                "(the drill's restore_within)"
    assert (lost["passed"], lost["measured"]) == (False, 70)
    assert lost["reason"] == "70 of 100 requests lost, more than the 20 allowed"


def test_never_restored_says_how_long_it_was_down():
    result = gameday.score(samples((2.0, None)), 2.0, 11.5, GOAL, [])
    restore, lost = result["score"]
    assert result["time_to_restore"] is None and not result["met"]
    assert (restore["passed"], restore["measured"]) == (False, None)
    assert restore["reason"] == "service restored after: never measured -- the service was " \
                                "still down 9.50 s after the fault (bound 5.0 s = the drill's " \
                                "restore_within)"
    assert (lost["passed"], lost["measured"]) == (False, 95)
    assert lost["reason"] == "the service never came back: 95 of 95 requests lost before " \
                             "the run ended (bound 20)"


def test_samples_outside_the_attempt_do_not_count():
    """Before the fault the service answered; after the fault's undo it answers again."""
    down_to_the_undo = samples((2.0, 8.0))
    result = gameday.score(down_to_the_undo, 2.0, 8.0, GOAL, [])
    assert result["time_to_restore"] is None and result["requests_sent"] == 60


def test_a_service_back_before_the_first_command_came_back_by_itself():
    healed = gameday.score(samples((2.0, 3.0)), 2.0, 12.0, GOAL, commands(4.0))
    assert healed["by_itself"] and healed["met"]
    nobody = gameday.score(samples((2.0, 3.0)), 2.0, 12.0, GOAL, [])
    assert nobody["by_itself"]
    fixed = gameday.score(samples((2.0, 3.0)), 2.0, 12.0, GOAL, commands(2.5))
    assert not fixed["by_itself"]
    unbroken = gameday.score(samples(None), 2.0, 12.0, GOAL, [])
    assert not unbroken["broke"] and not unbroken["by_itself"]
    assert unbroken["time_to_restore"] == 0.0


def test_without_max_lost_there_is_one_target():
    goal = dict(GOAL, max_lost=None)
    result = gameday.score(samples((2.0, 4.0)), 2.0, 12.0, goal, [])
    assert [i["name"] for i in result["score"]] == ["service restored within 5 s (probe web)"]


def record_of(result, commands_typed=()):
    return dict(drill="cold-standby-gameday", gameday=dict(
        result, seed=1, fault="r1-crash", fault_description="host_crash r1", injected_at=2.0,
        commands=list(commands_typed)))


def test_the_result_reveals_the_fault_and_scores_each_target():
    typed = commands(2.5, 3.5)
    lines = gameday.result_lines(record_of(
        gameday.score(samples((2.0, 4.0)), 2.0, 12.0, GOAL, typed), typed))
    assert lines[0] == "game day cold-standby-gameday, seed 1: the fault was host_crash r1 " \
                       "(timeline id r1-crash), injected at t=2.00 s"
    assert lines[1].startswith("  met  service restored within 5 s (probe web) -- service "
                               "restored after 2.00 s")
    assert "2 command(s) typed, the first 0.50 s after the fault:" in lines[3]
    assert lines[4] == "    t=   2.50 s  cmd 0"
    assert lines[-1] == "  score: 2 of 2 targets met"


def test_the_result_of_a_fault_that_heals_itself_says_so():
    lines = gameday.result_lines(record_of(
        gameday.score(samples((2.0, 3.0)), 2.0, 12.0, GOAL, [])))
    assert "  no command typed" in lines
    assert "  note: the service came back by itself 1.00 s after the fault, before the first " \
           "command was typed; this fault makes a poor game day" in lines
    unbroken = gameday.result_lines(record_of(gameday.score(samples(None), 2.0, 12.0, GOAL,
                                                            [])))
    assert "this fault does not break it, so it makes no game day" in unbroken[-2]
    typed = commands(2.02)
    quick = gameday.result_lines(record_of(gameday.score(samples(None), 2.0, 12.0, GOAL, typed),
                                           typed))
    assert quick[-2] == "  note: no request failed after the fault: the first command came " \
                        "0.02 s after it"
    missed = gameday.result_lines(record_of(
        gameday.score(samples((2.0, None)), 2.0, 12.0, GOAL, [])))
    assert missed[1].startswith("  MISS service restored within 5 s (probe web) -- service "
                                "restored after: never measured")
    assert missed[-1] == "  score: 0 of 2 targets met"


# -- the CLI that records ---------------------------------------------------------------------

def test_the_cli_records_every_line_typed_and_reads_a_script(tmp_path, capsys):
    """A Mininet CLI on no network: the lines a script types reach ``on_command`` in
    order, blank lines and the end of the input do not; ``exit`` ends it."""
    script = tmp_path / "typed.txt"
    script.write_text("nodes\n\n  # where is r2?\nhelp link\nexit\nnodes\n")
    typed = []
    with open(script) as stdin, gameday._cli_output():
        gameday._recording_cli()({}, typed.append, stdin=stdin)
    assert typed == ["nodes", "# where is r2?", "help link", "exit"]
    out = capsys.readouterr().out       # the prompts, each line echoed, help's answer
    assert out.startswith("mininet> nodes\nmininet> mininet> # where is r2?\n"
                          "mininet> help link\n")
    assert "Bring link(s) between two nodes up or down." in out
    assert out.endswith("mininet> exit\n")

    typed.clear()
    with open(tmp_path / "empty.txt", "w+") as stdin, gameday._cli_output():
        gameday._recording_cli()({}, typed.append, stdin=stdin)
    assert typed == []


# -- network.setup in a drill file --------------------------------------------------------------

@pytest.mark.parametrize("new, sentence", [
    ("{unplug: r9}", "network.setup[0].unplug 'r9' names no host of topology cold_standby; "
                     "choose one of: client1, r1, r2, web1"),
    ("{run: ls}", "network.setup[0] needs host: H and run: COMMAND (a command in a host) or "
                  "unplug: H (its cables out of the switches)"),
    ("{host: rr2, run: ls}", "network.setup[0].host 'rr2' names no host of topology "
                             "cold_standby; did you mean 'r2'?"),
    ("{unplug: r2, run: ls}", "network.setup[0] has unplug and run; write one step per entry"),
])
def test_network_setup_mistakes(tmp_path, new, sentence):
    bad = tmp_path / "drill.yaml"
    bad.write_text(GAMEDAY.read_text().replace("{unplug: r2}", new, 1))
    with pytest.raises(ConfigError) as info:
        load_drill(bad)
    assert str(info.value).startswith("drill file %s, line 15: %s" % (bad, sentence))


def test_the_shipped_game_day_sets_up_both_routers_and_unplugs_the_spare(drill):
    setup = drill["network"]["setup"]
    assert setup[0] == {"unplug": "r2"}
    r1, r2 = setup[1]["run"], setup[2]["run"]
    assert (setup[1]["host"], setup[2]["host"]) == ("r1", "r2")
    assert r1.replace("r1-", "r2-") == r2           # identical but for the port names


# -- options of `redlab drill` ------------------------------------------------------------------

@pytest.mark.parametrize("argv, sentence", [
    (["--seed", "1"], "--seed chooses a game day's fault; add --gameday or drop --seed"),
    (["--gameday", "--cli"], "--gameday already opens the Mininet CLI; drop --cli"),
    (["--gameday", "--repeat", "3"], "--gameday is one run on one network with you at its "
                                     "CLI; drop --repeat"),
    (["--cli", "--compare", "use_vmac"], "--cli is one run on one network with you at its "
                                         "CLI; drop --compare"),
])
def test_drill_options_that_do_not_go_together(argv, sentence):
    args = cli.build_parser().parse_args(["drill", str(GAMEDAY)] + argv)
    with pytest.raises(RedlabError) as info:
        cli.cmd_drill(args)
    assert str(info.value) == sentence


def test_a_game_day_file_without_gameday_is_refused_before_anything_starts():
    for extra in ([], ["--cli"]):
        args = cli.build_parser().parse_args(["drill", str(GAMEDAY)] + extra)
        with pytest.raises(RedlabError, match="^drill cold-standby-gameday is a game day .*; "
                                              "run it with --gameday$"):
            cli.cmd_drill(args)
    args = cli.build_parser().parse_args(["drill", str(DRILLS / "vrrp-crash.yaml"),
                                          "--gameday"])
    with pytest.raises(ConfigError, match="has no gameday section"):
        cli.cmd_drill(args)


# -- the watcher that tells the engineer the service is back ------------------------------------

class FakeProbe:
    """What the watcher reads of a probe: its samples so far."""

    def __init__(self):
        self.seen = []

    def add(self, t, ok):
        self.seen.append(Sample(seq=len(self.seen), t=t, end=t + 0.01, ok=ok))

    def samples(self):
        return list(self.seen)


def test_the_watcher_says_once_when_the_service_is_back_and_when_time_is_up():
    probe, said = FakeProbe(), []
    probe.add(9.0, True)                        # before the fault: not counted
    probe.add(10.0, False)
    watcher = gameday._Watcher(probe, "web", since=10.0, limit_at=time.time() + 3600,
                               say=said.append, prompt=False)
    watcher.start()
    try:
        for n in range(RECOVERED_GOOD - 1):
            probe.add(10.1 + n / 10, True)
        time.sleep(3 * gameday.WATCH_EVERY)     # a few looks: one answer short, nothing said
        assert said == []
        probe.add(11.5, True)
        wait_until(lambda: said, 5, "the watcher to say the service is back")
        assert said == ["\n*** the service is back: probe web answered %d times in a row; "
                        "type exit to end the game day and see the score" % RECOVERED_GOOD]
        probe.add(12.0, False)
        wait_until(lambda: len(said) == 2, 5, "the watcher to say it is down again")
        assert said[1] == "\n*** the service is down again (probe web)"
        watcher.limit_at = time.time()
        wait_until(lambda: len(said) == 3, 5, "the watcher to say time is up")
        assert said[2].startswith("\n*** time is up: the probe stops in a moment")
        time.sleep(3 * gameday.WATCH_EVERY)
        assert len(said) == 3                   # each said once
    finally:
        watcher.stop()
    assert not watcher.is_alive() and watcher.notice_at is not None
