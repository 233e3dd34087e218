"""Maintenance of one real server behind the load balancer, run as an operator's procedure.

The procedure is data, not code (``procedure.yaml``): steps from the short list an operator
of the os-ken load balancer has, each run once the step before it has run and, with
``when:``, once the server's state in the load balancer says so::

    steps:
      - do: drain                  # weight 0: no new connections, established ones stay
      - do: stop                   # nginx stopped on the server ...
        when: {active: 0}          # ... once its ActiveConn is 0
      - do: upgrade                # the new version installed (nginx must be stopped)
      - do: start
      - do: undrain                # back to its configured weight ...
        when: {health: up}         # ... once its health check passes

A submission can only choose and order these steps: :class:`Maintenance` builds the
network, the probe and the download it measures, so a procedure cannot change what is
measured, and nothing of the student's runs as code.

:class:`Maintenance` holds a slow download on the server before the procedure starts (a
connection a procedure that does not wait for ActiveConn 0 cuts), probes the VIP while the
steps run, and records each step with the server's state just before it.
"""

import json
import subprocess
import time

from controllers.validation import ValidationError, check, load_yaml
from redlab.errors import ConfigError, RedlabError, WaitTimeout
from redlab.observe import set_sysctls
from redlab.probe import Probe
from redlab.scenarios.lb import LoadBalancedService
from redlab.wait import wait_until

STEPS = ("drain", "undrain", "weight", "stop", "start", "upgrade")

_WHEN = {
    "type": "object",
    "properties": {"active": {"type": "integer", "minimum": 0},
                   "health": {"enum": ["up", "down"]}},
    "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
    "errorMessage": {"minProperties": "{where} must be {{active: N}} (ActiveConn at most N) "
                                      "or {{health: up}} / {{health: down}}",
                     "maxProperties": "{where} waits for one thing; keep active or health"},
}
_STEP = {
    "type": "object",
    "properties": {"do": {"enum": list(STEPS)},
                   "weight": {"type": "integer", "minimum": 0, "maximum": 65535},
                   "when": _WHEN},
    "required": ["do"],
    "additionalProperties": False,
    "if": {"properties": {"do": {"const": "weight"}}, "required": ["do"]},
    "then": {"required": ["weight"]},
}
PROCEDURE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {"steps": {"type": "array", "items": _STEP, "minItems": 1}},
    "required": ["steps"],
    "additionalProperties": False,
}


class ProcedureError(ConfigError, ValidationError):
    """A mistake in procedure.yaml: one sentence with the line, the field and the fix."""

    def __init__(self, message, path=()):
        ValidationError.__init__(self, message, path)


def load_procedure(path):
    """The steps of a procedure file, checked: each mistake is one :class:`ProcedureError`
    naming the line and the field ("steps[2].when ...")."""
    document = load_yaml(path, "procedure.yaml", error=ProcedureError)
    try:
        check(document.data, PROCEDURE_SCHEMA, root="procedure.yaml")
        for n, step in enumerate(document.data["steps"]):
            if "weight" in step and step["do"] != "weight":
                raise ValidationError("steps[%d].weight belongs to do: weight; remove it or "
                                      "use do: weight" % n, ("steps", n, "weight"))
    except ValidationError as exc:
        raise document.fail(exc, ProcedureError) from None
    return document.data["steps"]


def describe(step):
    """A step in one line, as the walk-through prints it: ``stop (when ActiveConn <= 0)``."""
    what = "weight %d" % step["weight"] if step["do"] == "weight" else step["do"]
    return what + (" (when %s)" % condition(step["when"]) if "when" in step else "")


def condition(when):
    """A ``when:`` in words: ``ActiveConn <= 0``, ``health up``."""
    key, value = next(iter(when.items()))
    return "ActiveConn <= %d" % value if key == "active" else "health %s" % value


# -- the download a procedure must let finish ----------------------------------------------

