"""Game day (``redlab drill FILE --gameday``) and a look around (``redlab drill FILE --cli``):
an engineer at the Mininet CLI of a drill's network, every line typed recorded.

A game day, one run on a fresh network (the engine's :class:`~redlab.drill.engine.Runner`
with its timeline phase replaced):

1. the network is built, set up and steady as for any drill; ``t0``;
2. one fault of ``gameday.faults``, chosen with ``random.Random(seed)``, is injected
   ``DELAY`` seconds after ``t0`` (a random moment too: the probe lane shows the service
   working before it broke).  Nothing says which fault; other timeline entries do not run;
3. the Mininet CLI is the engineer's.  Every line typed is recorded with its time (on an
   ``operator`` lane of the run record and in ``<run>/operator/commands.txt``); when the
   probe has answered ``RECOVERED_GOOD`` times in a row, one line says so (``exit`` ends
   the game day);
4. after ``exit``, the run waits until the service is back or the target's deadline has
   passed (at least ``CONFIRM`` seconds, so a fix typed just before ``exit`` is seen), then
   scores: time to restore (fault -> first good answer of the final run of good answers,
   as :func:`redlab.probe.analyse` measures recovery) against ``restore_within``, requests
   lost against ``max_lost``; each target met or not, with the measured value and the
   bound.  Then the fault is revealed.

The fault goes in *before* the CLI opens, not while the engineer types: a fault is done
through the hosts' Mininet shells (``host.cmd``), which are not safe to use from a second
thread while the CLI runs a command in the same shell.

The score goes into the run record as its expectations (so the report, its JUnit file and
the exit code judge the game day as any drill) and, with the chosen fault, the seed and the
commands, under the record's ``gameday`` key.  The drill's own ``expect`` entries are about
its scripted timeline and are not judged in a game day.

A fault the system heals by itself makes a poor game day; it is not refused (only the
network can tell), but the result says when the service came back before the first command
was typed.

``--cli`` is the same CLI after the timeline of an ordinary run: the probes stop first (the
record's measures are the drill's, not the look-around's), faults still in place are undone
after ``exit``, and the commands typed are recorded the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from redlab.drill import actions
from redlab.drill.expect import lost_at_most, recovered_within
from redlab.drill.engine import (RECOVERED_GOOD, STEADY_TIMEOUT, WHEN_TIMEOUT, Runner,
                                 refuse_unsupported)
from redlab.errors import ConfigError, WaitTimeout
from redlab.probe import Sample, analyse, streak
from redlab.wait import wait_until

DELAY = (1.0, 3.0)      # s of steady service between t0 and the fault (chosen by the seed)
CONFIRM = 3.0           # s after `exit` at least, for a fix typed just before it to show
GRACE = 300.0           # s past restore_within the probe keeps running; then time is up
WATCH_EVERY = 0.2       # s between two looks at the probe while the engineer works


def _say(text=""):
    print(text, flush=True)


# ---------------------------------------------------------------------------------------
# plain data: the choice, the targets, the score (unit-tested without a network)
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Choice:
    fault: str          # the timeline id of the fault injected
    delay: float        # s after t0
    seed: int


def check_gameday(drill):
    """Raise :class:`ConfigError` (one sentence) if ``drill`` cannot be a game day."""
    if "gameday" not in drill:
        raise ConfigError("drill %s has no gameday section; add gameday: {faults: [ID, ...], "
                          "restore_within: SECONDS} naming timeline faults"
                          % drill["drill"])


def gameday_only(drill):
    """True for a drill made for game days only: its timeline is nothing but the game
    day's faults and it expects nothing, so an ordinary run would inject every fault
    one after another with nobody restoring anything."""
    if "gameday" not in drill or drill["expect"]:
        return False
    faults = set(drill["gameday"]["faults"])
    return all(entry.get("id") in faults for entry in drill["timeline"])


def choose(drill, seed):
    """The fault and the moment, the same for the same seed and file."""
    rng = random.Random(seed)
    fault = rng.choice(drill["gameday"]["faults"])
    return Choice(fault, round(rng.uniform(*DELAY), 3), seed)


def targets(drill):
    """``{restore_within, max_lost (None: no bound), probe}``; the probe defaults to the
    drill's first."""
    gameday = drill["gameday"]
    return dict(restore_within=gameday["restore_within"], max_lost=gameday.get("max_lost"),
                probe=gameday.get("probe", drill["probes"][0]["name"]))


def _as_samples(records):
    return [Sample(seq=n, t=s["t"], end=s["t"] + (s.get("latency") or 0.0), ok=s["ok"],
                   server=s.get("served_by"), error=s.get("error"))
            for n, s in enumerate(records)]


