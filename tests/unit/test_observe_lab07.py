"""Lab 07's switch query (redlab/observe.py, ``# -- lab 07 --``) on Open vSwitch's real output."""

from redlab.observe import parse_flows

# `ovs-ofctl -O OpenFlow13 dump-flows` (Open vSwitch 3.1, Debian 12) of a userspace bridge
# with flows like the lab's learning switch: ARP to the controller, a forwarding flow per
# MAC in table 1, a table-miss flood
DUMP = """\
OFPST_FLOW reply (OF1.3) (xid=0x2):
 cookie=0x0, duration=0.381s, table=0, n_packets=0, n_bytes=0, priority=20,arp actions=CONTROLLER:65535,goto_table:1
 cookie=0x0, duration=0.254s, table=0, n_packets=0, n_bytes=0, priority=10,in_port=1,dl_src=02:00:0a:00:00:c9 actions=goto_table:1
 cookie=0x0, duration=0.483s, table=0, n_packets=0, n_bytes=0, priority=0 actions=NORMAL
 cookie=0x0, duration=0.134s, table=1, n_packets=0, n_bytes=0, priority=10,dl_dst=02:00:0a:00:00:c9 actions=output:1
 cookie=0x0, duration=0.029s, table=1, n_packets=0, n_bytes=0, priority=0 actions=FLOOD
"""

# lab 07's s1 at its first --cli stop (tests/labs/test_cli_hints.py's transcript): the
# controller's cookie, running counters
LAB = """\
 cookie=0x7ed1ab, duration=0.893s, table=0, n_packets=14, n_bytes=1264, priority=10,in_port=1,dl_src=02:00:0a:00:00:c9 actions=goto_table:1
 cookie=0x7ed1ab, duration=0.891s, table=1, n_packets=10, n_bytes=892, priority=10,dl_dst=02:00:0a:00:00:0b actions=output:2
"""
# the same switch seen from the walk-through (a terminal: ovs-ofctl names the ports, quoted),
# as it printed the line
NAMED = ('table=1, n_packets=48, priority=10,dl_dst=02:00:0a:00:00:0b actions=output:"s1-eth2"')


def test_flows_parse_with_their_table_counters_match_and_actions():
    flows = parse_flows(DUMP)
    assert len(flows) == 5                          # the reply's header is not a flow
    arp, learned = flows[0], flows[1]
    assert (arp["table"], arp["n_packets"], arp["priority"], arp["arp"]) == (0, 0, 20, True)
    assert arp["actions"] == "CONTROLLER:65535,goto_table:1"
    assert learned["in_port"] == "1" and learned["dl_src"] == "02:00:0a:00:00:c9"
    assert [f["table"] for f in flows] == [0, 0, 0, 1, 1]
    assert flows[3]["dl_dst"] == "02:00:0a:00:00:c9" and flows[3]["actions"] == "output:1"


def test_a_flows_line_leaves_out_what_changes_between_dumps():
    """cookie, duration and n_bytes go; n_packets stays (the walk-through counts it)."""
    assert parse_flows(DUMP)[0]["line"] == (
        "table=0, n_packets=0, priority=20,arp actions=CONTROLLER:65535,goto_table:1")


def test_the_labs_flows_with_their_counters_and_quoted_port_names():
    client, web1 = parse_flows(LAB)
    assert client["in_port"] == "1" and client["n_packets"] == 14 and client["cookie"] == "0x7ed1ab"
    assert web1["dl_dst"] == "02:00:0a:00:00:0b" and web1["n_packets"] == 10
    assert web1["line"] == ("table=1, n_packets=10, priority=10,dl_dst=02:00:0a:00:00:0b "
                            "actions=output:2")
    [named] = parse_flows(NAMED)
    assert named["actions"] == 'output:"s1-eth2"' and named["line"] == NAMED
    assert (named["table"], named["n_packets"]) == (1, 48)


def test_no_output_no_flows():
    assert parse_flows("") == []
    assert parse_flows("OFPST_FLOW reply (OF1.3) (xid=0x2):\n") == []
