"""The load balancer's service state and decisions, without a switch (controllers.lbcore),
and IPVS's view of a conntrack dump (controllers.ctdump)."""

import collections

import pytest

from controllers import ctdump
from controllers.conntrack import CLOSING, ESTABLISHED, SYN_RECV
from controllers.lbcore import FAST_PATH_EXACTNESS, SLOTS, Service
from controllers.schedulers import ALGORITHMS
from controllers.service import parse_service

VIP = "10.0.0.100"


def service(algo="rr", weights=(1, 1, 1), **extra):
    data = dict(name="web", vip=VIP, port=80, lb_algo=algo, lb_kind="NAT",
                real_servers=[dict(name="web%d" % n, ip="10.0.0.1%d" % n, port=80, weight=w)
                              for n, w in enumerate(weights, 1)])
    data.update(extra)
    return parse_service(data)


def core(algo="rr", weights=(1, 1, 1), fast_path=True, **extra):
    c = Service(service(algo, weights, **extra), fast_path=fast_path)
    for n in range(1, len(weights) + 1):       # the switch has learned every MAC
        c.macs["10.0.0.1%d" % n] = "02:00:00:00:00:%02x" % n
    return c


def line(client_port, server_id, orig="ESTABLISHED", reply="ESTABLISHED", server_ip=None,
         dest=VIP):
    server_ip = server_ip or "10.0.0.1%d" % server_id
    return ("tcp,orig=(src=10.0.0.201,dst=%s,sport=%d,dport=80),reply=(src=%s,dst=10.0.0.201,"
            "sport=80,dport=%d),id=0,zone=32465,status=0,mark=%d,protoinfo=(state_orig=%s,"
            "state_reply=%s,wscale_orig=9,wscale_reply=9)" % (dest, client_port, server_ip,
                                                             client_port, server_id, orig, reply))


# -- conntrack dumps ----------------------------------------------------------------------

@pytest.mark.parametrize("orig, reply, state", [
    ("SYN_SENT", "CLOSED", SYN_RECV),            # the client's SYN only
    ("ESTABLISHED", "SYN_SENT", SYN_RECV),       # the server's SYN-ACK: still SYN_RECV
    ("ESTABLISHED", "ESTABLISHED", ESTABLISHED),  # the client's ACK completed it
    ("FIN_WAIT_2", "ESTABLISHED", CLOSING),
    ("ESTABLISHED", "CLOSING", CLOSING),
    ("TIME_WAIT", "TIME_WAIT", CLOSING),          # after an RST
])
def test_the_tracker_states_map_to_ipvs_states(orig, reply, state):
    assert ctdump.ipvs_state(orig, reply) == state


def test_a_dump_is_parsed_per_connection_with_its_server_mark():
    text = "\n".join([line(40000, 1), line(40001, 2, "ESTABLISHED", "SYN_SENT"),
                      line(40002, 3, dest="10.0.0.99"),
                      "udp,orig=(src=10.0.0.1,dst=10.0.0.2,sport=5,dport=53),reply=(...)"])
    entries = ctdump.parse(text, (VIP, 80))
    assert [(e.client_port, e.server, e.state) for e in entries] == [
        (40000, 1, ESTABLISHED), (40001, 2, SYN_RECV)]
    assert entries[0].server_ip == "10.0.0.11" and entries[0].active
    assert ctdump.flush_tuple(entries[0]) == (
        "ct_nw_src=10.0.0.201,ct_nw_dst=10.0.0.100,ct_nw_proto=6,ct_tp_src=40000,ct_tp_dst=80")


def test_an_unmarked_entry_has_server_0():
    text = line(40000, 1).replace(",mark=1", "")
    assert ctdump.parse(text)[0].server == 0


# -- modes and exactness -------------------------------------------------------------------

@pytest.mark.parametrize("algo", ALGORITHMS)
def test_every_scheduler_has_a_mode_and_says_how_exact_it_is(algo):
    c = core(algo)
    assert c.mode() == ("per_client" if algo in ("sh", "mh") else "slots")
    assert c.exactness() == FAST_PATH_EXACTNESS[algo]
    assert core(algo, fast_path=False).mode() == "controller"


