"""Swimlanes, distributions and the drill report, from synthetic run records.

The records follow the drill-record contract (``redlab.drill``); they are made here, not
recorded from a network, so these tests need no root and run in a few seconds.
"""

import base64
import html
import json
import math
import xml.etree.ElementTree as ET

import jinja2
import pytest
from PIL import Image

from redlab.drill import plot, report
from redlab.drill.stats import compare


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SVG = "{http://www.w3.org/2000/svg}"


def vrrp_crash_record(run=1, variant="default", detect=3.20, recover=3.45, interval=0.05,
                      timeout=0.5, end=8.0, bound=5.0):
    """web1 (MASTER) crashes at 0; web2 becomes MASTER at ``detect``, sends its GARP
    10 ms later, the client's ARP entry moves 10 ms after that, the controller replaces
    the flows; the probe (one request every ``interval``, ``timeout`` each) fails from 0
    until ``recover``."""
    mac1, mac2 = "02:00:00:00:00:0b", "02:00:00:00:00:0c"
    times = [timeout * k for k in range(math.ceil(recover / timeout))]
    times += [recover + interval * k for k in range(int((end - recover) / interval) + 1)]
    samples = [dict(t=round(t, 3), ok=t >= recover, latency=0.003 if t >= recover else None,
                    served_by="web2" if t >= recover else None,
                    error=None if t >= recover else "timeout") for t in times]
    lost = sum(1 for s in samples if not s["ok"])
    events = [
        dict(t=0.0, lane="fault", kind="mark", label="host_crash web1"),
        dict(t=0.0, lane="vrrp web1", kind="state", label="MASTER"),
        dict(t=0.0, lane="vrrp web2", kind="state", label="BACKUP"),
        dict(t=detect, lane="vrrp web2", kind="state", label="MASTER"),
        dict(t=detect + 0.01, lane="garp", kind="packet",
             label="web2 says 10.0.0.100 is-at %s" % mac2),
        dict(t=0.0, lane="arp client1", kind="state", label="10.0.0.100 -> %s" % mac1),
        dict(t=detect + 0.02, lane="arp client1", kind="state", label="10.0.0.100 -> %s" % mac2),
        dict(t=detect + 0.03, lane="controller", kind="flow",
             label="flows for 10.0.0.100 -> port 3"),
        dict(t=0.0, lane="health web1", kind="state", label="up"),
        dict(t=detect + 0.1, lane="health web1", kind="state", label="down"),
        dict(t=end, lane="step", kind="mark", label="undo host_crash web1")]
    events += [dict(t=s["t"], lane="probe web", kind="fail", label="timeout")
               for s in samples if not s["ok"]]
    events += [dict(t=0.0, lane="vrrp adverts", kind="packet", label="advert from web1 prio 150")]
    events += [dict(t=detect + k, lane="vrrp adverts", kind="packet",
                    label="advert from web2 prio 100") for k in range(5)]
    return dict(
        drill="vrrp-crash", variant=variant, run=run, t0=1796567502.123, events=events,
        samples=dict(web=samples), probe_interval=dict(web=interval),
        measures=dict(time_to_detect=detect, time_to_recover=recover, requests_lost=lost,
                      loss_convergence=lost * interval),
        intervals=[dict(name="detect", start=0.0, end=detect),
                   dict(name="recover", start=0.0, end=recover)],
        expectations=[dict(name="service back within %g s" % bound, passed=recover <= bound,
                           measured=recover, bound=bound,
                           reason="service back after %.2f s (bound %g s)" % (recover, bound))])


def svg_texts(path):
    """Every text of an SVG that matplotlib wrote with its text kept as text."""
    root = ET.parse(path).getroot()
    return ["".join(t.itertext()) for t in root.iter(SVG + "text")]


def assert_png(path):
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as image:
        image.verify()


# -- swimlanes -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def crash_swimlanes(tmp_path_factory):
    record = vrrp_crash_record()
    return (record,) + plot.swimlanes(record, tmp_path_factory.mktemp("lanes") / "crash")


def test_swimlanes_write_a_valid_png_and_svg(crash_swimlanes):
    _, png, svg = crash_swimlanes
    assert (png.name, svg.name) == ("crash.png", "crash.svg")
    assert_png(png)
    assert ET.parse(svg).getroot().tag == SVG + "svg"


def test_the_svg_names_every_lane_and_interval(crash_swimlanes):
    record, _, svg = crash_swimlanes
    texts = svg_texts(svg)
    for lane in ("fault", "step", "vrrp web1", "vrrp web2", "vrrp adverts", "garp",
                 "arp client1", "controller", "health web1", "probe web"):
        assert any(t.split("\n")[0] == lane for t in texts), lane
    assert "detect 3.20 s" in texts
    assert "recover 3.45 s" in texts
    assert "7 of %d failed" % len(record["samples"]["web"]) in texts
    assert any("is-at 02:00:00:00:00:0c" in t for t in texts)    # the MAC is not cut off


def test_lanes_run_from_the_fault_to_what_the_client_saw():
    lanes = plot.lane_names(vrrp_crash_record())
    assert lanes[:2] == ["fault", "step"]
    assert lanes[-1] == "probe web"
    assert lanes.index("vrrp web2") < lanes.index("garp") < lanes.index("arp client1") \
        < lanes.index("controller") < lanes.index("health web1")


