"""Lab 06's load against the real kernel's picks (``labs/06-scheduling/kernel-picks.json``).

The lab's "= kernel" column compares the controller's order with that recording, made by
``make ipvs-record-lab06`` in a stock Debian kernel.  The controller schedules with
``controllers/schedulers.py``, so here, without root or network, the module is fed the
same sequence and must reproduce every one of the kernel's picks: a change to it that
would turn a lab 06 row into "NO" fails here first.  The recording must also be of the
lab's own load (pattern, servers, weights, addresses) and count what the lab counts.
"""

import collections
import json

import pytest

from controllers.schedulers import CLASSIC, RealServer, make_scheduler
from redlab import labs
from redlab.errors import ConfigError

LAB = labs.find("06").module
RECORDING = json.loads(LAB.KERNEL_FILE.read_text())
SCHEDULERS = list(RECORDING["schedulers"])


def test_the_recording_is_of_the_labs_load_from_a_6x_kernel():
    assert {key: RECORDING[key] for key in LAB.kernel_setting()} == LAB.kernel_setting()
    assert SCHEDULERS == list(CLASSIC)
    assert RECORDING["kernel"].startswith("6."), RECORDING["kernel"]
    assert RECORDING["addresses"] == {name: server.ip for name, server in
                                      zip(LAB.SERVERS, _lab_servers())}
    orders = LAB.kernel_orders()                    # what the walk-through loads
    assert all(len(orders[algo]) == len(LAB.LOAD) for algo in CLASSIC), orders


def _lab_servers():
    """The lab's servers as the controller lists them: web1, web2, web3 with its weights."""
    return [RealServer(name=name, ip=RECORDING["addresses"][name], port=80, weight=weight)
            for name, weight in zip(LAB.SERVERS, LAB.WEIGHTS)]


@pytest.mark.parametrize("algo", SCHEDULERS)
def test_the_kernel_counted_what_the_lab_counts(algo):
    """Before each pick the kernel's list is the lab's (order, weights) and its counters are
    the connections so far of this run: held ones active, short ones inactive (none expired,
    none left over from another run)."""
    active, inactive = collections.Counter(), collections.Counter()
    for n, pick in enumerate(RECORDING["schedulers"][algo]["picks"]):
        assert pick["letter"] == LAB.LOAD[n]
        expected = [[name, weight, active[name], inactive[name]]
                    for name, weight in zip(LAB.SERVERS, LAB.WEIGHTS)]
        assert pick["servers"] == expected, (algo, n)
        (active if pick["letter"] == "H" else inactive)[pick["picked"]] += 1


@pytest.mark.parametrize("algo", SCHEDULERS)
def test_schedulers_py_replays_every_kernel_pick(algo):
    """Pick by pick, from the kernel's own listing: one fresh scheduler (the lab's
    set_scheduler, ``ipvsadm -E -s``), the kernel's list, weights and counters, the lab's
    client and VIP, the kernel's time."""
    scheduler = make_scheduler(algo)
    ours = []
    for pick in RECORDING["schedulers"][algo]["picks"]:
        servers = [RealServer(name=name, ip=RECORDING["addresses"][name], port=80,
                              weight=weight, active_conns=a, inactive_conns=i)
                   for name, weight, a, i in pick["servers"]]
        chosen = scheduler.pick(servers, client_ip=RECORDING["client"],
                                dest_ip=RECORDING["vip"], client_port=pick["client_port"],
                                now=pick["time"])
        ours.append(chosen.name if chosen else None)
    assert ours == RECORDING["schedulers"][algo]["order"]


@pytest.mark.parametrize("algo", SCHEDULERS)
def test_the_labs_rules_on_paper_give_the_kernels_order(algo):
    """The lab's own model of its load (``kernel_picks``: an empty table, H adds one
    ActiveConn, S one InActConn, nothing expires) is the kernel's order."""
    paper = LAB.kernel_picks(algo, [(n, w, 0, 0) for n, w in zip(LAB.SERVERS, LAB.WEIGHTS)],
                             LAB.LOAD, RECORDING["client"], RECORDING["vip"])
    assert paper == RECORDING["schedulers"][algo]["order"]


def test_a_missing_or_stale_recording_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(LAB, "KERNEL_FILE", tmp_path / "kernel-picks.json")
    with pytest.raises(ConfigError, match="is missing: record the kernel's picks with "
                                          "`sudo make ipvs-record-lab06`"):
        LAB.kernel_orders()
    stale = dict(RECORDING, pattern="HS" * 9)
    LAB.KERNEL_FILE.write_text(json.dumps(stale))
    with pytest.raises(ConfigError, match="was recorded for the load HSHS.*but this lab has "
                                          "the load HHSHHS.*ipvs-record-lab06"):
        LAB.kernel_orders()
    LAB.KERNEL_FILE.write_text(json.dumps(dict(RECORDING, weights=[1, 1, 1])))
    with pytest.raises(ConfigError, match=r"weights \[1, 1, 1\]"):
        LAB.kernel_orders()
    LAB.KERNEL_FILE.write_text("{")
    with pytest.raises(ConfigError, match="cannot be read"):
        LAB.kernel_orders()
