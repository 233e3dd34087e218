"""The harness side of the controller: start, kill, restart an os-ken process.

The controller runs in the root namespace (where OVS is) and listens on a free
loopback port chosen per run.  Its log, config and events file live in the run
folder's ``controller/`` subfolder.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

from redlab.errors import RedlabError
from redlab.runs import state_dir
from redlab.wait import startup, wait_until

L2_SWITCH = "controllers.l2switch"


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def listening(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class ControllerProcess:
    def __init__(self, run, apps=(L2_SWITCH,), config=None, host="127.0.0.1", port=None,
                 start_timeout=20):
        self.run = run
        self.apps = list(apps)
        self.host = host
        self.port = port or free_port(host)
        self.start_timeout = start_timeout
        self.folder = run.folder("controller")
        self.log_file = self.folder / "controller.log"
        self.events_file = self.folder / "events.jsonl"
        self.config_file = self.folder / "config.json"
        self.config = dict(config or {})
        self.config.setdefault("events_file", str(self.events_file))
        # AF_UNIX paths are limited to 107 bytes: the control socket lives in the state dir
        self.socket_path = str(state_dir() / ("ctl-%d.sock" % os.getpid()))
        self.config.setdefault("control_socket", self.socket_path)
        self.proc = None
        self.started_at = None
        self._log = None

    def start(self):
        self.config_file.write_text(json.dumps(self.config, indent=1))
        cmd = [sys.executable, "-m", "controllers.launch", "--port", str(self.port),
               "--listen", self.host, "--log-file", str(self.log_file),
               "--config", str(self.config_file)] + self.apps
        self._log = open(self.folder / "controller.out", "ab")
        self.started_at = time.time()
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self.run.record_process(self.proc.pid, "controller " + " ".join(self.apps))
        self.run.record("files", self.socket_path)

        def up():
            if self.proc.poll() is not None:
                raise RedlabError("the controller (%s) exited with code %s before listening; "
                                  "its output: %s" % (" ".join(self.apps), self.proc.returncode,
                                                      self.output_tail()))
            return listening(self.host, self.port), "port %d not listening yet" % self.port
        wait_until(up, startup(self.start_timeout), "the controller to listen on %s:%d" % (self.host, self.port))
        return self

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _signal(self, sig, timeout):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.run.forget_process(self.proc.pid)
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        if self._log:
            self._log.close()
            self._log = None

    def stop(self):
        self._signal(signal.SIGTERM, 5)

    def kill(self):
        """``kill -9`` the controller (a fault); flows already in the switch stay."""
        self._signal(signal.SIGKILL, 5)

    def restart(self):
        self.stop()
        return self.start()

    def events(self, kind=None):
        try:
            lines = self.events_file.read_text().splitlines()
        except FileNotFoundError:
            return []
        records = [json.loads(line) for line in lines if line.strip()]
        return [r for r in records if kind is None or r["event"] == kind]

    def errors(self):
        """Lines of the controller's log that report an exception or error."""
        found = []
        for path in (self.log_file, self.folder / "controller.out"):
            if path.exists():
                found += [line for line in path.read_text(errors="replace").splitlines()
                          if "Traceback" in line or " ERROR " in line or "Error:" in line]
        return found

    def output_tail(self, lines=15):
        text = ""
        for path in (self.folder / "controller.out", self.log_file):
            if path.exists():
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"
