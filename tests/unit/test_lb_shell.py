"""The load balancer's os-ken shell (controllers.lb) against a fake switch: what it sends.

No root and no Open vSwitch daemon: a fake datapath serializes every OpenFlow message the
app sends, and ``ovs-ofctl ofp-print`` (OVS's own decoder) must read each one -- a message
OVS would refuse fails here (os-ken once wrote NAT actions OVS rejects with BAD_LEN).
A fake unixctl stands in for ovs-vswitchd's connection tracker.
"""

import json
import shutil
import subprocess

import pytest
from os_ken.ofproto import ofproto_v1_3, ofproto_v1_3_parser

from redlab.lb import service_dict, web_service

scapy = pytest.importorskip("scapy.all")

CLIENT = "10.0.0.201"


class FakeDatapath:
    ofproto = ofproto_v1_3
    ofproto_parser = ofproto_v1_3_parser
    id = 1

    def __init__(self):
        self.sent = []
        self.xid = 0

    def set_xid(self, msg):
        self.xid += 1
        msg.set_xid(self.xid)

    def send_msg(self, msg):
        self.set_xid(msg)
        msg.serialize()
        self.sent.append(msg)

    def take(self, kind=None):
        sent, self.sent = self.sent, []
        return [m for m in sent if kind is None or type(m).__name__ == kind]


class FakeTracker:
    """``dpctl/dump-conntrack`` and ``dpctl/flush-conntrack`` of one zone."""

    def __init__(self):
        self.entries = {}          # client port -> (server id, orig state, reply state)
        self.flushed = []

    def call(self, method, *params):
        if method == "dpctl/dump-conntrack":
            return "\n".join(
                "tcp,orig=(src=%s,dst=10.0.0.100,sport=%d,dport=80),reply=(src=10.0.0.1%d,"
                "dst=%s,sport=80,dport=%d),id=0,zone=32465,status=0,mark=%d,protoinfo=("
                "state_orig=%s,state_reply=%s)" % (CLIENT, port, server, CLIENT, port, server,
                                                    orig, reply)
                for port, (server, orig, reply) in self.entries.items())
        if method == "dpctl/flush-conntrack":
            port = int(params[1].split("ct_tp_src=")[1].split(",")[0])
            self.flushed.append(port)
            del self.entries[port]
            return ""
        raise AssertionError("unexpected unixctl %s" % method)


class FakeCopyPort:
    """The counting port (controllers.copies.CopyPort): the copies a test puts in it."""

    name, ofport = "s1-lbc", 9

    def __init__(self):
        self.waiting, self.dropped = [], 0

    def read_all(self):
        found, self.waiting = self.waiting, []
        return found

    def lost(self):
        lost, self.dropped = self.dropped, 0
        return lost


@pytest.fixture
def lb(tmp_path, monkeypatch):
    def make(algo="rr", fast_path=True, lb_kind="NAT", copy_port=False, **config):
        config.update(service=service_dict(web_service(algo, lb_kind=lb_kind)),
                      fast_path=fast_path, events_file=str(tmp_path / "events.jsonl"))
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
        monkeypatch.setenv("REDLAB_CONTROLLER_CONFIG", str(path))
        from controllers import copies
        from controllers.lb import LoadBalancer

        def open_port(dpid):            # never a real bridge's port from a unit test
            if copy_port:
                return FakeCopyPort()
            raise copies.CopyPortError("no counting port in this test")
        monkeypatch.setattr(copies.CopyPort, "open", staticmethod(open_port))
        app = LoadBalancer()
        app.unixctl = FakeTracker()
        dp = FakeDatapath()
        app.reset_tables(dp)
        app.setup_tables(dp)
        for n in (1, 2, 3):            # the real servers answered the ARP probes
            app.core.macs["10.0.0.1%d" % n] = "02:00:0a:00:00:%02x" % (10 + n)
        app.sync_switch()
        return app, dp
    return make


