"""Lab 01's harness without a network: the configuration format, the running-config diff
and what the probe's samples say about the failure and the recovery."""

import pytest

from redlab.errors import ConfigError
from redlab.probe import Sample
from redlab.scenarios import cold_standby as cs

PORTS = {"eth0": "r2-eth0", "eth1": "r2-eth1"}
CONF = """# r2
hostname r2
sysctl -w net.ipv4.ip_forward=1 net.ipv4.conf.eth0.arp_notify=1
ip addr add 10.0.1.1/24 dev eth0
ip link set dev eth0 up
"""


def test_a_line_runs_on_the_router_with_its_own_port_names():
    assert cs.command("r2", 3, "ip addr add 10.0.1.1/24 dev eth0", PORTS) == \
        "ip addr add 10.0.1.1/24 dev r2-eth0"
    assert cs.command("r2", 3, "sysctl -w net.ipv4.conf.eth1.arp_notify=1", PORTS) == \
        "sysctl -w net.ipv4.conf.r2-eth1.arp_notify=1"


@pytest.mark.parametrize("line, says", [
    ("ip netns exec x ip link", "on the router itself only"),
    ("ip -n other addr", "on the router itself only"),
    ("sysctl kernel.panic=1", "write sysctls as `sysctl -w net.KEY=VALUE`"),
    ("sysctl -w kernel.panic=1", "write sysctls as `sysctl -w net.KEY=VALUE`"),
    ("rm -rf /", "only `hostname`, `sysctl -w ...` and `ip ...` lines"),
    ("ip addr add 'unclosed", "cannot be read"),
])
def test_a_line_that_would_leave_the_router_is_refused_with_its_number(line, says):
    with pytest.raises(ConfigError, match="^r2.conf line 7") as error:
        cs.command("r2", 7, line, PORTS)
    assert says in str(error.value)


def test_the_apply_script_checks_the_hostname_and_numbers_each_step():
    script = cs.apply_script("r2", CONF, PORTS)
    assert "step 3 sysctl -w net.ipv4.ip_forward=1 net.ipv4.conf.r2-eth0.arp_notify=1" in script
    assert "step 4 ip addr add 10.0.1.1/24 dev r2-eth0" in script
    assert "hostname" not in script.split("\n", 2)[2]
    with pytest.raises(ConfigError, match="r1.conf line 2 says `hostname r2`; this is r1"):
        cs.apply_script("r1", CONF, PORTS)


def test_configured_sysctls_and_lines():
    assert cs.configured_sysctls(CONF) == ["net.ipv4.ip_forward", "net.ipv4.conf.eth0.arp_notify"]
    assert cs.configured("# nothing\nhostname r1\n\n") == []


def test_running_diff_names_what_only_one_router_runs():
    r1 = ["address 10.0.0.1/24 dev eth1", "port eth1 up", "sysctl net.ipv4.ip_forward=1"]
    assert cs.running_diff(r1, list(reversed(r1))) == []
    r2 = ["address 10.0.0.254/24 dev eth1", "port eth1 up", "sysctl net.ipv4.ip_forward=1"]
    assert cs.running_diff(r1, r2) == ["r1 only: address 10.0.0.1/24 dev eth1",
                                       "r2 only: address 10.0.0.254/24 dev eth1"]


def samples(*spec):
    """Samples from ``(sent at, answered at, ok)``."""
    return [Sample(seq=n, t=t, end=end, ok=ok) for n, (t, end, ok) in enumerate(spec)]


def test_what_the_failure_broke_and_when_the_service_came_back():
    crash, moved = 10.0, 11.0
    seen = samples((9.9, 9.95, True), (9.98, 10.23, False),     # in flight at the crash
                   (10.3, 10.55, False), (10.6, 10.85, False),  # after it: all fail
                   (10.9, 11.15, False),                        # in flight at the rewire
                   (11.2, 11.21, True), (11.3, 11.31, True))
    assert cs.what_the_failure_broke(seen, crash, moved) == dict(
        sent=3, failed=3, first_sent_after=0.3, first_failed_after=0.3)
    assert cs.answered_again(seen, moved) == pytest.approx(0.21)
    measured = cs.recovery(seen, crash, moved)
    assert measured["recovered"] and measured["time_to_recover"] == 0.21
    assert measured["requests_lost"] == 3 and measured["requests_lost_after_rewire"] == 0
    # never answered again: no time to recover
    assert cs.answered_again(seen[:5], moved) is None


def test_icmp_seen_counts_down_from_the_crash_and_up_from_the_rewire():
    transitions = [dict(t=10.6, state="down"), dict(t=10.9, state="up"),
                   dict(t=11.4, state="up")]
    assert cs.icmp_seen(transitions, 10.0, 11.0) == dict(down_after=0.6, up_after_rewire=0.4)
    assert cs.icmp_seen([], 10.0, 11.0) == dict(down_after=None, up_after_rewire=None)
