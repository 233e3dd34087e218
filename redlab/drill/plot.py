"""Pictures of drill runs: one run as swimlanes on one clock, repeats as distributions.

Drawn with matplotlib's object API on the Agg canvas (``Figure`` + ``FigureCanvasAgg``):
no display, no pyplot global state, so pictures can be made from any thread or test.
Every picture is written twice, ``<stem>.png`` (for the HTML report and a quick look)
and ``<stem>.svg`` with its text kept as text (``svg.fonttype: none``), so lane names
and interval labels can be searched and copied.
"""

import textwrap
from pathlib import Path

import matplotlib
import numpy
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from redlab.drill.stats import wording


# Lanes are drawn top to bottom in the order a failure travels: the fault, the
# protocols reacting to it, the network learning it, and last what the client saw.
LANE_ORDER = ("fault", "step", "vrrp", "garp", "arp", "controller", "health", "", "probe")
MARK_COLORS = {"fault": "#c0392b", "step": "#2c3e80"}
OK_COLOR, FAIL_COLOR = "#2e9e44", "#d62728"
INTERVAL_COLORS = ("#8e44ad", "#e67e22", "#16a085", "#7f8c8d")
STATE_COLORS = ("#cfe2f3", "#fde9c4", "#d9ead3", "#ead1dc", "#fff2cc", "#d0e0e3")
PACKET_MARKERS = {"packet": "v", "flow": "s", "fail": "x"}
LANE_LABEL_CHARS = 22       # lane names on the y axis
TEXT_CHARS = 46             # labels next to markers and on states (a MAC must fit)
BURST = 0.03                # events closer than this share of the axis share a label
WIDTH = 12                  # inches: a laptop screen wide at 110 dpi
LEFT, RIGHT = 1.75, 0.2     # inches beside the lanes: their names, a little air
RC = {"svg.fonttype": "none", "svg.hashsalt": "redlab", "font.size": 9}


def shorten(text, limit):
    """``text`` cut to ``limit`` characters, the cut shown by an ellipsis."""
    text = str(text)
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "\u2026"


def save(fig, path_stem):
    """Write ``<stem>.png`` and ``<stem>.svg``; return both paths."""
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    png, svg = stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".svg")
    with matplotlib.rc_context(RC):
        fig.savefig(png, dpi=110)
        fig.savefig(svg, metadata={"Date": None})
    return png, svg


# -- one run as swimlanes ------------------------------------------------------------

def lane_names(record):
    """The run's lanes, fault first and probes last (see ``LANE_ORDER``)."""
    names = {}
    for event in sorted(record.get("events") or [], key=lambda e: e["t"]):
        names.setdefault(event["lane"], None)
    for probe in record.get("samples") or {}:
        names.setdefault("probe %s" % probe, None)

    def rank(lane):
        first = lane.split()[0] if lane.split() else ""
        return LANE_ORDER.index(first) if first in LANE_ORDER else LANE_ORDER.index("")
    return sorted(names, key=rank)


def swimlanes(record, path_stem):
    """Draw one run: a lane per event lane, one shared time axis in seconds, marks across
    all lanes and the measured intervals as annotated spans underneath; return the
    PNG and SVG paths."""
    with matplotlib.rc_context(RC):
        fig = _swimlane_figure(record)
    return save(fig, path_stem)


def _swimlane_figure(record):
    lanes = lane_names(record)
    intervals = record.get("intervals") or []
    events = sorted(record.get("events") or [], key=lambda e: e["t"])
    rows = max(len(lanes) + len(intervals), 1)
    height = 1.0 + 0.55 * rows
    fig = Figure(figsize=(WIDTH, height))
    # fixed margins in inches (a layout engine would draw everything twice): room for
    # the lane names on the left, the title above, the time axis below
    fig.subplots_adjust(left=LEFT / WIDTH, right=1 - RIGHT / WIDTH, top=1 - 0.35 / height,
                        bottom=0.6 / height)
    ax = fig.add_subplot()
    lo, hi = _time_range(record)
    ax.set_xlim(lo, hi)
    ax.set_ylim(rows - 0.5, -0.5)           # first lane on top
    for i in range(0, len(lanes), 2):
        ax.axhspan(i - 0.5, i + 0.5, color="#f4f6f8", zorder=0)
    by_lane = {lane: [e for e in events if e["lane"] == lane] for lane in lanes}
    ticks = []
    place = _Placer(lo, hi, WIDTH - LEFT - RIGHT)
    for y, lane in enumerate(lanes):
        ticks.append(_draw_lane(ax, y, lane, by_lane[lane], record, hi, place))
    for event in events:
        if event.get("kind") == "mark":
            ax.axvline(event["t"], color=_mark_color(event["lane"]), lw=1.1, ls="--",
                       zorder=1, alpha=0.8)
    for j, interval in enumerate(intervals):
        _draw_interval(ax, len(lanes) + j, interval, INTERVAL_COLORS[j % len(INTERVAL_COLORS)],
                       len(lanes))
        ticks.append("measured" if j == 0 else "")
    ax.set_yticks(range(rows), ticks)
    ax.tick_params(axis="y", length=0)
    ax.set_xlabel("time since the run started (s)")
    ax.grid(axis="x", color="#dddddd", lw=0.6, zorder=0)
    ax.set_axisbelow(True)
    ax.set_title(shorten("%s \u2014 %s, run %s" % (record.get("drill", "drill"),
                                                  record.get("variant", ""),
                                                  record.get("run", "")), 90),
                 loc="left", fontsize=11)
    return fig


