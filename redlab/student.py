"""Running a student's script inside an emulated host: once, or as a daemon.

    run = ScriptRun(net["client1"], "deploy.sh", ["index.html"], env={"VIP": vip})
    code, output = run.finish()          # killed after ``timeout`` s: code is a sentence

    host.start_daemon(StudentScript(host, "takeover.sh", {"MY_VIP": vip}, name="takeover"))

A student's script must never hang a lab or a grading run: a run that is still going
after its timeout is killed, and a script daemon is a :class:`redlab.daemons.Daemon`
(own folder, dry run ``bash -n``, recorded in the run registry, stopped with its host).
"""

import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

from redlab.daemons.base import Daemon

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def script_env(env=None):
    """The environment a script runs with: a sane PATH plus ``env``."""
    result = dict(os.environ, PATH=PATH)
    result.update({k: str(v) for k, v in (env or {}).items()})
    return result


class ScriptRun:
    """The student's script, started inside ``host``; the lab may watch meanwhile."""

    def __init__(self, host, path, args=(), env=None, timeout=10.0, shell="bash"):
        self.timeout = timeout
        self.path = Path(path)
        self.proc = host.popen([shell, str(path)] + [str(a) for a in args],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, env=script_env(env))
        self.started = time.time()
        self.ended = None

    def poll(self):
        """Note when the script ended (call it while watching something else)."""
        if self.ended is None and self.proc.poll() is not None:
            self.ended = time.time()
        return self.ended is not None

    def finish(self):
        """``(exit code, output)``; a script still running ``timeout`` s after its start is
        killed, and its exit code is then a sentence saying so."""
        try:
            output, _ = self.proc.communicate(
                timeout=max(0.1, self.started + self.timeout - time.time()))
            code = self.proc.returncode
        except subprocess.TimeoutExpired:
            # the whole process group: a child (``sleep``, ``curl``) would keep the output
            # pipe open, and reading it would wait for that child
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
            output, _ = self.proc.communicate()
            code = "a timeout: it was still running after %g s" % self.timeout
        self.poll()
        return code, output.decode(errors="replace").strip()


class StudentScript(Daemon):
    """A student's script as a daemon of a host, its settings in the environment.

    Its folder (``<run>/<host>/<name>/``) keeps the script that ran, ``<name>.env`` and
    ``<name>.log``; it is recorded in the run registry, killed with its host by
    ``host_crash`` and started again by the host's "reboot" (the fault's undo).  Each
    start writes a marker line to the log; :meth:`lines` reads what it logged since.
    """

    binary = "bash"
    ready_timeout = 5.0

    def __init__(self, node, script, settings, name="script", **options):
        super().__init__(node, **options)
        self.name = name
        self.config_name = name + ".env"
        self.source = Path(script)
        self.settings = {k: str(v) for k, v in settings.items()}
        self.log_offset = 0

    @property
    def script(self):
        return self.path(self.source.name)

    def render(self):
        shutil.copyfile(self.source, self.script)
        self.config_file.write_text("".join("%s=%s\n" % (k, shlex.quote(v))
                                            for k, v in self.settings.items()))

    def dry_run(self):
        return [self.binary_path, "-n", str(self.script)]

    def command(self):
        env = ["PATH=%s" % PATH] + ["%s=%s" % kv for kv in self.settings.items()]
        return ["env"] + env + [self.binary_path, str(self.script)]

    def start(self):
        if not self.running:
            with open(self.log_file, "a") as log:
                log.write("--- redlab: %s starts %s with %s\n" % (
                    time.strftime("%H:%M:%S"), self.source.name,
                    " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in self.settings.items())))
            self.log_offset = self.log_file.stat().st_size
        return super().start()

    def lines(self, since_offset=None):
        """What the script logged since its last start (or since ``since_offset``)."""
        try:
            with open(self.log_file, "rb") as log:
                log.seek(self.log_offset if since_offset is None else since_offset)
                return log.read().decode(errors="replace").splitlines()
        except FileNotFoundError:
            return []