def decoded(messages):
    """OVS's own text for each message (ovs-ofctl ofp-print)."""
    if shutil.which("ovs-ofctl") is None:
        pytest.skip("ovs-ofctl is not installed")
    texts = []
    for msg in messages:
        out = subprocess.run(["ovs-ofctl", "ofp-print", bytes(msg.buf).hex()],
                             capture_output=True, text=True).stdout
        assert "decode error" not in out and out.strip(), out
        texts.append(out)
    return "\n".join(texts)


def has_line(text, *parts):
    return any(all(part in line for part in parts) for line in text.splitlines())


def test_every_message_of_the_fast_path_is_one_ovs_accepts(lb):
    app, dp = lb("rr")
    text = decoded(dp.take())
    # the server stage: commit with the server's mark as the client sent it, then NAT
    assert has_line(text, "reg2=0x2", "actions=ct(commit,zone=32465,exec(set_field:0x2->"
                    "ct_mark)),set_field:02:00:0a:00:00:0c->eth_dst,set_field:10.0.0.12->"
                    "ip_dst,set_field:80->tcp_dst")
    assert "nat" not in text                    # the tracker never NATs (LoadBalancer.ct)
    # known connections follow their mark; new SYNs go to the select group
    assert has_line(text, "ct_state=-inv+trk,ct_mark=0x2",
                    "actions=set_field:02:00:0a:00:00:0c->eth_dst,set_field:10.0.0.12->ip_dst")
    # replies are rewritten to the VIP before the tracker; what it does not know goes back
    assert has_line(text, "tcp,nw_src=10.0.0.12,tp_src=80", "set_field:0x2->reg3,"
                    "set_field:10.0.0.100->ip_src,set_field:80->tcp_src,ct(table=3,zone=32465)")
    assert has_line(text, "priority=50,tcp,reg3=0x2",
                    "actions=set_field:10.0.0.12->ip_src,set_field:80->tcp_src,goto_table:5")
    assert has_line(text, "ct_state=+new-inv+trk,tcp,tcp_flags=+syn-rst-ack", "actions=group:1")
    group = next(line for line in text.splitlines() if "type=select" in line)
    assert group.count("bucket=") == 256            # exactly 256: OVS's dp_hash, no upcall
    assert group.count("set_field:0x1->reg2,resubmit(,4)") in (85, 86)


def test_direct_routing_tracks_the_replies_from_the_vip_without_nat(lb):
    app, dp = lb("wrr", lb_kind="DR")
    text = decoded(dp.take())
    assert has_line(text, "tcp,nw_src=10.0.0.100,tp_src=80", "actions=ct(table=3,zone=32465)")
    assert "ct(commit,zone=32465,exec(set_field:0x1->ct_mark))" in text
    assert "nat" not in text


def test_a_failed_server_is_flushed_and_leaves_the_slots(lb):
    app, dp = lb("rr")
    dp.take()
    app.unixctl.entries = {40000: (2, "ESTABLISHED", "ESTABLISHED"),
                           40001: (1, "ESTABLISHED", "ESTABLISHED"),
                           40002: (2, "SYN_SENT", "CLOSED")}
    reply = app.command({"cmd": "health", "server": "web2", "state": "down", "reason": "500"})
    assert reply == {"ok": True, "cleared": 2}
    assert sorted(app.unixctl.flushed) == [40000, 40002]
    group = decoded(dp.take("OFPGroupMod"))
    assert "0x2->reg2" not in group and group.count("bucket=") == 256
    assert app.core.status()["servers"][1]["active"] == 0


def test_status_counts_what_the_tracker_holds(lb):
    app, dp = lb("wlc")
    app.unixctl.entries = {40000: (1, "ESTABLISHED", "ESTABLISHED"),
                           40001: (1, "ESTABLISHED", "SYN_SENT"),
                           40002: (3, "FIN_WAIT_2", "TIME_WAIT")}
    servers = app.command({"cmd": "status"})["servers"]
    assert [(s["active"], s["inactive"]) for s in servers] == [(1, 1), (0, 0), (0, 1)]


def syn(port):
    frame = (scapy.Ether(src="02:00:0a:00:00:c9", dst="02:fe:0a:00:00:64")
             / scapy.IP(src=CLIENT, dst="10.0.0.100") / scapy.TCP(sport=port, dport=80, flags="S"))
    return bytes(frame)