def _time_range(record):
    times = [e["t"] for e in record.get("events") or []]
    times += [s["t"] for samples in (record.get("samples") or {}).values() for s in samples]
    times += [t for i in record.get("intervals") or [] for t in (i.get("start"), i.get("end"))
              if t is not None]
    lo, hi = min(times + [0.0]), max(times + [1.0])
    pad = 0.03 * (hi - lo)
    return lo - pad, hi + pad


class _Placer:
    """Where a label goes so that it stays readable: right of its time (left of it near
    the right edge), on the first of two levels of its lane (above or below the marker,
    on or under a state bar) where it overlaps no earlier label; nowhere (None) when
    both are taken: the marker stays, and the report lists every event.  Widths are
    estimated from the number of characters of 8 pt text."""

    CHAR = 0.064                # inches: one character of 8 pt DejaVu Sans, a little more

    def __init__(self, lo, hi, axis_inches):
        self.lo, self.hi = lo, hi
        self.char = self.CHAR / axis_inches * (hi - lo)
        self.ends = {}          # (lane, level) -> where that level's last label ends

    def __call__(self, lane, t, text):
        width = (len(text) + 1) * self.char
        on_left = t + width > self.hi
        start, stop = (t - width, t) if on_left else (t, t + width)
        free = [level for level in (0, 1) if self.ends.get((lane, level), start) <= start]
        if not free:
            return None
        level = free[0]
        self.ends[(lane, level)] = stop
        return dict(x=t, level=level, ha="right" if on_left else "left",
                    text=text + " " if on_left else " " + text)


def _draw_lane(ax, y, lane, events, record, end, place):
    """Draw one lane; return its y-axis label."""
    label = shorten(lane, LANE_LABEL_CHARS)
    window = BURST * (place.hi - place.lo)
    if lane.startswith("probe "):
        samples = (record.get("samples") or {}).get(lane[len("probe "):], [])
        label = _draw_samples(ax, y, samples, label)
    states = [e for e in events if e.get("kind") == "state"]
    if states:
        _draw_states(ax, y, lane, states, end, place, window)
    _draw_points(ax, y, lane, [e for e in events if e.get("kind") != "state"], place,
                 window)
    return label


def _draw_samples(ax, y, samples, label):
    """Probe requests as ticks: green answered, red failed (taller, drawn on top)."""
    good = [s["t"] for s in samples if s.get("ok")]
    bad = [s["t"] for s in samples if not s.get("ok")]
    ax.vlines(good, y - 0.22, y + 0.22, color=OK_COLOR, lw=0.9, zorder=2)
    ax.vlines(bad, y - 0.34, y + 0.34, color=FAIL_COLOR, lw=1.4, zorder=3)
    if not samples:
        return label
    return "%s\n%d of %d failed" % (label, len(bad), len(samples))


def bursts(events, window):
    """Consecutive events closer than ``window`` to the first of their group: a
    keepalived failover sends five GARPs at once, a controller replaces several flows
    in a few milliseconds; each burst gets one label."""
    groups = []
    for event in events:
        if groups and event["t"] - groups[-1][0]["t"] < window:
            groups[-1].append(event)
        else:
            groups.append([event])
    return groups


def _burst_text(labels, joined, first, last):
    """One label for a burst: "a -> b -> c" for states, "a (+3 more in 12 ms)" otherwise."""
    if len(labels) == 1:
        return shorten(labels[0], TEXT_CHARS)
    if joined:
        return shorten(" \u2192 ".join(labels), TEXT_CHARS + 12)
    suffix = " (+%d more in %.0f ms)" % (len(labels) - 1, 1000 * (last - first))
    return shorten(labels[0], TEXT_CHARS - len(suffix)) + suffix


def _draw_states(ax, y, lane, states, end, place, window):
    """A state lane as labelled steps: each state lasts until the next one."""
    colors = {}
    for k, event in enumerate(states):
        stop = states[k + 1]["t"] if k + 1 < len(states) else end
        color = colors.setdefault(event.get("label"),
                                  STATE_COLORS[len(colors) % len(STATE_COLORS)])
        ax.broken_barh([(event["t"], stop - event["t"])], (y - 0.3, 0.6), facecolors=color,
                       edgecolors="#6d7b8a", lw=0.6, zorder=2)
    for group in bursts(states, window):
        text = _burst_text([str(e.get("label", "")) for e in group], True, group[0]["t"],
                           group[-1]["t"])
        _label(ax, y, place(lane, group[0]["t"], text), "black", inside=True)


