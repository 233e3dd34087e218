"""Lab 06 (scheduling algorithms): the reference passes every check, the course notes'
wlc formula fails the wlc state, and the walk-through measures the spread of one load
under the ten schedulers on the real controller."""

import re
from pathlib import Path

from redlab import labs
from redlab.labs import Context

LAB = labs.find("06")
ROW = re.compile(r"^(rr|wrr|lc|wlc|sed|nq|sh|dh|lblc|lblcr) +"
                 r"(\d+) \((\d+) held\) +(\d+) \((\d+) held\) +(\d+) \((\d+) held\) +"
                 r"([123]+) +(yes|NO)$", re.M)


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
    # every decision of the real controller is the one controllers/schedulers.py makes
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
