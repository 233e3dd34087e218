"""The drill probes against real daemons: HTTP (nginx), TCP, ICMP and DNS (BIND9) from a
client host, broken by real faults; and the fixed schedule keeping one request per
interval through an outage of timeouts, where the sequential one sends one per timeout."""

import time

import pytest

from redlab import addressing as ap
from redlab import faults
from redlab.probe import Probe, failure_kind
from redlab.wait import wait_until
from topologies.service_lan import ZONE, ServiceLanTopo

INTERVAL, TIMEOUT = 0.05, 0.5


@pytest.fixture
def lan(network):
    """client1, web1 (nginx) and dns1 (BIND9: www.lab.example is web1) on one switch."""
    return network(ServiceLanTopo(servers=1, director=False))


@pytest.fixture
def probes(lan):
    """``start(name, spec)`` -> a started fixed-schedule Probe from client1; all stop."""
    started = []

    def resolve(target):
        return lan[target].IP() if target in lan.net else target

    def start(name, **spec):
        spec = dict(spec, name=name, interval=INTERVAL, timeout=TIMEOUT)
        probe = Probe.from_spec(lan["client1"], spec, "probe-" + name, 60.0, resolve)
        started.append(probe)
        return probe.start()

    yield start
    for probe in started:
        probe.terminate()
    for probe in started:
        probe.stop()


def after(probe, t):
    return [s for s in probe.samples() if s.t >= t]


def kinds(samples):
    return {failure_kind(s.status, s.error) for s in samples if not s.ok}


def wait_failures(probe, since, count=5):
    """Wait until ``probe`` saw ``count`` failed requests sent at or after ``since``."""
    def failures():
        bad = [s for s in after(probe, since) if not s.ok]
        return len(bad) >= count, kinds(bad) or after(probe, since)[-1:]
    return wait_until(failures, 10, "%d failed requests from %s" % (count, probe.describe()))


def test_every_kind_answers_then_fails_as_a_user_sees_it(lan, probes):
    http = probes("http", type="http", url="http://%s/" % ap.web(1))
    tcp = probes("tcp", type="tcp", host="web1", port=80)
    icmp = probes("icmp", type="icmp", host="web1")
    dns = probes("dns", type="dns", server="dns1", query="www." + ZONE)
    nxdomain = probes("nx", type="dns", server=ap.dns(1), query="nope." + ZONE)
    for probe in (http, tcp, icmp, dns):
        probe.wait_good(5)
    assert {s.server for s in http.samples() if s.ok} == {"web1"}
    assert {s.server for s in dns.samples() if s.ok} == {ap.web(1)}
    assert {s.server for s in icmp.samples() if s.ok} == {ap.web(1)}
    wait_failures(nxdomain, 0)
    assert kinds(nxdomain.samples()) == {"NXDOMAIN"}
    assert not any(s.ok for s in nxdomain.samples())

    # nginx stops: its port is closed (refused at once), the host still answers pings
    nginx = faults.daemon_stop(lan["web1"].daemons["nginx"])
    named = faults.daemon_stop(lan["dns1"].daemons["named"])
    since = max(nginx.at, named.at)
    for probe in (http, tcp, dns):
        wait_failures(probe, since)
    for probe in (http, tcp):
        assert kinds(after(probe, since)) == {"ConnectionRefusedError"}, probe.describe()
    # UDP learns "refused" from dns1's ICMP port unreachable, which the kernel rate-limits
    # (a burst of 6, then 1/s: icmp_ratelimit); the queries it did not answer time out
    assert "ConnectionRefusedError" in kinds(after(dns, since))
    assert kinds(after(dns, since)) <= {"ConnectionRefusedError", "TimeoutError"}
    assert after(icmp, since) and all(s.ok for s in after(icmp, since))
    named.undo()
    nginx.undo()
    for probe in (http, tcp, icmp, dns):
        probe.wait_good(5, since=nginx.undone_at)


def outage_rate(probe, start, end):
    """Requests sent in [start, end): how many, and how many a second."""
    sent = [s for s in probe.samples() if start <= s.t < end]
    return len(sent), len(sent) / (end - start)


def test_fixed_schedule_keeps_its_rate_through_a_crash_and_sequential_does_not(lan, probes):
    client = lan["client1"]
    fixed_icmp = probes("icmp", type="icmp", host="web1")
    fixed_http = probes("http", type="http", url="http://%s/" % ap.web(1))
    sequential = Probe(client, "http://%s/" % ap.web(1), name="probe-sequential",
                       interval=INTERVAL, timeout=TIMEOUT, max_seconds=60.0)
    with sequential:
        for probe in (fixed_icmp, fixed_http, sequential):
            probe.wait_good(5)
        crash = faults.host_crash(lan, "web1")
        # an outage of 3 s: 60 requests of the fixed schedule (a condition, not a sleep)
        wait_failures(fixed_icmp, crash.at, count=int(3.0 / INTERVAL))
        broken_until = time.time()
        crash.undo()
        for probe in (fixed_icmp, fixed_http, sequential):
            probe.wait_good(5, since=crash.undone_at)
    outage = broken_until - crash.at
    expected = outage / INTERVAL
    report = {}
    for name, probe in (("fixed icmp", fixed_icmp), ("fixed http", fixed_http),
                        ("sequential http", sequential)):
        sent, rate = outage_rate(probe, crash.at, broken_until)
        report[name] = sent
        print("%-16s %3d requests in the %.2f s outage: %.1f/s (1/interval = %g/s), kinds %s"
              % (name, sent, outage, rate, 1 / INTERVAL,
                 sorted(kinds(after(probe, crash.at)))))
        # nothing answered while the host was down
        assert not any(s.ok for s in probe.samples() if crash.at <= s.t < broken_until), name
    assert report["fixed icmp"] == pytest.approx(expected, rel=0.10), report
    assert report["fixed http"] == pytest.approx(expected, rel=0.10), report
    # sequential: one request per timeout (+ interval), a fifth of the schedule at most
    assert report["sequential http"] <= outage / TIMEOUT + 1, report
    assert report["sequential http"] < 0.2 * expected, report
    icmp_kinds = kinds(after(fixed_icmp, crash.at))
    assert "TimeoutError" in icmp_kinds and icmp_kinds <= {"TimeoutError", "HostUnreachable"}