class PacketIn:
    def __init__(self, data, dp, table):
        self.data, self.datapath, self.table_id = data, dp, table
        self.match = {"in_port": 1}


def test_the_exact_mode_schedules_each_syn_with_one_packet_out_and_no_flow(lb):
    app, dp = lb("rr", fast_path=False)
    text = decoded(dp.take())
    assert has_line(text, "tcp_flags=+syn-rst-ack", "actions=CONTROLLER")
    assert "group:1" not in text
    from controllers.fastpkt import parse_tcp
    picks = []
    for port in (40000, 40001, 40002, 40003):
        data = syn(port)
        app.new_connection(dp, PacketIn(data, dp, app.VIP_TABLE), parse_tcp(data))
        sent = dp.take()
        assert [type(m).__name__ for m in sent] == ["OFPPacketOut"]
        out = decoded(sent)
        picks.append(out.split("set_field:0x")[1][0])
        assert "resubmit(,4)" in out
    assert picks == ["1", "2", "3", "1"]                  # the kernel's rr, one at a time


def test_switching_to_the_exact_mode_and_back(lb):
    app, dp = lb("wlc")
    dp.take()
    assert app.command({"cmd": "set_fast_path", "fast_path": False}) == {"ok": True}
    assert "actions=CONTROLLER" in decoded(dp.take("OFPFlowMod"))
    app.command({"cmd": "set_fast_path", "fast_path": True})
    assert "actions=group:1" in decoded(dp.take("OFPFlowMod"))


def test_syns_waiting_for_the_counts_share_one_dump_and_are_counted_in_order(lb):
    """wlc in the exact mode: the SYNs that arrived while the tracker was read are scheduled
    after one dump, each pick counted before the next (IPVS for SYNs close together)."""
    app, dp = lb("wlc", fast_path=False)
    dp.take()
    from controllers.fastpkt import parse_tcp
    calls = []
    call = app.unixctl.call
    app.unixctl.call = lambda method, *params: calls.append(method) or call(method, *params)
    # web1 holds one established connection: wlc sends the next three to web2, web3, web2
    app.unixctl.entries = {39999: (1, "ESTABLISHED", "ESTABLISHED")}
    for port in (40000, 40001, 40002):
        data = syn(port)
        # queued as new_connection() queues them, without waking the scheduling thread
        app.waiting.append((dp, PacketIn(data, dp, app.VIP_TABLE), parse_tcp(data)))
    assert app.schedule_waiting() == 3
    assert calls == ["dpctl/dump-conntrack"]
    sent = dp.take()
    assert [type(m).__name__ for m in sent] == ["OFPPacketOut"] * 3
    picks = [decoded([m]).split("set_field:0x")[1][0] for m in sent]
    assert picks == ["2", "3", "2"]
    servers = app.core.status()["servers"]
    assert [(s["active"], s["inactive"]) for s in servers] == [(1, 0), (0, 2), (0, 1)]


def test_the_scheduling_thread_schedules_what_new_connection_queues(lb):
    app, dp = lb("wlc", fast_path=False)
    dp.take()
    from controllers.fastpkt import parse_tcp
    from redlab.wait import wait_until
    data = syn(40000)
    app.new_connection(dp, PacketIn(data, dp, app.VIP_TABLE), parse_tcp(data))
    wait_until(lambda: dp.sent, 5, "the packet-out of the queued SYN")
    assert [type(m).__name__ for m in dp.take()] == ["OFPPacketOut"]


def test_a_handler_that_raises_is_logged_and_the_next_packet_is_served(lb, tmp_path):
    """os-ken's native hub ends an app on any exception of a handler (its TaskExit is
    Exception), silently: the switch's receive thread then blocks and every later packet-in
    is lost.  Ours log it and go on."""
    app, dp = lb("rr", fast_path=False)
    dp.take()

    class Event:
        def __init__(self, data):
            self.msg = PacketIn(data, dp, app.VIP_TABLE)

    pick = app.core.pick
    app.core.pick = lambda *args: 1 / 0
    assert app.packet_in(Event(syn(40000))) is None
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    error = [e for e in events if e["event"] == "handler_error"]
    assert error and error[0]["handler"] == "packet_in"
    assert error[0]["error"].startswith("ZeroDivisionError")
    app.core.pick = pick
    dp.take()
    app.packet_in(Event(syn(40001)))
    assert len(dp.take("OFPPacketOut")) == 1


