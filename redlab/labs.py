"""Labs: one folder each under ``labs/``, run by students and graded by instructors.

A lab folder ``labs/NN-slug/`` holds::

    guide.en.md  guide.ja.md   what to run, what to look at, what to expect and why
    lab.py                     TITLE, walkthrough(ctx), CHECKS
    lab.yaml                   its data: the thresholds its checks compare against
    submission/                where the student edits (starter files); graded by default
    reference/                 the reference solution (graded in the test suite: all pass)
    broken/<case>/             broken submissions, each failing a named check (tests)

``lab.py`` contract (kathara-lab-checker style: expectations as data, small checks)::

    TITLE = "Cold standby router"
    TOPOLOGY = "topologies/routed.py"          # what the lab builds (informative)
    DATA = lab_data(__file__)                  # lab.yaml: the thresholds the checks use

    def walkthrough(ctx):                      # builds the network from ctx.submission,
        ctx.say("...")                         # narrates what happens,
        ctx.pause(net, STOPS["start"], vip=v)  # opens the Mininet CLI here with --cli,
        return {"time_to_recover": 1.2, ...}   # returns what it measured

    @check("service returns after rewire")     # redlab.checks: declared once, one name
    def service_returns(ctx, measured):
        return within(measured["time_to_recover"], DATA["bound"], "...", "...")

    CHECKS = [configs_identical, service_returns]
    STOPS = {"start": Stop("what to look at", ["client1 curl -s http://%(vip)s/"])}

Host queries are :mod:`redlab.observe`'s; machinery that is not the lab's story (agents,
parsers of the student's files, long narration) lives in ``redlab/scenarios/``.

A stop's commands are data so that a unit test can hold every one of them to what Mininet's
CLI does with a line, and a lab test can type each as printed (``Context(type_hints=True)``).

Static checks (reading the submission's files) can run without a network: a check
that only needs files is declared ``@check(name, static=True)`` and is run even when the
walk-through fails, so a student always gets the file-level reasons.

A check that no submission could fail, or that an empty or untouched submission passes
while its failure is reported by the walk-through anyway (a file is there and parses),
measures the lab, not the student: it is declared ``@check(name, scored=False)`` and its
result is information (INFO in the reports), never counted.
"""

import contextlib
import functools
import importlib.util
import json
import os
import re
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

from redlab.errors import ConfigError, RedlabError

LABS_DIR = Path(__file__).resolve().parent.parent / "labs"


@dataclass
class CheckResult:
    name: str
    passed: bool
    reason: str                 # what a student can act on (for a pass: what was seen)
    measured: dict = field(default_factory=dict)
    scored: bool = True         # False: information (it measures the lab, not the student)

    def line(self):
        mark = ("PASS" if self.passed else "FAIL") if self.scored else "INFO"
        return "%s  %s: %s" % (mark, self.name, self.reason)

    def record(self):
        """The result as a drill record keeps an expectation: ``name``, ``passed``,
        ``measured`` (the one value judged), ``bound`` and ``reason``."""
        return dict(name=self.name, passed=bool(self.passed),
                    measured=self.measured.get("value"), bound=self.measured.get("bound"),
                    reason=self.reason)


def passed(name, reason, **measured):
    return CheckResult(name, True, reason, measured)


def failed(name, reason, **measured):
    return CheckResult(name, False, reason, measured)


def info(result):
    """The same result shown as information: no submission could fail it, so it is not
    scored (it measures keepalived or the harness, not the student)."""
    result.scored = False
    return result


def check_name(check):
    """The one name a check reports under: its ``check_name`` attribute, else its
    function's name without ``check_`` and with spaces (``check_catches_HTTP_500`` ->
    ``catches HTTP 500``)."""
    return getattr(check, "check_name", None) or \
        check.__name__.replace("check_", "", 1).replace("_", " ")


def scored(results):
    """The results that count towards the grade."""
    return [r for r in results if r.scored]


@dataclass(frozen=True)
class Stop:
    """A stop in the Mininet CLI: what to look at, and the commands to try there.

    Each command is one line typed at ``mininet>`` as printed.  Mininet's CLI runs
    ``node rest`` on ``node`` but first replaces every word of ``rest`` that is a node's
    name with that node's IP, so ``client1 curl ... ; client1 ip neigh`` runs
    ``10.0.0.201 ip neigh``: one command per line, each starting with its node (or ``sh``,
    or a lab verb).  ``%(name)s`` fields are filled from the walk-through's values."""
    message: str
    commands: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "commands", tuple(self.commands))

    def fill(self, **values):
        """This stop with its ``%(name)s`` fields replaced by ``values``."""
        return Stop(self.message % values, tuple(c % values for c in self.commands))

    def text(self):
        """What the student reads: the message, then the commands one per line, each
        ready to paste at ``mininet>`` (no prompt in front of it)."""
        lines = [self.message]
        if self.commands:
            lines.append("type these at mininet>, one line at a time:")
            lines += ["    %s" % command for command in self.commands]
        return "\n>>> ".join(lines)


