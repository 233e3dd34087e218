"""Running a student's command jailed: least privilege, limits, hidden answers.

Everything that comes from a submission (a script, a template) runs through this
launcher, as root, which jails it in this order::

    python -I -S redlab/jail.py --spec SPEC.json -- ARGV...

1. a cgroup ``redlab/redlab-jail-<pid>-<random>`` (cgroup v2, or v1's pids, memory and
   cpu hierarchies: detected, never assumed) with limits on processes, memory and CPU;
   where no cgroup can be made, rlimits stand in and the result says so;
2. a new PID namespace whose init is a small reaper: when the student's command ends,
   or the wall-clock limit, the caller or the launcher's own death ends that init, the
   kernel kills every process of the jail, ``setsid`` children included;
3. a new mount (and IPC) namespace: a fresh ``/proc``; an empty tmpfs over the project's
   source, ``/root``, ``/home``, ``/var/lib/redlab``, ``/run/redlab`` and whatever the
   caller names (the run folder, a class folder, the reports); private ``/tmp``,
   ``/var/tmp`` and ``/dev/shm``; then the one folder the student may use, its *work
   folder*, visible again read-write at the same path (and the caller's read-only
   folders, e.g. the virtual environment a template renderer imports Jinja2 from);
4. rlimits: ``RLIMIT_FSIZE`` (stdout and stderr go to a file in the work folder, and no
   file may grow past the output limit), ``RLIMIT_CORE`` 0;
5. a clean environment (``PATH``, ``HOME`` = the work folder, ``LANG`` and only the
   variables the lab passes), then ``setpriv`` (util-linux) drops to the unprivileged
   user ``redlab-student``: no supplementary groups, ``no_new_privs``, and exactly the
   capabilities asked for (``CAP_NET_ADMIN`` + ``CAP_NET_RAW`` inside an emulated host,
   none for a template) as its bounding, inheritable and ambient sets.

The launcher stays outside the jail's PID namespace (the student can neither see nor
signal it), waits, kills the jail at the wall-clock limit, removes the cgroup and writes
the result (``<spec>.result.json``): an exit code, or one sentence saying which limit
ended the run.  The launcher sits in its jail's cgroup itself (safe from the OOM killer),
so an *empty* ``redlab-jail-*`` cgroup always belongs to a launcher that died: the next
jail start, or :func:`clean_stale_cgroups` (``redlab clean``), removes it.

From Python: :func:`work_folder` makes a fresh work folder holding copies of the
student's files; :func:`command` writes the spec and returns the launcher's argv (for
``host.popen``: the jail then lives in that Mininet host's network namespace);
:func:`read_result` reads what happened; :func:`run` does it all outside Mininet.

The launcher half of this file imports only modules that a bare ``python -I -S`` loads
quickly (no ``site``, no dataclasses, logging or subprocess): it starts in about 20 ms.
"""

import json
import os
import pwd
import resource
import select
import signal
import stat
import sys
import time

if __name__ == "__main__":          # the launcher, run as a file without site-packages
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from redlab.errors import RedlabError  # noqa: E402

