"""The drill engine's judgement on hand-made observations: no network, no root.

Each expectation is judged only in the window of the entry it follows; one whose entry
never happened fails with its reason, even where it would have passed before the fault.
"""

import pytest

from redlab.drill import engine
from redlab.drill.expect import NOT_HAPPENED, Observations, evaluate_one, holder_sets, measure
from redlab.drill.schema import check_drill
from redlab.errors import ConfigError

WEB1, WEB2, VMAC = "02:00:00:00:00:0b", "02:00:00:00:00:0c", "00:00:5e:00:01:33"
VIP = "10.0.0.100"
CRASH = {"id": "crash", "at": 2.0, "fault": "host_crash", "host": "web1"}
BACK = {"id": "back", "when": {"probe": "web", "good": 10}, "step": "undo", "of": "crash"}


def samples(outage=(3.0, 6.5), end=12.0, step=0.05):
    """A probe every 50 ms from 0 to ``end``; failed in ``[outage)``."""
    result = []
    for n in range(round(end / step)):
        t = round(n * step, 3)
        ok = not (outage and outage[0] <= t < outage[1])
        result.append(dict(t=t, ok=ok, latency=0.002,
                           served_by=("web2" if outage and t >= outage[0] else "web1")
                           if ok else None, error=None if ok else "TimeoutError"))
    return result


def observations(crash_at=2.0, **kw):
    defaults = dict(
        marks={"crash": crash_at}, entries={"crash": CRASH, "back": BACK},
        samples={"web": samples()}, probe_interval={"web": 0.05}, end=12.0,
        holders={VIP: [(0.0, frozenset({"web1"})), (2.0, frozenset()),
                       (5.5, frozenset({"web2"}))]},
        arp={("client1", VIP): [(0.0, WEB1), (5.6, WEB2)]},
        macs={"web1": WEB1, "web2": WEB2, "client1": "02:00:00:00:00:c9"},
        masters=[(-5.0, "web1"), (5.5, "web2")])
    defaults.update(kw)
    return Observations(**defaults)


def test_recover_within_measures_from_the_fault_mark():
    result = evaluate_one({"after": "crash", "recover_within": 5.0, "probe": "web"},
                          observations())
    assert result["passed"] and result["measured"] == pytest.approx(4.5)
    assert result["reason"] == "service back after 4.50 s, within 5.00 s (the drill's " \
                               "recover_within)"


def test_a_too_tight_deadline_fails_with_the_measured_value():
    result = evaluate_one({"after": "crash", "recover_within": 0.5, "probe": "web"},
                          observations())
    assert not result["passed"] and result["measured"] == pytest.approx(4.5)
    assert "4.50 s" in result["reason"] and "bound 0.50 s" in result["reason"]


def test_an_expectation_whose_fault_never_happened_fails_though_all_was_well():
    """The guard: the probe never failed, so a check run without the fault would pass."""
    obs = observations(crash_at=None, samples={"web": samples(outage=None)},
                       holders={VIP: [(0.0, frozenset({"web1"}))]})
    for item in ({"after": "crash", "recover_within": 5.0, "probe": "web"},
                 {"after": "crash", "max_lost": 10, "probe": "web"},
                 {"after": "crash", "vip_held_by_one": {"vip": VIP, "hosts": ["web1", "web2"]},
                  "within": 5.0},
                 {"during": ["crash", "back"], "never_failed": "web"}):
        result = evaluate_one(item, obs)
        assert not result["passed"] and result["reason"] == NOT_HAPPENED, item


def test_a_step_that_never_happened_is_named():
    obs = observations(marks={"crash": 2.0, "back": None})
    result = evaluate_one({"after": "back", "recover_within": 5.0, "probe": "web"}, obs)
    assert not result["passed"] and "back" in result["reason"]
    result = evaluate_one({"during": ["crash", "back"], "never_failed": "web"}, obs)
    assert not result["passed"] and "back never happened" in result["reason"]


def test_a_service_that_never_came_back():
    obs = observations(samples={"web": samples(outage=(3.0, 99))})
    result = evaluate_one({"after": "crash", "recover_within": 5.0, "probe": "web"}, obs)
    assert not result["passed"] and result["measured"] is None
    lost = evaluate_one({"after": "crash", "max_lost": 1000, "probe": "web"}, obs)
    assert not lost["passed"] and "never came back" in lost["reason"]


def test_max_lost_counts_only_requests_after_the_fault():
    obs = observations(samples={"web": samples(outage=(1.0, 5.0))})     # 20 lost before
    result = evaluate_one({"after": "crash", "max_lost": 60, "probe": "web"}, obs)
    assert result["measured"] == 60 and result["passed"]
    assert not evaluate_one({"after": "crash", "max_lost": 59, "probe": "web"}, obs)["passed"]


def test_the_window_of_a_fault_ends_at_its_undo():
    """A loss after the undo (the old master coming back) is not the crash's."""
    s = samples()
    for sample in s:
        if 10.0 <= sample["t"] < 10.5:
            sample["ok"] = False
    obs = observations(samples={"web": s}, undone={"crash": 9.0})
    result = evaluate_one({"after": "crash", "max_lost": 70, "probe": "web"}, obs)
    assert result["measured"] == 70 and result["passed"]


