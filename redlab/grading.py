"""Grading submissions safely: copy in, one process per student, a whole class in parallel.

A submission is untrusted, and so is everything it makes the grader do.  Three rules:

- **Copy in.**  A submission is copied (regular files and folders only, within limits)
  into a root-only staging folder before anything reads it; the lab, its jail and the
  reports see the copy, never the student's original.  A symlink, a FIFO, a device or
  an absurd size is refused with one sentence in that student's report
  (:func:`copy_in`, used by one submission and by a class alike).
- **One process per student.**  In a class (``redlab grade NN --class DIR``) each student
  is graded by a child ``redlab grade --class-mode`` (itself in a sandbox of its own)
  under a small supervisor (``python -m redlab.grading _supervise``): it is the child's
  subreaper, so a process the student detached (``setsid sleep 3600 &``) is still its
  descendant and is killed when the grade ends; it stops the child (SIGTERM, then SIGKILL
  after a grace period) when the class process asks or dies.  The child's output goes to
  a size-capped ``<student>.log``; the child has a wall-clock limit.
- **The grade is the grader's.**  The class process reads only the JSON grade written by
  the child, checks its shape, and turns a hang, a crash, a signal, a flood of output or a
  corrupt grade into one FAIL named ``grading`` for that student alone.  Every student
  gets ``<student>.json``, ``<student>.xml``, ``<student>.log`` and a row of
  ``summary.csv``; the summary and the exit code are computed here, not by a child.
"""

import argparse
import contextlib
import csv
import errno
import json
import os
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from redlab import syscalls
from redlab.errors import ConfigError, RedlabError
from redlab.labs import CheckResult, failed, score, write_json, write_junit

STUDENT_TIMEOUT = 300.0         # s: one student's whole grade, unless the lab says otherwise
GRACE = 10.0                    # s between SIGTERM (the network tears down) and SIGKILL
LOG_CAP = 5 * 2 ** 20           # bytes of a child's output kept in <student>.log
STAGING = ".grading"            # in the reports folder: the copies being graded (root-only)
GRADE_NAME = "grading"          # the check a failed grading process is reported as
MAX_GRADE_BYTES = 2 ** 20       # a child's JSON grade larger than this is not a grade
MAX_REASON = 2000               # characters of a reason kept from a child's grade


@dataclass(frozen=True)
class Limits:
    """What a submission may hold: the files of a lab, not a disk image."""
    max_bytes: int = 20 * 2 ** 20
    max_files: int = 1000
    max_depth: int = 32


class SubmissionRefused(RedlabError):
    """A submission that is not copied in; ``str()`` is the reason for the student."""


# -- names and text a student controls -------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def display(name):
    """A file or folder name as printable UTF-8 text: a name that is not UTF-8 shows its
    bytes as ``\\xNN`` instead of breaking a report, a CSV or the terminal."""
    text = os.fsencode(name).decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda m: "\\x%02x" % ord(m.group()), text)