USER = "redlab-student"
NET_CAPS = ("net_admin", "net_raw")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
OUTPUT = "output.log"              # the student's stdout + stderr, in its work folder
MB = 1 << 20
PARENT = "redlab"                  # every jail's cgroup lives under this one
PREFIX = "redlab-jail-"
PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm")
SYSTEM = ("/", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc", "/proc", "/sys", "/dev")
EXIT_TIMEOUT, EXIT_ERROR = 124, 125   # the launcher's own exit codes, as timeout(1), env(1)


class JailError(RedlabError):
    """The jail itself could not be set up (not the student's fault)."""


class Limits:
    """What one jailed command may use (``wall=None``: no time limit, for a daemon)."""

    def __init__(self, wall=10.0, processes=128, memory_mb=256, cpu=0.5, output_mb=8):
        self.wall = wall               # s of wall-clock time
        self.processes = processes     # tasks at once (pids.max)
        self.memory_mb = memory_mb     # memory (and swap) in MB
        self.cpu = cpu                 # CPUs (cpu.max quota / period)
        self.output_mb = output_mb     # stdout + stderr, and any file it writes (RLIMIT_FSIZE)

    def as_dict(self):
        return dict(vars(self))

    def __repr__(self):
        return "Limits(%s)" % ", ".join("%s=%r" % kv for kv in vars(self).items())


class Result:
    """What a jailed command did: its exit ``code`` (``-N``: killed by signal N), or the
    ``reason`` (one sentence) when a limit or the caller ended it."""

    def __init__(self, code=None, reason=None, output="", seconds=0.0, limits_by="",
                 notes=()):
        self.code = code
        self.reason = reason
        self.output = output           # stdout + stderr, decoded with errors="replace"
        self.seconds = seconds
        self.limits_by = limits_by     # "cgroup v1 (pids, memory, cpu)" or "rlimits ..."
        self.notes = list(notes)

    @property
    def status(self):
        """The exit code, or the sentence saying why the command did not end by itself."""
        return self.reason if self.reason else self.code

    def __repr__(self):
        return "Result(code=%r, reason=%r, seconds=%r, output=%r)" % (
            self.code, self.reason, self.seconds, self.output[-200:])


def project_root():
    """The redlab checkout (or installed tree) whose source a student must not read."""
    return os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def default_hidden():
    """Paths every jail covers with an empty tmpfs: the project, homes and redlab's state.

    ``REDLAB_RUN_ROOT``, ``REDLAB_STATE_DIR`` and ``REDLAB_TEST_RUNS`` (when set
    elsewhere) are hidden too, and so is every path in the colon-separated
    ``REDLAB_JAIL_HIDE`` (a class grader names the class and reports folders there).
    """
    paths = [project_root(), "/root", "/home", "/var/lib/redlab", "/run/redlab"]
    for var in ("REDLAB_RUN_ROOT", "REDLAB_STATE_DIR", "REDLAB_TEST_RUNS"):
        if os.environ.get(var):
            paths.append(os.environ[var])
    return paths + [p for p in os.environ.get("REDLAB_JAIL_HIDE", "").split(":") if p]


def student_ids():
    """``(uid, gid)`` of ``redlab-student``; a missing user is a sentence saying how to add it."""
    try:
        entry = pwd.getpwnam(USER)
    except KeyError:
        raise JailError("the user %s does not exist, so a student's code cannot run jailed; "
                        "create it with `make setup` (or `useradd --system --no-create-home "
                        "--shell /usr/sbin/nologin %s`)" % (USER, USER)) from None
    return entry.pw_uid, entry.pw_gid


def _which(name):
    for folder in PATH.split(":"):
        path = os.path.join(folder, name)
        if os.access(path, os.X_OK):
            return path
    return None


def require():
    """Refuse (one sentence) where the jail cannot work: not root, no user, no setpriv."""
    if os.geteuid() != 0:
        raise JailError("running a student's code jailed needs root (namespaces, cgroups, "
                        "setpriv); run it with sudo")
    student_ids()
    if not _which("setpriv"):
        raise JailError("setpriv (util-linux) is missing, so a student's code cannot drop "
                        "its privileges; install util-linux")


# -- the caller's side --------------------------------------------------------------------------

def work_folder(path, files=()):
    """A fresh work folder at ``path`` holding copies of ``files`` (root's, read-only to
    the student), given to ``redlab-student``.  Anything a previous run left there is
    removed first (never followed: a student's symlink is deleted, not its target); a
    file to copy that is a symlink is refused (it could name any file of the grader's)."""
    import shutil
    uid, gid = student_ids()
    links = [str(f) for f in files if os.path.islink(f)]
    if links:
        raise JailError("%s is a symbolic link; a submission holds its own files: copy the "
                        "file itself there" % links[0])
    if os.path.lexists(path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    os.makedirs(path, mode=0o750)
    for source in files:
        target = os.path.join(str(path), os.path.basename(str(source)))
        shutil.copyfile(source, target)
        os.chmod(target, 0o644)
    os.chown(path, uid, gid)
    return path


def command(argv, work, spec_file, *, caps=NET_CAPS, env=None, limits=None, hide=(),
            expose=(), output=OUTPUT):
    """Write the jail's spec to ``spec_file`` and return the launcher's argv.

    ``work`` is the student's work folder (see :func:`work_folder`); ``output`` names
    the file in it that gets stdout and stderr (None: the launcher's own, e.g. a
    daemon's log).  ``hide`` adds to :func:`default_hidden`; ``expose`` lists folders
    shown read-only even where hidden (e.g. ``sys.prefix`` for a renderer's Jinja2).
    Keep ``spec_file`` outside the work folder: the student must not change it.
    """
    require()
    uid, gid = student_ids()
    work, spec_file = str(work), str(spec_file)
    if not os.path.isdir(work):
        raise JailError("the work folder %s does not exist; make it with jail.work_folder()"
                        % work)
    hidden = sorted(set(default_hidden()) | {str(p) for p in hide})
    system = [p for p in hidden if os.path.realpath(p) in SYSTEM]
    if system:
        raise JailError("%s cannot be hidden from a student's code: nothing would run without "
                        "it; name the folder to hide itself (REDLAB_JAIL_HIDE or hide=)"
                        % system[0])
    limits = limits or Limits()
    clean_env = {"PATH": PATH, "HOME": work, "LANG": "C.UTF-8"}
    clean_env.update({k: str(v) for k, v in (env or {}).items()})
    spec = dict(name="%d-%s" % (os.getpid(), os.urandom(4).hex()),
                argv=[str(a) for a in argv], work=work, uid=uid, gid=gid, caps=list(caps),
                env=clean_env, limits=limits.as_dict(),
                hide=hidden,
                expose=[str(p) for p in expose],
                output=os.path.join(work, output) if output else None,
                result=result_file(spec_file))
    if os.path.exists(spec["result"]):
        os.unlink(spec["result"])
    with open(spec_file, "w") as f:
        json.dump(spec, f, indent=1)
    _warn_once_without_cgroups()
    return [sys.executable, "-I", "-S", os.path.realpath(__file__), "--spec", spec_file,
            "--"] + spec["argv"]


def result_file(spec_file):
    return str(spec_file) + ".result.json"


def read_output(path, limit):
    """Up to ``limit`` bytes of a file the student could have replaced: never through a
    symlink, never blocking on a FIFO; decoded with errors="replace"."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return ""
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return f.read(limit).decode(errors="replace")


def read_result(spec_file):
    """The :class:`Result` of a finished launcher, its output read from the capped file."""
    with open(spec_file) as f:
        spec = json.load(f)
    try:
        with open(result_file(spec_file)) as f:
            data = json.load(f)
    except (OSError, ValueError):
        raise JailError("the jail for %s ended without a result (%s): its launcher was "
                        "killed or could not start" % (spec["argv"][0],
                                                       result_file(spec_file))) from None
    if data.get("error"):
        raise JailError(data["error"])
    output = ""
    if spec["output"]:
        output = read_output(spec["output"], spec["limits"]["output_mb"] * MB)
    return Result(code=data.get("code"), reason=data.get("reason"), output=output,
                  seconds=data.get("seconds", 0.0), limits_by=data.get("limits_by", ""),
                  notes=data.get("notes", ()))


def run(argv, work, spec_file, popen=None, grace=10.0, **options):
    """Run ``argv`` jailed, wait, and return its :class:`Result`.

    ``popen`` may be ``host.popen`` (a Mininet host).  The launcher enforces the wall
    limit itself; ``grace`` more seconds are its time to clean up before it is killed.
    """
    import subprocess
    launcher = command(argv, work, spec_file, **options)
    proc = (popen or subprocess.Popen)(launcher, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    wall = (options.get("limits") or Limits()).wall
    wait_launcher(proc, None if wall is None else wall + grace)
    return read_result(spec_file)


def wait_launcher(proc, timeout):
    """Wait for a launcher.  One still there after ``timeout`` s is told to stop (it kills
    its jail and cleans up), then killed.  Returns the launcher's own messages."""
    import subprocess
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()                   # its jail dies with it; its cgroup stays behind
            out, _ = proc.communicate()
            clean_stale_cgroups()
    return (out or b"").decode(errors="replace")


_WARNED = []


def _warn_once_without_cgroups():
    if not _WARNED:
        _WARNED.append(True)
        if Cgroup.detect()[0] is None:
            import logging
            logging.getLogger("redlab.jail").warning(
                "no usable cgroup (v2 with pids and memory, or v1 pids and memory): students' "
                "code is limited by rlimits only (processes per user, address space)")


# -- cgroups ------------------------------------------------------------------------------------

# Where the cgroup file systems are seen: here, or -- inside a Mininet host, whose fresh
# /sys covers /sys/fs/cgroup -- through the root of this PID namespace's init (a sandbox's
# init, or the machine's), whose mount namespace still shows them.
VIEWS = ("/proc/self", "/proc/1")


def _mounts(view="/proc/self"):
    """``[(mount point, root, fstype, super options)]`` of the cgroup file systems seen by
    ``view`` (a /proc/PID folder); mount points are paths that lead there from here."""
    prefix = "" if view == "/proc/self" else view + "/root"
    found = []
    try:
        with open(view + "/mountinfo") as f:
            lines = f.readlines()
    except OSError:
        return []
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if tail and tail[0] in ("cgroup", "cgroup2"):
            found.append((prefix + fields[4], fields[3], tail[0], set(tail[2].split(","))))
    return found


def _own_cgroups():
    """``{controller: path}`` from /proc/self/cgroup (``""``: the v2 hierarchy)."""
    found = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in (controllers.split(",") if controllers else [""]):
                found[controller] = path
    return found


def _inside(point, root, path):
    """The directory of cgroup ``path`` in a hierarchy mounted at ``point`` from ``root``."""
    if root != "/" and path.startswith(root):
        path = path[len(root):]
    return point + path.rstrip("/") if path not in ("", "/") else point


def _write(path, value):
    with open(path, "w") as f:
        f.write(str(value))


def _read(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def _keyed(text):
    """``{key: int}`` of a flat-keyed cgroup file (memory.events, pids.events)."""
    values = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            values[parts[0]] = int(parts[1])
    return values


class Cgroup:
    """One jail's cgroup: a directory in the v2 hierarchy, or one per v1 controller.

    v2: ``<mount>/redlab/redlab-jail-X`` (the root cgroup may hand controllers down
    while it has processes; the ``redlab`` parent never holds any).  v1:
    ``<mount>/<the caller's cgroup>/redlab/redlab-jail-X`` for pids, memory and cpu,
    nested where the caller already is, so a limit set above it still counts.
    """

    WANTED = ("pids", "memory", "cpu")

    def __init__(self, kind, places, name):
        self.kind = kind                  # "v2" or "v1"
        self.places = places              # {controller ("" for v2): (parent, home)}
        self.dirs = {c: os.path.join(parent, name) for c, (parent, _) in places.items()}

    @classmethod
    def detect(cls):
        """``(kind, {controller: (parent dir, the caller's own cgroup dir)})``, or
        ``(None, {})``: from the first of :data:`VIEWS` that shows usable hierarchies."""
        own = _own_cgroups()
        for view in VIEWS:
            kind, places = cls._detect(_mounts(view), own)
            if kind:
                return kind, places
        return None, {}

    @classmethod
    def _detect(cls, mounts, own):
        """v2 wins where it has the controllers (a v2 mount without them is a hybrid's
        leftover); a mount covered by another (a fresh /sys) does not count."""
        for point, root, fstype, _ in mounts:
            available = set(_read(os.path.join(point, "cgroup.controllers")).split())
            if fstype == "cgroup2" and {"pids", "memory"} <= available:
                home = _inside(point, root, own.get("", "/"))
                return "v2", {"": (os.path.join(point, PARENT), home)}
        places = {}
        for point, root, fstype, options in mounts:
            for controller in cls.WANTED:
                if fstype == "cgroup" and controller in options and controller not in places:
                    home = _inside(point, root, own.get(controller, "/"))
                    if os.path.exists(os.path.join(home, "cgroup.procs")):   # not covered
                        places[controller] = (os.path.join(home, PARENT), home)
        if {"pids", "memory"} <= set(places):
            return "v1", places
        return None, {}

    @classmethod
    def create(cls, name, limits):
        """Make, limit and join the cgroup ``redlab-jail-<name>``; None where none can be
        made."""
        kind, places = cls.detect()
        if kind is None:
            return None
        try:
            if kind == "v2":
                parent = places[""][0]
                root = os.path.dirname(parent)
                available = _read(os.path.join(root, "cgroup.controllers")).split()
                enable = " ".join("+" + c for c in cls.WANTED if c in available)
                _write(os.path.join(root, "cgroup.subtree_control"), enable)
                os.makedirs(parent, exist_ok=True)
                _write(os.path.join(parent, "cgroup.subtree_control"), enable)
            else:
                for parent, _ in places.values():
                    os.makedirs(parent, exist_ok=True)
        except OSError:
            return None
        clean_stale_cgroups([parent for parent, _ in places.values()])
        for attempt in range(5):        # a concurrent cleaner may take a new, empty one
            group = cls(kind, places, PREFIX + name + ("-%d" % attempt if attempt else ""))
            try:
                group._make(limits)
                group._move(os.getpid(), group.dirs)
                return group
            except FileNotFoundError:
                group.remove(timeout=0)
            except OSError:
                group.remove(timeout=0)
                return None
        return None

    def _make(self, limits):
        for d in self.dirs.values():
            os.mkdir(d)
        pids = limits["processes"] + 2          # + the launcher and the jail's init
        memory = limits["memory_mb"] * MB
        period = 100000
        quota = max(1000, int(limits["cpu"] * period))
        join = os.path.join
        if self.kind == "v2":
            d = self.dirs[""]
            required = {join(d, "pids.max"): pids, join(d, "memory.max"): memory}
            optional = {join(d, "memory.swap.max"): 0,
                        join(d, "cpu.max"): "%d %d" % (quota, period)}
        else:
            required = {join(self.dirs["pids"], "pids.max"): pids,
                        join(self.dirs["memory"], "memory.limit_in_bytes"): memory}
            optional = {join(self.dirs["memory"], "memory.memsw.limit_in_bytes"): memory}
            if "cpu" in self.dirs:
                optional[join(self.dirs["cpu"], "cpu.cfs_period_us")] = period
                optional[join(self.dirs["cpu"], "cpu.cfs_quota_us")] = quota
        for path, value in required.items():
            _write(path, value)
        for path, value in optional.items():
            if os.path.exists(path):
                _write(path, value)

    def _move(self, pid, dirs):
        for d in dirs.values():
            _write(os.path.join(d, "cgroup.procs"), pid)

    def leave(self, pid):
        """Move ``pid`` back where it came from: a cgroup holding a process cannot go."""
        try:
            self._move(pid, {c: home for c, (_, home) in self.places.items()})
        except OSError:
            pass

    def describe(self):
        if self.kind == "v2":
            enabled = _read(os.path.join(self.places[""][0], "cgroup.subtree_control")).split()
            have = [c for c in self.WANTED if c in enabled]
        else:
            have = [c for c in self.WANTED if c in self.dirs]
        return "cgroup %s (%s)" % (self.kind, ", ".join(have))

    def events(self):
        """``{"oom_kill": n, "pids_max": n}``: how often the jail ran into its limits."""
        if self.kind == "v2":
            memory = _keyed(_read(os.path.join(self.dirs[""], "memory.events")))
            pids = _keyed(_read(os.path.join(self.dirs[""], "pids.events")))
        else:
            memory = _keyed(_read(os.path.join(self.dirs["memory"], "memory.oom_control")))
            pids = _keyed(_read(os.path.join(self.dirs["pids"], "pids.events")))
        return {"oom_kill": memory.get("oom_kill", 0), "pids_max": pids.get("max", 0)}

    def remove(self, timeout=3.0):
        """rmdir each directory, waiting a little for dying processes to leave."""
        deadline = time.monotonic() + timeout
        for d in self.dirs.values():
            while True:
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() >= deadline:
                        break
                    time.sleep(0.01)


STALE_AFTER = 30.0      # s: a younger empty cgroup may be one a launcher is still moving into


def clean_stale_cgroups(parents=None, min_age=STALE_AFTER):
    """Remove every empty ``redlab-jail-*`` cgroup under ``parents`` (default: anywhere on
    the machine, :func:`leftover_cgroups`).  A launcher lives in its jail's cgroup until it
    removes it, so an empty one was left by a launcher that died.  Returns the removed
    paths (``redlab clean`` reports them)."""
    if parents is None:
        candidates = leftover_cgroups()
    else:
        candidates = []
        for parent in parents:
            try:
                candidates += [os.path.join(parent, n) for n in os.listdir(parent)
                               if n.startswith(PREFIX)]
            except OSError:
                continue
    # only old ones: a concurrent jail start makes its cgroup empty and moves into it a
    # moment later -- removing it then (seen in a class of 11 at --jobs 3) sent that jail to
    # the rlimit fallback, whose process count is shared by every jail of the user
    return [d for d in candidates
            if not _read(os.path.join(d, "cgroup.procs"), "?").strip() and _old(d, min_age)
            and _rmdir(d)]


def _old(path, min_age):
    try:
        return time.time() - os.stat(path).st_mtime >= min_age
    except OSError:
        return False


def _rmdir(cgroup):
    """Remove an empty cgroup; False if it is not empty (or already gone)."""
    try:
        os.rmdir(cgroup)
        return True
    except OSError:
        return False


def end_jail(spec_file, timeout=5.0):
    """After a jail's launcher was killed (its host crashed, its daemon was stopped): kill
    what is still in the jail's cgroups, wait until they are empty and remove them.

    The launcher's death ends the jail's PID namespace, but the kernel does that a moment
    later; a cgroup is removable only once its last task has exited (seen: a parallel
    suite run found the cgroup still there right after the crash).  Returns the removed
    paths."""
    removed = []
    deadline = time.monotonic() + timeout
    for d in cgroups_of(spec_file):
        procs = os.path.join(d, "cgroup.procs")
        while True:
            pids = [int(p) for p in _read(procs, "").split()]
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if time.monotonic() >= deadline:
                break
            time.sleep(0.01)          # the kernel is tearing the tasks down
        if _rmdir(d):
            removed.append(d)
    return removed


def leftover_cgroups():
    """Every ``redlab-jail-*`` cgroup on the machine (for leak checks: walks each hierarchy)."""
    found = []
    for point, _, _, _ in _mounts():
        for folder, dirs, _ in os.walk(point):
            for name in list(dirs):
                if name.startswith(PREFIX):
                    found.append(os.path.join(folder, name))
                    dirs.remove(name)
    return sorted(found)


def cgroups_of(spec_file):
    """The cgroups of the jail that ``spec_file`` describes: none once its launcher ended
    (or, after a launcher was killed, once :func:`clean_stale_cgroups` ran)."""
    with open(spec_file) as f:
        name = PREFIX + json.load(f)["name"]
    return [d for d in leftover_cgroups()
            if os.path.basename(d) == name or os.path.basename(d).startswith(name + "-")]


# -- the launcher's system calls ------------------------------------------------------------------

from redlab.syscalls import (CLONE_NEWIPC, CLONE_NEWNS, CLONE_NEWPID, MS_BIND,  # noqa: E402
                             MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC,
                             MS_REMOUNT, die_with_parent, unshare)
from redlab.syscalls import mount as _mount  # noqa: E402


def _tmpfs(target, mode="0755", size="1m"):
    _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV,
           "mode=%s,size=%s,nr_inodes=4096" % (mode, size))


def _under(path, others):
    return any(path == o or path.startswith(o.rstrip("/") + "/") for o in others)


def _reachable(target, uid):
    """Cover the first ancestor of ``target`` the student cannot enter (a mode 0700 run
    folder, a checkout in /root) with an empty tmpfs, so the path can be made again."""
    parts = target.strip("/").split("/")
    for i in range(1, len(parts)):
        ancestor = "/" + "/".join(parts[:i])
        try:
            st = os.stat(ancestor)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            return
        if not st.st_mode & stat.S_IXOTH and st.st_uid != uid:
            _tmpfs(ancestor)
            return


def _build_mounts(spec):
    """In the jail's new mount namespace: hide, private /tmp, the work folder bound back."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    # this namespace's copies of the folders to show again, held by fd: once their
    # parents are covered no path leads to them any more
    binds = [(spec["work"], False)] + [(p, True) for p in spec["expose"]]
    fds = [os.open(p, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) for p, _ in binds]
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    covered = []
    for path in sorted({os.path.realpath(p) for p in spec["hide"]}, key=len):
        if _under(path, covered) or not os.path.exists(path):
            continue
        if os.path.isdir(path):
            _tmpfs(path)
        else:
            _mount("/dev/null", path, None, MS_BIND)
        covered.append(path)
    for path in PRIVATE_TMP:
        if os.path.isdir(path):
            _tmpfs(path, mode="1777", size="64m")
    for (path, readonly), fd in zip(binds, fds):
        _reachable(path, spec["uid"])
        os.makedirs(path, mode=0o755, exist_ok=True)
        _mount("/proc/self/fd/%d" % fd, path, None, MS_BIND | MS_REC)
        flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | (MS_RDONLY if readonly else 0)
        _mount(None, path, None, flags)
        os.close(fd)


def _setpriv(spec):
    caps = ",".join(["-all"] + ["+" + c for c in spec["caps"]])
    return [_which("setpriv"), "--reuid", str(spec["uid"]), "--regid", str(spec["gid"]),
            "--clear-groups", "--no-new-privs", "--inh-caps", caps, "--ambient-caps", caps,
            "--bounding-set", caps, "--"]


def _rlimits(limits, cgroup):
    output = limits["output_mb"] * MB
    resource.setrlimit(resource.RLIMIT_FSIZE, (output, output))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if cgroup is None:
        # stand-ins, weaker: NPROC counts every process of the user (all jails together)
        resource.setrlimit(resource.RLIMIT_NPROC, (limits["processes"],) * 2)
        resource.setrlimit(resource.RLIMIT_AS, (limits["memory_mb"] * MB,) * 2)


def _oom_score_adj(value):
    try:
        _write("/proc/self/oom_score_adj", value)
    except OSError:
        pass


def _student(spec, cgroup, output_fd):
    """The init's child: limits, descriptors, then setpriv execs the student's command."""
    _oom_score_adj(0)
    _rlimits(spec["limits"], cgroup)
    os.dup2(os.open("/dev/null", os.O_RDONLY), 0)
    if output_fd is not None:
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
    os.closerange(3, 65536)
    os.chdir(spec["work"])
    os.umask(0o022)
    for sig in (signal.SIGPIPE, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    argv = _setpriv(spec) + spec["argv"]
    os.execve(argv[0], argv, spec["env"])


def _init(spec, cgroup, output_fd, status_w, alive_r):
    """PID 1 of the jail: mounts, starts the student's command, reaps, reports its status.

    When it exits, the kernel kills everything left in its namespace."""
    die_with_parent(signal.SIGKILL)
    if select.select([alive_r], [], [], 0)[0]:      # the launcher died before prctl
        os._exit(EXIT_ERROR)
    try:
        unshare(CLONE_NEWNS | CLONE_NEWIPC)
        _build_mounts(spec)
    except OSError as exc:
        os.write(status_w, ("error %s\n" % exc).encode(errors="replace"))
        os._exit(EXIT_ERROR)
    main = os.fork()
    if main == 0:
        try:
            _student(spec, cgroup, output_fd)
        except BaseException as exc:      # noqa: BLE001 -- exec failed: say why, then exit
            os.write(2, ("redlab jail: cannot start %s: %s\n" % (spec["argv"][0], exc))
                     .encode(errors="replace"))
        os._exit(127)
    if output_fd is not None:
        os.close(output_fd)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(0)
        if pid == main:
            os.write(status_w, ("status %d\n" % status).encode())
            os._exit(0)


def _open_output(path):
    """The output file, new: a name the student left there (a symlink) is removed, never
    followed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                   0o644)


def _wait(init, wall, started):
    """Wait for the init to end; kill it at the wall-clock limit or when the caller asks
    (SIGTERM/SIGINT/SIGHUP).  Returns ``{"time": True}`` or ``{"signal": N}`` or ``{}``."""
    stop = {}

    def stopped(signum, _frame):
        stop.setdefault("signal", signum)
        os.kill(init, signal.SIGKILL)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stopped)
    pidfd = os.pidfd_open(init)
    deadline = None if wall is None else started + wall
    while not select.select([pidfd], [], [], None if deadline is None
                            else max(0.0, deadline - time.monotonic()))[0]:
        if time.monotonic() >= deadline:
            stop.setdefault("time", True)
            os.kill(init, signal.SIGKILL)
    os.waitpid(init, 0)
    os.close(pidfd)
    return stop


