"""A sandbox per network: own mount, PID, UTS and network namespaces, own Open vSwitch.

Only one Mininet usually runs on a host: switch ports live in the root namespace, bridge
names collide, and one ``ovs-vswitchd`` serves everyone.  redlab runs each network (each
``redlab run/up/demo/grade`` and each test session or pytest-xdist worker) inside a
sandbox of its own, so that many run at once beside a lab a person has open::

    code = sandbox.run(["redlab", "up", "vrrp_pair"], name="up")   # outer side, waits

The outer process starts ``unshare --mount --pid --net --uts --ipc --fork --kill-child``
(under ``setpriv --pdeathsig KILL``) with this module's ``_init`` as the new PID
namespace's init.  The init

- mounts a fresh ``/proc`` and a private tmpfs on ``/run/openvswitch`` and ``/run/netns``,
- brings ``lo`` up and names the UTS namespace after the sandbox,
- starts a private ``ovsdb-server`` (a new, empty database) and ``ovs-vswitchd`` (about
  60 ms here),
- runs the payload with ``REDLAB_SANDBOX`` and its own ``REDLAB_STATE_DIR`` (so its own
  run registry, lock and control sockets), reaps every orphan, forwards SIGTERM/SIGHUP,
- and exits with the payload's status.

When the init exits -- normally, or because the outer process was killed (``kill -9``:
the kernel's parent-death signal reaches ``unshare``, whose ``--kill-child`` kills the
init) -- the kernel kills every process left in the PID namespace (daemons, Mininet
shells, OVS, nested sandboxes), and the network namespace goes with its last process:
its veths, taps and bridges vanish.  Nothing of a sandbox survives it but its run
folders (evidence) and its small state folder, which ``redlab clean`` removes
(:func:`clean_stale`), killing a still-living init first -- after checking that the pid
is still the recorded process *and* still the init of the recorded PID namespace.
"""

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from redlab.syscalls import MS_NODEV, MS_NOEXEC, MS_NOSUID, mount

ENV = "REDLAB_SANDBOX"
OVS_RUN = "/run/openvswitch"
OVS_SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
PRIVATE_TMPFS = (OVS_RUN, "/run/netns")


def inside():
    """The id of the sandbox this process runs in, or None."""
    return os.environ.get(ENV) or None


def sandboxes_dir():
    from redlab.runs import state_dir
    return state_dir() / "sandboxes"


def available():
    """None if sandboxes can be made here, else the reason (one sentence)."""
    if os.geteuid() != 0:
        return "sandboxes need root (network, PID and mount namespaces)"
    for binary in ("unshare", "setpriv"):
        if not shutil.which(binary):
            return "`%s` is missing; install the Debian package util-linux" % binary
    return None


def new_id(name):
    """Short (it becomes a hostname and part of socket paths) and unique."""
    clean = "".join(c if c.isalnum() else "-" for c in name).strip("-")[:12] or "sandbox"
    return "%s-%s" % (clean, secrets.token_hex(3))


def _proc(pid):
    """A process as recorded: pid, start time and PID namespace (None if it is gone)."""
    from redlab.runs import proc_start_time
    try:
        return {"pid": pid, "start": proc_start_time(pid),
                "pidns": os.readlink("/proc/%d/ns/pid" % pid)}
    except OSError:
        return None


