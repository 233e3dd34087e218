"""Shared fixtures.

Network tests (everything under ``tests/network``) get the ``network`` marker, need
root and run under a leak check: after each one, no new interface, OVS bridge, namespace
or redlab process may remain.  As root, a test session runs in a sandbox of its own
(``redlab.sandbox``: own namespaces, own Open vSwitch daemons), and so does each
pytest-xdist worker (``-n N``), so sessions and workers never see each other's networks.  Each test's run
folders live in ``$REDLAB_TEST_RUNS/<session>/<test>/`` (default
``/var/lib/redlab/test-runs``, a root-owned path: keepalived refuses notify scripts
under world-writable folders such as /tmp); on failure the evidence is saved there and
its path is printed.
"""

import os
import re
import fcntl
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TEST_RUNS = Path(os.environ.get("REDLAB_TEST_RUNS", "/var/lib/redlab/test-runs"))
KEEP_SESSIONS = 6
OUR_PROCESSES = re.compile(r"mininet:|keepalived|nginx: master|named |haproxy|squid -N|"
                           r"controllers\.launch|probe_agent")


WORKER_SANDBOXES = pytest.StashKey[bool]()


def pytest_configure(config):
    """As root, run the session (or each xdist worker) inside a sandbox of its own."""
    from redlab import sandbox
    if os.geteuid() != 0 or sandbox.inside() or sandbox.available() \
            or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    tx = getattr(config.option, "tx", None)
    if tx:          # pytest-xdist: each worker's python starts inside a new sandbox
        _clean_stale_sandboxes("before the workers start")      # a crashed run's workers
        wrapper = "{0} -m redlab.sandbox run --name pytest-worker -- {0}".format(sys.executable)
        config.option.tx = [spec if "python=" in spec else "%s//python=%s" % (spec, wrapper)
                            for spec in tx]
        config.stash[WORKER_SANDBOXES] = True
        return
    os.chdir(config.invocation_params.dir)
    argv = [sys.executable, "-m", "pytest"] + list(config.invocation_params.args)
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", "redlab.sandbox", "run", "--name", "pytest",
                              "--"] + argv)


_WRAPPERS = []       # each xdist worker's wrapper process (redlab.sandbox run), a Popen


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_newgateway(gateway):
    popen = getattr(getattr(gateway, "_io", None), "popen", None)
    if popen is not None:
        _WRAPPERS.append(popen)


def pytest_unconfigure(config):
    """Remove the sandboxes of the workers that pytest-xdist killed.

    A worker's sandbox folder is removed by its wrapper (``redlab.sandbox run``, the
    process xdist started) once the worker's python has ended.  At the end of the session
    xdist kills -9 the wrapper of a worker that has not ended 10 s after being told to
    (execnet's ``Group.terminate(NodeManager.EXIT_TIMEOUT)``): that takes the sandbox's
    processes with it (parent-death signal), but not its folder.  Once every wrapper is
    gone (a killed one not yet reaped would still count as a living owner), what
    ``redlab clean`` would remove is removed."""
    if not config.stash.get(WORKER_SANDBOXES, False):
        return
    for popen in _WRAPPERS:
        try:
            popen.wait(timeout=30)
        except subprocess.TimeoutExpired:       # still ending: its sandbox is left alone
            pass
    _clean_stale_sandboxes("after the workers ended")


def _clean_stale_sandboxes(when):
    """The sandboxes whose owner is gone (:func:`redlab.sandbox.clean_stale`)."""
    from redlab.sandbox import clean_stale
    removed = [line for line in clean_stale() if not line.endswith("left alone")]
    if removed:
        print("\nredlab clean %s:\n  %s" % (when, "\n  ".join(removed)))


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = str(item.fspath).replace(os.sep, "/")
        if "tests/network" in path or "tests/labs" in path:
            item.add_marker(pytest.mark.network)
    # a long test that mostly waits for something else (the stock-kernel guest) starts
    # first, so that it overlaps the rest of the suite instead of ending it
    items.sort(key=lambda item: item.get_closest_marker("early") is None)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


def _network_ready():
    if os.geteuid() != 0:
        return "network tests need root (run `sudo make test`)"
    from redlab.system import ovs_running
    if not ovs_running():
        return "Open vSwitch is not running (`make setup` starts it)"
    return None


