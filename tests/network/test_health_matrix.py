"""The detection matrix of the course notes, measured.

Faults {host crash, link down, nginx stopped, HTTP 500, hang} x checks {icmp, tcp,
http}: which check notices which fault, and how fast.  Expected (the notes):
ICMP (L3) misses a dead web service; a TCP connect (L4) misses 500s and hangs; an
HTTP request (L7) catches them all.
"""

import json
import time

import pytest

from redlab import faults
from redlab.lb import HealthChecker, web_service
from redlab.wait import wait_until
from topologies.service_lan import ServiceLanTopo

CHECKS = ("icmp", "tcp", "http")
FAULTS = {
    "host crash": lambda net, web: faults.host_crash(net, web),
    "link down": lambda net, web: faults.link_down(net, web, "s1"),
    "nginx stopped": lambda net, web: faults.daemon_stop(web.daemons["nginx"]),
    "HTTP 500": lambda net, web: faults.http_500(web.daemons["nginx"]),
    "hang": lambda net, web: faults.hang(web.daemons["nginx"]),
}
EXPECTED = {
    "host crash": {"icmp", "tcp", "http"},
    "link down": {"icmp", "tcp", "http"},
    "nginx stopped": {"tcp", "http"},
    "HTTP 500": {"http"},
    "hang": {"http"},
}
INTERVAL, TIMEOUT, FALL, RISE = 0.2, 0.5, 2, 2
# long enough for any check to fall FALL times: FALL x (interval + timeout) + margin
WINDOW = FALL * (INTERVAL + TIMEOUT) + 1.5


def measure(net, checkers, name):
    web = net["web1"]
    fault = FAULTS[name](net, web)
    expected = EXPECTED[name]

    def detected():
        return {c: checkers[c].transitions("web1", "down", since=fault.at) for c in CHECKS}
    wait_until(lambda: (all(detected()[c] for c in expected), detected()), WINDOW + 3,
               "%s to be detected by %s" % (name, ", ".join(sorted(expected))))
    # give the others the same chance to (wrongly) notice before deciding they do not
    wait_until(lambda: (time.time() >= fault.at + WINDOW, detected()), WINDOW + 1,
               "the observation window to end")
    found = {c: (t[0]["t"] - fault.at if t else None) for c, t in detected().items()}
    undone = time.time()
    fault.undo()
    wait_until(lambda: (all(checkers[c].transitions("web1", "up", since=undone)
                            for c in CHECKS if found[c] is not None), found), 15,
               "every check to see web1 up again after the undo")
    return found


def test_detection_matrix(network, run_folder):
    net = network(ServiceLanTopo(servers=1, dns=False))
    service = web_service("rr", servers=1, interval=INTERVAL, timeout=TIMEOUT, rise=RISE,
                          fall=FALL)
    checkers = {c: HealthChecker(net["director"], service, check_type=c, name=c).start()
                for c in CHECKS}
    try:
        matrix = {name: measure(net, checkers, name) for name in FAULTS}
    finally:
        for checker in checkers.values():
            checker.stop()
    lines = ["| fault | " + " | ".join(CHECKS) + " |", "|---|---|---|---|"]
    for name, row in matrix.items():
        lines.append("| %s | %s |" % (name, " | ".join(
            "missed" if row[c] is None else "%.2f s" % row[c] for c in CHECKS)))
    (run_folder / "matrix.md").write_text("\n".join(lines) + "\n")
    (run_folder / "matrix.json").write_text(json.dumps(matrix, indent=1))
    print("\n".join(lines))
    for name, row in matrix.items():
        assert {c for c in CHECKS if row[c] is not None} == EXPECTED[name], (name, row)
        for c in EXPECTED[name]:
            assert row[c] <= WINDOW, (name, c, row[c])