def test_counts_read_while_syns_are_scheduled_do_not_break_either(lb):
    """The tracker is read on its own thread (the refill loop) while packet-ins pick: both
    change the connection table.  Without the app's lock, a pick iterating the table while a
    dump replaced it raised 'dictionary changed size during iteration' (seen under load)."""
    import threading
    app, dp = lb("wlc", fast_path=False)
    dp.take()
    from controllers.fastpkt import parse_tcp
    app.unixctl.entries = {p: (1 + p % 3, "ESTABLISHED", "ESTABLISHED")
                           for p in range(30000, 30600)}
    stop = threading.Event()
    errors = []

    def read():
        while not stop.is_set():
            try:
                app.dump()
            except Exception as exc:     # noqa: BLE001 -- reported below
                errors.append(exc)
    reader = threading.Thread(target=read)
    reader.start()
    try:
        for port in range(40000, 40400):
            data = syn(port)
            app.waiting.append((dp, PacketIn(data, dp, app.VIP_TABLE), parse_tcp(data)))
            app.schedule_waiting()
    finally:
        stop.set()
        reader.join()
    assert not errors
    assert len(dp.take("OFPPacketOut")) == 400


# -- the exact mode counts from the switch's copies ------------------------------------------

def test_the_exact_mode_copies_each_transition_to_the_counting_port(lb):
    app, dp = lb("wlc", fast_path=False, copy_port=True)
    text = decoded(dp.take())
    # nothing enters the switch from the counting port
    assert has_line(text, "priority=1000,in_port=9", "actions=drop")
    # the client's ACK that completes the handshake, once: committed with the open bit
    assert has_line(text, "priority=105,ct_state=+est-inv+trk,ct_mark=0x2/0x3ffff,tcp,"
                    "tcp_flags=-fin-syn-rst+ack", "actions=ct(commit,zone=32465,exec("
                    "set_field:0x10002->ct_mark)),set_field:02:72:6c:01:00:02->eth_dst,"
                    "output(port=9,max_len=96),set_field:02:00:0a:00:00:0c->eth_dst,"
                    "set_field:10.0.0.12->ip_dst,set_field:80->tcp_dst,goto_table:5")
    # the first FIN or RST of the client, and of the server (its source put back)
    for flag in ("fin", "rst"):
        assert has_line(text, "ct_state=-inv+trk,ct_mark=0x2/0x2ffff,tcp,tcp_flags=+" + flag,
                        "set_field:0x20002->ct_mark", "set_field:02:72:6c:02:00:02->eth_dst,"
                        "output(port=9,max_len=96),set_field:02:00:0a:00:00:0c->eth_dst")
        assert has_line(text, "table:3", "ct_state=+rpl-inv+trk,ct_mark=0x2/0x2ffff,tcp,"
                        "tcp_flags=+" + flag, "set_field:02:72:6c:03:00:02->eth_src,"
                        "output(port=9,max_len=96),set_field:02:fe:0a:00:00:64->eth_src,"
                        "goto_table:5")
    # a marked connection follows its server whatever the bits above
    assert has_line(text, "priority=100,ct_state=-inv+trk,ct_mark=0x2/0xffff,tcp")


def test_the_fast_path_and_schedulers_that_read_no_counts_copy_nothing(lb):
    app, dp = lb("wlc", fast_path=True, copy_port=True)
    assert "max_len=96" not in decoded(dp.take())
    app.command({"cmd": "set_fast_path", "fast_path": False})
    assert decoded(dp.take()).count("max_len=96") == 3 * 5
    app.command({"cmd": "set_scheduler", "lb_algo": "rr"})      # reads no counts
    text = decoded(dp.take())
    assert "max_len=96" not in text and text.count(" DEL table:") == 2    # tables 2 and 3
    assert app.command({"cmd": "status"})["service"]["path"]["counting"] == \
        "not read by this scheduler"


