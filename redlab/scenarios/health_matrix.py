"""The detection matrix of the course notes, measured: the drill
``drills/detection-matrix.yaml`` run by the drill engine, read as a matrix.

Faults {host crash, link down, nginx stopped, HTTP 500, hang} x checks {icmp, tcp,
http}: which check notices which fault, and how fast.  The notes say: ICMP (L3)
misses a dead web service; a TCP connect (L4) misses 500s and hangs; an HTTP request
(L7) catches them all.  The three checks are the drill's probes from the director to
web1, every 200 ms with a 500 ms timeout, as the load balancer's health checks are;
like them, a check declares web1 down after ``fall`` failures in a row.
"""

from pathlib import Path

CHECKS = ("icmp", "tcp", "http")
DRILL = Path(__file__).resolve().parents[2] / "drills" / "detection-matrix.yaml"
FAULTS = {"crash": "host crash", "cable": "link down", "stopped": "nginx stopped",
          "error500": "HTTP 500", "hang": "hang"}
EXPECTED = {
    "host crash": {"icmp", "tcp", "http"},
    "link down": {"icmp", "tcp", "http"},
    "nginx stopped": {"tcp", "http"},
    "HTTP 500": {"http"},
    "hang": {"http"},
}


def run(run_folder, cli=False, out=None, stdin=None):
    """Run the drill once; ``cli``: the Mininet CLI on its network after the faults
    (reading ``stdin``, the terminal by default).
    Returns the run record (``matrix(record)`` reads it)."""
    from redlab.drill import gameday
    from redlab.drill.engine import run_drill
    from redlab.drill.schema import load_drill
    drill = load_drill(DRILL)
    if cli:
        return gameday.run_with_cli(drill, run_folder=run_folder, stdin=stdin, out=out or print)
    return run_drill(drill, run_folder=run_folder)


def detected(samples, start, end, fall=2):
    """Seconds from ``start`` to the end of the ``fall``-th failed answer in a row among
    the requests sent in ``[start, end)``, or None: the check never declared it down."""
    streak = 0
    for s in samples:
        if not start <= s["t"] < end:
            continue
        streak = 0 if s["ok"] else streak + 1
        if streak >= fall:
            return round(s["t"] + (s.get("latency") or 0.0) - start, 3)
    return None


def matrix(record, fall=2):
    """``{fault: {check: seconds to detect or None}}`` from a run record of the drill;
    each fault's window runs from its mark to its undo."""
    marks, undone = record["observed"]["marks"], record["observed"]["undone"]
    result = {}
    for key, name in FAULTS.items():
        start, end = marks.get(key), undone.get(key)
        if start is None:
            result[name] = {c: None for c in CHECKS}
            continue
        end = record["observed"]["end"] if end is None else end
        result[name] = {c: detected(record["samples"][c], start, end, fall) for c in CHECKS}
    return result


def checks_sent(record):
    """How many checks each probe made over the whole run (steady phase included): the
    lines of its samples file in the director's run folder."""
    folder = Path(record["run_folder"]) / "director"
    return {c: sum(1 for _ in open(folder / ("probe-%s.jsonl" % c))) for c in CHECKS}


def markdown(matrix):
    lines = ["| fault | " + " | ".join(CHECKS) + " |", "|---|---|---|---|"]
    for name, row in matrix.items():
        lines.append("| %s | %s |" % (name, " | ".join(
            "missed" if row[c] is None else "%.2f s" % row[c] for c in CHECKS)))
    return "\n".join(lines)