def clean_text(text, limit=MAX_REASON):
    """Text from a child or a student made safe to print, to put in XML and in a CSV:
    control characters (terminal escapes) and lone surrogates become ``\\xNN``."""
    text = str(text).encode("utf-8", "backslashreplace").decode("utf-8")
    text = _CONTROL.sub(lambda m: "\\x%02x" % ord(m.group()) if m.group() not in "\n\t"
                        else m.group(), text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


# -- copy in -------------------------------------------------------------------------------

_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket",
          stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device"}


def copy_in(source, dest, limits=Limits()):
    """Copy the submission folder ``source`` to ``dest`` (which must not exist) and return
    ``dest``; raise :class:`SubmissionRefused` with the student's reason if it holds
    anything but regular files and folders, or more than ``limits`` allow.

    The walk never follows a link: folders and files are opened relative to their parent
    folder with ``O_NOFOLLOW`` and checked again once open, so a file swapped for a link
    or a FIFO while we copy is refused too, and a FIFO never blocks the copy.  A refused
    copy leaves nothing behind.
    """
    source, dest = Path(source), Path(dest)
    try:
        st = os.lstat(source)
    except FileNotFoundError:
        raise ConfigError("submission folder %s does not exist" % source) from None
    if stat.S_ISLNK(st.st_mode):
        raise SubmissionRefused("the submission folder %s is a symlink to %s; hand in a real "
                                "folder of regular files" % (display(str(source)),
                                                             display(os.readlink(source))))
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError("submission folder %s is not a folder" % source)
    budget = {"bytes": 0, "files": 0}
    fd = os.open(source, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.mkdir(dest, 0o700)
        _copy_folder(fd, dest, (), budget, limits)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    finally:
        os.close(fd)
    return dest


def _copy_folder(src_fd, dest, rel, budget, limits):
    if len(rel) > limits.max_depth:
        raise SubmissionRefused("submission nests folders deeper than %d levels (%s); hand in "
                                "only the lab's files" % (limits.max_depth, _rel(rel)))
    with os.scandir(src_fd) as entries:
        names = sorted(entry.name for entry in entries)
    for name in names:
        path = rel + (name,)
        budget["files"] += 1
        if budget["files"] > limits.max_files:
            raise SubmissionRefused("submission holds more than %d files and folders; hand in "
                                    "only the lab's files" % limits.max_files)
        st = os.stat(name, dir_fd=src_fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            raise SubmissionRefused("submission holds a symlink %s -> %s; submit regular files "
                                    "only" % (_rel(path),
                                              display(os.readlink(name, dir_fd=src_fd))))
        if stat.S_ISDIR(st.st_mode):
            fd = _open(name, src_fd, os.O_DIRECTORY, path)
            try:
                os.mkdir(dest / name, 0o700)
                _copy_folder(fd, dest / name, path, budget, limits)
            finally:
                os.close(fd)
        elif stat.S_ISREG(st.st_mode):
            _copy_file(src_fd, name, dest / name, path, budget, limits)
        else:
            raise _not_regular(st.st_mode, path)


def _open(name, dir_fd, flags, path):
    """Open without following a link and without blocking on a FIFO."""
    try:
        return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):   # became a link since we looked
            raise SubmissionRefused("submission holds a symlink %s; submit regular files only"
                                    % _rel(path)) from None
        raise SubmissionRefused("submission file %s cannot be read (%s); hand in readable "
                                "regular files" % (_rel(path), exc.strerror)) from None


def _copy_file(src_fd, name, target, path, budget, limits):
    fd = _open(name, src_fd, 0, path)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(st.st_mode, path)
        # the copy is root's and lives in a root-only folder; keep only the exec bits
        out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                      0o755 if st.st_mode & 0o111 else 0o644)
        try:
            while True:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    break
                budget["bytes"] += len(chunk)
                if budget["bytes"] > limits.max_bytes:
                    raise SubmissionRefused(
                        "submission is larger than %s (seen at %s); hand in only the lab's "
                        "files" % (_size(limits.max_bytes), _rel(path)))
                os.write(out, chunk)
        finally:
            os.close(out)
    finally:
        os.close(fd)


def _not_regular(mode, path):
    kind = _KINDS.get(stat.S_IFMT(mode), "a special file")
    return SubmissionRefused("submission holds %s %s; submit regular files only"
                             % (kind, _rel(path)))


def _rel(parts):
    return display("/".join(parts))


def _size(n):
    return "%g MB" % (n / 2 ** 20) if n >= 2 ** 20 else "%d bytes" % n


@contextlib.contextmanager
def staged(submission, limits=Limits()):
    """The submission copied into a fresh root-only (0700) temporary folder, removed after."""
    folder = Path(tempfile.mkdtemp(prefix="redlab-submission-"))
    try:
        yield copy_in(submission, folder / "submission", limits)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def grade_submission(lab, submission, student=None, class_mode=False, out=None,
                     limits=Limits(), run_folder=None):
    """Grade one submission as ``redlab grade NN`` does: on a copy, symlinks refused.

    A refused submission is graded as one FAIL named ``submission`` (a report like any
    other, so autograding shows the reason); reasons name the original folder, not the
    copy.
    """
    submission = Path(submission)
    try:
        with staged(submission, limits) as copy:
            results = lab.grade(copy, out=out, student=student, class_mode=class_mode,
                                run_folder=run_folder)
            return [_renamed(r, str(copy), str(submission)) for r in results]
    except SubmissionRefused as exc:
        # flagged, so that a report per check (the pytest plugin) knows no check ran
        return [failed("submission", str(exc), refused=True)]


def _renamed(result, old, new):
    """A result whose texts name ``new`` where the grader saw ``old`` (the copy), safe to
    print and to put in XML (a reason may quote what a student's script printed)."""
    result.name = clean_text(result.name, 200)
    result.reason = clean_text(result.reason.replace(old, new))
    return result


def all_pass(results):
    """The grade's verdict: every scored check passes (INFO checks do not count)."""
    points, counted = score(results)
    return points == counted


# -- a child's grade -------------------------------------------------------------------------

class BadGrade(Exception):
    """A child's JSON grade is missing or malformed; ``str()`` says how."""


def load_grade(path):
    """The results of a JSON grade written by ``redlab grade --json``, checked field by
    field: the class process trusts nothing else a child leaves behind."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise BadGrade("it wrote no grade") from None
    if size > MAX_GRADE_BYTES:
        raise BadGrade("its grade is %d bytes, more than a grade can be" % size)
    try:
        data = json.loads(Path(path).read_bytes())
    except ValueError as exc:
        raise BadGrade("its grade is not valid JSON (%s)" % exc) from None
    checks = data.get("checks") if isinstance(data, dict) else None
    if not isinstance(checks, list) or not checks or len(checks) > 500:
        raise BadGrade("its grade has no list of checks")
    results = []
    for i, check in enumerate(checks):
        if not (isinstance(check, dict) and isinstance(check.get("name"), str) and
                check["name"].strip() and isinstance(check.get("passed"), bool) and
                isinstance(check.get("reason"), str) and
                isinstance(check.get("scored", True), bool) and
                isinstance(check.get("measured", {}), dict)):
            raise BadGrade("check %d of its grade is not a check (name, passed, reason)" % i)
        results.append(CheckResult(clean_text(check["name"], 200), check["passed"],
                                   clean_text(check["reason"]), check.get("measured", {}),
                                   check.get("scored", True)))
    return results


@dataclass
class Outcome:
    """How a child grading process ended, as the class process saw it."""
    returncode: int = None          # the grader's; < 0: killed by that signal
    seconds: float = 0.0
    timed_out: bool = False
    flooded: bool = False
    cancelled: bool = False
    supervisor_code: int = None     # the supervisor's own exit (< 0: it was killed)

    @property
    def signal(self):
        """The signal that ended the grader (or its supervisor), or None."""
        code = self.returncode
        if code is None and self.supervisor_code is not None and self.supervisor_code < 0:
            return -self.supervisor_code
        if code is not None and code < 0:
            return -code
        # a sandbox reports its payload's death by signal N as exit 128+N (like a shell)
        if code is not None and 128 < code < 128 + signal.NSIG:
            return code - 128
        return None


def judge(outcome, grade_file, timeout, log_file, log_cap=LOG_CAP):
    """The student's results from a child's outcome and grade file: the grade itself if
    the child ended normally with a well-formed grade that agrees with its exit code,
    else one FAIL named ``grading`` that says what happened."""
    log = display(str(log_file))

    def grading(reason):
        return [failed(GRADE_NAME, reason, seconds=round(outcome.seconds, 1))]
    if outcome.flooded:
        return grading("output flooded: the grade process wrote more than %s, so it was "
                       "stopped (%s keeps the first %s)" % (_size(log_cap), log, _size(log_cap)))
    if outcome.cancelled:
        return grading("the class run was interrupted before this grade was complete")
    if outcome.timed_out:
        return grading("the grader stopped after %g s: the submission hung (%s shows how far "
                       "it got)" % (timeout, log))
    sig = outcome.signal
    if sig:
        return grading("the grade process was killed by signal %d (%s)%s" % (
            sig, _signame(sig), _last_words(log_file)))
    if outcome.returncode is None:
        return grading("the grading supervisor ended with code %s without the grader's "
                       "status%s" % (outcome.supervisor_code, _last_words(log_file)))
    try:
        results = load_grade(grade_file)
    except BadGrade as exc:
        return grading("the grade process exited with code %s and %s%s"
                       % (outcome.returncode, exc, _last_words(log_file)))
    expected = 0 if all_pass(results) else 1
    if outcome.returncode != expected:
        return grading("the grade process exited with code %s, but its grade would exit with "
                       "%d%s" % (outcome.returncode, expected, _last_words(log_file)))
    return results


def _signame(sig):
    try:
        return signal.Signals(sig).name
    except ValueError:
        return "signal %d" % sig


def _last_words(log_file, limit=300):
    """'; it said: <the last line of its log>' (what a crashed child printed last)."""
    try:
        with open(log_file, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 4096))
            lines = [line for line in f.read().decode("utf-8", "replace").splitlines()
                     if line.strip() and not line.startswith("[redlab:")]
    except OSError:
        return ""
    return "; it said: %s" % clean_text(lines[-1].strip(), limit) if lines else ""


# -- running one child -------------------------------------------------------------------

def run_child(argv, log_file, status_file, timeout, grace=GRACE, log_cap=LOG_CAP,
              cancel=None, env=None, cwd=None):
    """Run ``argv`` under the supervisor; return its :class:`Outcome`.

    stdin is /dev/null; stdout and stderr go through a pipe to ``log_file``, of which the
    first ``log_cap`` bytes are kept (a child that writes more is stopped: a grader never
    prints that much).  At ``timeout`` s, or when ``cancel`` (a threading.Event) is set,
    the supervisor is asked to stop (SIGTERM: it stops the grader and kills everything
    below it after ``grace`` s); a supervisor still there ``grace`` s later is killed.
    Waiting is on the supervisor's pid, never on the end of the output: a detached
    process that keeps the pipe open cannot hold the class.
    """
    command = [sys.executable, "-m", "redlab.grading", "_supervise", "--status",
               str(status_file), "--grace", str(grace), "--parent", str(os.getpid()),
               "--"] + [str(a) for a in argv]
    outcome = Outcome()
    start = time.monotonic()
    read_end, write_end = os.pipe()
    try:
        with open(os.devnull, "rb") as devnull:
            proc = subprocess.Popen(command, stdin=devnull, stdout=write_end, stderr=write_end,
                                    start_new_session=True, env=env, cwd=cwd)
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    pidfd = os.pidfd_open(proc.pid)
    stop_sent = kill_at = None
    kept = written = 0
    eof = False
    try:
        with open(log_file, "wb", buffering=0) as log:      # tail -f shows it live
            while proc.poll() is None:
                now = time.monotonic()
                if stop_sent is None:
                    outcome.timed_out = now - start >= timeout
                    outcome.cancelled = bool(cancel is not None and cancel.is_set())
                    if outcome.timed_out or outcome.cancelled or outcome.flooded:
                        _signal(proc.pid, signal.SIGTERM)
                        stop_sent, kill_at = now, now + 2 * grace + 5
                elif now >= kill_at:
                    _killpg(proc.pid)
                    kill_at = now + 60
                wake = (start + timeout) if stop_sent is None else kill_at
                ready = select.select([pidfd] if eof else [read_end, pidfd], [], [],
                                      max(0.0, min(0.5, wake - now)))[0]
                if read_end in ready:
                    chunk = os.read(read_end, 1 << 16)
                    eof = not chunk         # everyone closed the pipe: wait for the exit
                    written += len(chunk)
                    if kept < log_cap:
                        log.write(chunk[:log_cap - kept])
                        kept = min(log_cap, kept + len(chunk))
                    if written > log_cap and not outcome.flooded:
                        outcome.flooded = True
                        log.write(b"\n[redlab: output cut at %d bytes; the grade process was "
                                  b"stopped]\n" % log_cap)
            if not eof:
                _drain(read_end, log, log_cap - kept)
    finally:
        os.close(pidfd)
        os.close(read_end)
    outcome.seconds = time.monotonic() - start
    outcome.supervisor_code = proc.returncode
    if proc.returncode < 0:             # the supervisor itself was killed
        _killpg(proc.pid)
    try:
        outcome.returncode = json.loads(Path(status_file).read_text())["returncode"]
    except (OSError, ValueError, KeyError, TypeError):
        pass                            # no status: judged by the supervisor's own end
    return outcome


def _drain(fd, log, room, seconds=1.0):
    """Read what is left in the pipe once the supervisor is gone (it killed every writer;
    a writer it could not reach is not waited for)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            return
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return
        if room > 0:
            log.write(chunk[:room])
            room -= len(chunk)


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _killpg(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# -- the supervisor (python -m redlab.grading _supervise) -----------------------------------

def _die_with_parent():
    """In the grader, before exec: die with the supervisor, whatever killed it."""
    syscalls.die_with_parent(signal.SIGKILL)


def supervise(argv, status_file, grace, parent):
    """Run ``argv`` (the grader) as this process's child and, however it ends, kill every
    process it left behind; write ``{"returncode": ...}`` to ``status_file``.

    As a child subreaper, every orphan of the grader's tree -- a ``setsid`` or
    double-forked process -- becomes our child instead of init's, so it is found and
    killed here.  SIGTERM (from the class process, or its death) stops the grader:
    SIGTERM to it, SIGKILL to its process group ``grace`` s later.
    """
    syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
    syscalls.die_with_parent(signal.SIGTERM)
    wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_write)
    stop = []
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.append(signum))
    if os.getppid() != parent:          # the class process died before we could watch it
        stop.append(signal.SIGTERM)
    grader = subprocess.Popen(argv, process_group=0, preexec_fn=_die_with_parent)
    pidfd = os.pidfd_open(grader.pid)
    deadline = None
    while grader.poll() is None:
        if stop and deadline is None:
            _signal(grader.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
        if deadline is not None and time.monotonic() >= deadline:
            _killpg(grader.pid)
            deadline = time.monotonic() + 3600
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready = select.select([pidfd, wake_read], [], [], wait)[0]
        if wake_read in ready:
            os.read(wake_read, 64)
    _killpg(grader.pid)
    left = _kill_descendants()
    if left:
        with contextlib.suppress(OSError):      # the class process may be gone
            print("[redlab: killed %d process(es) the grade left behind: %s]"
                  % (len(left), "; ".join(left[:5])), flush=True)
    tmp = Path(str(status_file) + ".tmp")
    tmp.write_text(json.dumps({"returncode": grader.returncode, "left_behind": left}))
    os.replace(tmp, status_file)
    return 0


def _kill_descendants(seconds=10.0):
    """SIGKILL our children until there are none: each kill hands their orphans to us
    (we are the subreaper), so the loop reaches the whole tree, detached ones included."""
    from redlab.runs import child_pids
    killed = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        children = child_pids(os.getpid())
        if not children:
            break
        for pid in children:
            what = _cmdline(pid)
            _signal(pid, signal.SIGKILL)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                continue
            if what:
                killed.append("%d %s" % (pid, what))
    return killed


def _cmdline(pid):
    try:
        raw = Path("/proc/%d/cmdline" % pid).read_bytes()
    except OSError:
        return ""
    return clean_text(raw.replace(b"\0", b" ").decode("utf-8", "replace").strip(), 80)


# -- a class ---------------------------------------------------------------------------------

def default_jobs(students):
    """Students graded at once: one per core and per GiB of available memory (a lab's
    network, its daemons and its grader need about that), at least 1."""
    cores = len(os.sched_getaffinity(0))
    try:
        with open("/proc/meminfo") as f:
            available = next(int(line.split()[1]) for line in f
                             if line.startswith("MemAvailable:")) * 1024
    except (OSError, StopIteration, ValueError):
        available = 2 ** 30
    return max(1, min(cores, available // 2 ** 30, students))


def redlab_argv(lab, submission, grade_file, student):
    """The child command that grades one student (``--student=`` so that a name starting
    with ``-`` is not read as an option)."""
    return [sys.executable, "-m", "redlab.cli", "grade", lab.name, "--submission",
            str(submission), "--json", str(grade_file), "--student=" + student, "--class-mode"]


def child_env(hide=()):
    """The class's environment for a child, less the sandbox it may run in: each student
    gets a sandbox of its own even when the class runs inside one (a test session).
    ``hide``: folders the student's jailed code must not see (the class, the reports and
    their staging copies of the other students), added to ``REDLAB_JAIL_HIDE``."""
    from redlab import sandbox
    env = dict(os.environ, PYTHONIOENCODING="utf-8:backslashreplace", PYTHONUNBUFFERED="1")
    env.pop(sandbox.ENV, None)
    hidden = [p for p in env.get("REDLAB_JAIL_HIDE", "").split(":") if p]
    hidden += [str(Path(p).resolve()) for p in hide]
    if hidden:
        env["REDLAB_JAIL_HIDE"] = ":".join(dict.fromkeys(hidden))
    return env


def students_of(class_dir, reports_dir):
    """``{name: folder}`` of a class: every folder (or link, refused later) not hidden,
    except the reports folder if it was put inside the class."""
    class_dir = Path(class_dir)
    if not class_dir.is_dir():
        raise ConfigError("class folder %s does not exist" % class_dir)
    skip = Path(reports_dir).resolve()
    found = {}
    for entry in sorted(os.scandir(class_dir), key=lambda e: e.name):
        if entry.name.startswith(".") or Path(entry.path).resolve() == skip:
            continue
        if entry.is_dir(follow_symlinks=False) or entry.is_symlink():
            found[display(entry.name)] = Path(entry.path)
    if not found:
        raise ConfigError("class folder %s has no student folders (one folder per student, "
                          "holding that student's submission files)" % class_dir)
    return found


class Grader:
    """Grades the students of one class; one :meth:`student` call per worker thread."""

    def __init__(self, lab, reports_dir, timeout, grace, log_cap, limits, child_argv, env):
        self.lab, self.reports = lab, Path(reports_dir)
        self.timeout, self.grace, self.log_cap, self.limits = timeout, grace, log_cap, limits
        self.child_argv, self.env = child_argv, env
        self.cancel = threading.Event()
        self.staging = None

    def open(self):
        from redlab.runs import private_dir
        self.reports.mkdir(parents=True, exist_ok=True)
        self.staging = private_dir(self.reports / STAGING)
        return self

    def close(self):
        shutil.rmtree(self.staging, ignore_errors=True)

    def student(self, name, folder):
        """Copy in, grade in a child, judge, write the reports; return the results."""
        work = self.staging / name
        shutil.rmtree(work, ignore_errors=True)
        os.mkdir(work, 0o700)
        log_file = self.reports / ("%s.log" % name)
        copy = work / "submission"
        try:
            try:
                copy_in(folder, copy, self.limits)
            except SubmissionRefused as exc:
                log_file.write_text("[redlab: not graded: %s]\n" % exc)
                results = [failed("submission", str(exc))]
            else:
                grade_file = work / "grade.json"
                outcome = run_child(self.child_argv(self.lab, copy, grade_file, name),
                                    log_file, work / "status.json", self.timeout, self.grace,
                                    self.log_cap, self.cancel, self.env, work)
                results = [_renamed(r, str(copy), display(str(folder)))
                           for r in judge(outcome, grade_file, self.timeout, log_file,
                                          self.log_cap)]
            write_json(self.reports / ("%s.json" % name), self.lab, results, display(str(folder)))
            write_junit(self.reports / ("%s.xml" % name), self.lab, results, display(str(folder)))
            return results
        finally:
            shutil.rmtree(work, ignore_errors=True)


def grade_class(lab, class_dir, reports_dir, jobs=None, timeout=None, out=print, progress=None,
                child_argv=redlab_argv, limits=Limits(), grace=GRACE, log_cap=LOG_CAP,
                env=None):
    """Grade every student of a class: ``class_dir/<student>/`` is one submission.

    Each student is graded by a child process (``child_argv``, default
    :func:`redlab_argv`), ``jobs`` at once (default :func:`default_jobs`), each within
    ``timeout`` s (default: the lab's ``GRADE_TIMEOUT`` or :data:`STUDENT_TIMEOUT`).
    Writes ``reports_dir/<student>.json``, ``<student>.xml`` (JUnit), ``<student>.log``
    (the child's output, capped) and ``summary.csv``; returns ``{student: [CheckResult]}``
    in the students' order.  One student -- broken, hostile or hung -- never stops the
    others; Ctrl-C stops the running children and still writes the summary.
    """
    students = students_of(class_dir, reports_dir)
    if timeout is None:
        timeout = float(getattr(lab.module, "GRADE_TIMEOUT", STUDENT_TIMEOUT))
    jobs = jobs or default_jobs(len(students))
    grader = Grader(lab, reports_dir, timeout, grace, log_cap, limits, child_argv,
                    env if env is not None else child_env(hide=(class_dir, reports_dir))).open()
    show = progress or (RichDisplay() if sys.stdout.isatty() else PlainDisplay(out))

    def one(name, folder):
        show.started(name)
        began = time.monotonic()
        try:
            results = grader.student(name, folder)
        except Exception as exc:        # our own failure (disk full...): this student only
            results = [failed(GRADE_NAME, "redlab could not grade this submission: %s: %s"
                              % (type(exc).__name__, clean_text(exc, 300)))]
        show.finished(name, results, time.monotonic() - began)
        return results

    show.start(lab, len(students), jobs, timeout)
    futures = {}
    try:
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="grade") as pool:
            futures = {name: pool.submit(one, name, folder) for name, folder in students.items()}
            try:
                for future in futures.values():
                    future.result()
            except BaseException:           # Ctrl-C, SIGTERM: stop every child, keep the rest
                grader.cancel.set()
                for future in futures.values():
                    future.cancel()
                raise
    finally:
        show.stop()
        grader.close()
        graded = {name: future.result() if future.done() and not future.cancelled() else
                  [failed(GRADE_NAME, "the class run was interrupted before this student "
                          "was graded")]
                  for name, future in futures.items()}
        write_summary(Path(reports_dir) / "summary.csv", graded)
    return graded


def write_summary(path, graded):
    """``summary.csv``: one row per student, one column per check (PASS/FAIL, or INFO for
    a check that is not scored); ``passed`` and ``checks`` count scored checks only."""
    names = []
    for results in graded.values():
        names += [r.name for r in results if r.name not in names]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "passed", "checks"] + names)
        for student, results in graded.items():
            by_name = {r.name: r for r in results}
            passed_count, count = score(results)
            writer.writerow([_cell(student), passed_count, count] + [
                _mark(by_name[n]) if n in by_name else "" for n in names])