def renamed_words(command, node_names):
    """The words of a ``mininet>`` line that the CLI would replace with an IP address:
    after the first word of a line that starts with a node (``CLI.default`` splits on
    single spaces and replaces every word that is a node's name)."""
    first, _, rest = command.partition(" ")
    if first not in node_names:
        return []                 # sh, a lab verb or a CLI command: passed on untouched
    return [word for word in rest.split(" ") if word in node_names]


class Context:
    """What a walk-through gets: the submission, a run folder, narration, CLI pauses."""

    def __init__(self, lab, submission, run_folder=None, cli=False, out=print, grading=False,
                 cli_script=None, student=None, class_mode=False, type_hints=False):
        self.lab = lab
        self.grading = grading          # True under `redlab grade`: demonstrations may be skipped
        # the student's name (their folder's name in a class; None for one submission): a lab
        # whose answers could be copied between students derives a variant from it
        self.student = student
        # grading a class: a FAIL reason must not print the expected answer
        self.class_mode = class_mode
        self.submission = Path(submission)
        self.run_folder = Path(run_folder) if run_folder else None
        # tests: type each stop's own commands, as printed, before any of cli_script's;
        # a callable: also, after each command, the line it returns (a test's wait for a
        # process a command left in the background, which a student's typing gives time)
        self.type_hints = type_hints
        self.cli = cli or cli_script is not None or type_hints
        self._out = out
        # the lab's verbs: typed at a CLI pause (``mininet> rewire r1 r2``); a lab module's
        # VERBS need no network and also run as ``redlab lab NN VERB``
        self.verbs = {name: (functools.partial(function, self), usage)
                      for name, (function, usage)
                      in getattr(getattr(lab, "module", None), "VERBS", {}).items()}
        # tests: the commands typed at each pause, in order (a list of strings)
        self.cli_script = list(cli_script) if cli_script is not None else None
        self.pauses = 0
        # tests: each stop as printed, and the file that holds what the CLI printed there
        self.stops = []
        self.transcripts = []

    def verb(self, name, function, usage):
        """Offer ``function(args)`` as a command at the CLI pauses from now on."""
        self.verbs[name] = (function, usage)

    def run_verb(self, name, args):
        """Run a verb and return its text; a :class:`RedlabError` becomes its one sentence."""
        function, usage = self.verbs[name]
        try:
            return function(list(args)) or ""
        except RedlabError as exc:
            return "%s: %s" % (name, exc)

    def say(self, text=""):
        if self._out:
            self._out(text)

    def folder(self, name):
        """A run folder for one network of this walk-through (None: the default root)."""
        return None if self.run_folder is None else self.run_folder / name

    def file(self, name):
        path = self.submission / name
        if not path.exists():
            raise ConfigError("the submission has no %s (looked in %s); start from the lab's "
                              "submission/ folder" % (name, self.submission))
        return path

    def pause(self, network, stop, **values):
        """With --cli: drop into the Mininet CLI here (``exit`` continues the walk-through).

        ``stop`` is a :class:`Stop` (or a message alone); ``values`` fill its fields."""
        if not self.cli:
            return
        stop = Stop(stop) if isinstance(stop, str) else stop.fill(**values)
        self.pauses += 1
        self.stops.append(stop)
        message = stop.text()
        if self.verbs:
            message += "\n>>> this lab's commands: " + "; ".join(
                usage for _, usage in self.verbs.values())
        self.say("\n>>> %s\n>>> (Mininet CLI: type `exit` to continue the walk-through)" % message)
        script = self._script(stop)
        if script is None:
            self._cli(network)
            return
        transcript = script.with_suffix(".out")
        self.transcripts.append(transcript)
        self._cli(network, script, transcript)

    @contextlib.contextmanager
    def stop_elsewhere(self, stop, **values):
        """A stop whose CLI another part of redlab opens (lab 05's matrix: the drill's own
        look-around CLI): printed like a pause; yields the file a test's commands are read
        from (its output kept like a pause's), or None: the student's terminal."""
        if not self.cli:
            yield None
            return
        stop = stop.fill(**values)
        self.pauses += 1
        self.stops.append(stop)
        self.say("\n>>> %s" % stop.text())
        script = self._script(stop)
        if script is None:
            yield None
            return
        transcript = script.with_suffix(".out")
        self.transcripts.append(transcript)
        with self._transcript(transcript), open(script) as typed:
            yield typed

    @staticmethod
    @contextlib.contextmanager
    def _transcript(path):
        """Everything Mininet prints meanwhile also goes to ``path``."""
        import logging
        from mininet.log import lg
        record = logging.FileHandler(path)
        record.terminator = ""        # Mininet's output carries its own newlines
        lg.addHandler(record)
        try:
            yield
        finally:
            lg.removeHandler(record)
            record.close()

    def _script(self, stop):
        """Tests: the file of commands typed at this stop (None: a student at a terminal)."""
        if self.cli_script is None and not self.type_hints:
            return None
        lines = []
        for command in stop.commands if self.type_hints else ():
            lines.append(command)
            if callable(self.type_hints):
                lines.append(self.type_hints(command))
        if self.cli_script:
            lines.append(self.cli_script.pop(0))
        script = self.run_folder / ("cli-pause-%d.txt" % self.pauses)
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text("".join(line.rstrip("\n") + "\n" for line in lines if line))
        return script

    def _cli(self, network, script=None, transcript=None):
        """Mininet's own CLI with this lab's verbs; a script's output also goes to
        ``transcript`` (``sh`` included, which Mininet prints past its logger)."""
        import subprocess
        from mininet.cli import CLI
        from mininet.log import LEVELS, lg, output, setLogLevel
        ctx = self

        def command(name):
            def do(cli, line):        # printed like the narration (the CLI's terminal)
                ctx.say(ctx.run_verb(name, line.split()).rstrip("\n"))
            do.__doc__ = self.verbs[name][1]
            return do
        methods = {"do_" + name: command(name) for name in self.verbs}
        if script:
            def do_sh(cli, line):     # as CLI.do_sh, but through the logger
                output(subprocess.run(line, shell=True, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True).stdout)
            methods["do_sh"] = do_sh
        LabCLI = type("LabCLI", (CLI,), methods)
        before = next((n for n, v in LEVELS.items() if v == lg.level), "warning")
        propagate = lg.propagate
        setLogLevel("output")         # the harness runs Mininet quietly; the CLI must print
        lg.propagate = False          # (once: not again through the root logger)
        try:
            if script:                # a test's commands: no terminal to read from
                with open(os.devnull) as devnull, self._transcript(transcript):
                    LabCLI(getattr(network, "net", network), stdin=devnull, script=str(script))
            else:
                LabCLI(getattr(network, "net", network))
        finally:
            setLogLevel(before)       # the logger and its handler, as they were
            lg.propagate = propagate


