"""Replay the real kernel's IPVS picks against controllers.schedulers: the kernel wins.

``tests/data/ipvs-kernel/<scheduler>.json`` was recorded by ``make ipvs-record``
(``scripts/ipvs-record.py`` in a stock Debian 12 kernel under qemu): for every new
connection, the destination list the kernel's scheduler saw (its list order, weights,
ActiveConn, InActConn), the client address and port, the VIP and the real server the
kernel picked.  Here the same inputs go through our scheduler, in the same order and with
one scheduler instance per recorded IPVS service, created empty and told of each
``ipvsadm`` change as it happened (``Scheduler.update``), and every pick must be the
kernel's.
A scheduler without a recording (twos is not built in Debian's 6.1) has no test here.
"""

import json
import pathlib

import pytest

from controllers.schedulers import RealServer, make_scheduler

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "ipvs-kernel"
RECORDINGS = sorted(DATA.glob("*.json"))

# ipvsadm -b flag -> make_scheduler option
_FLAG_OPTIONS = {"sh-fallback": "fallback", "sh-port": "port",
                 "mh-fallback": "fallback", "mh-port": "port"}


def _options(flags):
    return {_FLAG_OPTIONS[flag]: True for flag in flags}


def _servers(listed):
    """The recorded destination list, in the kernel's order, as RealServers."""
    return [RealServer(name=ip, ip=ip, port=port, weight=weight, active_conns=active,
                       inactive_conns=inactive)
            for ip, port, weight, active, inactive in listed]


def replay(recording):
    """-> (matching, total, mismatches) of our picks against the recorded kernel's."""
    matching, total, mismatches = 0, 0, []
    for run in recording["runs"]:
        scheduler = make_scheduler(recording["scheduler"], **_options(run["flags"]))
        scheduler.update([], now=run["events"][0]["time"])  # ipvsadm -A: created empty
        for n, event in enumerate(run["events"]):
            if "ipvsadm" in event:  # one command, one kernel hook call, as in the kernel
                scheduler.update(_servers(event["servers"]), now=event["time"])
            if "picked" not in event:
                continue  # a change or a close: the next listing shows its counters
            chosen = scheduler.pick(_servers(event["servers"]), client_ip=event["client"],
                                    dest_ip=event["vip"], client_port=event["client_port"],
                                    now=event["time"])
            ours = chosen.ip if chosen else None
            total += 1
            if ours == event["picked"]:
                matching += 1
            else:
                mismatches.append(
                    f"flags {run['flags']} event {n} ({event['step']}): kernel "
                    f"{event['picked']}, ours {ours}; {event['client']}:"
                    f"{event['client_port']} -> {event['vip']}, list {event['servers']}")
    return matching, total, mismatches


def test_recordings_exist_and_come_from_a_6x_kernel():
    assert RECORDINGS, f"no kernel recordings in {DATA}; run `make ipvs-record`"
    for path in RECORDINGS:
        recording = json.loads(path.read_text())
        assert recording["scheduler"] == path.stem
        assert recording["kernel"].startswith("6."), (path.name, recording["kernel"])


@pytest.mark.parametrize("path", RECORDINGS, ids=[p.stem for p in RECORDINGS])
def test_our_scheduler_picks_what_the_kernel_picked(path):
    recording = json.loads(path.read_text())
    matching, total, mismatches = replay(recording)
    print(f"kernel replay {recording['scheduler']}: {matching}/{total} picks match "
          f"(kernel {recording['kernel']})")
    assert total >= 50, f"{path.name} holds only {total} picks; re-record it"
    assert not mismatches, (f"{len(mismatches)} of {total} picks differ from the kernel's:\n"
                            + "\n".join(mismatches[:10]))
