"""Drills on real networks: the engine's record, its guard, and `redlab drill`.

Each run builds a VRRP pair (about 15-20 s here); the file keeps to four networks in
three tests, plus a CLI call that must build none.
"""

import json
import subprocess
from pathlib import Path

from redlab import addressing as ap
from redlab.drill.engine import NOT_HAPPENED, run_drill
from redlab.drill.schema import check_drill, load_drill

DRILLS = Path(__file__).parents[2] / "drills"
VIP = ap.vip(1)


def first(events, lane, label_part="", after=0.0):
    found = [e for e in events if e["lane"] == lane and label_part in e["label"]
             and e["t"] >= after]
    assert found, "no %r event in lane %r after t=%.2f: %s" % (
        label_part, lane, after, [e for e in events if e["lane"] == lane])
    return found[0]


def test_vrrp_crash_drill_records_the_failover_on_one_clock(run_folder):
    record = run_drill(load_drill(DRILLS / "vrrp-crash.yaml"), run_folder=run_folder / "run")
    failed = [e for e in record["expectations"] if not e["passed"]]
    assert len(record["expectations"]) == 4 and not failed, failed
    events = record["events"]
    crash = first(events, "fault", "host_crash web1")
    assert crash["kind"] == "mark" and abs(crash["t"] - 2.0) < 0.5
    master = first(events, "vrrp web2", "MASTER", after=crash["t"])
    web2_mac = ap.mac_for(ap.web(2))
    garp = first(events, "garp", "%s is-at %s" % (VIP, web2_mac), after=crash["t"])
    arp = first(events, "arp client1", web2_mac, after=crash["t"])
    # keepalived: the master is declared down after 3 x advert_int + skew
    assert 2.5 < master["t"] - crash["t"] < 5, (crash, master)
    assert master["t"] - 0.2 <= garp["t"] <= arp["t"] + 0.05, (master, garp, arp)
    m = record["measures"]
    assert m["time_to_detect"] == round(master["t"] - crash["t"], 3)
    # detection is keepalived's notify (a few ms after the transition, later on a loaded
    # machine), recovery a request's send time: no request is answered before web2's
    # GARP is on the wire (the capture's clock), but one sent an interval before it may be
    took_over = garp["t"] - crash["t"]
    assert took_over - 0.1 <= m["time_to_recover"] < m["time_to_detect"] + 2, (
        garp, m)
    assert m["requests_lost"] > 0
    assert m["loss_convergence"] == round(m["requests_lost"] * 0.05, 3)
    assert [i["name"] for i in record["intervals"]] == ["detect", "recover"]
    failures = [s for s in record["samples"]["web"] if not s["ok"]]
    # the first failure ended after the crash began (its request may have been sent just
    # before, and failed because of it) and was sent before web2 took over
    assert failures and crash["t"] <= failures[0]["t"] + failures[0]["latency"]
    assert failures[0]["t"] <= master["t"]
    assert json.loads((Path(record["run_folder"]) / "record.json").read_text())["run"] == 1


def test_an_expectation_after_a_fault_that_never_happens_fails(run_folder):
    """The crash waits for a probe failure that never comes on a healthy network."""
    drill = check_drill({
        "drill": "never", "network": {"topology": "vrrp_pair"},
        "probes": [{"name": "web", "type": "http", "from": "client1",
                    "url": "http://%s/" % VIP}],
        "timeline": [{"id": "crash", "when": {"probe": "web", "failed": 3},
                      "fault": "host_crash", "host": "web1"}],
        "expect": [{"after": "crash", "recover_within": 5.0, "probe": "web"},
                   {"after": "crash", "max_lost": 0, "probe": "web"}]})
    record = run_drill(drill, run_folder=run_folder / "run", when_timeout=2.0)
    assert [(e["passed"], e["reason"]) for e in record["expectations"]] == \
        [(False, NOT_HAPPENED)] * 2
    assert not [e for e in record["events"] if e["lane"] == "fault" and e["kind"] == "mark"]
    skipped = first(record["events"], "fault", "crash skipped")
    assert "probe web seeing 3 failed answers in a row never held within 2 s" in \
        skipped["label"]
    assert all(s["ok"] for s in record["samples"]["web"])
    assert set(record["measures"].values()) == {None}


def test_drill_cli_refuses_a_bad_file_before_building_anything(redlab_cmd, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((DRILLS / "vrrp-crash.yaml").read_text().replace(
        "recover_within: 6.0", "recover_within: soon"))
    report = tmp_path / "report"
    out = subprocess.run(redlab_cmd + ["drill", str(bad), "--report", str(report)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "recover_within" in lines[0] and "bad.yaml" in lines[0], lines
    assert not report.exists() and "run " not in out.stdout


TIGHT = """
drill: tight
network: {topology: vrrp_pair}
probes:
  - {name: web, type: http, from: client1, url: "http://%s/"}
timeline:
  - {id: crash, at: 0.5, fault: host_crash, host: web1}
expect:
  - {after: crash, recover_within: 6.0, probe: web}
  - {after: crash, recover_within: 0.5, probe: web}
variants:
  use_vmac: {network: {keepalived: {use_vmac: true}}}
""" % VIP


def test_drill_cli_repeats_compares_and_reports_a_failing_deadline(redlab_cmd, tmp_path,
                                                                    run_folder):
    drill = tmp_path / "tight.yaml"
    drill.write_text(TIGHT)
    report = run_folder / "report"
    out = subprocess.run(redlab_cmd + ["drill", str(drill), "--repeat", "2", "--compare",
                                       "use_vmac", "--report", str(report)],
                         capture_output=True, text=True, timeout=400)
    assert out.returncode == 1, out             # the 0.5 s deadline cannot be met
    progress = [line for line in out.stdout.splitlines() if line.startswith("run ")]
    assert [p.split(":")[0] for p in progress] == [
        "run 1/4 (default 1)", "run 2/4 (use_vmac 1)", "run 3/4 (default 2)",
        "run 4/4 (use_vmac 2)"], out.stdout
    assert "no difference found" in out.stdout or "they differ" in out.stdout
    data = json.loads((report / "report.json").read_text())
    text = json.dumps(data)
    for name in ("report.html", "report.xml"):
        assert (report / name).stat().st_size > 0
    bound = "more than the bound 0.50 s (the drill's recover_within)"
    assert "service back after" in out.stdout and bound in out.stdout
    assert bound in (report / "report.html").read_text().replace("&#39;", "'")
    assert bound in text and "failure" in (report / "report.xml").read_text()
