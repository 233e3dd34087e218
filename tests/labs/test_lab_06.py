"""Lab 06 (scheduling algorithms): the reference passes every check, the course notes'
wlc formula fails the wlc state, and the walk-through measures the spread of one load
under the ten schedulers on the real controller, and when lc is (not) "fine": it ignores
the weights, and with short connections only it schedules like rr.  Every student
predicts a variant of the states chosen from their name: answers copied from someone else
fail, and in class mode no reason shows the controller's picks."""

import itertools
import re
import subprocess
import sys
from pathlib import Path

import yaml

from redlab import addressing as ap
from redlab import cli, labs
from redlab.labs import Context

LAB = labs.find("06")
ROW = re.compile(r"^(rr|wrr|lc|wlc|sed|nq|sh|dh|lblc|lblcr) +"
                 r"(\d+) \((\d+) held\) +(\d+) \((\d+) held\) +(\d+) \((\d+) held\) +"
                 r"([123]+) +(yes|NO)$", re.M)


LC = re.compile(r"^ +(lc|wlc) +order ([123]+) +ActiveConn (\d+)/(\d+)/(\d+), "
                r"InActConn (\d+)/(\d+)/(\d+)$", re.M)


def failing(results):
    return "\n".join(r.line() for r in results.values() if not r.passed)


def spread_rows(text):
    rows = {}
    for m in ROW.finditer(text):
        numbers = [int(x) for x in m.group(*range(2, 8))]
        rows[m.group(1)] = dict(total=numbers[0::2], held=numbers[1::2], order=m.group(8),
                                kernel=m.group(9) == "yes")
    return rows


