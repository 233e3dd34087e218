"""redlab.scenarios.vip_takeover's pure parts, without a network: who held which VIP when
(from ``ip monitor address`` events), the periods when two servers held one VIP, what the
client saw of a return, and the flat summary.  (The network parts run in
tests/labs/test_lab_04.py.)"""

from redlab.probe import Sample
from redlab.scenarios.vip_takeover import (Holdings, VipTakeover, mac_of, served_sequence,
                                           summary, who)

V1, V2 = "10.0.0.100", "10.0.0.101"


class Monitor:
    """An AddressMonitor's ``changes()``: [(t, ip, held)]."""

    def __init__(self, changes):
        self._changes = changes

    def changes(self):
        return self._changes


def holdings(**changes):
    h = Holdings(net=None, vips=[V1, V2])
    h.monitors = {name: [Monitor(c)] for name, c in changes.items()}
    return h


def test_holders_follow_the_address_events_and_crashes():
    h = holdings(web1=[(1.0, V1, True), (5.0, V1, False)], web2=[(4.0, V1, True)])
    assert h.holders(V1, t=2) == {"web1"}
    assert h.holders(V1, t=4.5) == {"web1", "web2"}
    assert h.holders(V1) == {"web2"}
    h.down("web2", 6.0)                 # a crash: nobody reaches what it had configured
    assert h.holders(V1) == set()
    assert h.first(V1, "web2", True, since=0) == 4.0
    assert h.first(V1, "web1", False, since=0) == 5.0
    assert h.first(V1, "web3", True, since=0) is None


def test_an_overlap_is_a_period_with_two_holders_of_one_vip():
    h = holdings(web1=[(1.0, V1, True), (5.0, V1, False)],
                 web2=[(4.0, V1, True), (7.0, V2, True)],
                 web3=[(4.5, V1, True), (9.0, V1, False)])
    assert h.overlaps(since=0) == [(V1, ["web1", "web2", "web3"], 4.0, 9.0)]
    assert h.overlaps(since=10) == []
    assert h.overlaps(since=0, until=3.0) == []
    h = holdings(web1=[(1.0, V1, True)], web2=[(2.0, V1, True)])
    assert h.overlaps(since=1.5) == [(V1, ["web1", "web2"], 2.0, None)]   # still going


def test_macs_read_as_host_names():
    assert who(mac_of(2)) == "web2" and who(None) == "nobody"
    assert who("02:00:0a:00:00:99") == "02:00:0a:00:00:99"


def sample(seq, t, server, ok=True):
    return Sample(seq=seq, t=t, end=t + 0.01, ok=ok, status=200 if ok else None,
                  server=server if ok else None, error=None if ok else "TimeoutError")


def test_served_sequence_collapses_repeats_and_skips_failures():
    samples = [sample(0, 0.0, "web2"), sample(1, 1.0, "web2"), sample(2, 1.1, "web1"),
               sample(3, 1.2, None, ok=False), sample(4, 1.3, "web1"), sample(5, 1.4, "web2")]
    assert served_sequence(samples, 0.5) == ["web2", "web1", "web2"]


class Arp:
    def __init__(self, macs):
        self.macs = macs

    def sequence(self, ip, since, until=None):
        return self.macs


def test_a_naive_return_is_measured_from_the_claim():
    run = VipTakeover.__new__(VipTakeover)      # only the measuring part: no network
    run.arp = Arp([mac_of(1), mac_of(2), mac_of(1)])
    r = dict(t0=1.0, t_end=3.0, claimed_at=1.2, arp_before="web2", holders=[
        dict(step="", holders=["web2"]), dict(step="", holders=["web1", "web2"])])
    samples = [sample(0, 0.5, "web2"), sample(1, 1.1, "web2"), sample(2, 1.3, "web1"),
               sample(3, 2.0, None, ok=False), sample(4, 2.5, "web2"), sample(5, 3.5, "web1")]
    run._measure_rejoin(r, samples)
    assert r["client_arp_sequence"] == ["web2", "web1", "web2", "web1"]
    assert r["served_after_claim"] == ["web1", "web2"] and r["served"] == ["web1", "web2"]
    assert r["served_sequence"] == ["web2", "web1", "web2"]
    assert (r["requests"], r["lost"], r["max_holders"]) == (4, 1, 2)


def test_the_summary_is_flat_and_carries_each_return():
    two = dict(dns=[["a", "b"], ["b", "a"]], takeover=dict(time_to_recover=1.23456))
    out = summary(dict(two=two,
                       rejoin=dict(naive=dict(max_holders=2, served_after_claim=["web1", "web2"],
                                              lost=0),
                                   careful=dict(max_holders=1, served_after_claim=["web1"],
                                                lost=2))))
    assert out["dns_answers"] == "a b | b a" and out["takeover_recovered_s"] == 1.235
    assert out["rejoin_naive_max_holders"] == 2 and out["rejoin_careful_lost"] == 2
    assert out["rejoin_careful_served_after_claim"] == ["web1"]
    assert "three_takers" not in out
