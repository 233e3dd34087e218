"""Game day and --cli on real networks, the engineer played by a script on the CLI's input.

Three cold-standby networks (a few seconds each to build): a game day restored through
`redlab drill --gameday --seed`, one where nobody types anything, and a drill's network
looked at with --cli.
"""

import json
import subprocess
from pathlib import Path

import yaml

from redlab.drill import actions, gameday
from redlab.drill.report import write_report
from redlab.drill.schema import load_drill

DRILLS = Path(__file__).parents[2] / "drills"
GAMEDAY = DRILLS / "cold-standby-gameday.yaml"
SEED = 1

# what an engineer types to restore each fault of the shipped game day (checked here: the
# drill file gives no hint), and the line after which the service can be back.  Each
# starts as a person would, by seeing the service fail (three pings 0.2 s apart: the
# probe sends a request every 50 ms meanwhile); a script fixing the fault a few
# milliseconds after it broke could lose no request at all
SEE_IT_FAIL = "client1 ping -c 3 -i 0.2 -W 1 10.0.0.11"
RESTORE = {
    # r2 plugged in is not enough: client1 keeps sending to r1's MAC until its ARP entry
    # ages out (measured: 51 s); the spare announces itself (web1 learns r2 from r2's own
    # ARP request for web1)
    "r1-crash": [SEE_IT_FAIL, "client1 ip neigh show 10.0.1.1", "link r2 s1 up",
                 "link r2 s2 up", "r2 arping -q -U -c 1 -i r2-eth0 -S 10.0.1.1 10.0.1.1"],
    # r1's port comes up again: arp_notify announces it, the routes come back with it
    "r1-client-cable": [SEE_IT_FAIL, "r1 ip -br link", "link r1 s1 up"],
    "r1-service-cable": [SEE_IT_FAIL, "r1 ip -br link", "link r1 s2 up"],
}
FIXED_AFTER = {"r1-crash": "link r2 s2 up", "r1-client-cable": "link r1 s1 up",
               "r1-service-cable": "link r1 s2 up"}


def operator_lines(record):
    return [e["label"] for e in record["events"] if e["lane"] == "operator"]