def test_source_port_hashing_needs_the_controller_for_every_syn():
    assert core("sh", sh_port=True).mode() == "controller"
    assert "source port" in core("sh", sh_port=True).exactness()
    assert core("mh", mh_port=True).mode() == "controller"


def test_persistence_is_kept_per_client_on_the_fast_path():
    c = core("wlc", persistence_timeout=60)
    assert c.mode() == "per_client"
    assert "persistence timeout" in c.exactness()


def test_status_reports_the_path():
    path = core("wlc").status()["service"]["path"]
    assert path == dict(mode="slots", fast_path=True, exactness=FAST_PATH_EXACTNESS["wlc"])


# -- slots ---------------------------------------------------------------------------------

def shares(c):
    return collections.Counter(c.name_of(i) for i in c.slots(0.0))


def test_slots_are_256_and_follow_wrr_weights():
    c = core("wrr", weights=(3, 2, 1))
    assert len(c.slots(0.0)) == SLOTS
    s = shares(c)
    assert all(abs(s[name] - SLOTS * w / 6) <= 1 for name, w in
               (("web1", 3), ("web2", 2), ("web3", 1))), s


def test_slots_do_not_spend_the_real_schedulers_turns():
    c = core("rr")
    first = c.slots(0.0)
    assert c.slots(0.0) == first
    assert c.pick("10.0.0.201", 1000, VIP, 0.0).name == "web1"   # the kernel's first rr turn


def test_wlc_slots_follow_the_counts():
    c = core("wlc")
    c.sync(ctdump.parse("\n".join(line(40000 + n, 1) for n in range(4))), 0.0)
    s = shares(c)
    assert s["web1"] == 0 and s["web2"] + s["web3"] == SLOTS     # web1 has 4 ActiveConn


def test_servers_the_switch_cannot_reach_get_no_slot():
    c = core("rr")
    del c.macs["10.0.0.12"]
    assert set(shares(c)) == {"web1", "web3"}


def test_no_available_server_gives_no_slots():
    c = core("rr")
    for name in ("web1", "web2", "web3"):
        c.set_health(name, "down", "test")
    assert c.slots(0.0) == ()


def test_fo_puts_every_slot_on_the_highest_weight():
    assert shares(core("fo", weights=(1, 5, 2))) == {"web2": SLOTS}


# -- exact picks and counting ---------------------------------------------------------------

def test_exact_picks_count_at_once_until_a_dump_shows_them():
    c = core("wlc", fast_path=False)
    first = c.pick("10.0.0.201", 1000, VIP, 10.0)
    assert c.conns.counts(first.name) == (0, 1)                  # SYN_RECV
    second = c.pick("10.0.0.201", 1001, VIP, 10.0)
    assert second.name != first.name                             # the pending pick counted
    # a dump taken before the SYN was tracked keeps it; a later one without it drops it
    c.sync([], 10.5, dumped_at=10.5)
    assert c.conns.counts(first.name) == (0, 1)
    c.sync([], 20.0, dumped_at=20.0)
    assert c.conns.counts(first.name) == (0, 0)


def test_a_retransmitted_syn_keeps_its_server():
    c = core("rr", fast_path=False)
    first = c.pick("10.0.0.201", 1000, VIP, 0.0)
    assert c.pick("10.0.0.201", 1000, VIP, 0.1).name == first.name


def test_sync_replaces_states_and_reports_what_left():
    c = core("lc", fast_path=False)
    c.sync(ctdump.parse(line(1000, 1, "SYN_SENT", "CLOSED") + "\n" + line(1001, 2)), 0.0)
    assert c.conns.counts("web1") == (0, 1) and c.conns.counts("web2") == (1, 0)
    gone = c.sync(ctdump.parse(line(1001, 2, "FIN_WAIT_2", "TIME_WAIT")), 100.0)
    assert [(g.client_port, g.state) for g in gone] == [(1000, SYN_RECV)]
    assert c.conns.counts("web2") == (0, 1)


