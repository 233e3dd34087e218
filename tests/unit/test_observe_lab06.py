"""``redlab.observe.rules``: policy-routing rules, parsed from ``ip -j rule show``.

Lab 06's bench adds a rule that drops the servers' SYN-ACKs to a range of client ports (so
the load balancer counts those connections in InActConn) and reads it back from here.  The
text below is what iproute2 6.1 (Debian 12) printed in a namespace after
``ip rule add pref 100 ipproto tcp dport 61000-61999 blackhole``.
"""

from redlab.observe import parse_rules

IP_J_RULE_SHOW = (
    '[{"priority":0,"src":"all","table":"local"},{"priority":100,"src":"all","ipproto":"tcp",'
    '"dport_start":61000,"dport_end":61999,"action":"blackhole"},{"priority":32766,"src":"all",'
    '"table":"main"},{"priority":32767,"src":"all","table":"default"}]\n')


def test_the_rules_come_in_priority_order_with_their_port_range_and_action():
    rules = parse_rules(IP_J_RULE_SHOW)
    assert [r["priority"] for r in rules] == [0, 100, 32766, 32767]
    blackhole = rules[1]
    assert (blackhole["ipproto"], blackhole["dport_start"], blackhole["dport_end"],
            blackhole["action"]) == ("tcp", 61000, 61999, "blackhole")
    assert "action" not in rules[2] and rules[2]["table"] == "main"


def test_no_output_is_no_rule():
    assert parse_rules("") == []