def launch(spec):
    """Run ``spec`` jailed (as root); return the result the caller reads."""
    started = time.monotonic()
    _oom_score_adj(-1000)                  # the OOM killer takes the student's processes
    cgroup = Cgroup.create(spec["name"], spec["limits"])
    events, output_fd = {}, None
    try:
        output_fd = _open_output(spec["output"]) if spec["output"] else None
        status_r, status_w = os.pipe()
        alive_r, alive_w = os.pipe()
        unshare(CLONE_NEWPID)
        init = os.fork()
        if init == 0:
            os.close(status_r)
            os.close(alive_w)
            _init(spec, cgroup, output_fd, status_w, alive_r)
        os.close(status_w)
        os.close(alive_r)
        stop = _wait(init, spec["limits"]["wall"], started)
        report = os.read(status_r, 4096).decode(errors="replace").split(None, 1)
        # the file this launcher made, whatever the student renamed or put in its place
        output_size = os.fstat(output_fd).st_size if output_fd is not None else 0
    finally:
        if output_fd is not None:
            os.close(output_fd)
        if cgroup:
            events = cgroup.events()
            cgroup.leave(os.getpid())
            cgroup.remove()
    if report[:1] == ["error"]:
        return {"error": "the jail for %s could not be set up: %s"
                % (spec["argv"][0], report[1].strip())}
    code = os.waitstatus_to_exitcode(int(report[1])) if report[:1] == ["status"] else None
    result = outcome(spec["limits"], code, stop, events, output_size)
    result.update(seconds=round(time.monotonic() - started, 3),
                  limits_by=cgroup.describe() if cgroup else "rlimits (no usable cgroup)")
    return result


