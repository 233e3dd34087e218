"""The report of a drill: one HTML file, JSON and JUnit XML, and every run's swimlanes.

``write_report(folder, runs_by_variant, comparison)`` writes into ``folder``:

- ``report.html``: one self-contained file (pictures embedded as base64 PNG) with the
  statistics table, the expectations with their shares (flaky ones named), the
  comparison sentences, the distributions and each run's swimlanes with its events;
- ``report.json``: the run records and their statistics, for scripts;
- ``report.xml``: JUnit, one testcase per expectation per variant, failed when any run
  failed it (the share in the message), so a CI shows a flaky expectation as failing;
- ``swimlane-<variant>-run<N>.png/.svg`` per run, ``distributions.png/.svg`` for repeats.

The HTML comes from ``templates/drill-report.html.j2``, rendered with StrictUndefined:
Python computes every string, the template only loops and branches.
"""

import base64
import json
import math
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import jinja2

from redlab.drill import plot
from redlab.drill.stats import (CI_METHOD, P95_METHOD, TEST_METHOD, format_value,
                                summarize, wording)


TEMPLATE = "drill-report.html.j2"
_ENV = jinja2.Environment(loader=jinja2.PackageLoader("redlab", "templates"),
                          undefined=jinja2.StrictUndefined, autoescape=True,
                          trim_blocks=True, lstrip_blocks=True)
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass
class Report:
    """Where the report's files went."""
    html: Path
    json: Path
    junit: Path
    pictures: list


def write_report(folder, runs_by_variant, comparison=None):
    """Write the report of ``runs_by_variant`` (``{variant label: [run record, ...]}``,
    in the order to show them) into ``folder``; ``comparison`` is what
    :func:`redlab.drill.stats.compare` returned, or None.  Returns a :class:`Report`."""
    if not runs_by_variant or not all(runs_by_variant.values()):
        raise ValueError("nothing to report: give every variant at least one run record")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    summaries = {variant: summarize(runs) for variant, runs in runs_by_variant.items()}
    lanes = _draw_swimlanes(folder, runs_by_variant)
    spread = None
    if any(len(runs) > 1 for runs in runs_by_variant.values()):
        spread = plot.distributions(runs_by_variant, folder / "distributions")
    report = Report(folder / "report.html", folder / "report.json", folder / "report.xml",
                    [p for pair in lanes.values() for p in pair] + list(spread or []))
    report.html.write_text(_render_html(runs_by_variant, summaries, comparison, lanes, spread))
    report.json.write_text(json.dumps(_json_safe(dict(
        drill=_drill_name(runs_by_variant), generated=time.time(),
        methods=dict(ci=CI_METHOD, p95=P95_METHOD, compare=TEST_METHOD),
        variants=[dict(variant=v, runs=runs, stats=summaries[v].to_dict())
                  for v, runs in runs_by_variant.items()],
        comparison=comparison.to_dict() if comparison else None)), indent=1, default=str))
    write_junit(report.junit, summaries)
    return report


def _draw_swimlanes(folder, runs_by_variant):
    """Each run's swimlanes, named after its variant and number: ``{(variant, i): (png, svg)}``."""
    lanes, used = {}, set()
    for variant, runs in runs_by_variant.items():
        slug = _slug(variant, used)
        for i, run in enumerate(runs):
            stem = folder / ("swimlane-%s-run%s" % (slug, run.get("run", i + 1)))
            lanes[(variant, i)] = plot.swimlanes(run, stem)
    return lanes


