"""The timeline's registry without a network: every kind the schema accepts is
registered and runnable, describes itself in one line, and refuses (one sentence naming
the entry) what the running network cannot do.  The runner here is a stand-in with only
what a check reads; the kinds themselves run on real networks in
tests/network/test_drill_actions.py.
"""

import time
from types import SimpleNamespace

import pytest

from controllers.validation import ValidationError
from redlab.drill import actions, engine
from redlab.drill.schema import FAULTS, check_drill
from redlab.errors import ConfigError, RedlabError
from redlab.lbctl import LBClient
from redlab.wait import wait_until

WEB = {"name": "web", "type": "http", "from": "client1", "url": "http://10.0.0.100/"}
SERVICE = {"name": "web", "vip": "10.0.0.100", "port": 80, "lb_algo": "rr",
           "real_servers": [{"name": "web%d" % n, "ip": "10.0.0.1%d" % n, "port": 80}
                            for n in (1, 2, 3)]}
ENTRIES = {
    "link_down": {"link": ["s1", "web1"]},
    "host_crash": {"host": "web1"},
    "daemon_stop": {"host": "web1", "daemon": "nginx"},
    "http_500": {"host": "web1"},
    "hang": {"host": "web1"},
    "controller_kill": {},
    "command": {"host": "web1", "run": "nginx -s reload", "undo": "true"},
    "keepalived_priority": {"host": "web2", "priority": 200},
    "lb": {"action": "drain", "server": "web1"},
}


def drill_with(kind):
    entry = dict(ENTRIES[kind], id="x", at=1, fault=kind)
    network = {"topology": "vrrp_pair"}
    if kind == "lb":
        network = {"topology": "service_lan", "params": {"dns": False}, "service": SERVICE}
    return check_drill({"drill": "t", "network": network, "probes": [WEB],
                        "timeline": [entry]})


def test_every_fault_kind_of_the_schema_is_registered_and_runnable():
    assert sorted(actions.supported()) == sorted(FAULTS) == sorted(ENTRIES)
    for kind in FAULTS:
        engine.refuse_unsupported(drill_with(kind))


@pytest.mark.parametrize("kind, line", [
    ("http_500", "http_500 web1"),
    ("hang", "hang nginx on web1"),
    ("controller_kill", "controller_kill"),
    ("command", "command on web1: nginx -s reload"),
    ("keepalived_priority", "keepalived_priority web2 -> 200"),
    ("lb", "lb drain web1"),
])
def test_each_kind_describes_itself_in_one_short_line(kind, line):
    assert actions.describe(drill_with(kind)["timeline"][0]) == line


@pytest.mark.parametrize("entry, line", [
    ({"action": "weight", "server": "web1", "weight": 5}, "lb weight web1 -> 5"),
    ({"action": "add", "server": "web4", "ip": "10.0.0.14"}, "lb add web4 (10.0.0.14)"),
    ({"action": "remove", "server": "web3"}, "lb remove web3"),
    ({"host": "web1", "run": "apt-get -y   install nginx-full && systemctl restart nginx"},
     "command on web1: apt-get -y install nginx-full && system\u2026"),
])
def test_lb_actions_and_long_commands_stay_short(entry, line):
    kind = "lb" if "action" in entry else "command"
    assert actions.describe(dict(entry, fault=kind)) == line


def test_the_schema_takes_an_undo_command_only_on_a_command():
    data = drill_with("command")
    assert data["timeline"][0]["undo"] == "true"
    bad = {"drill": "t", "network": {"topology": "vrrp_pair"}, "probes": [WEB],
           "timeline": [{"at": 1, "fault": "http_500", "host": "web1", "undo": "true"}]}
    with pytest.raises(ValidationError, match="has no field 'undo'"):
        check_drill(bad)


# -- the checks before t0, on a stand-in of the running network ---------------------------

class Net(dict):
    controller = object()


class ScriptedLB(LBClient):
    """The real client, answered by ``answer(request)`` instead of a socket."""

    def __init__(self, answer):
        super().__init__("(scripted)")
        self.answer = answer

    def _exchange(self, message):
        return self.answer(message)


def runner(timeline, controller=True, servers=("web1", "web2", "web3")):
    net = Net(web1=SimpleNamespace(daemons={"nginx": 1, "keepalived": 2}),
              web2=SimpleNamespace(daemons={"nginx": 1, "keepalived": 2}),
              client1=SimpleNamespace(daemons={}))
    if not controller:
        net.controller = None
    status = {"ok": True,
              "service": dict(vip="10.0.0.100", port=80, lb_algo="rr", lb_kind="NAT"),
              "servers": [dict(name=n, ip="10.0.0.1%s" % n[-1], port=80, weight=1)
                          for n in servers]}
    lb = ScriptedLB(lambda message: status)
    return SimpleNamespace(
        net=net, drill={"timeline": timeline}, lbctl=lambda: lb,
        keepalived=lambda: {h: net[h].daemons["keepalived"] for h in net
                            if "keepalived" in net[h].daemons})


def refusal(timeline, **kw):
    with pytest.raises(ConfigError) as info:
        actions.check_all(runner(timeline, **kw), timeline)
    message = str(info.value)
    assert "\n" not in message and message.startswith("timeline[")
    return message


