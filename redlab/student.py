"""A student's code inside an emulated host -- a script run once, a script as a daemon, a
template rendered -- always jailed (:mod:`redlab.jail`).

    run = ScriptRun(net["client1"], "deploy.sh", [Path("index.html")], env={"VIP": vip})
    code, output = run.finish()          # a limit ended it: code is a sentence saying which

    host.start_daemon(StudentScript(host, "takeover.sh", {"MY_VIP": vip}, name="takeover"))

    texts = render_templates(submission, "router.j2", {"r1": values1, "r2": values2})

Student code runs as ``redlab-student`` with CAP_NET_ADMIN and CAP_NET_RAW only (``ip
addr``, ``arping``, net sysctls inside its host), a clean environment, limits on
processes, memory, CPU, output and time, and sees its own work folder only: a copy of
its files, never the lab's ``reference/``, other students, the project or the run folder.
A student's script must never hang a lab or a grading run: a run still going after its
timeout is killed with everything it started, and a script daemon is a
:class:`redlab.daemons.Daemon` (own folder, dry run ``bash -n``, recorded in the run
registry, stopped with its host).
"""

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from redlab import jail
from redlab.daemons.base import Daemon
from redlab.errors import ConfigError

GRACE = 10.0        # s a launcher may take after its jail's limit before it is killed


def _fresh_folder(run, host, name):
    """``<run>/<host>/<name>/``, or ``<name>-2/`` ... when a run of that name exists."""
    base = run.folder(host)
    for n in range(1, 1000):
        folder = base / (name if n == 1 else "%s-%d" % (name, n))
        if not folder.exists():
            folder.mkdir()
            return folder
    raise ConfigError("%s has 1000 runs of %s already; use a new run folder" % (host, name))


SHOWN = 32 * 1024      # characters of a script's output that a lab reports (the file keeps more)


def shown(output, limit=SHOWN):
    """What a lab reports of a script's output: its start, and how much was left out (a
    script that prints hundreds of MB must not flood the report or the grade)."""
    if len(output) <= limit:
        return output
    return "%s\n[... %d more characters of output not shown]" % (output[:limit],
                                                                len(output) - limit)