def _session_alive(folder):
    """Is the pytest that owns this test-run folder still running?  (It holds a lock on
    its folder: pids say nothing across the sandboxes' PID namespaces.)"""
    try:
        fd = os.open(folder / "session.lock", os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


@pytest.fixture(scope="session")
def session_runs():
    if os.geteuid() == 0:
        # like Mininet's suites running `mn -c` first, but only runs whose owner died; no
        # pruning of run folders: the machine's may hold an instructor's grading evidence
        from redlab.clean import clean
        report, cleaned = clean(keep_runs=None)
        if cleaned:
            print("\nredlab clean before the tests:\n  " + "\n  ".join(report))
    TEST_RUNS.mkdir(parents=True, exist_ok=True)
    # keep the newest sessions as evidence; never touch one whose pytest still runs
    old = sorted((p for p in TEST_RUNS.iterdir() if p.is_dir() and not _session_alive(p)),
                 key=lambda p: p.name)
    for stale in old[:max(0, len(old) - (KEEP_SESSIONS - 1))]:
        shutil.rmtree(stale, ignore_errors=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    folder = TEST_RUNS / ("%s-%s-%s" % (time.strftime("%Y%m%d-%H%M%S"), worker,
                                        os.environ.get("REDLAB_SANDBOX") or os.getpid()))
    folder.mkdir(exist_ok=True)
    lock = os.open(folder / "session.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)          # held until this process ends
    os.environ["REDLAB_TEST_SESSION"] = folder.name
    os.environ["REDLAB_RUN_ROOT"] = str(folder / "_runs")
    return folder


def test_folder_name(request):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:80]


@pytest.fixture
def run_folder(request, session_runs):
    folder = session_runs / test_folder_name(request)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def snapshot():
    links = set(os.listdir("/sys/class/net"))
    bridges = set(subprocess.run(["ovs-vsctl", "--timeout=5", "list-br"], capture_output=True,
                                 text=True).stdout.split())
    netns = set(subprocess.run(["ip", "netns", "list"], capture_output=True,
                               text=True).stdout.split())
    procs = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path("/proc", pid, "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if OUR_PROCESSES.search(cmdline) and "pytest" not in cmdline:
            procs.add("%s %s" % (pid, cmdline.strip()))
    return {"interfaces": links, "OVS bridges": bridges, "namespaces": netns,
            "processes": procs}


def leaks(before):
    after = snapshot()
    return {kind: sorted(after[kind] - before[kind]) for kind in after
            if after[kind] - before[kind]}


@pytest.fixture(autouse=True)
def _network_guard(request):
    """Skip network tests where they cannot run; check for leaks after each one."""
    if request.node.get_closest_marker("network") is None:
        yield
        return
    reason = _network_ready()
    if reason:
        pytest.skip(reason)
    before = snapshot()
    yield
    from redlab.wait import wait_until
    wait_until(lambda: (not leaks(before), leaks(before)), 5,
               "the test to leave nothing behind")
    # Faucet's rule: a controller that logged an exception fails the test
    folder = TEST_RUNS / os.environ.get("REDLAB_TEST_SESSION", "-") / test_folder_name(request)
    errors = []
    for log in list(folder.glob("**/controller/controller.log")) + \
            list(folder.glob("**/controller/controller.out")):
        errors += ["%s: %s" % (log.relative_to(folder), line) for line in
                   log.read_text(errors="replace").splitlines()
                   if " ERROR " in line or "Traceback" in line]
    assert not errors, "the controller logged errors:\n" + "\n".join(errors[:10])


@pytest.fixture
def network(request, run_folder):
    """``network(topo, **kw)`` starts a :class:`redlab.net.Network` that always stops.

    On failure the network's evidence (flows, addresses, ARP, daemon logs) is saved in
    the test's folder; a controller that logged an exception fails the test.
    """
    from redlab.net import Network
    started = []

    def start(topo, **kwargs):
        kwargs.setdefault("name", request.node.name[:40])
        kwargs.setdefault("run_folder", run_folder / ("net%d" % len(started)))
        net = Network(topo, **kwargs)
        started.append(net)
        return net.start()

    yield start
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    problems = []
    for net in started:
        if net.net is None:
            continue
        if failed:
            net.save_evidence("test %s failed" % request.node.nodeid)
            print("evidence of %s kept in %s" % (request.node.name, net.run.path))
        if net.controller is not None:
            problems += net.controller.errors()
        net.stop()
    assert not problems, "the controller logged errors: %s" % problems[:5]


@pytest.fixture
def grade(run_folder):
    """``grade(lab, submission)`` -> {check name: CheckResult}, run folders in the test's;
    graded as ``redlab grade`` grades (a staged copy, through the pytest plugin).

    Every grade also checks that the two tools agree on it: pytest's own JUnit report of
    the items (what ``pytest --lab --junitxml`` writes) and the report ``redlab grade
    --json`` writes from the results give the same items, verdicts and reasons -- so every
    reference and broken case of tests/labs is checked for agreement, on its one network
    run (``tests/labs/test_tools_agree.py`` runs both commands as a user does)."""
    import json

    from redlab import labs
    from redlab.pytest_plugin import grade_with_pytest
    from tests.unit.test_pytest_plugin import agree, junit_cases

    def run(lab, submission):
        # through the pytest plugin, as `redlab grade` and `pytest --lab` grade
        lab = labs.find(lab) if isinstance(lab, str) else lab
        folder = run_folder / Path(submission).name
        folder.mkdir(parents=True, exist_ok=True)
        junit, report = folder / "pytest-junit.xml", folder / "grade.json"
        results = grade_with_pytest(lab, submission, narrate=True, run_folder=folder,
                                    junitxml=junit)
        labs.write_json(report, lab, results, submission)
        checks = {c["name"]: c for c in json.loads(report.read_text())["checks"]}
        cases = junit_cases(junit)
        assert cases and checks, (junit, report)
        assert list(cases) == list(checks) or any(
            c["name"] in ("walk-through", "submission") for c in checks.values()), \
            (list(cases), list(checks))
        agree(cases, checks)
        return {r.name: r for r in results}
    return run


@pytest.fixture
def redlab_cmd():
    """The ``redlab`` command of this environment."""
    import sys
    return [sys.executable, "-m", "redlab.cli"]
