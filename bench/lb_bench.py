#!/usr/bin/env python3
"""Benchmark: redlab's os-ken load balancer against nginx direct and HAProxy, in one run.

    sudo .venv/bin/python bench/lb_bench.py [--seconds 3] [--algos rr,wrr,...]

All numbers come from the same emulated network in the same run (the service LAN:
client1, director, web1..web3), measured with wrk inside client1:

  (a) client -> web1 directly                         (the baseline: ratio 1.00)
  (b) client -> our VIP, 3 real servers, per scheduler (the os-ken load balancer) on
      the fast path, then in the exact mode for the schedulers of ``--exact``
  (c) client -> HAProxy on the director, same 3 servers

for new connections per second (``Connection: close``) and keep-alive requests per
second, each the median of ``--rounds`` rounds, with the datapath's upcalls per request
beside it (``dpif-netdev/pmd-stats-show``: what each new connection costs the switch's
slow path); then a failover with the same check settings for ours and HAProxy's
(interval 200 ms, fall 2, rise 2, HTTP check): time to recover and requests lost, from
the drill drills/lb-vs-haproxy.yaml run by the drill engine on fresh networks.
Every round of (b) and (c) is paired with a round of (a) measured just before it, and
the ratio printed is the median of the rounds' ratios (their range beside it): figures
move by 20-30 % between rounds on a small machine and drift over a run, so each is
compared with the baseline of its own minute.  It prints the table and writes it to the
run folder; compare the ratios of one run, not absolute numbers across machines.
"""

import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from controllers.schedulers import ALGORITHMS  # noqa: E402
from redlab import addressing as ap  # noqa: E402
from redlab.daemons import HAProxy  # noqa: E402
from redlab.lb import web_service  # noqa: E402
from redlab.scenarios.lb import LoadBalancedService  # noqa: E402
from redlab.wait import wait_until  # noqa: E402

# the same check for ours and HAProxy: HTTP GET /health every 200 ms, 200 ms timeout
# (drills/lb-vs-haproxy.yaml, the failover part, says the same)
CHECK = dict(interval=0.2, timeout=0.2, rise=2, fall=2)
DRILL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "drills",
                     "lb-vs-haproxy.yaml")


def wrk(client, url, seconds, close, connections=32):
    header = '-H "Connection: close"' if close else ""
    out = client.cmd("wrk -t2 -c%d -d%ds %s %s" % (connections, seconds, header, url))
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return dict(rate=float(rate.group(1)) if rate else 0.0,
                requests=int(total.group(1)) if total else 0,
                errors=(errors.group(1) if errors else "") +
                       (" non2xx %s" % non2xx.group(1) if non2xx else ""))


def upcalls(lab):
    """The datapath's upcalls so far (``dpif-netdev/pmd-stats-show``, all threads): a
    packet that no megaflow matched and that ovs-vswitchd had to translate."""
    out = lab["s1"].cmd("ovs-appctl dpif-netdev/pmd-stats-show")
    return sum(int(n) for n in re.findall(r"miss with success upcall:\s+(\d+)", out))


def quiet(lab):
    """Wait until the connections of the previous figure have left the switch's
    connection tracker (closing timeout), so every figure starts from a quiet table."""
    from controllers.ovsctl import ZONE

    def count():
        out = lab["s1"].cmd("ovs-appctl dpctl/dump-conntrack zone=%d | wc -l" % ZONE)
        n = int(out.strip() or 0)
        return n < 5, "%d tracked connections left" % n
    wait_until(count, 60, "the connections of the last figure to leave the tracker")


def figure(lab, url, seconds, close):
    quiet(lab)
    before = upcalls(lab)
    result = wrk(lab.client, url, seconds, close=close)
    result["upcalls_per_request"] = (upcalls(lab) - before) / max(result["requests"], 1)
    return result


