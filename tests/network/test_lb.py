"""The os-ken load balancer through the real data path: curl from a client host."""

import collections
import re
import time

import pytest

from controllers.schedulers import RealServer, make_scheduler
from redlab import addressing as ap
from redlab import faults
from redlab.agent import ClientAgent
from redlab.lb import web_service
from redlab.scenarios.lb import LoadBalancedService
from redlab.wait import wait_until



def names(lab, n):
    return [lab.get()[1] for _ in range(n)]


def test_rr_splits_evenly_in_list_order(run_folder):
    with LoadBalancedService(web_service("rr", check="tcp"), run_folder=run_folder) as lab:
        assert names(lab, 12) == ["web1", "web2", "web3"] * 4


def test_wrr_follows_weights_exactly_over_full_cycles(run_folder):
    with LoadBalancedService(web_service("wrr", weights=(3, 2, 1), check="tcp"),
                             run_folder=run_folder) as lab:
        got = names(lab, 12)
    # kernel wrr, weights 3,2,1: cw 3 -> web1; cw 2 -> web1 web2; cw 1 -> web1 web2 web3
    assert got == ["web1", "web1", "web2", "web1", "web2", "web3"] * 2


def test_sh_keeps_a_client_on_one_server(run_folder):
    with LoadBalancedService(web_service("sh", check="tcp"), run_folder=run_folder) as lab:
        got = set(names(lab, 8))
    assert len(got) == 1 and None not in got


class Holder:
    """``n`` long-lived connections from client1 to the VIP (redlab.client_agent)."""

    def __init__(self, lab, n):
        self.agent = ClientAgent(lab.client, lab.service.vip, lab.service.port, "holder")
        self.servers = self.agent.ask("hold %d" % n)

    def request(self):
        """One more request on every held connection: ``["200:web1", ...]``."""
        return self.agent.ask("request")

    def stop(self):
        self.agent.stop()


@pytest.mark.parametrize("algo", ["lc", "wlc", "sed", "nq"])
def test_least_connection_family_picks_what_the_formula_says(run_folder, algo):
    weights = (3, 1, 1)
    with LoadBalancedService(web_service(algo, weights=weights, check="tcp"),
                             run_folder=run_folder) as lab:
        start = time.time()
        holder = Holder(lab, 6)
        # the controller's event log is written after the SYN went on: wait for all six
        got = wait_until(lambda: (len(lab.scheduled(since=start)) >= 6,
                                  lab.scheduled(since=start)), 5, "six scheduling decisions")
        # the same decisions, made by the pure scheduler on the same (active) counts
        servers = [RealServer(name="web%d" % n, ip=ap.web(n), port=80, weight=w)
                   for n, w in enumerate(weights, 1)]
        sched = make_scheduler(algo)
        expected = []
        for _ in range(6):
            pick = sched.pick(servers, client_ip=ap.client(1, ap.SERVICE), dest_ip=ap.vip(1))
            pick.active_conns += 1
            expected.append(pick.name)
        assert got == expected
        # (status is another channel than the switch's messages: it may answer first)
        want = {s.name: (s.active_conns, 0) for s in servers}
        wait_until(lambda: (lab.counts() == want, lab.counts()), 5, "ActiveConn %s" % want)
        holder.stop()


def test_active_and_inactive_counts_follow_the_connections(run_folder):
    with LoadBalancedService(web_service("rr", check="tcp"), run_folder=run_folder,
                             closing_timeout=1) as lab:
        holder = Holder(lab, 6)
        wait_until(lambda: (lab.counts() == {"web1": (2, 0), "web2": (2, 0), "web3": (2, 0)},
                            lab.counts()), 5, "two active connections on each server")
        holder.stop()                       # FIN from the client: inactive until flows expire
        wait_until(lambda: (sum(a for a, _ in lab.counts().values()) == 0, lab.counts()), 5,
                   "ActiveConn to drop to 0 after the FINs")
        wait_until(lambda: (lab.counts() == {"web1": (0, 0), "web2": (0, 0), "web3": (0, 0)},
                            lab.counts()), 10, "InActConn to drop to 0 when the flows expire")