class HeldDownload:
    """One slow download through the VIP (``curl --limit-rate``), in a host of its own
    process: a connection the server holds while the procedure runs.

    The server's send buffer and the client's receive buffer are kept small
    (:func:`small_buffers`), so that what is not downloaded yet is still in the server's
    file, not in a kernel buffer that would be delivered after nginx stops."""

    STALLED = 5     # seconds without a byte after which curl gives up (the connection is gone)

    def __init__(self, host, url, rate, folder, max_seconds):
        self.host, self.url, self.rate, self.max_seconds = host, url, rate, max_seconds
        self.headers = folder / "download.headers"
        self.result = folder / "download.json"
        self.proc = None

    def start(self):
        for path in (self.headers, self.result):
            path.unlink(missing_ok=True)
        with open(self.result, "w") as out:
            self.proc = self.host.popen(
                ["curl", "-s", "-o", "/dev/null", "-D", str(self.headers), "--limit-rate",
                 str(self.rate), "-m", str(self.max_seconds), "--speed-limit", "1",
                 "--speed-time", str(self.STALLED), "-w", "%{json}", self.url],
                stdout=out, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        self.host.run.record_process(self.proc.pid, "download in %s" % self.host.name)
        self.started = time.time()
        return self

    def wait(self):
        """Its outcome once curl ends (by itself within ``max_seconds``; a connection whose
        server vanished without a FIN stalls, and curl ends it after ``STALLED`` s): status,
        bytes, curl's exit code and error, who served it (``X-Served-By``), seconds."""
        try:
            self.proc.wait(self.max_seconds + 5)
        except subprocess.TimeoutExpired:
            self.stop()
        self.host.run.forget_process(self.proc.pid)
        try:
            data = json.loads(self.result.read_text() or "{}")
        except ValueError:
            data = {}
        server = None
        if self.headers.exists():
            for line in self.headers.read_text(errors="replace").splitlines():
                if line.lower().startswith("x-served-by:"):
                    server = line.split(":", 1)[1].strip()
        return dict(status=data.get("http_code"), bytes=data.get("size_download"),
                    exit=data.get("exitcode", self.proc.returncode),
                    error=data.get("errormsg") or None, server=server,
                    seconds=round(data.get("time_total", time.time() - self.started), 2))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            self.host.run.forget_process(self.proc.pid)


def small_buffers(host, key, values):
    """Set a TCP buffer sysctl (``net.ipv4.tcp_wmem``: min, default, max) in ``host``'s
    namespace and check it took: what the kernel buffers is delivered even after the
    sender's process is gone."""
    try:
        set_sysctls(host, {key: " ".join(str(v) for v in values)})
    except RedlabError as exc:
        raise RedlabError("%s; the lab needs a kernel whose network namespaces have their "
                          "own TCP buffers" % exc) from None


# -- the run ---------------------------------------------------------------------------------

class Maintenance:
    """The lab's network, its probe and held download, and the student's steps run on it.

        with Maintenance(service, "web1", "v2", run_folder) as m:
            m.hold_download(size, rate)      # lands on web1, before the procedure
            m.start_probe()
            m.run(steps, when_timeout)       # the procedure, step by step
            result = m.finish(answers, timeout)
    """

    def __init__(self, service, server, version, run_folder=None, name="lab08",
                 upgrade_seconds=1.0):
        self.lab = LoadBalancedService(service, name=name, run_folder=run_folder)
        self.server, self.version = server, version
        self.upgrade_seconds = upgrade_seconds
        self.weight = next(s.weight for s in self.lab.service.real_servers if s.name == server)
        self.download = self.probe = None
        self.steps = []
        self.stopped = None         # why the procedure stopped before its last step
        self.t0 = None

    def __enter__(self):
        self.lab.start()
        self.nginx = self.lab[self.server].daemons["nginx"]
        return self

    def __exit__(self, *exc):
        try:
            if self.download:
                self.download.stop()
            if self.probe:
                self.probe.stop()
        finally:
            self.lab.__exit__(*exc)
        return False

    @property
    def url(self):
        return "http://%s:%d/" % (self.lab.service.vip, self.lab.service.port)

    def state(self):
        """The server as the load balancer sees it, and whether nginx runs there."""
        s = self.lab.ctl.status().server(self.server)
        return dict(weight=s.weight, active=s.active, health=s.health,
                    nginx="running" if self.nginx.running else "stopped")

    def hold_download(self, size, rate, buffers, max_seconds):
        """client1 starts downloading ``size`` bytes at ``rate`` bytes/s through the VIP,
        held on the server: the others are at weight 0 until its connection is
        established (ActiveConn 1), then back to their weights."""
        self.nginx.publish("x" * size, "big.bin")
        small_buffers(self.lab[self.server], "net.ipv4.tcp_wmem", buffers)
        small_buffers(self.lab.client, "net.ipv4.tcp_rmem", buffers)
        others = {s.name: s.weight for s in self.lab.ctl.status().servers
                  if s.name != self.server}
        self.download = HeldDownload(self.lab.client, self.url + "big.bin", rate,
                                     self.lab.network.run.folder(self.lab.client.name),
                                     max_seconds)
        try:
            for name in others:
                self.lab.ctl.set_weight(name, 0)
            self.download.start()
            wait_until(self._download_held, 10, "the download's connection on %s"
                       % self.server)
        finally:
            for name, weight in others.items():
                self.lab.ctl.set_weight(name, weight)

    def _download_held(self):
        if self.download.proc.poll() is not None:
            got = self.download.wait()
            raise RedlabError("client1's download of %s ended before the procedure (HTTP %s, "
                              "%s bytes, %s); look at %s's nginx error.log" % (
                                  self.download.url, got["status"], got["bytes"],
                                  got["error"] or "no error", self.server))
        state = self.state()
        return state["active"] >= 1, state

    def start_probe(self, interval=0.05, timeout=0.5, max_seconds=120):
        """client1 requests the VIP every ``interval`` on a new connection each time."""
        self.probe = Probe(self.lab.client, self.url, name="probe", interval=interval,
                           timeout=timeout, max_seconds=max_seconds).start()
        self.probe.wait_good(5, timeout=20)

    def run(self, steps, when_timeout, say=None):
        """The procedure: each step once its ``when`` holds (else the procedure stops
        there, as an operator would), recorded with the server's state just before."""
        self.t0 = time.time()
        for n, step in enumerate(steps):
            if "when" in step and not self._wait(step["when"], when_timeout):
                self.stopped = "steps[%d] (%s) waited %g s for %s; it never held" % (
                    n, step["do"], when_timeout, condition(step["when"]))
                if say:
                    say("  procedure stopped: %s" % self.stopped)
                break
            before = self.state()
            t = round(time.time() - self.t0, 2)
            done = self._do(step)
            self.steps.append(dict(n=n, do=step["do"], when=step.get("when"), t=t,
                                   before=before, result=done))
            if say:
                say("  +%5.2f s  %-30s %s  (before: weight %d, ActiveConn %d, health %s, "
                    "nginx %s)" % (t, describe(step), done, before["weight"], before["active"],
                                   before["health"], before["nginx"]))

    def _wait(self, when, timeout):
        key, value = next(iter(when.items()))

        def held():
            state = self.state()
            return (state["active"] <= value if key == "active" else
                    state["health"] == value), state
        try:
            wait_until(held, timeout, "%s %s" % (key, value), interval=0.05)
            return True
        except WaitTimeout:
            return False

    def _do(self, step):
        """One step; what it did, in words (a refused step says why)."""
        do, ctl, nginx = step["do"], self.lab.ctl, self.nginx
        if do in ("drain", "undrain", "weight"):
            weight = {"drain": 0, "undrain": self.weight}.get(do, step.get("weight"))
            ctl.set_weight(self.server, weight)
            return "weight -> %d" % weight
        if do == "stop":
            nginx.stop()
            return "nginx stopped"
        if do == "start":
            nginx.start()
            return "nginx started"
        if nginx.running:       # do == "upgrade"
            return "refused: nginx is running (the installer replaces its files: stop it first)"
        # an installer takes its time (lab.yaml's upgrade_seconds): the work modelled as a
        # duration, not a wait for anything -- the procedure's own `when:` conditions wait
        # (typically, the health check sees nginx down meanwhile and up after `start`)
        time.sleep(self.upgrade_seconds)
        nginx.version = self.version
        nginx.publish("%s %s\n" % (self.server, self.version))
        return "version %s installed in %g s" % (self.version, self.upgrade_seconds)

    def finish(self, answers, timeout):
        """After the last step: wait (bounded) until the server has answered ``answers``
        probe requests, then end the probe and the download and return what was measured
        (times in seconds since the first step)."""
        end = time.time()

        def served():
            mine = [s for s in self.probe.samples() if s.t >= end and s.server == self.server]
            return len(mine) >= answers, len(mine)
        try:
            wait_until(served, timeout, "%d answers from %s" % (answers, self.server))
        except WaitTimeout:
            pass
        samples = [s for s in self.probe.stop() if s.t >= self.t0]
        download = self.download.wait()
        if download["server"] not in (None, self.server):
            raise RedlabError("client1's download landed on %s, not %s, so the procedure "
                              "was not measured; run the lab again" % (download["server"],
                                                                      self.server))
        rel = lambda t: round(t - self.t0, 2)     # noqa: E731
        return dict(
            steps=self.steps, stopped=self.stopped, end=rel(end),
            sent=len(samples),
            failed=[dict(t=rel(s.t), error=s.error or "HTTP %s" % s.status)
                    for s in samples if not s.ok],
            after=[[s.server, s.body] for s in samples if s.t >= end and s.ok],
            download=dict(download, started=rel(self.download.started)),
            page=self.lab.client.cmd("curl -s -m 2 http://%s/"
                                     % self.lab[self.server].IP()).strip(),
            final=self.state())
