"""One folder per run, and a registry of what each run created.

Everything a run makes -- configs, pid files, logs, captures, reports -- lives in its
run folder.  What it creates *outside* that folder (OVS bridges, veth links, processes,
host network namespaces) is written to a small registry entry **before** it is created,
so that ``redlab clean`` can remove exactly that, by name and by id, after a crash or
``kill -9``.  Processes are recorded with their start time, so a recycled pid is never
mistaken for ours.

Locations (override with environment variables):

- ``REDLAB_RUN_ROOT`` (default ``/var/lib/redlab/runs``): run folders.
- ``REDLAB_STATE_DIR`` (default ``/run/redlab``): the registry and the lock; on tmpfs,
  so a reboot (which also removes every namespace and veth) empties it.  A sandbox
  (``redlab.sandbox``) has its own: ``<state>/sandboxes/<id>/``.

Both are root's.  The state folder is mode 0700: the registry says what ``redlab clean``
will kill and delete, so nobody else may read or write it; the lock is opened without
following links.  Run folders are 0711: nobody else may list or write them, but the
daemons that drop root inside a host (nginx's workers as www-data, Squid as proxy,
named as bind) must still reach their own files (measured: with 0700 nginx answers 404,
``stat() ... Permission denied``).  A student's code does not see them at all: its jail
hides the whole run root (``redlab.jail``).
"""

import fcntl
import json
import os
import re
import threading
import time
from pathlib import Path

from redlab.errors import RedlabError


RUN_MARKER = ".redlab-run"      # in every run folder redlab made: only those are pruned
RUN_MODE = 0o711                # see above: traversable by the daemons' own users


def run_root():
    return Path(os.environ.get("REDLAB_RUN_ROOT", "/var/lib/redlab/runs"))


def state_dir():
    return Path(os.environ.get("REDLAB_STATE_DIR", "/run/redlab"))


def private_dir(path, mode=0o700):
    """Create ``path`` (and missing parents) root-only; refuse a link or a folder that
    is not root's (someone else could have put it there to steer us)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=mode)
    st = os.lstat(path)
    if not os.path.isdir(path) or os.path.islink(path) or \
            (os.geteuid() == 0 and st.st_uid != 0):
        raise RedlabError("%s is not a folder of root's (a link, or owned by uid %d); "
                          "remove it and run again" % (path, st.st_uid))
    if st.st_mode & 0o777 & ~mode:
        os.chmod(path, mode)
    return path


def registry_dir():
    return state_dir() / "runs"


def _stat_fields(pid):
    """Fields of /proc/PID/stat after the command name (field 3 onwards), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # the command name may contain spaces and parentheses: split after the last ')'
    return stat[stat.rindex(")") + 2:].split()


def proc_start_time(pid):
    """The process start time (clock ticks since boot) or None if it is gone."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def child_pids(pid):
    """Pids whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields and int(fields[1]) == pid:
                found.append(int(entry))
    return found


def same_process(pid, start_time):
    """Is ``pid`` still the very process that was recorded?"""
    return pid is not None and proc_start_time(pid) == start_time


def proc_netns(pid):
    try:
        return os.readlink("/proc/%d/ns/net" % pid)
    except OSError:
        return None