def _slug(label, used):
    """A file-name part for a variant label, different from those already used."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(label)).strip("-.") or "variant"
    slug, k = base, 2
    while slug in used:
        slug, k = "%s-%d" % (base, k), k + 1
    used.add(slug)
    return slug


# -- HTML ----------------------------------------------------------------------------

def _render_html(runs_by_variant, summaries, comparison, lanes, spread):
    values = dict(
        drill=_drill_name(runs_by_variant),
        generated=time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        methods=[("median, p95, min, max", "of the runs that reached the measure; "
                  "the others are counted as not reached"),
                 ("95 % CI", CI_METHOD), ("p95", P95_METHOD), ("comparison", TEST_METHOD)],
        headline=_headline(summaries),
        stats_rows=_stats_rows(summaries),
        expectation_rows=_expectation_rows(summaries),
        comparison=_comparison_view(comparison),
        distributions=_data_uri(spread[0]) if spread else None,
        runs=[_run_view(variant, i, run, lanes[(variant, i)])
              for variant, runs in runs_by_variant.items() for i, run in enumerate(runs)])
    try:
        return _ENV.get_template(TEMPLATE).render(**values)
    except jinja2.UndefinedError as exc:   # a bug of ours, said so plainly
        raise RuntimeError("template %s needs a value report.py did not give (%s)"
                           % (TEMPLATE, exc.message)) from None


def _headline(summaries):
    return ", ".join("%s: %d run%s" % (v, s.runs, "" if s.runs == 1 else "s")
                     for v, s in summaries.items())


def _stats_rows(summaries):
    """One row per measure per variant, every number already formatted."""
    rows = []
    measures = list(dict.fromkeys(m.measure for s in summaries.values() for m in s.measures))
    for measure in measures:
        for variant, summary in summaries.items():
            m = next((m for m in summary.measures if m.measure == measure), None)
            if m is None:
                continue
            def fmt(value):
                return format_value(measure, value) if value is not None else "\u2013"
            rows.append(dict(
                measure=wording(measure).label, variant=variant,
                reached="%d of %d" % (m.n, m.runs), not_reached=m.not_reached,
                median=fmt(m.median), p95=fmt(m.p95), min=fmt(m.min), max=fmt(m.max),
                ci="%s \u2013 %s" % (fmt(m.ci_low), fmt(m.ci_high)) if m.ci_low is not None
                else m.ci_note))
    return rows


def share_text(e):
    """"met in 7 of 10 runs (70 %)"."""
    return "met in %d of %d run%s (%.0f %%)" % (e.passed, e.runs, "" if e.runs == 1 else "s",
                                                100 * e.share)


def _expectation_rows(summaries):
    return [dict(variant=variant, name=e.name, share=share_text(e), status=e.status,
                 failures=["run %s: %s" % (f["run"], f["reason"]) for f in e.failures])
            for variant, summary in summaries.items() for e in summary.expectations]


def _comparison_view(comparison):
    if comparison is None:
        return None
    return dict(a=comparison.a, b=comparison.b, method=comparison.method, rows=[
        dict(measure=wording(m.measure).label, sentence=m.sentence, differ=m.differ)
        for m in comparison.measures])


def _run_view(variant, index, run, pictures):
    png, svg = pictures
    measures = run.get("measures") or {}
    return dict(
        anchor="run-%s-%d" % (re.sub(r"\W+", "-", str(variant)), index + 1),
        title="%s, run %s" % (variant, run.get("run", index + 1)),
        png=_data_uri(png), png_name=png.name, svg_name=svg.name,
        measures=", ".join("%s %s" % (wording(k).label, format_value(k, v))
                           for k, v in measures.items()),
        expectations=[dict(name=e.get("name", "?"), passed=bool(e.get("passed")),
                           reason=e.get("reason", "")) for e in run.get("expectations") or []],
        events=[dict(t="%.3f" % e["t"], lane=e.get("lane", ""), kind=e.get("kind", ""),
                     label=e.get("label", ""))
                for e in sorted(run.get("events") or [], key=lambda e: e["t"])])


def _data_uri(png):
    return "data:image/png;base64," + base64.b64encode(Path(png).read_bytes()).decode()


def _drill_name(runs_by_variant):
    return next((runs[0].get("drill") for runs in runs_by_variant.values() if runs), "") or "drill"


# -- JSON and JUnit ------------------------------------------------------------------

def _json_safe(value):
    """Strict JSON: a non-finite float (a measure never reached, written as inf by
    someone) becomes null rather than the invalid ``Infinity``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _xml_text(text):
    return _XML_ILLEGAL.sub("?", str(text))


def write_junit(path, summaries):
    """JUnit XML: a testsuite per variant, a testcase per expectation, failed when any
    run failed it; the message says the share and whether it is flaky."""
    drill = next(iter(summaries.values())).drill or "drill"
    root = ET.Element("testsuites", name=_xml_text("drill %s" % drill))
    total = failures = 0
    for variant, summary in summaries.items():
        failed = [e for e in summary.expectations if e.status != "met"]
        suite = ET.SubElement(root, "testsuite", name=_xml_text("%s: %s" % (drill, variant)),
                              tests=str(len(summary.expectations)), failures=str(len(failed)))
        properties = ET.SubElement(suite, "properties")
        ET.SubElement(properties, "property", name="runs", value=str(summary.runs))
        for m in summary.measures:
            ET.SubElement(properties, "property", name="%s.median" % m.measure,
                          value=_xml_text(format_value(m.measure, m.median)
                                          if m.median is not None else "not reached"))
        for e in summary.expectations:
            case = ET.SubElement(suite, "testcase", name=_xml_text(e.name),
                                 classname=_xml_text("drill.%s.%s" % (drill, variant)))
            if e.status == "met":
                ET.SubElement(case, "system-out").text = _xml_text(share_text(e))
                continue
            message = "%s: %s" % ("flaky" if e.status == "flaky" else "failed in every run",
                                  share_text(e))
            ET.SubElement(case, "failure", message=_xml_text(message)).text = _xml_text(
                "\n".join([message] + ["run %s: %s" % (f["run"], f["reason"])
                                       for f in e.failures]))
        total += len(summary.expectations)
        failures += len(failed)
    root.set("tests", str(total))
    root.set("failures", str(failures))
    ET.ElementTree(root).write(path, encoding="unicode", xml_declaration=True)