def score(samples, fault_at, end, goal, commands):
    """The attempt against its targets, from the record's samples of the game day's
    probe (``t`` in s since t0), the fault's time, the end of the attempt (the fault's
    undo), ``goal`` (:func:`targets`) and the commands typed (``[{t, command}]``).

    Returns the measures and ``score``: one result per target shaped as an expectation
    (``name``, ``passed``, ``measured``, ``bound``, ``reason``)."""
    window = [s for s in samples if fault_at <= s["t"] < end]
    timeline = analyse(_as_samples(window), fault_at)
    restored = timeline.time_to_recover
    restored = None if restored is None else round(restored, 3)
    lost = timeline.requests_lost
    first = round(commands[0]["t"] - fault_at, 3) if commands else None
    result = dict(time_to_restore=restored, requests_lost=lost, requests_sent=len(window),
                  commands_typed=len(commands), first_command_after=first,
                  broke=lost > 0, by_itself=restored is not None and lost > 0
                  and (first is None or restored < first))
    # the drills' own expectations, so a game day is scored as a drill is judged
    restore = recovered_within(timeline, goal, "restore_within", end - fault_at,
                               what="service restored after")
    restore.name = "service restored within %g s (probe %s)" % (goal["restore_within"],
                                                                 goal["probe"])
    items = [restore.record()]
    if goal["max_lost"] is not None:
        lost_result = lost_at_most(timeline, goal["max_lost"], len(window))
        lost_result.name = "at most %d requests lost (probe %s)" % (goal["max_lost"],
                                                                    goal["probe"])
        items.append(lost_result.record())
    result["score"] = items
    result["met"] = all(item["passed"] for item in items)
    return result


def result_lines(record):
    """The game day's outcome as printed at the end: the fault revealed, each target
    met or not with its measured value, the commands."""
    g = record["gameday"]
    lines = ["game day %s, seed %d: the fault was %s (timeline id %s), injected at "
             "t=%.2f s" % (record["drill"], g["seed"], g["fault_description"], g["fault"],
                          g["injected_at"])]
    for item in g["score"]:
        lines.append("  %-4s %s -- %s" % ("met" if item["passed"] else "MISS", item["name"],
                                          item["reason"]))
    if g["commands"]:
        lines.append("  %d command(s) typed, the first %.2f s after the fault:"
                     % (len(g["commands"]), g["first_command_after"]))
        lines += ["    t=%7.2f s  %s" % (c["t"], c["command"]) for c in g["commands"]]
    else:
        lines.append("  no command typed")
    if not g["broke"] and g["commands"]:
        lines.append("  note: no request failed after the fault: the first command came %.2f s "
                     "after it" % g["first_command_after"])
    elif not g["broke"]:
        lines.append("  note: the service never failed after the fault; this fault does not "
                     "break it, so it makes no game day")
    elif g["by_itself"]:
        lines.append("  note: the service came back by itself %.2f s after the fault, before "
                     "the first command was typed; this fault makes a poor game day"
                     % g["time_to_restore"])
    met = sum(1 for item in g["score"] if item["passed"])
    lines.append("  score: %d of %d targets met" % (met, len(g["score"])))
    return lines


# ---------------------------------------------------------------------------------------
# the Mininet CLI, every line typed recorded
# ---------------------------------------------------------------------------------------

def _recording_cli():
    """The class is built on first use: importing Mininet needs its Python (the venv)."""
    from mininet.cli import CLI
    from mininet.log import output

    class RecordingCLI(CLI):
        """Mininet's CLI reading ``stdin`` (a terminal, a pipe or a test's file), each line
        typed passed to ``on_command(line)`` before it runs.

        Two changes for input that is not a terminal: lines are read from ``stdin`` itself
        (``cmd.Cmd``'s ``input()`` reads ``sys.stdin`` whatever ``stdin`` is) and echoed
        after the prompt, and a host command's wait does not pass the script's next lines
        to that command as keystrokes (Mininet forwards whatever ``stdin`` holds, meant
        for a person typing into ``ping`` or ``vi``)."""

        def __init__(self, mininet, on_command, stdin=None):
            stdin = sys.stdin if stdin is None else stdin
            self.on_command = on_command
            self.use_rawinput = stdin is sys.stdin
            self.scripted = not os.isatty(stdin.fileno())
            super().__init__(mininet, stdin=stdin)

        def precmd(self, line):
            typed = line.strip()
            if typed and typed != "EOF":        # EOF: the end of the input, not a command
                if self.scripted:       # after the prompt, as a terminal would show it
                    self.stdout.write(typed + "\n")
                    self.stdout.flush()
                self.on_command(typed)
            return super().precmd(line)

        def waitForNode(self, node):
            if not self.scripted:
                return super().waitForNode(node)
            while node.waiting:
                output(node.monitor())
            return None

    return RecordingCLI