class Lab:
    def __init__(self, folder):
        self.folder = Path(folder)
        match = re.match(r"(\d+)-(.+)", self.folder.name)
        if not match:
            raise ConfigError("lab folder %s must be named NN-name" % self.folder)
        self.number = int(match.group(1))
        self.slug = match.group(2)
        self._module = None

    @property
    def name(self):
        return self.folder.name

    @property
    def module(self):
        if self._module is None:
            spec = importlib.util.spec_from_file_location("redlab_lab_%02d" % self.number,
                                                          self.folder / "lab.py")
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            self._module = module
        return self._module

    @property
    def title(self):
        return self.module.TITLE

    @property
    def submission(self):
        return self.folder / "submission"

    @property
    def reference(self):
        return self.folder / "reference"

    def broken_cases(self):
        folder = self.folder / "broken"
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def walkthrough(self, submission=None, run_folder=None, cli=False, out=print,
                    cli_script=None, type_hints=False):
        ctx = Context(self, submission or self.submission, run_folder, cli, out,
                      cli_script=cli_script, type_hints=type_hints)
        return ctx, self.module.walkthrough(ctx)

    def run_verb(self, name, args=(), submission=None):
        """A verb of the lab that needs no network (``redlab lab 01 diff``)."""
        verbs = getattr(self.module, "VERBS", {})
        if name not in verbs:
            raise ConfigError("lab %02d has no command %r; it has: %s" % (
                self.number, name, ", ".join(sorted(verbs)) or "none"))
        ctx = Context(self, submission or self.submission, out=None)
        return verbs[name][0](ctx, list(args)) or ""

    def grade(self, submission=None, run_folder=None, out=None, student=None, class_mode=False):
        """Run the walk-through on a submission and every check; return the results."""
        ctx = Context(self, submission or self.submission, run_folder, False, out, grading=True,
                      student=student, class_mode=class_mode)
        if not ctx.submission.is_dir():
            raise ConfigError("submission folder %s does not exist" % ctx.submission)
        results = []
        measured = None
        try:
            measured = self.module.walkthrough(ctx)
        except RedlabError as exc:
            results.append(failed("walk-through", "the lab could not run with this submission: "
                                  "%s" % exc))
        except Exception as exc:          # a student's broken script must not crash grading
            results.append(failed("walk-through", "the lab stopped with %s: %s (details in "
                                  "the log)" % (type(exc).__name__, exc)))
            traceback.print_exc()
        for check in self.module.CHECKS:
            name = check_name(check)
            if measured is None and not getattr(check, "static", False):
                result = failed(name, "not checked: the walk-through did not finish")
            else:
                try:
                    result = check(ctx, measured or {})
                except Exception as exc:
                    result = failed(name, "the check itself failed: %s: %s"
                                    % (type(exc).__name__, exc))
            # one name per check in every report (the pytest item's, the JUnit case's, the
            # class summary's column): the one it is declared under
            result.name = name
            # information whatever happened: every student is graded on the same checks
            results.append(info(result) if getattr(check, "scored", True) is False else result)
        return results


