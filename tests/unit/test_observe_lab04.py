"""redlab.observe's lab 04 additions: who answers ARP for an address, parsed from Thomas
Habets' arping (Debian 12's ``arping`` 2.23), as it printed in the lab and in a namespace."""

from redlab import observe

# client1's `arping -d -c 1 -w 1 -i client1-eth0 10.0.0.100` while web1 and web2 held it
TWO_ANSWERS = """ARPING 10.0.0.100
42 bytes from 02:00:0a:00:00:0c (10.0.0.100): index=0 time=15.997 msec
42 bytes from 02:00:0a:00:00:0b (10.0.0.100): index=1 time=16.049 msec

--- 10.0.0.100 statistics ---
1 packets transmitted, 2 packets received,   0% unanswered (1 extra)
rtt min/avg/max/std-dev = 15.997/16.023/16.049/0.026 ms
"""
# `arping -0 -C 1 -c 1 -w 0.3 -i va 10.9.9.9` where nobody holds 10.9.9.9 (exit 1)
NO_ANSWER = """ARPING 10.9.9.9
Timeout

--- 10.9.9.9 statistics ---
1 packets transmitted, 0 packets received, 100% unanswered (0 extra)
"""


def test_every_mac_that_answered_is_listed_in_order():
    assert observe.parse_arping(TWO_ANSWERS) == ["02:00:0a:00:00:0c", "02:00:0a:00:00:0b"]


def test_no_answer_is_an_empty_list():
    assert observe.parse_arping(NO_ANSWER) == []
    assert observe.parse_arping("") == []


class FakeHost:
    """Only what arp_answers uses of a Mininet host: one command, its printed output."""

    name = "client1"

    def __init__(self, output):
        self.output, self.typed = output, []

    def cmd(self, line):
        self.typed.append(line)
        return self.output

    def defaultIntf(self):              # noqa: N802 (Mininet's name)
        return type("Intf", (), {"name": "client1-eth0"})()


def test_arp_answers_asks_once_and_returns_the_macs_and_the_exit_code():
    host = FakeHost(TWO_ANSWERS + "exit=1\n")
    assert observe.arp_answers(host, "10.0.0.100") == (
        ["02:00:0a:00:00:0b", "02:00:0a:00:00:0c"], 1)
    assert host.typed == ["arping -d -c 1 -w 1 -i client1-eth0 10.0.0.100; echo exit=$?"]
    host = FakeHost(NO_ANSWER + "exit=1\n")
    assert observe.arp_answers(host, "10.9.9.9", "va", anonymous=True, wait=0.3) == ([], 1)
    assert host.typed == ["arping -0 -C 1 -c 1 -w 0.3 -i va 10.9.9.9; echo exit=$?"]
