#!/usr/bin/env python3
"""Benchmark: redlab's os-ken load balancer against nginx direct and HAProxy, in one run.

    sudo .venv/bin/python bench/lb_bench.py [--seconds 3] [--algos rr,wrr,...]

All numbers come from the same emulated network in the same run (the service LAN:
client1, director, web1..web3), measured with wrk inside client1:

  (a) client -> web1 directly                         (the baseline: ratio 1.00)
  (b) client -> our VIP, 3 real servers, per scheduler (the os-ken load balancer)
  (c) client -> HAProxy on the director, same 3 servers

for new connections per second (``Connection: close``) and keep-alive requests per
second; then a failover with the same check settings for ours and HAProxy's
(interval 200 ms, fall 2, rise 2, HTTP check): time to recover and requests lost.
It prints a table of ratios to (a) and writes it to the run folder.  Figures are
noisy: compare the ratios of one run, not absolute numbers across machines.
"""

import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from controllers.schedulers import ALGORITHMS  # noqa: E402
from redlab import addressing as ap  # noqa: E402
from redlab import faults  # noqa: E402
from redlab.daemons import HAProxy  # noqa: E402
from redlab.lb import web_service  # noqa: E402
from redlab.probe import Probe, analyse  # noqa: E402
from redlab.scenarios.lb import LoadBalancedService  # noqa: E402
from redlab.wait import wait_until  # noqa: E402

# the same check for ours and HAProxy: HTTP GET /health every 200 ms, 200 ms timeout
CHECK = dict(interval=0.2, timeout=0.2, rise=2, fall=2)


def wrk(client, url, seconds, close, connections=32):
    header = '-H "Connection: close"' if close else ""
    out = client.cmd("wrk -t2 -c%d -d%ds %s %s" % (connections, seconds, header, url))
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return dict(rate=float(rate.group(1)) if rate else 0.0,
                errors=(errors.group(1) if errors else "") +
                       (" non2xx %s" % non2xx.group(1) if non2xx else ""))


def quiet(lab):
    """Wait until the connections of the previous figure have left the switch.

    Thousands of expiring per-connection flows make OVS revalidate its caches, and a
    reused client port could meet a stale flow: every figure starts from a quiet table.
    """
    def count():
        flows = lab.network.dump_flows("s1")
        n = flows.count("priority=200,")
        return n < 5, "%d connection flows left" % n
    wait_until(count, 30, "the connection flows of the last run to expire")


def measure(lab, url, seconds):
    quiet(lab)
    keepalive = wrk(lab.client, url, seconds, close=False)
    quiet(lab)
    return dict(close=wrk(lab.client, url, seconds, close=True), keepalive=keepalive)


def failover(lab, url, kind, checker_transitions):
    probe = Probe(lab.client, url, name="probe-%s" % kind, interval=0.02, timeout=0.5,
                  max_seconds=30)
    with probe:
        probe.wait_good(10)
        fault = faults.host_crash(lab.network, "web1")
        probe.wait_good(25, timeout=15, since=fault.at)
    timeline = analyse(probe.samples(), fault.at, detected_at=checker_transitions(fault.at))
    fault.undo()
    return timeline


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--seconds", type=int, default=3)
    p.add_argument("--algos", default=",".join(ALGORITHMS))
    p.add_argument("--exact", dest="fast_path", action="store_false",
                   help="every new connection through the controller (no fast path)")
    args = p.parse_args(argv)
    algos = args.algos.split(",")

    service = web_service("rr", check="http", **CHECK)
    results = {}
    # idle connections leave after 5 s (not 300 s), so each figure starts on a quiet switch
    with LoadBalancedService(service, name="bench", log_connections=False,
                             fast_path=args.fast_path, established_timeout=5) as lab:
        client, director = lab.client, lab["director"]
        client.cmd("sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range='10000 65000'")
        for n in (1, 2, 3):
            lab["web%d" % n].daemons["nginx"].stop()
            lab["web%d" % n].daemons["nginx"].workers = 2
            lab["web%d" % n].daemons["nginx"].start()
        servers = [dict(name=s.name, ip=s.ip, port=s.port) for s in service.real_servers]
        haproxy = director.start_daemon(HAProxy(
            director, servers=servers, inter="200ms", timeout_check="200ms", rise=CHECK["rise"],
            fall=CHECK["fall"], check_path="/health", maxconn=8000))
        lab.wait_servers_known()
        print("measuring (%d s per figure) ..." % args.seconds, flush=True)
        results["direct web1"] = measure(lab, "http://%s/" % ap.web(1), args.seconds)
        results["HAProxy"] = measure(lab, "http://%s/" % ap.director(), args.seconds)
        for algo in algos:
            assert lab.control({"cmd": "set_scheduler", "lb_algo": algo})["ok"]
            results["redlab VIP %s" % algo] = measure(lab, "http://%s/" % service.vip,
                                                      args.seconds)
            print("  %s done" % algo, flush=True)

        base = results["direct web1"]
        lines = ["| target | new conn/s (Connection: close) | ratio | keep-alive req/s | ratio |",
                 "|---|---|---|---|---|"]
        for name, r in results.items():
            lines.append("| %s | %.0f | %.2fx | %.0f | %.2fx |" % (
                name, r["close"]["rate"], r["close"]["rate"] / max(base["close"]["rate"], 1),
                r["keepalive"]["rate"], r["keepalive"]["rate"] / max(base["keepalive"]["rate"], 1)))

        # failover, same check settings: ours (checker on the director) and HAProxy's
        assert lab.control({"cmd": "set_scheduler", "lb_algo": "rr"})["ok"]
        quiet(lab)

        def ours_detected(since):
            found = lab.checker.transitions("web1", "down", since=since)
            return found[0]["t"] if found else None
        t_ours = failover(lab, "http://%s/" % service.vip, "redlab", ours_detected)
        wait_until(lambda: (lab.checker.transitions("web1", "up", since=t_ours.fault_at),
                            "web1 not up"), 15, "web1 to come back before the HAProxy run")
        quiet(lab)
        t_ha = failover(lab, "http://%s/" % ap.director(), "haproxy", lambda since: None)
        haproxy.stop()
        lines += ["", "| failover (web1 crashes; HTTP check every 200 ms, timeout 200 ms, fall 2) | time to recover "
                  "| requests lost | of sent |", "|---|---|---|---|"]
        for name, t in (("redlab VIP", t_ours), ("HAProxy", t_ha)):
            lines.append("| %s | %s | %d | %d |" % (
                name, "%.2f s" % t.time_to_recover if t.recovered else "not recovered",
                t.requests_lost, t.requests_sent))
        table = "\n".join(lines)
        print(table)
        lab.network.run.file("bench.md").write_text(table + "\n")
        lab.network.run.file("bench.json").write_text(json.dumps(dict(
            results=results, failover=dict(redlab=t_ours.as_dict(), haproxy=t_ha.as_dict())),
            indent=1))
        print("\nrun folder: %s" % lab.network.run.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
