"""Sandboxes: many networks at once, each invisible to the others, gone with its owner.

This test session itself runs in a sandbox (tests/conftest.py); the children below get
sandboxes of their own (nested), started the way a person starts one: ``redlab up``.
"""

import json
import os
import signal
import subprocess

from redlab import sandbox
from redlab.net import ovs_bridges
from redlab.wait import wait_until


def own_sandbox_env():
    """The environment of a command that must get a sandbox of its own."""
    env = dict(os.environ)
    env.pop(sandbox.ENV, None)
    return env


class Child:
    """``redlab up TOPOLOGY --hold 120`` in a new sandbox, its output in the run folder."""

    def __init__(self, redlab_cmd, folder, topology="vrrp_pair"):
        self.out = folder / ("%s.out" % topology)
        with open(self.out, "w") as out:
            self.proc = subprocess.Popen(redlab_cmd + ["up", topology, "--hold", "120"],
                                         stdout=out, stderr=subprocess.STDOUT,
                                         env=own_sandbox_env(), start_new_session=True)
        wait_until(lambda: ("is up" in self.out.read_text(), self.out.read_text()[-300:]), 40,
                   "the child's network to come up")
        boxes = [json.loads(p.read_text()) for p in sandbox.sandboxes_dir().glob("*/sandbox.json")]
        mine = [b for b in boxes if b["init"]["pid"] in child_pids_deep(self.proc.pid)]
        assert len(mine) == 1, boxes
        self.box = mine[0]

    @property
    def init_pid(self):
        return self.box["init"]["pid"]

    def run(self, *command):
        """A command inside the child's sandbox, in its client1 host's view of the world
        (nsenter into the sandbox's namespaces through its init)."""
        return subprocess.run(["nsenter", "-t", str(self.init_pid), "-m", "-n", "-p", "-u", "--"]
                              + list(command), capture_output=True, text=True)


def child_pids_deep(pid):
    from redlab.runs import child_pids
    found, todo = [], [pid]
    while todo:
        kids = child_pids(todo.pop())
        found += kids
        todo += kids
    return found


def test_two_networks_with_the_same_names_at_once(redlab_cmd, run_folder):
    (run_folder / "a").mkdir()
    (run_folder / "b").mkdir()
    a = Child(redlab_cmd, run_folder / "a")
    b = Child(redlab_cmd, run_folder / "b")
    try:
        assert a.box["id"] != b.box["id"] and a.box["netns"] != b.box["netns"]
        for child in (a, b):
            # each sees its own bridge s1 and its own OVS daemons ...
            assert child.run("ovs-vsctl", "list-br").stdout.split() == ["s1"]
            assert child.run("hostname").stdout.strip() == child.box["id"]
        # ... and this session sees neither
        assert "s1" not in ovs_bridges()
        assert not [i for i in os.listdir("/sys/class/net") if i.startswith("s1-")]
        ovs_a = a.run("pgrep", "-x", "ovs-vswitchd").stdout.split()
        assert len(ovs_a) == 1
    finally:
        for child in (a, b):
            child.proc.send_signal(signal.SIGTERM)
        for child in (a, b):
            assert child.proc.wait(30) in (0, 128 + signal.SIGTERM), child.out.read_text()[-500:]
    for child in (a, b):
        assert not os.path.exists("/proc/%d" % child.init_pid)
        assert not (sandbox.sandboxes_dir() / child.box["id"]).exists()