def test_vip_held_by_one_and_split_brain():
    item = {"after": "crash", "vip_held_by_one": {"vip": VIP, "hosts": ["web1", "web2"]},
            "within": 5.0}
    result = evaluate_one(item, observations())
    assert result["passed"] and result["measured"] == pytest.approx(3.5)
    both = observations(holders={VIP: [(0.0, frozenset({"web1"})),
                                       (5.5, frozenset({"web1", "web2"}))]})
    result = evaluate_one(item, both)
    assert not result["passed"] and "web1 and web2 all hold 10.0.0.100 at once" in \
        result["reason"]
    late = observations(holders={VIP: [(0.0, frozenset({"web1"})), (2.0, frozenset()),
                                       (8.0, frozenset({"web2"}))]})
    result = evaluate_one(item, late)
    assert not result["passed"] and result["measured"] == pytest.approx(6.0)


def test_holder_sets_from_address_changes():
    changes = [(0.0, "web1", True), (0.0, "web2", False), (2.0, "web1", False),
               (5.5, "web2", True)]
    assert holder_sets(changes) == [(0.0, frozenset({"web1"})), (2.0, frozenset()),
                                    (5.5, frozenset({"web2"}))]


def test_arp_moved():
    item = {"after": "crash", "arp_moved": {"client": "client1", "vip": VIP, "to": "web2"},
            "within": 5.0}
    result = evaluate_one(item, observations())
    assert result["passed"] and result["measured"] == pytest.approx(3.6)
    stayed = observations(arp={("client1", VIP): [(0.0, VMAC), (5.6, VMAC)]})
    result = evaluate_one(item, stayed)
    assert not result["passed"] and VMAC in result["reason"]
    already = observations(arp={("client1", VIP): [(0.0, WEB2), (5.6, WEB2)]})
    result = evaluate_one(item, already)
    assert not result["passed"] and "nothing to move" in result["reason"]


def test_never_failed_in_its_window():
    obs = observations(marks={"crash": 2.0, "back": 8.0})
    result = evaluate_one({"during": ["crash", "back"], "never_failed": "web"}, obs)
    assert not result["passed"] and result["measured"] == 70
    calm = observations(marks={"crash": 2.0, "back": 8.0}, samples={"web": samples((9, 9.5))})
    assert evaluate_one({"during": ["crash", "back"], "never_failed": "web"}, calm)["passed"]


def test_measures_and_intervals():
    drill = {"probes": [{"name": "web"}]}
    values, intervals = measure(observations(), drill)
    assert values == dict(time_to_detect=3.5, time_to_recover=4.5, requests_lost=70,
                          loss_convergence=3.5)
    assert intervals == [dict(name="detect", start=2.0, end=5.5),
                         dict(name="recover", start=2.0, end=6.5)]
    values, intervals = measure(observations(crash_at=None), drill)
    assert set(values.values()) == {None} and intervals == []


DRILL = {
    "drill": "t", "network": {"topology": "vrrp_pair"},
    "probes": [{"name": "web", "type": "http", "from": "client1", "url": "http://10.0.0.100/"}],
    "timeline": [dict(CRASH)],
    "expect": [{"after": "crash", "recover_within": 5.0, "probe": "web"}],
}


def drill(**changes):
    import copy
    data = copy.deepcopy(DRILL)
    data.update(changes)
    return check_drill(data)


def test_every_kind_the_schema_accepts_is_run():
    """Nothing a drill file may say is silently ignored: each probe type has an agent,
    each fault an action, each expectation a judge."""
    from redlab import probe_agent
    from redlab.drill import actions, expect, schema
    assert set(actions.supported()) == set(schema.FAULTS)
    assert set(expect.JUDGES) == set(schema.EXPECTATIONS)
    assert set(probe_agent.KINDS) == set(schema.PROBE_TYPES)


def test_keepalived_options_go_onto_every_vrrp_host():
    topo = engine.refuse_unsupported(drill(network={
        "topology": "vrrp_pair", "keepalived": {"advert_int": 0.1, "use_vmac": True,
                                                "vrrp_script": {"fall": 3}}}))
    for host in ("web1", "web2"):
        vrrp = topo.nodeInfo(host)["vrrp"]
        assert vrrp["advert_int"] == 0.1 and vrrp["use_vmac"] is True
        assert vrrp["check_http"]["fall"] == 3
    assert topo.nodeInfo("web1")["vrrp"]["priority"] > topo.nodeInfo("web2")["vrrp"]["priority"]


def test_shipped_drills_are_runnable_by_this_engine():
    from pathlib import Path
    from redlab.drill.schema import load_drill, variant
    files = sorted(Path(__file__).parents[2].joinpath("drills").glob("*.yaml"))
    assert files
    for path in files:
        data = load_drill(path)
        for name in ["default", *data["variants"]]:
            engine.refuse_unsupported(variant(data, name))