def test_a_host_without_keepalived_has_no_priority_to_change():
    message = refusal([{"fault": "keepalived_priority", "host": "client1", "priority": 200}])
    assert message == ("timeline[0]: host client1 runs no keepalived, so it has no priority "
                       "to change; pick one of web1, web2")


def test_http_500_and_hang_need_the_daemon_on_that_host():
    assert "host client1 runs no nginx" in refusal([{"fault": "http_500", "host": "client1"}])
    assert "runs no named" in refusal([{"fault": "hang", "host": "web1", "daemon": "named"}])


def test_controller_kill_needs_a_controller():
    assert "runs without a controller" in refusal([{"fault": "controller_kill"}],
                                                  controller=False)


def test_lb_servers_are_those_of_the_running_service_when_the_entry_comes():
    add = {"id": "add", "fault": "lb", "action": "add", "server": "web4", "ip": "10.0.0.14"}
    drop = {"id": "drop", "fault": "lb", "action": "remove", "server": "web2"}
    ok = [add, {"fault": "lb", "action": "weight", "server": "web4", "weight": 3}, drop,
          {"step": "undo", "of": "drop"}, {"fault": "lb", "action": "drain", "server": "web2"}]
    actions.check_all(runner(ok), ok)
    message = refusal([drop, {"fault": "lb", "action": "drain", "server": "web2"}])
    assert message == ("timeline[1]: the running service has no real server web2 when this "
                       "entry comes (it has web1, web3); pick one of them")
    assert "web1 is already in the running service" in refusal(
        [{"fault": "lb", "action": "add", "server": "web1", "ip": "10.0.0.11"}])


def test_a_refused_lb_command_is_one_sentence_naming_the_entry():
    entry = {"id": "heavier", "fault": "lb", "action": "weight", "server": "web1",
             "weight": 3}
    run = runner([{"id": "drain", "fault": "lb", "action": "drain", "server": "web2"}, entry])
    status = run.lbctl().call("status")
    run.lbctl().answer = lambda message: status if message["cmd"] == "status" else \
        {"ok": False, "error": "weight must be an integer >= 0, got 3.5"}
    with pytest.raises(RedlabError) as info:
        actions.inject(run, entry)
    assert str(info.value) == ("timeline[1] (heavier): the load balancer refused set_weight: "
                               "weight must be an integer >= 0, got 3.5; fix the entry's "
                               "server or weight")


# -- a command's shell, with real processes on this machine ------------------------------

class LocalHost:
    """Where ``faults.shell`` runs a command: this machine (its popen starts a session,
    as Mininet's ``mnexec -d`` does) and a run folder under ``tmp_path``."""

    name = "here"

    def __init__(self, folder):
        def make(*parts):
            path = folder.joinpath(*parts)
            path.mkdir(parents=True, exist_ok=True)
            return path
        self.run = SimpleNamespace(folder=make)

    @staticmethod
    def popen(cmd, **options):
        import subprocess
        return subprocess.Popen(cmd, start_new_session=True, **options)


def alive(pid):
    import os
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not open("/proc/%d/stat" % pid).read().split(") ")[1].startswith("Z")


def test_a_command_leaves_nothing_behind_and_a_slow_one_is_killed(tmp_path):
    from redlab import faults
    host = LocalHost(tmp_path)
    started = time.monotonic()
    fault = faults.command(host, "sleep 30 & echo $! > bg.pid; echo done; exit 4",
                           name="quick")
    assert time.monotonic() - started < 5     # the background job did not hold it up
    assert fault.status == 4 and fault.output == "done\n"
    assert fault.description.startswith("here: `sleep 30 &") and "exited 4" in \
        fault.description and fault.description.endswith("so its undo does nothing")
    background = int((tmp_path / "here" / "bg.pid").read_text())
    wait_until(lambda: not alive(background), 2, "the background sleep to be killed")
    log = (tmp_path / "here" / "commands" / "quick.txt").read_text().splitlines()
    assert log[0].startswith("$ sleep 30 &") and log[1] == "done" and "exited 4" in log[2]
    slow = faults.command(host, "echo started; sleep 30", undo="echo undone", name="slow",
                          timeout=0.5)
    assert slow.status is None and slow.output == "started\n"
    assert "killed after" in slow.description
    slow.undo()
    assert [r["status"] for r in slow.results] == [None, 0]
    assert (tmp_path / "here" / "commands" / "slow.undo.txt").read_text().startswith(
        "$ echo undone\nundone\nexited 0")


def test_an_undo_says_when_it_began_and_when_it_returned():
    """A probe can see an undo's effect before the undo returns (``undo_began``); a drill
    step's mark is when it returned (``undone_at``: a restarted controller has its switch)."""
    from redlab.faults import Fault
    seen = []
    fault = Fault("slow undo", lambda: (seen.append(time.time()), time.sleep(0.05)))
    fault.undo()
    assert fault.undo_began <= seen[0] < fault.undone_at
    assert fault.undone_at - fault.undo_began >= 0.05
    began = fault.undo_began
    fault.undo()                               # once only
    assert fault.undo_began == began and len(seen) == 1