def test_copies_move_a_connection_as_the_kernel_does_and_never_back():
    from controllers.copies import CLOSED, CLOSED_BY_SERVER, OPENED, Copy
    c = core("wlc", fast_path=False)
    c.pick("10.0.0.201", 1000, VIP, 10.0)                      # web1, SYN_RECV
    assert c.conns.counts("web1") == (0, 1)
    assert c.transition(Copy(OPENED, 1, "10.0.0.201", 1000), 10.1)
    assert c.conns.counts("web1") == (1, 0)                    # the client's ACK
    assert not c.transition(Copy(OPENED, 1, "10.0.0.201", 1000), 10.1)   # its data, same batch
    assert c.transition(Copy(CLOSED_BY_SERVER, 1, "10.0.0.201", 1000), 10.2)
    assert c.conns.counts("web1") == (0, 1)
    assert not c.transition(Copy(CLOSED, 1, "10.0.0.201", 1000), 10.3)
    assert not c.transition(Copy(OPENED, 1, "10.0.0.201", 1000), 10.4)   # never back
    assert c.conns.counts("web1") == (0, 1)
    # a connection the table did not hold (scheduled by the switch) is added in its state
    assert c.transition(Copy(OPENED, 2, "10.0.0.202", 2000), 10.5)
    assert c.conns.counts("web2") == (1, 0)
    assert not c.transition(Copy(OPENED, 9, "10.0.0.202", 2001), 10.5)  # no server 9
    # a dump saw the handshake's end first: the copy is still the connection's first
    c.pick("10.0.0.201", 1002, VIP, 11.0)
    c.sync(ctdump.parse(line(1002, c.ids[c.conns.get("10.0.0.201", 1002).server])), 11.2,
           dumped_at=11.1)
    assert c.conns.get("10.0.0.201", 1002).state == ESTABLISHED
    assert c.transition(Copy(OPENED, c.ids[c.conns.get("10.0.0.201", 1002).server],
                             "10.0.0.201", 1002), 11.3)


def test_a_dump_read_while_copies_arrived_does_not_undo_them():
    """The dump was asked for at 20.0; a copy at 20.05 closed the connection and a pick at
    20.06 reused a closing port: both are newer than what the dump says."""
    from controllers.copies import CLOSED, Copy
    c = core("lc", fast_path=False)
    c.sync(ctdump.parse(line(1000, 1) + "\n" + line(1001, 2, "FIN_WAIT_2", "TIME_WAIT")), 10.0)
    c.transition(Copy(CLOSED, 1, "10.0.0.201", 1000), 20.05)
    c.pick("10.0.0.201", 1001, VIP, 20.06)
    reused = c.conns.get("10.0.0.201", 1001)
    c.sync(ctdump.parse(line(1000, 1) + "\n" + line(1001, 2, "FIN_WAIT_2", "TIME_WAIT")),
           20.1, dumped_at=20.0)
    assert c.conns.get("10.0.0.201", 1000).state == CLOSING
    assert c.conns.get("10.0.0.201", 1001) is reused and reused.state == SYN_RECV
    # the next dump, asked for after both, is believed again
    c.sync(ctdump.parse(line(1001, reused and c.ids[reused.server])), 21.0, dumped_at=21.0)
    assert c.conns.get("10.0.0.201", 1000) is None
    assert c.conns.get("10.0.0.201", 1001).state == ESTABLISHED


def test_the_marks_bits_above_the_server_are_not_its_id():
    text = line(40000, 1).replace("mark=1,", "mark=%d," % (1 | ctdump.MARK_OPEN))
    text += "\n" + line(40001, 2).replace("mark=2,", "mark=%d," % (2 | ctdump.MARK_CLOSING))
    assert [e.server for e in ctdump.parse(text)] == [1, 2]


def test_persistence_sends_a_client_back_to_its_server():
    c = core("rr", fast_path=False, persistence_timeout=60)
    first = c.pick("10.0.0.201", 1000, VIP, 0.0)
    assert [c.pick("10.0.0.201", p, VIP, 1.0).name for p in range(1001, 1005)] == [
        first.name] * 4


# -- commands ------------------------------------------------------------------------------