@contextlib.contextmanager
def _cli_output():
    """Mininet's ``output`` level while the CLI runs: the harness runs Mininet quietly
    (``warning``), which would silence every answer of the CLI (as :mod:`redlab.labs`)."""
    from mininet.log import LEVELS, lg, setLogLevel
    before = next((n for n, v in LEVELS.items() if v == lg.level), "warning")
    propagate = lg.propagate
    setLogLevel("output")
    lg.propagate = False
    try:
        yield
    finally:
        setLogLevel(before)
        lg.propagate = propagate


class _Watcher(threading.Thread):
    """While the engineer works: one line when the probe has answered ``RECOVERED_GOOD``
    times in a row (and again if it fails after that), one when time is up.  It only
    reads the probe's samples file: the hosts' shells belong to the CLI."""

    def __init__(self, probe, name, since, limit_at, say, prompt):
        super().__init__(name="gameday-watcher", daemon=True)
        self.probe, self.name, self.since = probe, name, since
        self.limit_at, self.say, self.prompt = limit_at, say, prompt
        self.done = threading.Event()
        self.notice_at = None

    def tell(self, text):
        self.say("\n*** %s%s" % (text, "\nmininet> " if self.prompt else ""))

    def run(self):
        back, late = False, False
        while not self.done.wait(WATCH_EVERY):
            run = streak(self.probe.samples(), self.since)
            if not back and run >= RECOVERED_GOOD:
                back = True
                self.notice_at = self.notice_at or time.time()
                self.tell("the service is back: probe %s answered %d times in a row; type "
                          "exit to end the game day and see the score" % (self.name, run))
            elif back and run == 0:
                back = False
                self.tell("the service is down again (probe %s)" % self.name)
            if not late and time.time() > self.limit_at:
                late = True
                self.tell("time is up: the probe stops in a moment; type exit to see the "
                          "score")

    def stop(self):
        self.done.set()
        self.join()


class CLIRunner(Runner):
    """A run with the engineer at the Mininet CLI of its network (``_open_cli``)."""

    def __init__(self, drill, label, stdin=None, out=_say):
        super().__init__(drill, label, 1, WHEN_TIMEOUT)
        self.stdin, self.out = stdin, out
        self.commands = []          # (time, line typed)

    def _typed(self, line):
        t = time.time()
        self.commands.append((t, line))
        self._event(t, "operator", "command", line)
        with open(self.net.run.file("operator", "commands.txt"), "a") as log:
            log.write("t=%.3f s  %s\n" % (t - self.t0, line))

    def _open_cli(self):
        with _cli_output():
            _recording_cli()(self.net.net, self._typed, stdin=self.stdin)

    def _interactive(self):
        stdin = sys.stdin if self.stdin is None else self.stdin
        return os.isatty(stdin.fileno())