def _draw_points(ax, y, lane, events, place, window):
    """Packets, flows, marks and the rest as markers; a label is written only where it
    says something new (not a repeat of the lane's previous label), so that a lane of
    adverts every second stays readable."""
    previous = None
    for group in bursts(events, window):
        for event in group:
            ax.plot([event["t"]], [y], marker=_marker(event), color=_color(event), ms=6,
                    zorder=5, ls="none")
        labels = [e["label"] for e in group if e.get("label")]
        if labels and labels != [previous] * len(labels):
            text = _burst_text(labels, False, group[0]["t"], group[-1]["t"])
            _label(ax, y, place(lane, group[0]["t"], text), _color(group[0]), inside=False)
            previous = labels[-1]


def _marker(event):
    return "D" if event.get("kind") == "mark" else PACKET_MARKERS.get(event.get("kind"), "o")


def _color(event):
    kind = event.get("kind")
    return _mark_color(event["lane"]) if kind == "mark" else \
        FAIL_COLOR if kind == "fail" else "#34495e"


def _label(ax, y, where, color, inside):
    """A label on level 0 (on its state bar, or above its marker) or 1 (underneath)."""
    if where is None:
        return
    offset = (0.0 if inside else -0.16) if where["level"] == 0 else 0.16
    va = "center" if offset == 0 else "bottom" if offset < 0 else "top"
    ax.text(where["x"], y + offset, where["text"], va=va, ha=where["ha"], fontsize=8,
            color=color, zorder=6, clip_on=True,
            bbox=dict(boxstyle="square,pad=0.05", fc="white", ec="none",
                      alpha=0.0 if offset == 0 else 0.75))


def _draw_interval(ax, y, interval, color, lanes):
    """An interval as a double arrow with "name 3.20 s" on it, and its end as a dotted
    line across every lane (so one sees which event closed it)."""
    start, end = interval.get("start"), interval.get("end")
    if start is None or end is None:
        ax.text(start or 0.0, y, " %s: not reached" % shorten(interval.get("name", ""), 20),
                va="center", color=color, fontweight="bold")
        return
    ax.annotate("", xy=(end, y), xytext=(start, y), zorder=4,
                arrowprops=dict(arrowstyle="<->", color=color, lw=1.6, shrinkA=0, shrinkB=0))
    ax.text((start + end) / 2, y - 0.08, "%s %.2f s" % (shorten(interval.get("name", ""), 20),
                                                       end - start),
            ha="center", va="bottom", fontsize=9, fontweight="bold", color=color, zorder=5,
            bbox=dict(boxstyle="round,pad=0.15", fc="white", ec=color, lw=0.6))
    ax.vlines([end], -0.5, lanes - 0.5, colors=color, lw=1.0, ls=":", zorder=1)


def _mark_color(lane):
    return MARK_COLORS.get(lane.split()[0] if lane.split() else lane, "#555555")


# -- repeats as distributions --------------------------------------------------------

def distributions(runs_by_variant, path_stem):
    """Per measure, each variant's runs as a box plot with every run drawn as a point
    (few runs: the points matter more than the box); runs that never reached the
    measure are counted under the axis.  Return the PNG and SVG paths."""
    measures = _measure_names(runs_by_variant)
    with matplotlib.rc_context(RC):
        fig = Figure(figsize=(max(3.4 * len(measures), 5), 4.2), layout="constrained")
        axes = fig.subplots(1, max(len(measures), 1), squeeze=False)[0]
        for ax, measure in zip(axes, measures):
            _draw_distribution(ax, measure, runs_by_variant)
        drill = next((runs[0].get("drill") for runs in runs_by_variant.values() if runs), "")
        fig.suptitle(shorten("%s \u2014 %d variant(s), each run a point" % (
            drill, len(runs_by_variant)), 90), x=0.01, ha="left", fontsize=11)
    return save(fig, path_stem)


def _measure_names(runs_by_variant):
    names = {}
    for runs in runs_by_variant.values():
        for run in runs:
            for name in run.get("measures") or {}:
                names.setdefault(name, None)
    return list(names)


def _draw_distribution(ax, measure, runs_by_variant):
    rng = numpy.random.default_rng(0)       # the same jitter every time: stable pictures
    labels = []
    for x, (variant, runs) in enumerate(runs_by_variant.items(), start=1):
        values = [(r.get("measures") or {}).get(measure) for r in runs]
        reached = [v for v in values if v is not None]
        if reached:
            ax.boxplot([reached], positions=[x], widths=0.5, showfliers=False,
                       medianprops=dict(color="#c0392b", lw=1.6))
            ax.plot(x + rng.uniform(-0.12, 0.12, len(reached)), reached, "o", ms=4,
                    color="#2c3e80", alpha=0.7, zorder=3)
        never = len(values) - len(reached)
        labels.append(shorten(variant, 16) + ("\n%d of %d never" % (never, len(values))
                                               if never else ""))
    ax.set_xticks(range(1, len(labels) + 1), labels)
    ax.set_xlim(0.4, len(labels) + 0.6)
    words = wording(measure)
    ax.set_title(textwrap.fill(shorten(words.label, 56), 28), fontsize=10)
    ax.set_ylabel({"s": "seconds"}.get(words.unit, words.unit))
    if words.unit == "requests":
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="y", color="#dddddd", lw=0.6)
    ax.set_axisbelow(True)

