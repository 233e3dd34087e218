"""Small Python processes of redlab's own that run inside an emulated host.

The probe (:mod:`redlab.probe_agent`) and the health checker (:mod:`redlab.healthcheck`)
are both: a stdlib module started with this interpreter inside a host, appending JSON
lines to a file in the run folder, recorded in the run registry, stopped with SIGTERM.
"""

import json
import os
import signal
import subprocess
import sys

from redlab.errors import RedlabError


def end_process(host, proc, timeout, ask=None):
    """End a process the harness started in ``host``: ask it to stop (``ask(proc)``, by
    default SIGTERM), wait up to ``timeout`` s, then SIGKILL; forget it in the registry."""
    if proc.poll() is None:
        (ask or (lambda p: p.send_signal(signal.SIGTERM)))(proc)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    host.run.forget_process(proc.pid)


class HostAgent:
    module = None            # e.g. "redlab.probe_agent"
    script = None            # or a file run with this interpreter (a lab's own agents.py)
    what = "agent"           # for messages: "probe", "health checker"

    def __init__(self, host, out):
        self.host = host
        self.out = out       # the JSON-lines file the agent appends to
        self.proc = None

    @property
    def err_file(self):
        return self.out.with_suffix(".err")

    def spawn(self, args):
        program = ["-m", self.module] if self.module else [str(self.script)]
        cmd = [sys.executable] + program + [str(a) for a in args]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        with open(self.err_file, "ab") as err:
            self.proc = self.host.popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=err, env=env)
        self.host.run.record_process(self.proc.pid, "%s in %s" % (self.what, self.host.name))
        return self

    def lines(self):
        """The JSON records written so far (a line being written right now is skipped)."""
        try:
            text = self.out.read_text()
        except FileNotFoundError:
            return []
        records = []
        for line in text.splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                pass
        return records

    def check_alive(self, failed_only=False):
        """Raise with the agent's stderr if it exited (with ``failed_only``: exited non-zero)."""
        code = self.proc.poll()
        if code is not None and (code != 0 or not failed_only):
            raise RedlabError("the %s in %s exited (code %s): %s" % (
                self.what, self.host.name, code,
                self.err_file.read_text(errors="replace")[-500:] or "(no output)"))
        return True

    def terminate(self):
        """SIGTERM without waiting: stop several agents at once, then ``stop()`` each."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout=5.0):
        if self.proc:
            end_process(self.host, self.proc, timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


class ClientAgent:
    """:mod:`redlab.client_agent` in a host, driven one command line at a time.

        agent = ClientAgent(net["client1"], vip, 80)
        agent.ask("hold 3")        # -> ["web1", "web2", "web3"]
        agent.ask("request")       # -> ["200:web1", ...]: do held connections still work?
        agent.stop()               # closes everything (FINs from the client)
    """

    def __init__(self, host, vip, port, what="client agent"):
        self.host, self.what = host, what
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        self.proc = host.popen([sys.executable, "-m", "redlab.client_agent", vip, str(port)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=env)
        host.run.record_process(self.proc.pid, "%s in %s" % (what, host.name))
        self._buffer = b""

    def ask(self, line, timeout=30):
        """Send one command; its reply's words (after ``ok``), or RedlabError."""
        import select
        import time
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise RedlabError("the %s in %s did not answer %r (%s)" % (
                    self.what, self.host.name, line, "exited" if self.proc.poll() is not None
                    else "no answer in %ds" % timeout))
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 65536)
                if not chunk:
                    continue
                self._buffer += chunk
        reply, _, self._buffer = self._buffer.partition(b"\n")
        reply = reply.decode().strip()
        if not reply.startswith("ok"):
            raise RedlabError("%s could not do %r: %s" % (self.host.name, line, reply))
        return reply[2:].split()

    def fetch(self, n, path, timeout=120):
        """``n`` parallel downloads of ``path``: ``{server: [seconds of each download]}``.

        A download without ``X-Served-By`` is under ``"?"``; one that failed is under its
        error (``"ERROR:TimeoutError"``), with ``None`` for its time."""
        per = {}
        for answer in self.ask("fetch %d %s" % (n, path), timeout=timeout):
            if answer.startswith("ERROR:"):
                per.setdefault(answer, []).append(None)
            else:
                server, _, seconds = answer.partition(":")
                per.setdefault(server, []).append(float(seconds))
        return per

    def stop(self):
        end_process(self.host, self.proc, 5, ask=lambda p: p.stdin.close())  # EOF: it exits