def test_kill_9_takes_the_whole_sandbox_and_clean_removes_only_its_folder(redlab_cmd, run_folder):
    (run_folder / "victim").mkdir()
    (run_folder / "bystander").mkdir()
    victim = Child(redlab_cmd, run_folder / "victim")
    bystander = Child(redlab_cmd, run_folder / "bystander", "service_lan")
    try:
        inside = [p for p in child_pids_deep(victim.proc.pid)]
        assert len(inside) > 10            # Mininet shells, keepalived, nginx, OVS, controller
        os.kill(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait()
        # the kernel ends everything in the sandbox's PID namespace
        wait_until(lambda: (not [p for p in inside if os.path.exists("/proc/%d" % p)],
                            [p for p in inside if os.path.exists("/proc/%d" % p)]), 10,
                   "every process of the killed sandbox to be gone")
        folder = sandbox.sandboxes_dir() / victim.box["id"]
        assert folder.is_dir()           # only its small state folder is left
        cleaned = subprocess.run(redlab_cmd + ["clean"], capture_output=True, text=True)
        assert cleaned.returncode == 0, cleaned.stderr
        assert "sandbox %s: its namespaces were already gone" % victim.box["id"] in cleaned.stdout
        assert "sandbox %s is running" % bystander.box["id"] in cleaned.stdout
        assert not folder.exists()
        # the other sandbox did not notice
        assert bystander.proc.poll() is None
        assert bystander.run("ovs-vsctl", "list-br").stdout.split() == ["s1"]
    finally:
        bystander.proc.send_signal(signal.SIGTERM)
        bystander.proc.wait(30)


def test_clean_kills_an_orphaned_init_only_after_checking_its_namespace(redlab_cmd, run_folder):
    """A sandbox whose owner died but whose init lives on is killed by ``redlab clean``;
    a record that names a pid which is no longer that init (here: this test's own process,
    as a recycled pid would) is not signalled."""
    box = sandbox.Sandbox("orphan")
    proc = box.popen(["sleep", "300"], env=own_sandbox_env(), start_new_session=True)
    init = box.init_pid()
    assert init and os.path.exists("/proc/%d" % init)
    # the owner "dies": record a dead owner, as after a crash that did not reach unshare
    (box.folder / "owner.json").write_text(json.dumps({"owner": {"pid": 999999, "start": 1}}))

    forged = sandbox.sandboxes_dir() / "forged-000000"
    forged.mkdir(mode=0o700)
    me = sandbox._proc(os.getpid())
    (forged / "owner.json").write_text(json.dumps({"owner": {"pid": 999999, "start": 1}}))
    (forged / "sandbox.json").write_text(json.dumps(
        {"init": dict(me, pidns="pid:[1]")}))      # our pid, but not that namespace's init

    report = sandbox.clean_stale()
    assert any(line.startswith("sandbox %s: killed its init" % box.id) for line in report), report
    assert "sandbox forged-000000: its namespaces were already gone" in report
    assert proc.wait(10) != 0
    assert not os.path.exists("/proc/%d" % init)
    assert not box.folder.exists() and not forged.exists()


def test_run_returns_the_payloads_exit_code_and_removes_its_folder():
    before = set(sandbox.sandboxes_dir().glob("*")) if sandbox.sandboxes_dir().exists() else set()
    script = "ovs-vsctl --timeout=5 list-br && test \"$(hostname)\" = \"$REDLAB_SANDBOX\" && exit 7"
    assert sandbox.run(["sh", "-c", script], name="code") == 7
    after = set(sandbox.sandboxes_dir().glob("*"))
    assert after == before


def test_redlab_lb_in_a_second_shell_finds_the_load_balancer_in_its_sandbox(redlab_cmd, run_folder):
    out = run_folder / "lb.out"
    with open(out, "w") as f:
        child = subprocess.Popen(redlab_cmd + ["run", "lb", "--hold", "120"], stdout=f,
                                 stderr=subprocess.STDOUT, env=own_sandbox_env(),
                                 start_new_session=True)
    try:
        wait_until(lambda: ("load balancer up" in out.read_text(), out.read_text()[-300:]), 60,
                   "the load balancer to come up in its sandbox")
        status = subprocess.run(redlab_cmd + ["lb", "status"], capture_output=True, text=True)
        assert status.returncode == 0, status.stderr
        assert "TCP  10.0.0.100:80" in status.stdout and "(web1)" in status.stdout
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(30)
    gone = subprocess.run(redlab_cmd + ["lb", "status"], capture_output=True, text=True)
    assert gone.returncode == 2 and "no load balancer is running" in gone.stderr