def measure(lab, url, seconds, rounds=3, baseline=None):
    """Each figure ``rounds`` times, the round with the median rate kept.

    With ``baseline`` (the direct URL), every round of the figure is paired with a round
    of the baseline measured just before it, and the figure's ratio is the median of the
    rounds' ratios: on two cores shared by wrk, nginx and ovs-vswitchd the same figure
    moves by 20-30 % between rounds (and drifts over a run), so a ratio against the
    baseline of the run's first minute says as much about the machine as about the
    switch.  The direct rounds are kept too (``baseline_rounds``)."""
    def median_of(close):
        runs, ratios, base_rates = [], [], []
        for _ in range(rounds):
            if baseline:
                base = figure(lab, baseline, seconds, close)
                base_rates.append(base["rate"])
            run = figure(lab, url, seconds, close)
            runs.append(run)
            if baseline:
                ratios.append(run["rate"] / max(base["rate"], 1))
        runs.sort(key=lambda r: r["rate"])
        out = dict(runs[len(runs) // 2], rounds=[r["rate"] for r in runs])
        if baseline:
            out.update(ratio=_median(ratios), ratios=sorted(ratios), baseline_rounds=base_rates)
        return out
    return dict(keepalive=median_of(False), close=median_of(True))


def failover(folder, rounds):
    """The failover part: ``drills/lb-vs-haproxy.yaml`` run by the drill engine, ours and
    HAProxy's interleaved on fresh networks (``rounds`` each); one line per variant with
    the median time to recover and requests lost."""
    from redlab.drill.engine import run_series
    from redlab.drill.schema import load_drill
    runs = run_series(load_drill(DRILL), repeat=rounds, compare="haproxy", folder=folder,
                      progress=lambda line: print("  failover " + line, flush=True))
    rows = {}
    for label, name in (("default", "redlab VIP"), ("haproxy", "HAProxy")):
        records = runs[label]
        recover = [r["measures"]["time_to_recover"] for r in records]
        lost = [r["measures"]["requests_lost"] for r in records]
        sent = [sum(1 for x in r["samples"]["web"] if x["t"] >= r["observed"]["marks"]["crash"])
                for r in records]
        rows[name] = dict(time_to_recover=_median(recover), requests_lost=_median(lost),
                          requests_sent=_median(sent), runs=[r["run_folder"] for r in records])
    return rows


def _median(values):
    import statistics
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def markdown_table(results):
    """The figures as a markdown table: each ratio is the median of the ratios of the
    figure's rounds to the direct rounds paired with them (their range beside it); the
    direct row gives the median of every direct round of the run."""
    lines = ["| target | new conn/s (Connection: close) | ratio (range) | upcalls/conn "
             "| keep-alive req/s | ratio (range) | upcalls/req |", "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        cells = [name]
        for mode, unit in (("close", "%.3f"), ("keepalive", "%.4f")):
            f = r[mode]
            if "ratio" in f:
                rate, ratio = f["rate"], "%.2fx (%.2f-%.2f)" % (f["ratio"], f["ratios"][0],
                                                              f["ratios"][-1])
            else:       # the baseline: every direct round of the run
                rate = _median(f["rounds"] + [x for other in results.values()
                                              for x in other[mode].get("baseline_rounds", [])])
                ratio = "1.00x"
            cells += ["%.0f" % rate, ratio, unit % f["upcalls_per_request"]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--seconds", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3, help="rounds per figure (median kept)")
    p.add_argument("--algos", default=",".join(ALGORITHMS))
    p.add_argument("--failover-rounds", type=int, default=1,
                   help="failover runs per variant (medians are printed)")
    p.add_argument("--exact", default="rr,wlc,sh",
                   help="schedulers measured again in the exact mode (every new connection "
                        "scheduled by the controller), comma-separated; '' for none")
    args = p.parse_args(argv)
    algos = args.algos.split(",")

    service = web_service("rr", check="http", **CHECK)
    results = {}
    # idle connections leave after 5 s (not 300 s), so each figure starts on a quiet switch
    with LoadBalancedService(service, name="bench", log_connections=False,
                             fast_path=True, established_timeout=5) as lab:
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
        direct = "http://%s/" % ap.web(1)
        results["direct web1"] = measure(lab, direct, args.seconds, args.rounds)
        results["HAProxy"] = measure(lab, "http://%s/" % ap.director(), args.seconds,
                                     args.rounds, baseline=direct)
        for algo in algos:
            lab.ctl.set_scheduler(algo)
            results["redlab VIP %s" % algo] = measure(lab, "http://%s/" % service.vip,
                                                      args.seconds, args.rounds, baseline=direct)
            print("  %s done" % algo, flush=True)
        lab.ctl.set_fast_path(False)
        for algo in filter(None, args.exact.split(",")):
            lab.ctl.set_scheduler(algo)
            results["redlab VIP %s (exact mode)" % algo] = measure(
                lab, "http://%s/" % service.vip, args.seconds, args.rounds, baseline=direct)
            print("  %s (exact mode) done" % algo, flush=True)
        lines = markdown_table(results)

        haproxy.stop()
        folder = lab.network.run.path
    # failover, same check settings: ours (checker on the director) and HAProxy's
    print("failover (drills/lb-vs-haproxy.yaml, %d round(s) each) ..." % args.failover_rounds,
          flush=True)
    rows = failover(folder / "failover", args.failover_rounds) if args.failover_rounds else {}
    if rows:
        lines += ["", "| failover (web1 crashes; HTTP check every 200 ms, timeout 200 ms, "
                  "fall 2) | time to recover | requests lost | of sent |", "|---|---|---|---|"]
    for name, row in rows.items():
        lines.append("| %s | %s | %s | %s |" % (
            name, "not recovered" if row["time_to_recover"] is None else
            "%.2f s" % row["time_to_recover"], row["requests_lost"], row["requests_sent"]))
    table = "\n".join(lines)
    print(table)
    (folder / "bench.md").write_text(table + "\n")
    (folder / "bench.json").write_text(json.dumps(dict(results=results, failover=rows),
                                                  indent=1))
    print("\nrun folder: %s" % folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
