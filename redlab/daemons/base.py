"""One daemon = one small class + one Jinja2 template.

A daemon renders its config with ``StrictUndefined`` (a missing value is an error that
names the template and the node), checks it with the daemon's own dry run, starts in
the foreground inside its host with its own folder (``<run>/<host>/<daemon>/``: config,
pid, log), waits until it is really ready, and stops cleanly.  Its process is recorded
in the run registry, so ``redlab clean`` can stop it after a crash.
"""

import os
import signal
import subprocess
import time

import jinja2

from redlab.errors import ConfigError, DaemonError
from redlab.system import require_binary
from redlab.wait import startup, wait_until

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("redlab", "templates"),
    undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
    trim_blocks=True, lstrip_blocks=True)


def render_template(name, values, where):
    """Render ``templates/<name>``; ``where`` ("web1/nginx") names the culprit on error."""
    try:
        return _ENV.get_template(name).render(**values)
    except jinja2.UndefinedError as exc:
        raise ConfigError("%s: template %s needs a value that was not given (%s)"
                          % (where, name, exc.message)) from None
    except jinja2.TemplateError as exc:
        raise ConfigError("%s: template %s is broken: %s" % (where, name, exc)) from None


class Daemon:
    name = "daemon"            # also the folder name
    binary = None              # looked up on PATH and sbin folders
    template = None            # file in redlab/templates
    config_name = None         # rendered config file name
    ready_timeout = 10.0
    stop_signal = signal.SIGTERM

    def __init__(self, node, **options):
        self.node = node
        self.options = options
        self.proc = None
        self.binary_path = None
        self._log = None

    def __repr__(self):
        return "<%s on %s>" % (self.name, self.node.name)

    @property
    def where(self):
        return "%s/%s" % (self.node.name, self.name)

    @property
    def folder(self):
        return self.node.run.folder(self.node.name, self.name)

    def path(self, name):
        return self.folder / name

    @property
    def config_file(self):
        return self.path(self.config_name)

    @property
    def log_file(self):
        return self.path(self.name + ".log")

    # -- to override -----------------------------------------------------------------
    def values(self):
        """The template's values (Python computes, the template only loops and branches)."""
        return {}

    def prepare(self):
        """Write any extra files (content, zone files, scripts) before the dry run."""

    def dry_run(self):
        """The daemon's own config check, as a command list."""
        raise NotImplementedError

    def command(self):
        """The foreground start command, as a list."""
        raise NotImplementedError

    def ready(self):
        """Return ``(ok, seen)``: is the daemon serving?"""
        return True, "started"

    # -- lifecycle -------------------------------------------------------------------
    def render(self):
        values = dict(node=self.node.name, folder=str(self.folder))
        values.update(self.values())
        self.config_file.write_text(render_template(self.template, values, self.where))

    def check(self):
        # inside the host: keepalived checks that its interfaces exist there
        for cmd in self.dry_runs():
            proc = self.node.popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
            output, _ = proc.communicate(timeout=30)
            if proc.returncode != 0:
                message = output.decode(errors="replace").strip().splitlines()
                raise DaemonError("%s: %s configuration %s is invalid: %s" % (
                    self.node.name, self.name, self.config_file,
                    " | ".join(message[-4:]) or "exit code %d" % proc.returncode))

    def dry_runs(self):
        return [self.dry_run()]

    def start(self):
        if self.running:
            return self
        self.binary_path = require_binary(self.binary, "%s on %s" % (self.name, self.node.name))
        self.render()
        self.prepare()
        self.check()
        self._log = open(self.log_file, "ab")
        self.proc = self.node.popen(self.command(), stdout=self._log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        self.node.run.record_process(self.proc.pid, self.where)
        try:
            wait_until(self._ready_or_died, startup(self.ready_timeout), "%s to be ready" % self.where)
        except Exception:
            self.stop()
            raise
        return self

    def _ready_or_died(self):
        if self.proc.poll() is not None:
            raise DaemonError("%s: %s exited with code %s right after start; its log says: %s" % (
                self.node.name, self.name, self.proc.returncode, self.log_tail()))
        return self.ready()

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def signal(self, sig):
        """Signal the daemon's whole process group (mnexec -d made it a session leader)."""
        if self.running:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def reload(self):
        """Re-render, dry-run and tell the daemon to re-read its config (SIGHUP).

        Only the main process gets the signal, as with ``kill -HUP $(cat pidfile)``: it
        passes the reload on to its workers or children (keepalived reloaded twice when
        its VRRP child got a SIGHUP of its own as well)."""
        self.render()
        self.prepare()
        self.check()
        if self.running:
            self.proc.send_signal(signal.SIGHUP)

    def request_stop(self):
        """Send the stop signal without waiting (``stop()`` then reaps)."""
        if self.running:
            self.signal(signal.SIGCONT)
            self.signal(self.stop_signal)

    def stop(self, timeout=5.0):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.signal(signal.SIGCONT)        # a paused ("hung") daemon must see SIGTERM
            self.signal(self.stop_signal)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill_group()
        self.node.run.forget_process(self.proc.pid)
        if self._log:
            self._log.close()
            self._log = None
        self.proc = None

    def kill_group(self):
        """SIGKILL whatever is left of the process group (workers of a killed master)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(2)
        except subprocess.TimeoutExpired:
            pass

    def log_tail(self, lines=6):
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:]) or "(empty log)"

    def wait_log(self, text, timeout=10.0):
        wait_until(lambda: (text in self.log_file.read_text(errors="replace"), self.log_tail()),
                   timeout, "%s to log %r" % (self.where, text))


def wait_for_listen(node, port, proto="tcp"):
    """``(ok, seen)``: is something listening on ``port`` inside ``node``?"""
    flag = "-ltn" if proto == "tcp" else "-lun"
    out = node.cmd("ss -H %s 'sport = :%d'" % (flag, port))
    return bool(out.strip()), out.strip() or "nothing listening on %s/%d" % (proto, port)


def now():
    return time.time()
