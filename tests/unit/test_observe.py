"""redlab.observe's parsers, on the tools' real output (iproute2 6.1 and BIND 9.18's dig on
Debian 12)."""

import pytest

from redlab import observe
from redlab.errors import RedlabError

NEIGH = ('[{"dst":"10.0.0.100","dev":"h1-eth0","lladdr":"00:00:00:00:00:02","state":["REACHABLE"]},'
         '{"dst":"10.0.0.1","dev":"h1-eth0","state":["FAILED"]},'
         '{"dst":"10.0.0.12","dev":"h1-eth0","lladdr":"00:00:00:00:00:12","state":["STALE"]}]')
ADDR = ('[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"addr_info":'
        '[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo"}]},'
        '{"ifindex":2,"ifname":"web1-eth0","addr_info":[{"family":"inet","local":"10.0.0.11",'
        '"prefixlen":24},{"family":"inet","local":"10.0.0.100","prefixlen":32}]}]')
DIG = """www.lab.example.	5	IN	A	10.0.0.12
www.lab.example.	5	IN	A	10.0.0.13
www.lab.example.	5	IN	A	10.0.0.11
"""


def test_neighbours_parse_with_their_state_and_mac():
    table = observe.parse_neigh_json(NEIGH)
    assert table[0] == observe.Neighbour("10.0.0.100", "00:00:00:00:00:02", "REACHABLE",
                                         "h1-eth0")
    assert table[1].mac is None and table[1].state == "FAILED"
    assert observe.parse_neigh_json("") == []


def test_addresses_parse_per_interface_with_their_prefix():
    assert observe.parse_addresses(ADDR) == {"lo": ["127.0.0.1/8"],
                                             "web1-eth0": ["10.0.0.11/24", "10.0.0.100/32"]}


def test_dig_answers_keep_their_order_and_ttl():
    assert observe.parse_dig(DIG) == (["10.0.0.12", "10.0.0.13", "10.0.0.11"], 5)
    assert observe.parse_dig("") == ([], None)


class Host:
    """A host whose ``cmd`` runs in this namespace: observe's own commands, for real."""
    name = "here"

    def cmd(self, command):
        import subprocess
        return subprocess.run(command, shell=True, capture_output=True, text=True).stdout


def test_the_queries_run_the_real_tools():
    host = Host()
    assert "lo" in observe.addresses(host)
    assert observe.holds(host, "127.0.0.1") and not observe.holds(host, "192.0.2.254")
    assert observe.holders([host], "127.0.0.1") == ["here"]
    assert observe.sysctl(host, "net.ipv4.conf.lo.forwarding") in (0, 1)
    with pytest.raises(RedlabError, match="no sysctl net.ipv4.nope"):
        observe.sysctls(host, ["net.ipv4.nope"])
    assert isinstance(observe.neigh_table(host), list)
    assert isinstance(observe.routes(host), list)


def test_a_sysctl_of_two_values_is_set_and_read_back(tmp_path):
    """In a network namespace of its own, so the machine's range is untouched."""
    import subprocess
    import shutil
    if not shutil.which("unshare") or subprocess.run(["unshare", "-n", "true"]).returncode:
        pytest.skip("needs unshare -n (root)")

    class Namespace(Host):
        def cmd(self, command):
            return super().cmd("unshare -n sh -c %s" % __import__("shlex").quote(
                command + "; sysctl net.ipv4.ip_local_port_range"))
    # one namespace per command: set and read back in the same one
    out = Namespace().cmd("sysctl -qw 'net.ipv4.ip_local_port_range=40000 40100'")
    assert observe.sysctls(Host(), ["net.ipv4.ip_forward"])      # the parser, here
    assert "40000\t40100" in out
