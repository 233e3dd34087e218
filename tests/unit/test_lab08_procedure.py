"""Lab 08 without a network: procedure.yaml is read as data (each mistake one sentence with
its line), and the checks' reasons follow from what was measured."""

import pytest

from redlab import labs
from redlab.scenarios.maintenance import ProcedureError, describe, load_procedure

LAB = labs.find("08")
M = LAB.module


@pytest.mark.parametrize("folder", ["reference", "submission", "broken/no-drain",
                                    "broken/no-wait", "broken/no-restart"])
def test_every_shipped_procedure_is_valid(folder):
    assert load_procedure(LAB.folder / folder / "procedure.yaml")


def test_the_reference_reads_as_the_procedure():
    steps = load_procedure(LAB.reference / "procedure.yaml")
    assert [describe(s) for s in steps] == [
        "drain", "stop (when ActiveConn <= 0)", "upgrade", "start", "undrain (when health up)"]


@pytest.mark.parametrize("text, message", [
    ("steps:\n  - do: dran\n", "line 2: steps[0].do 'dran' is unknown; did you mean 'drain'?"),
    ("steps:\n  - do: stop\n    run: rm -rf /\n",
     "line 3: steps[0] has no field 'run'; remove it or use one of: do, weight, when"),
    ("steps:\n  - do: weight\n", "steps[0].weight is missing; do weight needs it"),
    ("steps:\n  - do: drain\n    weight: 3\n", "steps[0].weight belongs to do: weight"),
    ("steps:\n  - do: stop\n    when: {active: 0, health: up}\n",
     "steps[0].when waits for one thing; keep active or health"),
    ("steps:\n  - do: stop\n    when: {}\n", "steps[0].when must be {active: N}"),
    ("steps:\n  - do: stop\n    when: {health: sick}\n",
     "steps[0].when.health 'sick' is unknown; choose one of: up, down"),
    ("steps: []\n", "steps must be a non-empty list"),
])
def test_a_mistake_is_one_sentence_with_its_line(tmp_path, text, message):
    path = tmp_path / "procedure.yaml"
    path.write_text(text)
    with pytest.raises(ProcedureError) as error:
        load_procedure(path)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def step(n, do, weight=0, active=0, nginx="running", result="done", t=0.0):
    return dict(n=n, do=do, when=None, t=t, result=result,
                before=dict(weight=weight, active=active, health="up", nginx=nginx))


def measured(**changes):
    m = dict(steps=[], stopped=None, sent=40, failed=[], size=600000,
             download=dict(bytes=600000, server="web1", seconds=4.0, error=None, exit=0),
             after=[["web1", "web1 v2"]] * 5, page="web1 v2",
             final=dict(weight=1, active=0, health="up", nginx="running"))
    m.update(changes)
    return m


def test_a_cut_download_alone_fails_and_names_the_missing_wait():
    m = measured(steps=[step(0, "drain", weight=1), step(1, "stop", weight=0, active=1)],
                 download=dict(bytes=150000, server="web1", seconds=1.0, error="x", exit=18))
    result = M.no_request_lost(None, m)
    assert not result.passed
    assert "cut after 150000 of 600000 bytes" in result.reason
    assert "when: {active: 0} on the stop step" in result.reason
    assert M.no_request_lost(None, measured()).passed


def test_one_lost_probe_request_fails():
    m = measured(steps=[step(0, "stop", weight=1, active=1)],
                 failed=[dict(t=0.1, error="ConnectionRefusedError")])
    result = M.no_request_lost(None, m)
    assert not result.passed and "lost 1 of 40 requests" in result.reason
    assert "drain it first" in result.reason


def test_a_server_left_out_of_the_pool_fails_new_version_served():
    m = measured(after=[], final=dict(weight=0, active=0, health="up", nginx="running"))
    result = M.new_version_served(None, m)
    assert not result.passed
    assert "answered 0 of client1's requests" in result.reason
    assert "still out of the pool (weight 0): end with do: undrain" in result.reason


def test_a_procedure_that_stopped_says_where():
    m = measured(page="web1 v1", stopped="steps[1] (stop) waited 10 s for ActiveConn <= 0; "
                                         "it never held")
    result = M.new_version_served(None, m)
    assert not result.passed and "the procedure stopped: steps[1] (stop)" in result.reason


def test_nginx_left_stopped_says_to_start_it():
    m = measured(page="", after=[], steps=[step(0, "stop"), step(1, "upgrade", nginx="stopped")],
                 final=dict(weight=0, active=0, health="down", nginx="stopped"))
    result = M.new_version_served(None, m)
    assert not result.passed
    assert "nginx on web1 is not running: start it after the upgrade" in result.reason