def test_a_server_going_down_is_flushed_and_the_slots_refilled():
    c = core("rr")
    reply, effects = c.command({"cmd": "health", "server": "web2", "state": "down",
                                "reason": "HTTP 500"})
    assert reply["ok"] and effects.refill and effects.flush == [c.ids["web2"]]
    assert "web2" not in shares(c)
    _, again = c.command({"cmd": "health", "server": "web2", "state": "down", "reason": "x"})
    assert not again.refill and again.flush == []                 # no change, nothing to do


def test_a_drain_keeps_connections_but_gets_no_new_ones():
    c = core("rr")
    reply, effects = c.command({"cmd": "set_weight", "server": "web1", "weight": 0})
    assert reply == {"ok": True} and effects.refill and effects.flush == []
    assert "web1" not in shares(c)


@pytest.mark.parametrize("request_, error", [
    ({"cmd": "set_weight", "server": "web9", "weight": 1}, "no real server named 'web9'"),
    ({"cmd": "set_weight", "server": "web1", "weight": -1}, "weight must be an integer >= 0"),
    ({"cmd": "set_weight", "server": "web1", "weight": True}, "weight must be an integer"),
    ({"cmd": "set_scheduler", "lb_algo": "fastest"}, "fastest"),
    ({"cmd": "health", "server": "nobody", "state": "down"}, "no real server named"),
    ({"cmd": "remove_server", "server": "web7"}, "no real server named 'web7'"),
    ({"cmd": "add_server", "name": "web4", "ip": "not-an-ip"}, "not-an-ip"),
    ({"cmd": "add_server", "name": "web1", "ip": "10.0.0.14"}, "web1"),
    ({"cmd": "add_server", "ip": "10.0.0.14"}, "needs 'name'"),
    ({"cmd": "reboot"}, "unknown command 'reboot'"),
])
def test_refused_commands_change_nothing(request_, error):
    c = core("rr")
    before = (c.status(), list(c.service.real_servers))
    reply, effects = c.command(request_)
    assert not reply["ok"] and error in reply["error"], reply
    assert (c.status(), list(c.service.real_servers)) == before
    assert not effects.refill and not effects.flush


def test_an_added_server_waits_for_its_checks_when_a_checker_runs():
    c = core("rr")
    c.command({"cmd": "servers"})                        # a checker follows the list
    reply, effects = c.command({"cmd": "add_server", "name": "web4", "ip": "10.0.0.14"})
    assert reply["ok"] and effects.stage and c.health["web4"] == "down"
    assert c.ids["web4"] == 4
    c.macs["10.0.0.14"] = "02:00:00:00:00:04"
    c.command({"cmd": "health", "server": "web4", "state": "up", "reason": "2 checks"})
    assert shares(c)["web4"] == 64


def test_a_removed_server_gets_no_new_connections():
    c = core("rr")
    reply, effects = c.command({"cmd": "remove_server", "server": "web3"})
    assert reply["ok"] and effects.refill
    assert set(shares(c)) == {"web1", "web2"}
    assert [s["name"] for s in c.status()["servers"]] == ["web1", "web2"]


def test_the_fast_path_can_be_switched_off_and_on():
    c = core("wlc")
    reply, effects = c.command({"cmd": "set_fast_path", "fast_path": False})
    assert reply["ok"] and effects.refill and c.mode() == "controller"
    reply, _ = c.command({"cmd": "set_fast_path", "fast_path": "yes"})
    assert not reply["ok"] and "true or false" in reply["error"]
    c.command({"cmd": "set_fast_path", "fast_path": True})
    assert c.mode() == "slots"


@pytest.mark.parametrize("algo, reads", [("rr", False), ("wrr", False), ("sh", False),
                                         ("dh", False), ("mh", False), ("fo", False),
                                         ("lc", True), ("wlc", True), ("sed", True),
                                         ("nq", True), ("lblc", True), ("lblcr", True),
                                         ("ovf", True), ("twos", True)])
def test_an_exact_pick_dumps_the_tracker_only_when_it_reads_the_counts(algo, reads):
    assert core(algo, fast_path=False).reads_counts() is reads
    assert core(algo, fast_path=False, persistence_timeout=60).reads_counts() is True