def all_labs():
    return [Lab(p) for p in sorted(LABS_DIR.iterdir()) if p.is_dir() and (p / "lab.py").exists()]


def find(name):
    """A lab by number ("1", "01"), name ("cold-standby", "01-cold-standby") or folder
    (a lab being written: ``path/to/08-my-lab``, holding its ``lab.py``)."""
    folder = Path(name)
    if (folder / "lab.py").is_file():
        return Lab(folder.resolve())
    for lab in all_labs():
        if name in (str(lab.number), "%02d" % lab.number, lab.slug, lab.name):
            return lab
    raise ConfigError("unknown lab %r; the labs are: %s" % (
        name, ", ".join("%02d %s" % (lab.number, lab.slug) for lab in all_labs())))


# -- reports ------------------------------------------------------------------------------

def score(results):
    """``(passed, counted)``: the scored checks that pass, and how many are scored."""
    counted = scored(results)
    return sum(r.passed for r in counted), len(counted)


def report_text(lab, results):
    """The report a student reads: the scored checks, then the information apart."""
    points, counted = score(results)
    notes = [r for r in results if not r.scored]
    lines = ["Lab %02d %s: %d of %d checks pass%s" % (
        lab.number, lab.title, points, counted,
        " (and %d for information, not scored)" % len(notes) if notes else "")]
    lines += ["  " + r.line() for r in results if r.scored]
    if notes:
        lines.append("  information (it measures the lab, not your submission; not scored):")
        lines += ["  " + r.line() for r in notes]
    return "\n".join(lines)


def write_json(path, lab, results, submission):
    points, counted = score(results)
    Path(path).write_text(json.dumps(dict(
        lab=lab.name, title=lab.title, submission=str(submission), time=time.time(),
        passed=points == counted, score=dict(passed=points, checks=counted),
        checks=[asdict(r) for r in results]), indent=1, default=str))


INFO_NOTE = "information, not scored (it measures the lab, not the submission)"


def write_junit(path, lab, results, submission):
    """JUnit XML: one testcase per check; an information check is a passed testcase whose
    ``scored`` property is false and whose system-out says so (CI tools show it, never
    count it as a failure)."""
    points, counted = score(results)
    suite = ET.Element("testsuite", name="lab-%s" % lab.name, tests=str(len(results)),
                       failures=str(counted - points))
    properties = ET.SubElement(suite, "properties")
    ET.SubElement(properties, "property", name="submission", value=str(submission))
    ET.SubElement(properties, "property", name="score", value="%d of %d" % (points, counted))
    for r in results:
        case = ET.SubElement(suite, "testcase", classname="lab-%s" % lab.name, name=r.name)
        if not r.scored:
            ET.SubElement(ET.SubElement(case, "properties"), "property", name="scored",
                          value="false")
            ET.SubElement(case, "system-out").text = "INFO (%s): %s" % (INFO_NOTE, r.reason)
        elif r.passed:
            ET.SubElement(case, "system-out").text = r.reason
        else:
            ET.SubElement(case, "failure", message=r.reason).text = r.reason
    ET.ElementTree(suite).write(path, encoding="unicode", xml_declaration=True)