class ScriptRun:
    """The student's script, started jailed inside ``host``; the lab may watch meanwhile.

    Its folder ``<run>/<host>/<script name>/`` holds the jail's spec and result, and the
    student's work folder ``work/``: a copy of the script, a copy of every argument that
    is a :class:`pathlib.Path` (an input file; the script gets the copy's path) and
    ``output.log`` (stdout and stderr, capped).
    """

    def __init__(self, host, path, args=(), env=None, timeout=10.0, shell="bash", limits=None):
        self.timeout = timeout
        self.path = Path(path)
        self.folder = _fresh_folder(host.run, host.name, self.path.stem)
        inputs = [a for a in args if isinstance(a, Path)]
        missing = [str(p) for p in [self.path] + inputs if not p.is_file()]
        if missing:
            raise ConfigError("%s cannot run: %s is not a file" % (self.path.name, missing[0]))
        self.work = jail.work_folder(self.folder / "work", [self.path] + inputs)
        argv = [shell, self.work / self.path.name] + [
            self.work / a.name if isinstance(a, Path) else a for a in args]
        self.limits = limits or jail.Limits(wall=timeout)
        self.spec = self.folder / "jail.json"
        self.proc = host.popen(jail.command(argv, self.work, self.spec, env=env,
                                            limits=self.limits, hide=[host.run.path]),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
        self.started = time.time()
        self.ended = None
        self.result = None

    def poll(self):
        """Note when the script ended (call it while watching something else)."""
        if self.ended is None and self.proc.poll() is not None:
            self.ended = time.time()
        return self.ended is not None

    def finish(self):
        """``(exit code, output)``; a run that a limit ended (its timeout, memory, output
        size) has a sentence saying so instead of an exit code."""
        jail.wait_launcher(self.proc, self.limits.wall + GRACE)
        self.poll()
        self.result = jail.read_result(self.spec)
        return self.result.status, shown(self.result.output.strip())


class StudentScript(Daemon):
    """A student's script as a daemon of a host, jailed, its settings in the environment.

    Its folder (``<run>/<host>/<name>/``) keeps ``<name>.env`` and ``<name>.log``; the
    student's work folder ``work/`` (a copy of the script) is made afresh at each start,
    like a host's /tmp at boot.  It is recorded in the run registry, killed with its
    host by ``host_crash`` and started again by the host's "reboot" (the fault's undo).
    Each start writes a marker line to the log; :meth:`lines` reads what it logged since.
    """

    binary = "bash"
    ready_timeout = 5.0
    limits = jail.Limits(wall=None)

    def __init__(self, node, script, settings, name="script", **options):
        super().__init__(node, **options)
        self.name = name
        self.config_name = name + ".env"
        self.source = Path(script)
        self.settings = {k: str(v) for k, v in settings.items()}
        self.log_offset = 0

    @property
    def work(self):
        return self.path("work")

    @property
    def script(self):
        return self.work / self.source.name

    def render(self):
        self.config_file.write_text("".join("%s=%s\n" % (k, shlex.quote(v))
                                            for k, v in self.settings.items()))
        jail.work_folder(self.work, [self.source])

    def _jailed(self, argv, spec, **options):
        return jail.command(argv, self.work, self.path(spec), hide=[self.node.run.path],
                            output=None, **options)

    def dry_run(self):
        return self._jailed([self.binary_path, "-n", self.script], "dry-run.json", caps=(),
                            limits=jail.Limits(wall=5.0))

    def command(self):
        return self._jailed([self.binary_path, self.script], "jail.json", env=self.settings,
                            limits=self.limits)

    def start(self):
        if not self.running:
            with open(self.log_file, "a") as log:
                log.write("--- redlab: %s starts %s with %s\n" % (
                    time.strftime("%H:%M:%S"), self.source.name,
                    " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in self.settings.items())))
            self.log_offset = self.log_file.stat().st_size
        return super().start()

    def stop(self, timeout=5.0):
        super().stop(timeout)
        # a launcher killed with its host (host_crash) could not remove its cgroup
        jail.end_jail(self.path("jail.json"))

    def lines(self, since_offset=None):
        """What the script logged since its last start (or since ``since_offset``)."""
        try:
            with open(self.log_file, "rb") as log:
                log.seek(self.log_offset if since_offset is None else since_offset)
                return log.read().decode(errors="replace").splitlines()
        except FileNotFoundError:
            return []


# -- templates ------------------------------------------------------------------------------------

RENDERER = r"""
import json, sys
import jinja2
from jinja2.sandbox import SandboxedEnvironment, SecurityError
job = json.load(open("job.json"))
env = SandboxedEnvironment(loader=jinja2.FileSystemLoader("."), undefined=jinja2.StrictUndefined,
                           keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
out = {}
for key, values in job["values"].items():
    try:
        out[key] = {"text": env.get_template(job["template"]).render(**values)}
    except SecurityError as exc:
        out[key] = {"error": "security", "message": str(exc)}
    except jinja2.UndefinedError as exc:
        out[key] = {"error": "undefined", "message": exc.message}
    except jinja2.TemplateError as exc:
        out[key] = {"error": "template", "message": str(exc)}
    except Exception as exc:
        out[key] = {"error": "python", "message": "%s: %s" % (type(exc).__name__, exc)}
sys.stdout.write(json.dumps(out))
"""

RENDER_LIMITS = jail.Limits(wall=5.0, processes=8, memory_mb=256, cpu=1.0, output_mb=8)


def render_templates(folder, template, values, limits=RENDER_LIMITS):
    """Render the student's ``template`` (in ``folder``) once per entry of ``values``
    (``{key: {name: value}}``) with Jinja2's sandboxed environment and StrictUndefined,
    in a separate jailed process without capabilities.

    Returns ``{key: {"text": ...}}`` or ``{key: {"error": kind, "message": ...}}`` with
    kind ``security`` (the template tried to reach Python), ``undefined``, ``template``
    or ``python``.  The student's ``*.j2`` files are copied into a fresh work folder
    (a symlink is refused); the values travel as JSON.  Run by a user who is not root
    (a student rendering their own template) the renderer runs as that user, still in a
    separate process and a sandboxed environment.
    """
    folder = Path(folder)
    files = sorted(folder.glob("*.j2"))
    links = [p.name for p in files if p.is_symlink()]
    if links:
        raise ConfigError("%s is a symbolic link; a submission holds its own files: copy the "
                          "file itself into %s" % (links[0], folder))
    job = json.dumps({"template": template, "values": values}, default=str)
    argv = [sys.executable, "-I", "-c", RENDERER]
    with tempfile.TemporaryDirectory(prefix=".render-", dir=_scratch_root()) as scratch:
        scratch = Path(scratch)
        if os.geteuid() == 0:
            work = jail.work_folder(scratch / "work", files)
            (work / "job.json").write_text(job)
            result = jail.run(argv, work, scratch / "render.json", caps=(), limits=limits,
                              expose=[sys.prefix], hide=[folder])
            output = result.output
            problem = result.reason or ("exited with code %s" % result.code
                                        if result.code else None)
        else:
            output, problem = _render_as_caller(argv, files, job, scratch / "work", limits)
    try:
        return json.loads(output)
    except ValueError:
        raise ConfigError("%s could not be rendered: the renderer %s; it said: %s" % (
            template, problem or "gave no answer", output.strip()[-300:] or "nothing")) from None


def syntax_check(script, shell="bash", wall=5.0):
    """``(ok, message)`` of ``shell -n script``: the student's script parsed, never run,
    and parsed jailed like everything else that comes from a submission (as root) or as
    the calling user.  ``message`` is the shell's complaint, or a limit it hit."""
    script = Path(script)
    argv = [shell, "-n", script.name]
    if os.geteuid() != 0:
        done = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True,
                              timeout=wall)
        return done.returncode == 0, done.stderr.strip()
    with tempfile.TemporaryDirectory(prefix=".parse-", dir=_scratch_root()) as scratch:
        scratch = Path(scratch)
        work = jail.work_folder(scratch / "work", [script])
        result = jail.run(argv, work, scratch / "parse.json", caps=(),
                          limits=jail.Limits(wall=wall), hide=[script.parent])
    if result.reason:
        return False, result.reason
    return result.code == 0, result.output.strip().replace(str(work) + "/", "")


def _scratch_root():
    """Where a render's scratch folder goes: root's, under redlab's run root (every jail
    hides it), or the system's temporary folder for a user who is not root."""
    from redlab.runs import run_root
    if os.geteuid() != 0:
        return None
    run_root().mkdir(parents=True, exist_ok=True)
    return run_root()


def _render_as_caller(argv, files, job, work, limits):
    """``(output, problem)`` of the renderer run as the (non-root) caller."""
    import shutil
    work.mkdir()
    for path in files:
        shutil.copyfile(path, work / path.name)
    (work / "job.json").write_text(job)
    try:
        proc = subprocess.run(argv, cwd=work, capture_output=True, timeout=limits.wall)
    except subprocess.TimeoutExpired:
        return "", "a timeout: it was still running after %g s" % limits.wall
    problem = None
    if proc.returncode:
        problem = "exited with code %d: %s" % (
            proc.returncode, proc.stderr.decode(errors="replace").strip()[-300:])
    return proc.stdout.decode(errors="replace"), problem


def template_error(template, kind, message, values_name):
    """The sentence for a template that did not render (``values_name``: "r2.yaml")."""
    if kind == "security":
        return ("%s tried something a template may not do (it is rendered in a sandbox): %s; "
                "a template only loops over and prints the values of %s"
                % (template, message.rstrip("."), values_name))
    if kind == "undefined":
        return ("%s with %s: the template needs a value that %s does not give (%s)"
                % (template, values_name, values_name, message))
    return "%s is broken: %s" % (template, re.sub(r"\s+", " ", message))