@pytest.mark.parametrize("kind", ["NAT", "DR"])
def test_the_exact_mode_counts_from_the_switchs_copies_of_each_transition(run_folder, kind):
    """No dump before a pick (dump_each_pick_max -1): the client's ACK that completes each
    handshake and each connection's first FIN reach the controller as copies on the
    counting port, once per connection, and the counts follow them."""
    with LoadBalancedService(web_service("wlc", lb_kind=kind, check="tcp"),
                             run_folder=run_folder, closing_timeout=1,
                             dump_each_pick_max=-1) as lab:
        events = lab.network.controller.events
        start = time.time()

        def since(kind_):
            return [(e["port"], e["server"]) for e in events(kind_) if e["t"] >= start]
        holder = Holder(lab, 3)
        scheduled = wait_until(lambda: (len(since("scheduled")) == 3, since("scheduled")), 5,
                               "three scheduling decisions")
        assert sorted(server for _, server in scheduled) == ["web1", "web2", "web3"]
        opened = wait_until(lambda: (len(since("opened")) >= 3, since("opened")), 5,
                            "a copy of each client's handshake-completing ACK")
        assert sorted(opened) == sorted(scheduled)
        wait_until(lambda: (lab.counts() == {"web1": (1, 0), "web2": (1, 0), "web3": (1, 0)},
                            lab.counts()), 5, "one active connection on each server")
        holder.stop()
        closed = wait_until(lambda: (len(since("closed")) >= 3, since("closed")), 5,
                            "a copy of each connection's first FIN")
        assert sorted(closed) == sorted(scheduled)
        assert [e for e in events("closed") if e["t"] >= start and e["by"] != "client"] == []
        wait_until(lambda: (lab.counts() == {"web1": (0, 0), "web2": (0, 0), "web3": (0, 0)},
                            lab.counts()), 10, "InActConn to drop to 0 when the entries expire")
        assert len(since("opened")) == 3 and not events("copies_lost")
        assert "Counting: copies of each handshake's end" in lab.status_text()


@pytest.mark.parametrize("kind", ["NAT", "DR"])
def test_nat_and_dr_serve_real_http(run_folder, kind):
    with LoadBalancedService(web_service("rr", lb_kind=kind, check="http"),
                             run_folder=run_folder) as lab:
        replies = [lab.get() for _ in range(3)]
        assert replies == [(200, "web1"), (200, "web2"), (200, "web3")]
        page = lab.client.cmd("curl -s -m 2 http://%s/" % lab.service.vip)
        assert page.strip() == "web1 v1"
        if kind == "DR":
            # the reply came straight from the real server, with the VIP as its source
            assert lab.service.vip in lab["web1"].cmd("ip -4 addr show dev lo")


def test_fast_path_schedules_in_the_switch_and_counts_from_conntrack(run_folder):
    """fast_path: a select group of 256 slots picks the server; nothing per connection
    reaches the controller; ActiveConn/InActConn come from the switch's tracker."""
    with LoadBalancedService(web_service("rr", check="tcp"), run_folder=run_folder,
                             fast_path=True, closing_timeout=1) as lab:
        lab.wait_servers_known()
        wait_until(lambda: ("group:1" in lab.network.dump_flows("s1"),
                            lab.network.dump_flows("s1")), 5, "new SYNs to go to the group")
        groups = lab["s1"].cmd("ovs-ofctl -O OpenFlow13 dump-groups s1")
        buckets = re.findall(r"set_field:0x(\d)->reg2", groups)
        # rr's shares: 86/85/85 of 256
        assert sorted(collections.Counter(buckets).values()) == [85, 85, 86], groups[:300]
        start = time.time()
        got = names(lab, 30)
        assert set(got) == {"web1", "web2", "web3"}, got
        assert lab.scheduled(since=start) == []           # the controller saw none of them
        # the datapath hashes into the 256 slots (no exact 5-tuple megaflow per connection)
        flows = lab["s1"].cmd("ovs-appctl dpctl/dump-flows")
        assert "hash(sym_l4(0))" in flows and "dp_hash(" in flows, flows[:500]
        assert lab.status()["service"]["path"]["mode"] == "slots"
        wait_until(lambda: (lab.counts() == {"web1": (0, 0), "web2": (0, 0), "web3": (0, 0)},
                            lab.counts()), 10, "the finished connections to leave the tracker")
        holder = Holder(lab, 3)
        went = collections.Counter(holder.servers)
        want = {n: (went[n], 0) for n in ("web1", "web2", "web3")}
        wait_until(lambda: (lab.counts() == want, lab.counts()), 5,
                   "ActiveConn to count the held connections %s" % want)
        holder.stop()
        wait_until(lambda: (lab.counts() == {"web1": (0, 0), "web2": (0, 0), "web3": (0, 0)},
                            lab.counts()), 10, "the closed connections to leave the tracker")


def test_a_failed_server_loses_its_connections_at_once(run_folder):
    """IPVS's expire_nodest_conn: when web2 fails its check its tracked connections are
    dropped, so the clients' next SYN is scheduled to a live server."""
    service = web_service("wlc", check="http", interval=0.2, timeout=0.3, fall=2, rise=2)
    with LoadBalancedService(service, run_folder=run_folder) as lab:
        holder = Holder(lab, 6)
        on_web2 = sum(1 for s in holder.servers if s.endswith("web2"))
        assert on_web2, holder.servers
        wait_until(lambda: (lab.counts()["web2"] == (on_web2, 0), lab.counts()), 5,
                   "web2's connections to be counted")
        fault = faults.http_500(lab["web2"].daemons["nginx"])
        health = wait_until(lambda: ([e for e in lab.network.controller.events("health")
                                      if e["server"] == "web2" and e["state"] == "down"],
                                     lab.network.controller.events("health")), 5,
                            "web2 to be marked down")
        assert health[0]["cleared"] == on_web2
        assert lab.counts()["web2"] == (0, 0)
        fault.undo()
        holder.stop()