class Run:
    """A run folder plus its registry entry.

    >>> run = Run("demo")            # doctest: +SKIP
    >>> run.record("bridges", "s1")  # before creating it
    """

    def __init__(self, name, folder=None):
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"
        now = time.time()
        # pids repeat across sandboxes (each has its own PID namespace): name the sandbox
        where = os.environ.get("REDLAB_SANDBOX")
        self.id = "%s.%03d-%s%d-%s" % (time.strftime("%Y%m%d-%H%M%S", time.localtime(now)),
                                       int(now * 1000) % 1000, where + "-" if where else "",
                                       os.getpid(), name)
        self.path = Path(folder) if folder else run_root() / self.id
        self.state = {
            "id": self.id,
            "path": str(self.path),
            "owner_pid": os.getpid(),
            "owner_start": proc_start_time(os.getpid()),
            "created": time.time(),
            "bridges": [],      # OVS bridge names
            "links": [],        # interface names in the root namespace
            "processes": [],    # {"pid", "start", "what"}
            "netns": [],        # "net:[inode]" of emulated hosts
            "files": [],        # sockets and other files outside the run folder
            "ct_zones": [],     # {"dp", "zone", "datapath_record"}: OVS conntrack zones
        }
        self._registered = False
        # one writer at a time: threads of one run record at once (vip_takeover's
        # restart_in_step starts daemons from a thread pool), and two _write()s of one
        # file share its .tmp: one's os.replace took the other's file away mid-write
        self._lock = threading.RLock()

    @property
    def registered(self):
        return self._registered

    # -- folder ---------------------------------------------------------------------
    def file(self, *parts):
        """Path of a file in the run folder; its parent folders are created."""
        path = self.path.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def folder(self, *parts):
        path = self.path.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    # -- registry -------------------------------------------------------------------
    @property
    def registry_file(self):
        return registry_dir() / (self.id + ".json")

    def open(self):
        private_dir(self.path.parent, RUN_MODE)
        private_dir(self.path, RUN_MODE)
        (self.path / RUN_MARKER).write_text(self.id + "\n")
        private_dir(state_dir())
        private_dir(registry_dir())
        with self._lock:
            self._registered = True
            self._save()
        return self

    def close(self):
        """Forget the registry entry (call once everything recorded is gone)."""
        with self._lock:
            self._registered = False
            try:
                self.registry_file.unlink()
            except FileNotFoundError:
                pass
            self._write(self.path / "state.json")

    def record(self, kind, value):
        with self._lock:
            if value not in self.state[kind]:
                self.state[kind].append(value)
                self._save()

    def forget(self, kind, value):
        with self._lock:
            if value in self.state[kind]:
                self.state[kind].remove(value)
                self._save()

    def record_process(self, pid, what):
        entry = {"pid": pid, "start": proc_start_time(pid), "what": what}
        self.record("processes", entry)
        return entry

    def forget_process(self, pid):
        with self._lock:
            for entry in list(self.state["processes"]):
                if entry["pid"] == pid:
                    self.forget("processes", entry)

    def _save(self):
        if self._registered:
            self._write(self.registry_file)

    def _write(self, path):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.state, indent=1))
        os.replace(tmp, path)


def registered_runs():
    """All registry entries, as dicts (a corrupt entry is returned with its error)."""
    entries = []
    for path in sorted(registry_dir().glob("*.json")):
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            entry = {"id": path.stem, "error": str(exc), "bridges": [], "links": [],
                     "processes": [], "netns": []}
        entry["registry_file"] = str(path)
        entries.append(entry)
    return entries


def owner_alive(entry):
    return same_process(entry.get("owner_pid"), entry.get("owner_start"))


class NetworkLock:
    """One emulated network at a time: bridge and interface names would collide."""

    def __init__(self):
        self.fd = None

    def acquire(self, run, wait=None):
        """Take the lock; with ``wait`` (or REDLAB_LOCK_WAIT seconds) queue behind the holder."""
        path = private_dir(state_dir()) / "lock"
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise RedlabError("cannot open the network lock %s (%s): it must be a plain file "
                              "of root's; remove it and run again" % (path, exc.strerror)) from None
        wait = float(os.environ.get("REDLAB_LOCK_WAIT", 0)) if wait is None else wait
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.2)       # polling a lock held by another process
                    continue
                holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise RedlabError(
                    "another redlab network is running (%s); stop it first, "
                    "or run `redlab clean` if it crashed" % holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, ("pid %d, run folder %s" % (os.getpid(), run.path)).encode())
        self.fd = fd

    def release(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