def _mark(result):
    return ("PASS" if result.passed else "FAIL") if result.scored else "INFO"


def _cell(text):
    """A CSV cell a spreadsheet shows as text, never runs as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def summary_lines(graded):
    """The class summary the class process prints (computed here, not by a child)."""
    lines = []
    for student, results in graded.items():
        passed_count, count = score(results)
        lines.append("  %-20s %d of %d checks pass" % (student, passed_count, count))
    return lines


# -- progress ----------------------------------------------------------------------------------

class PlainDisplay:
    """One line per event, for logs and CI (stdout is not a terminal)."""

    def __init__(self, out=print):
        self.out = out
        self.lock = threading.Lock()
        self.done = self.total = 0

    def say(self, text):
        with self.lock:
            self.out(text)

    def start(self, lab, total, jobs, timeout):
        self.total = total
        self.say("grading lab %s: %d students, %d at a time, at most %g s each"
                 % (lab.name, total, jobs, timeout))

    def started(self, name):
        pass

    def finished(self, name, results, seconds):
        with self.lock:
            self.done += 1
            done = self.done
        self.say(student_text(name, results, seconds, "[%d/%d] " % (done, self.total)))

    def stop(self):
        pass


class RichDisplay:
    """A live progress bar on a terminal (rich): done, failed, running, ETA; each finished
    student's result is printed above it."""

    def __init__(self, console=None):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn,
                                   TextColumn, TimeElapsedColumn, TimeRemainingColumn)
        self.console = console or Console()
        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed, {task.fields[running]} running"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=self.console)
        self.lock = threading.Lock()
        self.running = self.failed = 0
        self.task = None

    def start(self, lab, total, jobs, timeout):
        self.console.print("grading lab %s: %d students, %d at a time, at most %g s each"
                           % (lab.name, total, jobs, timeout), markup=False, highlight=False)
        self.task = self.progress.add_task("students graded", total=total, failed=0, running=0)
        self.progress.start()

    def started(self, name):
        with self.lock:
            self.running += 1
            self.progress.update(self.task, running=self.running)

    def finished(self, name, results, seconds):
        with self.lock:
            self.running -= 1
            self.failed += not all_pass(results)
            self.progress.console.print(student_text(name, results, seconds), markup=False,
                                        highlight=False)
            self.progress.update(self.task, advance=1, running=self.running, failed=self.failed)

    def stop(self):
        self.progress.stop()


def student_text(name, results, seconds, prefix=""):
    """'alice: 4 of 5 checks pass (12.3 s)' and a line per failed scored check."""
    passed_count, count = score(results)
    lines = ["%s%s: %d of %d checks pass (%.1f s)" % (prefix, name, passed_count, count, seconds)]
    lines += ["    FAIL %s: %s" % (r.name, clean_text(r.reason, 300))
              for r in results if r.scored and not r.passed]
    return "\n".join(lines)


def main(argv=None):
    """``python -m redlab.grading _supervise --status F --grace S --parent PID -- ARGV``."""
    parser = argparse.ArgumentParser(prog="python -m redlab.grading")
    sub = parser.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("_supervise", help="run a grader, then kill all it left behind")
    p.add_argument("--status", required=True)
    p.add_argument("--grace", type=float, default=GRACE)
    p.add_argument("--parent", type=int, required=True)
    p.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not command:
        parser.error("a command to run is needed")
    return supervise(command, args.status, args.grace, args.parent)


if __name__ == "__main__":
    sys.exit(main())