def test_long_labels_are_cut_with_an_ellipsis(tmp_path):
    record = vrrp_crash_record()
    long_lane = "controller of the datacenter fabric in building seven"
    long_label = "flow table of switch s1 replaced: 10.0.0.100 now behind port 3 " * 2
    record["events"].append(dict(t=3.3, lane=long_lane, kind="flow", label=long_label))
    texts = svg_texts(plot.swimlanes(record, tmp_path / "long")[1])
    assert not any(long_lane in t or long_label.strip() in t for t in texts)
    assert plot.shorten(long_lane, plot.LANE_LABEL_CHARS) in texts
    assert any(t.strip().endswith("\u2026") and t.strip().startswith("flow table") for t in texts)


def test_a_burst_of_events_shares_one_label():
    events = [dict(t=3.20 + 0.005 * k, label="flow %d" % k) for k in range(4)] + \
        [dict(t=5.0, label="flow 9")]
    assert [len(group) for group in plot.bursts(events, window=0.1)] == [4, 1]


def test_an_interval_never_closed_says_not_reached(tmp_path):
    record = vrrp_crash_record()
    record["intervals"][1]["end"] = None
    texts = svg_texts(plot.swimlanes(record, tmp_path / "never")[1])
    assert "recover: not reached" in [t.strip() for t in texts]
    assert "detect 3.20 s" in texts


def test_a_record_with_nothing_in_it_still_draws(tmp_path):
    record = dict(drill="empty", variant="default", run=1, t0=0.0, events=[], samples={},
                  measures={}, intervals=[], expectations=[])
    png, svg = plot.swimlanes(record, tmp_path / "empty")
    assert_png(png)
    ET.parse(svg)


# -- the report ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def drill_report(tmp_path_factory):
    """Three default runs, one too slow for the 5 s bound (a flaky expectation), and one
    use_vmac run; written once for every test of the report (drawing takes time)."""
    default = [vrrp_crash_record(run=1, recover=3.45), vrrp_crash_record(run=2, recover=5.6),
               vrrp_crash_record(run=3, recover=3.5)]
    vmac = [vrrp_crash_record(run=1, variant="use_vmac", recover=3.6)]
    runs = {"default": default, "use_vmac": vmac}
    comparison = compare(default, vmac)
    folder = tmp_path_factory.mktemp("report")
    return report.write_report(folder, runs, comparison), folder, comparison


def test_the_report_folder_holds_every_file(drill_report):
    written, folder, _ = drill_report
    for name in ("report.html", "report.json", "report.xml", "distributions.png",
                 "distributions.svg", "swimlane-default-run1.png", "swimlane-default-run3.svg",
                 "swimlane-use_vmac-run1.png", "swimlane-use_vmac-run1.svg"):
        assert (folder / name).is_file(), name
    assert len(written.pictures) == 2 * 4 + 2
    assert_png(folder / "swimlane-use_vmac-run1.png")
    assert_png(folder / "distributions.png")
    assert {"time to recover", "requests lost"} <= set(svg_texts(folder / "distributions.svg"))


def test_the_html_has_the_table_the_comparison_and_the_images(drill_report):
    written, _, comparison = drill_report
    page = written.html.read_text()
    text = html.unescape(page)
    assert '<table class="stats">' in page
    assert "time to recover" in text and "95 % CI of the median" in text
    for m in comparison.measures:
        assert m.sentence in text
    assert "flaky" in text and "met in 2 of 3 runs (67 %)" in text
    assert "run 2: service back after 5.60 s (bound 5 s)" in text
    images = page.count('src="data:image/png;base64,')
    assert images == 4 + 1                  # every run's swimlanes and the distributions
    encoded = page.split('src="data:image/png;base64,', 1)[1].split('"', 1)[0]
    assert base64.b64decode(encoded)[:8] == PNG_MAGIC
    assert "host_crash web1" in text        # the events table of each run


def test_the_junit_fails_a_flaky_expectation_with_its_share(drill_report):
    root = ET.parse(drill_report[0].junit).getroot()
    assert (root.get("tests"), root.get("failures")) == ("2", "1")
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    flaky = suites["vrrp-crash: default"].find("testcase")
    assert flaky.get("name") == "service back within 5 s"
    failure = flaky.find("failure")
    assert failure.get("message") == "flaky: met in 2 of 3 runs (67 %)"
    assert "run 2: service back after 5.60 s (bound 5 s)" in failure.text
    steady = suites["vrrp-crash: use_vmac"].find("testcase")
    assert steady.find("failure") is None
    assert steady.find("system-out").text == "met in 1 of 1 run (100 %)"


def test_the_json_holds_the_records_and_their_statistics(drill_report):
    def no_infinity(name):
        raise AssertionError("report.json is not strict JSON: it holds %s" % name)
    data = json.loads(drill_report[0].json.read_text(), parse_constant=no_infinity)
    default, vmac = data["variants"]
    assert (default["variant"], len(default["runs"]), len(vmac["runs"])) == ("default", 3, 1)
    assert default["runs"][1]["measures"]["time_to_recover"] == 5.6
    recover = next(m for m in default["stats"]["measures"] if m["measure"] == "time_to_recover")
    assert recover["median"] == 3.5 and recover["n"] == 3
    assert default["stats"]["expectations"][0]["status"] == "flaky"
    assert data["comparison"]["b"] == "use_vmac"


def test_labels_from_a_drill_file_are_escaped_in_the_html(tmp_path):
    record = vrrp_crash_record(variant="<script>alert(1)</script>")
    written = report.write_report(tmp_path, {record["variant"]: [record]})
    page = written.html.read_text()
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


def test_the_template_refuses_a_missing_value():
    with pytest.raises(jinja2.UndefinedError):
        report._ENV.get_template(report.TEMPLATE).render(drill="x")


def test_a_report_needs_runs(tmp_path):
    with pytest.raises(ValueError, match="at least one run"):
        report.write_report(tmp_path, {"default": []})