def test_reference_passes_and_the_walkthrough_shows_the_ten_schedulers(grade, capsys):
    results = grade(LAB, LAB.reference)
    out = capsys.readouterr().out
    assert all(r.passed for r in results.values()), failing(results)
    assert len(results) == len(LAB.module.CHECKS)

    rows = spread_rows(out)
    assert list(rows) == ["rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "dh", "lblc", "lblcr"], out
    # every decision of the real controller is the one the real kernel made (kernel-picks.json)
    assert all(r["kernel"] for r in rows.values()), rows
    assert all(sum(r["total"]) == 18 and sum(r["held"]) == 12 for r in rows.values()), rows
    assert rows["rr"]["order"] == "123" * 6 and rows["rr"]["held"] == [6, 6, 0]
    assert rows["wrr"]["order"] == "112123" * 3 and rows["wrr"]["total"] == [9, 6, 3]
    assert rows["lc"]["held"] == [4, 4, 4]                  # lc ignores the weights
    assert rows["wlc"]["held"] == [6, 4, 2]                 # wlc follows them
    # nq: an idle server first -- at the third connection web3 has no active one
    assert rows["nq"]["order"][2] == "3" and rows["sed"]["order"][2] == "1", rows
    assert sorted(rows["sh"]["total"]) == [0, 0, 18]        # one client, one server
    assert sorted(rows["dh"]["total"]) == [0, 0, 18]        # one VIP, one server
    assert rows["lblc"]["held"][2] > 1 and rows["lblcr"]["held"] == [6, 4, 2]

    # lc "is fine in most cases" (the notes): with long connections it sees the held ones
    # rr does not (rr left web3 none), but it ignores the weights: even where wlc follows them
    assert re.search(r"1b\. Is lc fine\?.*lc ActiveConn 4/4/4, InActConn 2/2/2 where rr left "
                     r"held 6/6/0\..*wlc ActiveConn 6/4/2, InActConn [0-9/]+\.", out), out
    short = {m.group(1): dict(order=m.group(2), active=[int(x) for x in m.group(3, 4, 5)],
                              inactive=[int(x) for x in m.group(6, 7, 8)])
             for m in LC.finditer(out)}
    assert list(short) == ["lc", "wlc"], out
    # only short connections: ActiveConn stays 0, lc compares InActConn alone, spreads them
    # evenly whatever the weights and picks in rr's order; wlc keeps the weights 3:2:1
    assert all(s["active"] == [0, 0, 0] for s in short.values()), short
    assert short["lc"]["inactive"] == [4, 4, 4], short
    assert short["lc"]["order"] == rows["rr"]["order"][:12], short
    assert short["wlc"]["inactive"] == [6, 4, 2], short

    chart = Path(re.search(r"bar chart: (\S+\.svg)", out).group(1))
    svg = chart.read_text()
    assert svg.startswith("<svg") and svg.count("<rect") >= 2 * 3 * 10
    assert all(">%s</text>" % algo in svg for algo in rows)

    # sh with several client addresses: each lands where the source hash says
    sources = re.findall(r"from (\S+) +-> ((?:web\d ?)+) +\(the hash says (web\d)\)", out)
    assert len(sources) == 3 and len({s[2] for s in sources}) == 3, out
    assert all(set(served.split()) == {expected} for _ip, served, expected in sources)

    wlc = results["wlc state"]
    assert wlc.measured["picked"] == ["web3", "web1", "web2", "web1", "web1", "web2"]
    assert "the controller picked:  web3 web1 web2 web1 web1 web2" in out


def test_notes_wlc_formula_fails_the_wlc_state_only(grade):
    results = grade(LAB, LAB.folder / "broken" / "notes-wlc")
    wrong = [name for name, r in results.items() if not r.passed]
    assert wrong == ["wlc state"], failing(results)
    reason = results["wlc state"].reason
    assert "the controller picked web3 web1 web2 web1 web1 web2" in reason, reason
    assert "you predicted web1 web1 web2 web1 web2 web1" in reason, reason
    assert "first difference at pick 1" in reason and "no +1" in reason, reason


def test_starter_submission_says_what_to_fill_in():
    """The file check needs no network: the starter's empty lists are named."""
    result = LAB.module.check_predictions_file(Context(LAB, LAB.submission), {})
    assert not result.passed
    assert "state wlc needs 6 picks, you gave 0" in result.reason, result.reason
    assert all("state %s needs 6 picks" % s in result.reason for s in ("sed", "lblc", "lblcr"))


def test_capacity_rr_leaves_the_small_server_behind_wrr_does_not(run_folder):
    """Part 4 (not graded): links of 12/8/4 Mbit/s; rr sends each server the same number of
    downloads, wrr 3:2:1.  Only orderings are checked, within one run: the small server
    finishes last under rr, and wrr evens out when the servers finish."""
    lines = []
    ctx = Context(LAB, LAB.reference, run_folder=run_folder, out=lines.append)
    m = LAB.module.capacity(ctx)
    rr, wrr = m["rr"], m["wrr"]
    assert [rr[s]["files"] for s in ("web1", "web2", "web3")] == [4, 4, 4], rr
    assert [wrr[s]["files"] for s in ("web1", "web2", "web3")] == [6, 4, 2], wrr
    assert rr["web1"]["slowest"] < rr["web2"]["slowest"] < rr["web3"]["slowest"], rr
    spread = {a: max(r["slowest"] for r in m[a].values()) - min(r["slowest"] for r in
                                                                  m[a].values()) for a in m}
    assert spread["wrr"] < spread["rr"] / 2, m
    assert max(r["slowest"] for r in wrr.values()) < rr["web3"]["slowest"], m
    assert "all done after" in "\n".join(lines)


# -- variants: one per student name ---------------------------------------------------------

MODULE = LAB.module
STATES = ("wlc", "sed", "lblc", "lblcr")


def answers(variant):
    """The picks of the kernel's rules (controllers/schedulers.py) for a variant's states,
    which the real controller follows (the walk-through's "controllers/schedulers" line)."""
    return {name: MODULE.kernel_picks(state["lb_algo"], [
        (n, state["servers"][n]["weight"], state["servers"][n]["active"],
         state["servers"][n]["inactive"]) for n in MODULE.SERVERS], "H" * state["picks"],
        ap.client(1, ap.SERVICE), ap.vip()) for name, state in MODULE.load_states(variant).items()}


def test_a_name_gets_the_same_variant_in_every_process_and_no_name_gets_variant_0():
    probe = ("from redlab import labs; m = labs.find('06').module; "
             "print(m.variant_of('alice'), m.variant_of('bob'))")
    seen = {subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
                           cwd=LAB.folder.parent.parent, check=True).stdout
            for seed in ("1", "2", "3")}
    assert seen == {"%d %d\n" % (MODULE.variant_of("alice"), MODULE.variant_of("bob"))}, seen
    assert MODULE.variant_of(" Alice ") == MODULE.variant_of("alice")
    assert MODULE.variant_of(None) == MODULE.variant_of("") == MODULE.variant_of("  ") == 0
    named = len(MODULE.variants()) - 1
    assert named >= 8
    spread = {MODULE.variant_of("student%02d" % n) for n in range(60)}
    assert spread == set(range(1, named + 1)), spread      # never 0, every one in use


