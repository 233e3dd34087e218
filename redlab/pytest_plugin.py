"""Grade a lab submission with pytest: one test item per check of the lab.

::

    pytest --lab=02 --submission=$HOME/class/alice        # one student, pytest's reporting
    pytest --lab=02 --submission=DIR --junitxml=alice.xml -k "GARP or VIP"
    pytest --lab=path/to/labs/08-my-lab                   # a lab being written (its submission/)

The options take their value in the same word (``--submission=DIR``): pytest reads a
pytest.ini or conftest.py found along any separate path on its command line before it
knows these options, and a submission's are the student's code.

The plugin is registered with pytest when redlab is installed (entry point ``pytest11``);
without ``--lab`` it does nothing.  With it, the session collects the lab's checks only
(any test paths given are replaced by the lab's ``lab.py``).

The submission is graded once, at the first check, exactly as ``redlab grade`` grades
it (:func:`redlab.grading.grade_submission`: a copy, symlinks refused, the walk-through,
then every check); ``redlab grade`` itself runs through this plugin
(:func:`grade_with_pytest`), so both give the same verdicts and reasons.  Each check is
a test item named like its line in the report:

* a scored check passes or fails with its reason (the failure text is the reason, one
  sentence, not a traceback);
* an information check (``INFO``: it measures the lab, not the student) always passes;
  its verdict and reason are in the item's ``user_properties`` (``scored=false``), which
  ``--junitxml`` writes as properties;
* a walk-through that stopped, or a refused submission, fails every check it kept from
  running, with its reason.

The end of the session prints the same report as ``redlab grade``.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

from redlab.labs import check_name

GRADE_INI = Path(__file__).resolve().parent / "grade-pytest.ini"
_GRADING = pytest.StashKey["Grading"]()


def pytest_addoption(parser):
    group = parser.getgroup("redlab", "grading a redlab lab submission")
    group.addoption("--lab", metavar="NN", default=None,
                    help="grade this lab (number, name or folder): one test per check")
    group.addoption("--submission", metavar="DIR", default=None,
                    help="with --lab: the submission folder (default: the lab's submission/)")
    group.addoption("--student", metavar="NAME", default=None,
                    help="with --lab: the student's name (labs that give each student a "
                         "variant derive it from the name)")
    group.addoption("--class-mode", action="store_true", default=False,
                    help="with --lab: grading a class (a FAIL never prints the expected answer)")
    group.addoption("--run-folder", metavar="DIR", default=None,
                    help="with --lab: keep the walk-through's networks' run folders (logs, "
                         "captures, measured.json) under DIR")
    group.addoption("--narrate", action="store_true", default=False,
                    help="with --lab: print the walk-through's narration (use with -s)")


class Grading:
    """One submission of one lab, graded once; the results in the lab's check order."""

    def __init__(self, lab, submission, student=None, class_mode=False, narrate=False,
                 run_folder=None):
        self.lab = lab
        self.run_folder = run_folder
        self.submission = submission
        self.student = student
        self.class_mode = class_mode
        self.narrate = narrate
        self.results = None        # [CheckResult] as redlab grade reports them

    def run(self):
        if self.results is None:
            from redlab import grading
            self.results = grading.grade_submission(
                self.lab, self.submission, student=self.student, class_mode=self.class_mode,
                out=print if self.narrate else None, run_folder=self.run_folder)
        return self.results

    def result_of(self, index):
        """The result of the lab's check number ``index`` and what kept it from running
        (a ``walk-through`` or ``submission`` result, or None)."""
        results = self.run()
        checks = len(self.lab.module.CHECKS)
        if results and results[0].measured.get("refused") or len(results) < checks:
            return None, results[0]        # refused: one result for the whole submission
        extra = results[:len(results) - checks]
        stopped = next((r for r in extra if not r.passed), None)
        return results[len(results) - checks + index], stopped


PATH_OPTIONS = ("--lab", "--submission", "--run-folder")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    """Refuse ``--submission DIR`` written as two words, before any conftest loads.

    pytest chooses its ini file and its first conftest.py files from the command line's
    paths before it knows these options: a separate ``DIR`` counts as a test path, so a
    submission's own pytest.ini and conftest.py (the student's code, run by the grader)
    would be read.  ``--submission=DIR`` is one word and is not.
    """
    for option in PATH_OPTIONS:
        if option in args:
            raise pytest.UsageError(
                "write %s=VALUE as one word (pytest would read a pytest.ini or conftest.py "
                "in a separate path as its own, the student's code included)" % option)