def test_fast_path_stops_sending_to_a_failed_server(run_folder):
    service = web_service("rr", check="http", interval=0.2, timeout=0.3, fall=2, rise=2)
    with LoadBalancedService(service, run_folder=run_folder, fast_path=True) as lab:
        fault = faults.daemon_stop(lab["web2"].daemons["nginx"])
        wait_until(lambda: (lab.checker.transitions("web2", "down", since=fault.at),
                            lab.checker.transitions()), 5, "web2 to be marked down")
        # the fast path spreads new connections by the hash of their ports (select group
        # slots, not rr's order): 24 requests miss web3 or web1 with a chance of 2 x 2^-24
        assert set(names(lab, 24)) == {"web1", "web3"}
        fault.undo()


def test_persistence_keeps_a_client_on_its_server(run_folder):
    """ipvsadm -p: with rr, one client still lands on one server while its template lives."""
    with LoadBalancedService(web_service("rr", check="tcp", persistence_timeout=30),
                             run_folder=run_folder) as lab:
        got = names(lab, 6)
        assert lab.status()["service"]["persistence_timeout"] == 30
    assert got == ["web1"] * 6


def test_inhibit_on_failure_keeps_the_server_listed_with_weight_0(run_folder):
    service = web_service("rr", check="http", interval=0.2, timeout=0.3, fall=2, rise=2,
                          inhibit_on_failure=True)
    with LoadBalancedService(service, run_folder=run_folder) as lab:
        fault = faults.http_500(lab["web2"].daemons["nginx"])
        wait_until(lambda: (lab.checker.transitions("web2", "down", since=fault.at),
                            lab.checker.transitions()), 5, "web2 to be marked down")
        web2 = next(s for s in lab.status()["servers"] if s["name"] == "web2")
        assert web2["health"] == "down" and web2["effective_weight"] == 0 and web2["weight"] == 1
        assert "HTTP 500" in web2["reason"]
        # the fast path spreads new connections by the hash of their ports (select group
        # slots, not rr's order): 24 requests miss web3 or web1 with a chance of 2 x 2^-24
        assert set(names(lab, 24)) == {"web1", "web3"}
        fault.undo()


GARP = ("from scapy.all import ARP, Ether, sendp; "
        "sendp(Ether(src='{mac}', dst='ff:ff:ff:ff:ff:ff') / ARP(op={op}, hwsrc='{mac}', "
        "psrc='{vip}', hwdst='ff:ff:ff:ff:ff:ff', pdst='{vip}'), iface='{iface}', count=3, "
        "verbose=False)")


def test_a_host_claiming_the_vip_is_dropped_and_logged(run_folder):
    """A gratuitous ARP from client1 that says it is the VIP (scapy, a request and a
    reply) reaches nobody: the director's ARP entry for the VIP keeps the load
    balancer's MAC, the controller names who tried, and the service keeps answering."""
    import sys
    with LoadBalancedService(web_service("rr", check="tcp"), run_folder=run_folder) as lab:
        client, director = lab.client, lab["director"]
        vip = lab.service.vip
        # the director's ARP entry for the VIP (its first answer may take a retry when the
        # first SYN waits for a busy controller)
        wait_until(lambda: (director.cmd("curl -s -m 2 -o /dev/null -w '%%{http_code}' "
                                         "http://%s/" % vip) == "200", "no answer"), 15,
                   "the director to reach the VIP")
        before = director.cmd("ip neigh show %s" % vip).split()
        assert lab.service.vmac in before, before
        since = time.time()
        for op in (1, 2):
            out = client.cmd("%s -c \"%s\" 2>&1" % (sys.executable, GARP.format(
                mac=client.MAC(), op=op, vip=vip, iface=client.defaultIntf().name)))
            assert "Error" not in out, out
        claims = lambda: [e for e in lab.network.controller.events("vip_claim_dropped")  # noqa
                          if e["t"] >= since]
        wait_until(lambda: (len(claims()) >= 6, claims()), 10,
                   "the controller to report the six claims")
        assert {(e["mac"], e["opcode"]) for e in claims()} == {(client.MAC(), 1),
                                                                (client.MAC(), 2)}
        assert director.cmd("ip neigh show %s" % vip).split()[:5] == before[:5]
        assert lab.get()[0] == 200