class GameDayRunner(CLIRunner):
    """One game day: see the module's docstring."""

    def __init__(self, drill, seed, stdin=None, out=_say):
        check_gameday(drill)
        # the game day is scored on its targets (record["expectations"] = the score)
        super().__init__(dict(drill, expect=[]), "gameday", stdin, out)
        self.choice = choose(drill, seed)
        self.goal = targets(drill)
        self.gateways = None
        self.notice_at = None
        self.cli_closed = None

    def _limit(self):
        return self.goal["restore_within"] + GRACE

    def _longest_run(self):
        return STEADY_TIMEOUT + DELAY[1] + self._limit() + 60

    def _timeline(self):
        probe_spec = next(p for p in self.drill["probes"] if p["name"] == self.goal["probe"])
        lost = "" if self.goal["max_lost"] is None else \
            ", losing at most %d requests" % self.goal["max_lost"]
        self.out("game day: %s. The service (probe %s: %s -> %s) answers now; in a moment "
                 "one of %d faults breaks it, unseen, and the Mininet CLI is yours. Restore "
                 "the service within %g s%s, then type exit."
                 % (self.drill["drill"], probe_spec["name"], probe_spec["from"],
                    probe_spec.get("url", probe_spec.get("host")),
                    len(self.drill["gameday"]["faults"]), self.goal["restore_within"], lost))
        wait = self.t0 + self.choice.delay - time.time()
        if wait > 0:
            time.sleep(wait)        # a scheduled moment (as a timeline `at`), not a condition
        key = self.choice.fault
        began = self._do(key, self._entry(key))
        self.out("*** something broke (t=%.1f s). Try `nodes`, `net`, `links`, "
                 "`HOST COMMAND`, `link A B up|down`." % (began - self.t0))
        watcher = _Watcher(self.probes[self.goal["probe"]], self.goal["probe"], began,
                           began + self._limit(), self.out, prompt=self._interactive())
        watcher.start()
        try:
            self._open_cli()
        finally:
            watcher.stop()
            self.notice_at, self.cli_closed = watcher.notice_at, time.time()

    def _settle(self):
        """After ``exit``: until the service is back (``RECOVERED_GOOD`` answers in a row)
        or the target's deadline has passed, and at least ``CONFIRM`` s; Ctrl-C scores
        at once."""
        began = self.marks[self.choice.fault]
        probe = self.probes[self.goal["probe"]]
        deadline = began + self.goal["restore_within"]

        def back():
            run = streak(probe.samples(), began)
            return run >= RECOVERED_GOOD, "%d good answers in a row" % run

        def wait(seconds):
            try:
                wait_until(back, seconds, "the service to come back", interval=0.1)
                return True
            except WaitTimeout:
                return False        # not back (yet): that is the measurement
        try:
            if wait(CONFIRM):
                return
            left = deadline - time.time()
            if left > 0:
                self.out("the service is not back: waiting up to %.0f s more (the target's "
                         "deadline); Ctrl-C scores now" % left)
                wait(left)
        except KeyboardInterrupt:
            pass

    def _vips(self):
        """The drill's VIPs and each probing client's gateway: the client's ARP entry for
        it (who it sends to) is half of what a re-cabled router changes."""
        if self.gateways is None:
            self.gateways = set()
            for client in {p["from"] for p in self.drill["probes"]}:
                route = self.net[client].cmd("ip -4 route show default").split()
                if "via" in route:
                    self.gateways.add(route[route.index("via") + 1])
        return sorted(set(super()._vips()) | self.gateways)

    def _record(self, folder):
        record = super()._record(folder)
        key = self.choice.fault
        rel = lambda t: None if t is None else round(t - self.t0, 3)    # noqa: E731
        fault_at = rel(self.marks[key])
        # the attempt ends when the fault's undo *begins* (the engine's `end`): a request
        # answered while the undo runs was answered thanks to it, not to the engineer
        end = rel(getattr(self, "end", None) or time.time())
        commands = [dict(t=rel(t), command=line) for t, line in self.commands]
        result = score(record["samples"][self.goal["probe"]], fault_at, end, self.goal,
                       commands)
        record["expectations"] = result["score"]
        record["gameday"] = dict(
            fault=key, fault_description=actions.describe(self._entry(key)),
            seed=self.choice.seed, delay=self.choice.delay, injected_at=fault_at,
            targets=self.goal, commands=commands, notice_at=rel(self.notice_at),
            cli_closed_at=rel(self.cli_closed), **result)
        return record


class LookAroundRunner(CLIRunner):
    """``--cli``: the ordinary run, then the CLI on its network before the undo."""

    def __init__(self, drill, stdin=None, out=_say):
        super().__init__(drill, "default", stdin, out)

    def _settle(self):
        super()._settle()
        for probe in self.probes.values():
            probe.terminate()
        for probe in self.probes.values():
            probe.stop()
        self.out("the timeline ran (probes stopped); the Mininet CLI on the drill's network "
                 "is yours: type exit to undo what is still broken and tear it down")
        self._open_cli()


# ---------------------------------------------------------------------------------------
# what `redlab drill` calls
# ---------------------------------------------------------------------------------------

def _save(record, *names):
    folder = Path(record["run_folder"])
    folder.joinpath("record.json").write_text(json.dumps(record, indent=1, default=str))
    for name in names:
        folder.joinpath("%s.json" % name).write_text(
            json.dumps(record[name], indent=1, default=str))
    return record


def run_gameday(drill, seed=None, run_folder=None, stdin=None, out=_say):
    """One game day on a fresh network; returns its run record (``record["gameday"]``:
    the fault, the seed, the commands, the measures and the score).  Without a seed one
    is drawn, and recorded: ``--seed`` with it replays the same fault at the same moment."""
    check_gameday(drill)
    topo = refuse_unsupported(drill)
    if seed is None:
        seed = random.SystemRandom().randrange(2 ** 31)
    runner = GameDayRunner(drill, seed, stdin=stdin, out=out)
    return _save(runner.run(topo, run_folder), "gameday")


def run_with_cli(drill, run_folder=None, stdin=None, out=_say):
    """One ordinary run of ``drill`` with the CLI after its timeline (``--cli``)."""
    topo = refuse_unsupported(drill)
    return _save(LookAroundRunner(drill, stdin=stdin, out=out).run(topo, run_folder))