def test_two_names_usually_get_different_picks():
    alice, bob = MODULE.variant_of("alice"), MODULE.variant_of("bob")
    assert alice != bob
    assert all(answers(alice)[s] != answers(bob)[s] for s in STATES)
    # no two variants share the answer of any state: whatever is copied from a classmate
    # with another variant (or from the reference, variant 0) is wrong
    table = [answers(v) for v in range(len(MODULE.variants()))]
    for state in STATES:
        for a, b in itertools.combinations(range(len(table)), 2):
            assert table[a][state] != table[b][state], (state, a, b)


def test_every_variant_keeps_the_lesson_of_its_states():
    """Each variant asks the same questions with other numbers: wlc where the notes'
    formula picks another first server, sed where the idle server is not picked first."""
    for variant in range(len(MODULE.variants())):
        states, picks = MODULE.load_states(variant), answers(variant)
        assert list(states) == list(STATES)
        for state in states.values():
            assert all(s["weight"] >= 1 for s in state["servers"].values()), (variant, state)
        wlc = states["wlc"]["servers"]
        notes = min(MODULE.SERVERS, key=lambda n: (wlc[n]["active"] + wlc[n]["inactive"] + 1)
                    / wlc[n]["weight"])
        assert picks["wlc"][0] != notes, (variant, "wlc")
        sed = states["sed"]["servers"]
        idle = [n for n in MODULE.SERVERS if sed[n]["active"] == 0]
        assert idle and picks["sed"][0] != idle[0], (variant, "sed")


def test_the_variant_verb_prints_a_names_states(capsys):
    variant = MODULE.variant_of("alice")
    assert cli.main(["lab", "06", "variant", "alice"]) == 0
    out = capsys.readouterr().out
    assert "student alice: variant %d" % variant in out
    for name, state in MODULE.load_states(variant).items():
        assert "state %-6s %s" % (name, MODULE.describe(state)) in out
    assert "student: alice" in out
    # without a name: the submission's `student:`, else variant 0
    assert cli.main(["lab", "06", "variant"]) == 0
    assert "no student name: variant 0" in capsys.readouterr().out


def test_the_student_named_in_predictions_yaml_picks_the_variant(tmp_path):
    (tmp_path / "predictions.yaml").write_text("student: alice\n" + "".join(
        "%s: [%s]\n" % (s, ", ".join(p)) for s, p in answers(MODULE.variant_of("alice")).items()))
    variant = MODULE.variant_of("alice")
    assert MODULE.whose(Context(LAB, tmp_path)) == (variant, "alice")
    result = MODULE.check_predictions_file(Context(LAB, tmp_path), {})
    assert result.passed and "variant %d (student alice)" % variant in result.reason, result
    # graded as someone else's work (a copied file): the grader's name wins and says so
    bob = Context(LAB, tmp_path, student="bob", class_mode=True)
    assert MODULE.whose(bob) == (MODULE.variant_of("bob"), "bob")
    result = MODULE.check_predictions_file(bob, {})
    assert not result.passed
    assert "it says student: alice, but it is graded as bob's work" in result.reason, result