def copy(kind, port, server):
    from controllers.copies import Copy
    return Copy(kind, server, CLIENT, port)


def test_picks_read_the_copies_and_dump_only_while_the_zone_is_small(lb, tmp_path):
    from controllers.copies import OPENED
    from controllers.fastpkt import parse_tcp
    app, dp = lb("wlc", fast_path=False, copy_port=True, dump_each_pick_max=2)
    dp.take()
    calls = []
    call = app.unixctl.call
    app.unixctl.call = lambda method, *params: calls.append(method) or call(method, *params)

    def pick(port):
        data = syn(port)
        app.waiting.append((dp, PacketIn(data, dp, app.VIP_TABLE), parse_tcp(data)))
        assert app.schedule_waiting() == 1
        return decoded(dp.take()).split("set_field:0x")[1][0]

    # three connections in the tracker: more than dump_each_pick_max
    app.unixctl.entries = {p: (1 + p % 3, "ESTABLISHED", "ESTABLISHED") for p in (1, 2, 3)}
    app.dump()
    calls.clear()
    # web1's and web2's new connections completed their handshakes: only the copies say so
    assert [pick(40000), pick(40001)] == ["1", "2"]
    app.copies.waiting += [copy(OPENED, 40000, 1), copy(OPENED, 40001, 2)]
    assert pick(40002) == "3"          # web1 and web2 have 2 active each, web3 1
    assert calls == []                 # no dump: the copies counted
    assert app.core.status()["servers"][0]["active"] == 2
    # a lost copy: the next pick waits for a dump
    app.copies.dropped = 1
    app.read_copies()
    pick(40003)
    assert calls == ["dpctl/dump-conntrack"]
    # a small zone: a dump before each pick, its expiries exact
    app.unixctl.entries = {}
    app.dump()
    calls.clear()
    pick(40004)
    assert calls == ["dpctl/dump-conntrack"]
    events = [json.loads(line) for line in open(app.event_log.path)]
    assert [e["count"] for e in events if e["event"] == "copies_lost"] == [1]



def test_a_counting_port_that_went_away_brings_back_the_dump_before_each_pick(lb):
    from controllers.copies import CopyPortError
    from controllers.fastpkt import parse_tcp
    app, dp = lb("wlc", fast_path=False, copy_port=True, dump_each_pick_max=0)
    dp.take()
    app.unixctl.entries = {p: (1, "ESTABLISHED", "ESTABLISHED") for p in (1, 2)}
    app.dump()
    port = app.copies
    closed = []
    port.close = lambda: closed.append(True)

    def gone():
        raise CopyPortError("cannot read the counting port s1-lbc: [Errno 19] No such device")
    port.read_all = gone
    assert app.read_copies() == 0
    assert app.copies is None and app.counting is None and closed == [True]
    calls = []
    call = app.unixctl.call
    app.unixctl.call = lambda method, *params: calls.append(method) or call(method, *params)
    data = syn(40000)
    app.waiting.append((dp, PacketIn(data, dp, app.VIP_TABLE), parse_tcp(data)))
    assert app.schedule_waiting() == 1
    assert calls == ["dpctl/dump-conntrack"]
    assert app.command({"cmd": "status"})["service"]["path"]["counting"] == \
        "a dump of the tracker before each pick"


@pytest.mark.parametrize("algo, fast_path, text", [
    ("wlc", True, "dumps of the tracker every refill period"),
    ("rr", True, "not read by this scheduler"),
    ("sh", True, "not read by this scheduler"),
    ("rr", False, "not read by this scheduler"),
    ("wlc", False, "copies of each handshake's end and first FIN or RST from the switch; "
                   "a dump before each pick while the zone holds at most 256 connections, "
                   "else for its expiries at most 10% of the time"),
])
def test_status_says_how_the_counts_are_kept(lb, algo, fast_path, text):
    app, dp = lb(algo, fast_path=fast_path, copy_port=True)
    assert app.command({"cmd": "status"})["service"]["path"]["counting"] == text