def outcome(limits, code, stop, events, output_size):
    """``{code, reason, notes}``: the exit code, and the sentence when a limit ended it."""
    reason, notes = None, []
    if stop.get("time"):
        reason = "a timeout: it was still running after %g s" % limits["wall"]
    elif stop.get("signal"):
        reason = "stopped by the grader (%s)" % signal.Signals(stop["signal"]).name
    elif events.get("oom_kill"):
        reason = "killed by the memory limit of %d MB" % limits["memory_mb"]
    elif output_size >= limits["output_mb"] * MB or code == -signal.SIGXFSZ:
        reason = "its output exceeded %d MB and was cut there" % limits["output_mb"]
    elif code is None:
        reason = "its jail ended without an exit status"
    if events.get("pids_max"):
        notes.append("it hit the limit of %d processes (%d forks refused)"
                     % (limits["processes"], events["pids_max"]))
        if reason is None and code:
            reason = "it hit the limit of %d processes and exited with code %d" % (
                limits["processes"], code)
    return dict(code=code, reason=reason, notes=notes)


def main(args=None):
    args = sys.argv[1:] if args is None else args
    if len(args) < 4 or args[0] != "--spec" or args[2] != "--":
        print("usage: python -I -S redlab/jail.py --spec SPEC.json -- ARGV...", file=sys.stderr)
        return 2
    with open(args[1]) as f:
        spec = json.load(f)
    spec["argv"] = args[3:]
    try:
        require()
        result = launch(spec)
    except (JailError, OSError) as exc:
        result = {"error": "the jail for %s could not start: %s" % (spec["argv"][0], exc)}
    with open(spec["result"] + ".tmp", "w") as f:
        json.dump(result, f)
    os.replace(spec["result"] + ".tmp", spec["result"])
    if result.get("error"):
        print("redlab jail: %s" % result["error"], file=sys.stderr)
        return EXIT_ERROR
    if result["reason"]:
        print("redlab jail: %s ended: %s" % (spec["argv"][0], result["reason"]), file=sys.stderr)
    if stop_was_time(result):
        return EXIT_TIMEOUT
    code = result["code"]
    return EXIT_ERROR if code is None else code if code >= 0 else 128 - code


def stop_was_time(result):
    return (result.get("reason") or "").startswith("a timeout")


if __name__ == "__main__":
    sys.exit(main())