class Sandbox:
    """The outer side of one sandbox: start it, signal it, wait for it, remove its state."""

    def __init__(self, name="sandbox"):
        self.id = new_id(name)
        self.folder = sandboxes_dir() / self.id
        self.proc = None

    @property
    def info_file(self):
        return self.folder / "sandbox.json"

    def popen(self, argv, env=None, **kwargs):
        """Start ``argv`` inside a new sandbox; returns the ``unshare`` process."""
        reason = available()
        if reason:
            from redlab.errors import PreflightError
            raise PreflightError(reason)
        from redlab.runs import private_dir
        private_dir(self.folder)
        (self.folder / "owner.json").write_text(json.dumps(
            {"owner": _proc(os.getpid()), "created": time.time()}))
        command = ["setpriv", "--pdeathsig", "KILL",
                   "unshare", "--mount", "--pid", "--net", "--uts", "--ipc", "--fork",
                   "--kill-child", "--propagation", "private",
                   sys.executable, "-m", "redlab.sandbox", "_init", "--id", self.id,
                   "--folder", str(self.folder), "--"] + [str(a) for a in argv]
        self.proc = subprocess.Popen(command, env=env, **kwargs)
        return self.proc

    def init_pid(self, timeout=10.0):
        """The init's pid as this side sees it (written by the init once it runs)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return json.loads(self.info_file.read_text())["init"]["pid"]
            except (OSError, ValueError, KeyError, TypeError):
                if self.proc is not None and self.proc.poll() is not None:
                    return None
                time.sleep(0.01)        # the init writes it within milliseconds
        return None

    def signal(self, signum):
        pid = self.init_pid(timeout=1.0)
        if pid:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def remove(self):
        shutil.rmtree(self.folder, ignore_errors=True)


def run(argv, name="sandbox", **popen_kwargs):
    """Run ``argv`` in a new sandbox in the foreground; return its exit code.

    SIGTERM and SIGHUP are passed to the payload (through the init), so a network inside
    tears down as it would outside; Ctrl-C reaches the payload from the terminal itself.
    """
    box = Sandbox(name)
    forwarded = (signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.getsignal(s) for s in forwarded + (signal.SIGINT,)}
    for s in forwarded:
        signal.signal(s, lambda signum, frame: box.signal(signum))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        proc = box.popen(argv, **popen_kwargs)
        code = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        box.remove()
    return 128 - code if code < 0 else code


# -- redlab clean ---------------------------------------------------------------------

def _alive(recorded):
    from redlab.runs import same_process
    return bool(recorded) and same_process(recorded.get("pid"), recorded.get("start"))


def clean_stale(include_live=False):
    """Remove the sandboxes whose owner is gone; return report lines.

    A sandbox's init that still runs (its owner was killed in a way that did not reach
    it) is killed only if its pid is still the recorded process and still the init of
    the recorded PID namespace; that kill ends everything inside.
    """
    report = []
    folder = sandboxes_dir()
    if not folder.is_dir():
        return report
    for box in sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()):
        try:
            owner = json.loads((box / "owner.json").read_text()).get("owner")
        except (OSError, ValueError):
            owner = None
        try:
            init = json.loads((box / "sandbox.json").read_text()).get("init")
        except (OSError, ValueError):
            init = None
        if _alive(owner) and not include_live:
            report.append("sandbox %s is running (pid %s): left alone" % (box.name, owner["pid"]))
            continue
        if owner is None and time.time() - box.stat().st_mtime < 30 and not include_live:
            # made a moment ago: its owner writes owner.json right after the folder
            report.append("sandbox %s is being created: left alone" % box.name)
            continue
        what = "its namespaces were already gone"
        if _alive(init) and (_proc(init["pid"]) or {}).get("pidns") == init.get("pidns"):
            os.kill(init["pid"], signal.SIGKILL)
            deadline = time.monotonic() + 5
            while _alive(init) and time.monotonic() < deadline:
                time.sleep(0.02)
            what = "killed its init (pid %d) and with it every process, namespace, interface " \
                   "and OVS daemon inside" % init["pid"]
        shutil.rmtree(box, ignore_errors=True)
        report.append("sandbox %s: %s" % (box.name, what))
    return report


# -- the init, inside the new namespaces ------------------------------------------------

def start_ovs():
    """The sandbox's private ovsdb-server (a fresh database) and ovs-vswitchd, detached.

    Only inside a sandbox: its ``/run/openvswitch`` is a private tmpfs, so these daemons
    and their database are the sandbox's alone.
    """
    if not os.path.ismount(OVS_RUN):
        raise RuntimeError("%s is not a sandbox's private mount: starting OVS here would "
                           "start a second one on the host" % OVS_RUN)
    if not shutil.which("ovsdb-server") and not Path("/usr/sbin/ovsdb-server").exists():
        return
    db = os.path.join(OVS_RUN, "conf.db")
    if os.path.exists(db):
        os.unlink(db)
    env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    steps = [
        ["ovsdb-tool", "create", db, OVS_SCHEMA],
        ["ovsdb-server", db, "--remote=punix:%s/db.sock" % OVS_RUN, "--pidfile", "--detach",
         "--log-file=%s/ovsdb-server.log" % OVS_RUN],
        ["ovs-vsctl", "--no-wait", "init"],
        ["ovs-vswitchd", "--pidfile", "--detach", "--log-file=%s/ovs-vswitchd.log" % OVS_RUN],
    ]
    for step in steps:
        done = subprocess.run(step, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError("sandbox: `%s` failed: %s" % (" ".join(step), done.stderr.strip()))


def _init(args):
    """PID 1 of a new sandbox (see the module docstring)."""
    folder = Path(args.folder)
    outer_pid = int(os.readlink("/proc/self"))      # the host's /proc is still mounted here
    info = {"id": args.id, "init": _proc(outer_pid),
            "netns": os.readlink("/proc/self/ns/net"), "command": args.argv,
            "started": time.time()}
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    tmp = folder / "sandbox.json.tmp"
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, folder / "sandbox.json")
    for target in PRIVATE_TMPFS:
        os.makedirs(target, exist_ok=True)
        mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    socket.sethostname(args.id)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    start_ovs()

    env = dict(os.environ, **{ENV: args.id, "REDLAB_STATE_DIR": str(folder)})
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # the terminal's Ctrl-C reaches the payload
    payload = subprocess.Popen(args.argv, env=env, restore_signals=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def forward(signum, frame):
        try:
            os.kill(payload.pid, signum)
        except ProcessLookupError:
            pass
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, forward)
    while True:                       # reap every orphan until the payload itself ends
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 0
        if pid == payload.pid:
            return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m redlab.sandbox")
    sub = parser.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("run", help="run a command in a new sandbox")
    p.add_argument("--name", default="sandbox")
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p = sub.add_parser("_init", help=argparse.SUPPRESS)
    p.add_argument("--id", required=True)
    p.add_argument("--folder", required=True)
    p.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.argv and args.argv[0] == "--":
        args.argv = args.argv[1:]
    if not args.argv:
        parser.error("a command to run is needed")
    if args.verb == "_init":
        code = _init(args)
        sys.stdout.flush()
        os._exit(code)
    return run(args.argv, args.name)


if __name__ == "__main__":
    sys.exit(main())