def pytest_configure(config):
    name = config.getoption("lab", None)
    if not name:
        return
    from redlab import labs
    from redlab.errors import RedlabError
    try:
        lab = labs.find(name)
        lab.module                      # noqa: B018 -- a lab that does not load is an error
    except RedlabError as exc:
        raise pytest.UsageError(str(exc)) from None
    submission = Path(config.getoption("submission") or lab.submission)
    if not submission.is_dir():
        raise pytest.UsageError("--submission %s is not a folder; give the folder that holds "
                                "the student's files" % submission)
    config.stash[_GRADING] = Grading(lab, submission.resolve(), config.getoption("student"),
                                     config.getoption("class_mode"),
                                     config.getoption("narrate"),
                                     config.getoption("run_folder"))
    config.args[:] = [str(lab.folder / "lab.py")]        # the lab's checks, nothing else


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path, parent):
    grading = parent.config.stash.get(_GRADING, None)
    if grading is not None and Path(module_path) == grading.lab.folder / "lab.py":
        return LabChecks.from_parent(parent, path=Path(module_path))
    return None


class LabChecks(pytest.File):
    """The lab's ``lab.py``, as its checks (never imported as a test module)."""

    def collect(self):
        grading = self.config.stash[_GRADING]
        for index, check in enumerate(grading.lab.module.CHECKS):
            yield CheckItem.from_parent(self, name=check_name(check), index=index,
                                        scored=getattr(check, "scored", True) is not False)


class CheckFailed(Exception):
    """A scored check failed: its reason is the whole report."""


class CheckItem(pytest.Item):
    def __init__(self, *, index, scored, **kwargs):
        super().__init__(**kwargs)
        self.index = index
        self.scored = scored

    def runtest(self):
        grading = self.config.stash[_GRADING]
        result, stopped = grading.result_of(self.index)
        if result is None:                 # the submission was refused: no check ran
            from redlab.labs import CheckResult
            result = CheckResult(self.name, False, stopped.reason, scored=self.scored)
        self.user_properties.append(("scored", "true" if result.scored else "false"))
        self.user_properties.append(("passed", "true" if result.passed else "false"))
        self.user_properties.append(("reason", result.reason))
        if result.passed or not result.scored:
            self.add_report_section("call", "reason", result.line())      # -rA shows it
            return
        reason = result.reason
        if stopped is not None and stopped is not result:
            reason = "%s (%s: %s)" % (reason, stopped.name, stopped.reason)
        raise CheckFailed(reason)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, CheckFailed):
            return "FAIL  %s: %s" % (self.name, excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        grading = self.config.stash[_GRADING]
        return self.path, None, "lab %02d: %s" % (grading.lab.number, self.name)


def pytest_terminal_summary(terminalreporter, config):
    grading = config.stash.get(_GRADING, None)
    if grading is None or grading.results is None:
        return
    from redlab import labs
    terminalreporter.section("redlab grade %02d" % grading.lab.number)
    terminalreporter.write_line(labs.report_text(grading.lab, grading.results))


# -- redlab grade, through the plugin ----------------------------------------------------

class _Results:
    """Takes the results out of a pytest session run by :func:`grade_with_pytest`."""

    def __init__(self):
        self.grading = None

    def pytest_sessionfinish(self, session):
        self.grading = session.config.stash.get(_GRADING, None)


def grade_with_pytest(lab, submission, student=None, class_mode=False, narrate=False,
                      run_folder=None, junitxml=None):
    """Grade ``submission`` as ``pytest --lab`` does, in this process; the results.

    pytest runs with redlab's own ini (:data:`GRADE_INI`: no project options, no cache
    written) and quiet: ``redlab grade`` prints its own report from the results.
    ``junitxml``: where pytest's own JUnit report of the items goes (what
    ``pytest --lab --junitxml`` writes).
    """
    from redlab.errors import RedlabError
    args = ["-c", str(GRADE_INI), "--rootdir", str(lab.folder), "--confcutdir",
            str(lab.folder), "-q", "--no-header",
            "-p", "no:cacheprovider", "--lab=%s" % lab.folder,
            "--submission=%s" % submission]
    if student is not None:
        args.append("--student=" + student)
    if class_mode:
        args.append("--class-mode")
    if run_folder is not None:
        args.append("--run-folder=%s" % run_folder)
    if narrate:
        args += ["--narrate", "-s"]
    if junitxml is not None:
        args.append("--junitxml=%s" % junitxml)
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        args += ["-p", "redlab.pytest_plugin"]
    taker = _Results()
    with open(os.devnull, "w") as quiet, \
            (contextlib.nullcontext() if narrate else contextlib.redirect_stdout(quiet)):
        code = pytest.main(args, plugins=[taker])
    if taker.grading is None or taker.grading.results is None:
        raise RedlabError("pytest could not grade lab %02d (exit status %s); run "
                          "`pytest --lab %02d --submission %s` to see why"
                          % (lab.number, code, lab.number, submission))
    return taker.grading.results