def test_gameday_restored_through_a_scripted_cli_scores_met(redlab_cmd, run_folder):
    drill = load_drill(GAMEDAY)
    choice = gameday.choose(drill, SEED)
    script = RESTORE[choice.fault] + ["exit"]
    report = run_folder / "report"
    out = subprocess.run(redlab_cmd + ["drill", str(GAMEDAY), "--gameday", "--seed", str(SEED),
                                       "--report", str(report)],
                         input="\n".join(script) + "\n", capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out
    entry = next(e for e in drill["timeline"] if e["id"] == choice.fault)
    before, reveal, after = out.stdout.partition("game day cold-standby-gameday, seed 1: ")
    assert reveal, out.stdout
    assert choice.fault not in before and actions.describe(entry) not in before, before
    assert "*** something broke" in before
    assert after.startswith("the fault was %s (timeline id %s)" % (actions.describe(entry),
                                                                   choice.fault))
    assert "  met  service restored within 60 s (probe web) -- service restored after " \
        in after
    assert "  met  at most 600 requests lost (probe web)" in after
    assert "score: 2 of 2 targets met" in after

    run = report / "runs" / "gameday-run1"
    record = json.loads((run / "record.json").read_text())
    g = record["gameday"]
    assert (g["fault"], g["seed"], g["delay"]) == (choice.fault, SEED, choice.delay)
    assert [c["command"] for c in g["commands"]] == script == operator_lines(record)
    times = [c["t"] for c in g["commands"]]
    assert g["injected_at"] <= times[0] and times == sorted(times)
    logged = (run / "operator" / "commands.txt").read_text().splitlines()
    assert [line.split("  ", 1)[1] for line in logged] == script
    # the service broke, and came back only after the engineer's fix
    assert g["broke"] and not g["by_itself"] and g["requests_lost"] >= 1
    fixed = next(c["t"] for c in g["commands"] if c["command"] == FIXED_AFTER[choice.fault])
    assert fixed <= g["injected_at"] + g["time_to_restore"] <= g["injected_at"] + 60
    assert record["expectations"] == g["score"] and all(e["passed"] for e in g["score"])
    assert json.loads((run / "gameday.json").read_text()) == g
    assert (report / "swimlane-gameday-run1.png").stat().st_size > 0
    if choice.fault == "r1-crash":          # the client's gateway moved to the spare's MAC
        arp = [e["label"] for e in record["events"] if e["lane"] == "arp client1"]
        assert arp[0].endswith("(r1)") and arp[-1].endswith("(r2)"), arp


def test_gameday_where_nobody_types_anything_is_not_restored(run_folder, tmp_path):
    drill = load_drill(GAMEDAY)
    drill["gameday"].update(faults=["r1-client-cable"], restore_within=2.0, max_lost=0)
    nothing = tmp_path / "nothing.txt"
    nothing.write_text("")
    said = []
    with open(nothing) as stdin:
        record = gameday.run_gameday(drill, seed=0, run_folder=run_folder / "run",
                                     stdin=stdin, out=said.append)
    g = record["gameday"]
    assert g["fault"] == "r1-client-cable" and g["commands"] == []
    assert not any("r1-client-cable" in line or "link_down" in line for line in said), said
    restore, lost = g["score"]
    assert (restore["passed"], restore["measured"], restore["bound"]) == (False, None, 2.0)
    assert restore["reason"].startswith("service restored after: never measured -- the "
                                        "service was still down "), restore
    down_for = float(restore["reason"].split("down ")[1].split(" s after")[0])
    assert down_for >= 2.0                  # the run waited for the target's deadline
    assert (lost["passed"], lost["measured"]) == (False, g["requests_lost"])
    assert g["requests_lost"] >= 2 and lost["reason"] == (
        "the service never came back: %d of %d requests lost before the run ended (bound 0)"
        % (g["requests_lost"], g["requests_sent"]))
    assert g["time_to_restore"] is None and not g["met"] and not g["by_itself"]
    undo = [e for e in record["events"] if e["lane"] == "step"]
    assert [e["label"] for e in undo] == ["undo link_down r1-s1 (end of the drill)"]
    assert undo[0]["t"] >= g["injected_at"] + 2.0
    junit = write_report(run_folder / "report", {"gameday": [record]}).junit.read_text()
    assert "service restored after: never measured" in junit and "failure" in junit


LOOK_AROUND = {
    "drill": "look-around",
    "network": {"topology": "cold_standby"},
    "probes": [{"name": "web", "type": "http", "from": "client1",
                "url": "http://10.0.0.11/"}],
    # the cable of the spare (configured, on the shelf) is pulled; the service never notices
    "timeline": [{"id": "spare-cable", "at": 0.5, "fault": "link_down", "link": ["r2", "s1"]}],
    "expect": [{"after": "spare-cable", "never_failed": "web"}],
}


def test_drill_cli_opens_the_mininet_cli_after_the_timeline(redlab_cmd, run_folder, tmp_path):
    data = dict(LOOK_AROUND)
    data["network"] = dict(data["network"], setup=load_drill(GAMEDAY)["network"]["setup"])
    drill = tmp_path / "look-around.yaml"
    drill.write_text(yaml.safe_dump(data))
    script = ["r2 ip -br link show r2-eth0", "client1 ip neigh", "exit"]
    report = run_folder / "report"
    out = subprocess.run(redlab_cmd + ["drill", str(drill), "--cli", "--report", str(report)],
                         input="\n".join(script) + "\n", capture_output=True, text=True,
                         timeout=180)
    assert out.returncode == 0, out
    both = out.stdout + out.stderr
    assert "the timeline ran (probes stopped)" in out.stdout
    # the fault is still in place at the CLI: r2's end of the pulled cable is down (on the
    # shelf it was up, without a carrier: LOWERLAYERDOWN)
    assert "r2-eth0@" in both, both
    assert both.split("r2-eth0@", 1)[1].split()[1] == "DOWN", both
    record = json.loads((report / "runs" / "default-run1" / "record.json").read_text())
    assert operator_lines(record) == script
    assert [e["passed"] for e in record["expectations"]] == [True]
    commands = [e for e in record["events"] if e["lane"] == "operator"]
    undo = [e for e in record["events"] if e["lane"] == "step"]
    assert undo and undo[0]["t"] > commands[-1]["t"]          # undone after `exit`
    assert max(s["t"] for s in record["samples"]["web"]) < commands[0]["t"]