def test_class_mode_reasons_name_the_wrong_state_not_the_answer(tmp_path):
    """The reasons of one graded state, with the controller's picks as the walk-through
    records them (measured on the network in the test below)."""
    variant = MODULE.variant_of("alice")
    right = answers(variant)["wlc"]
    wrong = ["web1"] * 6 if right != ["web1"] * 6 else ["web2"] * 6
    (tmp_path / "predictions.yaml").write_text("wlc: [%s]\n" % ", ".join(wrong))
    measured = {"variant": variant, "states": {"wlc": {"picked": " ".join(right)}}}
    helpful = MODULE.check_wlc_state(Context(LAB, tmp_path, student="alice"), measured)
    hidden = MODULE.check_wlc_state(Context(LAB, tmp_path, student="alice", class_mode=True),
                                    measured)
    assert not helpful.passed and not hidden.passed
    assert "the controller picked %s" % " ".join(right) in helpful.reason
    assert " ".join(right) not in hidden.reason and "picked" not in hidden.measured
    assert "your picks %s are not the controller's" % " ".join(wrong) in hidden.reason
    assert "is the first wrong one" in hidden.reason and "Hint:" in hidden.reason


def test_copied_answers_fail_under_another_variant_and_class_mode_hides_them(run_folder,
                                                                             capsys):
    """alice's own picks for wlc and sed, the reference's (variant 0) for lblc and lblcr:
    graded as alice in class mode, the copied states fail and nothing shows her answers."""
    variant = MODULE.variant_of("alice")
    mine, copied = answers(variant), yaml.safe_load((LAB.reference / "predictions.yaml")
                                                    .read_text())
    folder = run_folder / "alice"
    folder.mkdir()
    (folder / "predictions.yaml").write_text(yaml.safe_dump(dict(
        student="alice", wlc=mine["wlc"], sed=mine["sed"], lblc=copied["lblc"],
        lblcr=copied["lblcr"]), default_flow_style=None))
    results = {r.name: r for r in LAB.grade(folder, run_folder=run_folder / "grade", out=print,
                                            student="alice", class_mode=True)}
    out = capsys.readouterr().out
    assert "variant %d (student alice)" % variant in results["predictions file"].reason
    assert [n for n, r in results.items() if not r.passed] == ["lblc state", "lblcr state"], \
        failing(results)
    assert "the controller picked:" not in out
    for name in ("lblc", "lblcr"):
        reason = results["%s state" % name].reason
        assert " ".join(mine[name]) not in reason and " ".join(mine[name]) not in out, reason
        assert "are not the controller's" in reason, reason
        assert "picked" not in results["%s state" % name].measured


def test_every_variant_is_made_with_real_connections_and_picked_by_the_kernel_rules(
        run_folder):
    """Each named variant's states, made on one network as the walk-through makes them:
    the real controller picks what the kernel's rules say (so every student's variant can
    be graded, not only the ones the tests above happen to use)."""
    from redlab.lb import web_service
    from redlab.scenarios.lb import LoadBalancedService
    service = web_service("rr", weights=MODULE.WEIGHTS, check="tcp")
    picked, expected = {}, {}
    with LoadBalancedService(service, name="lab06-variants", run_folder=run_folder / "net",
                             checker=False, closing_timeout=MODULE.CLOSING_TIMEOUT) as lab:
        bench = MODULE.SchedulingBench(lab, MODULE.SERVERS, MODULE.CLOSING_TIMEOUT)
        try:
            for variant in range(1, len(MODULE.variants())):
                for name, state in MODULE.load_states(variant).items():
                    bench.make_state(state)
                    picked[variant, name] = bench.next_picks(state["picks"])
                    bench.end_state(state)
                    expected[variant, name] = answers(variant)[name]
        finally:
            bench.stop()
    assert picked == expected
