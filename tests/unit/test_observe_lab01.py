"""Lab 01's host queries (redlab/observe.py, ``# -- lab 01 --``) on the tools' real output."""

from redlab.observe import Link, parse_links

# `ip -j -s link show` in a fresh namespace: lo (up, after two pings), a veth pair of which
# one end is set up (UP, but NO-CARRIER: its peer is down) and the other is not
IP_S_LINK = (
    '[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"qdisc":"no'
    'queue","operstate":"UNKNOWN","linkmode":"DEFAULT","group":"default","txqlen":1000,"link_'
    'type":"loopback","address":"00:00:00:00:00:00","broadcast":"00:00:00:00:00:00","stats64"'
    ':{"rx":{"bytes":336,"packets":4,"errors":0,"dropped":0,"over_errors":0,"multicast":0},"t'
    'x":{"bytes":336,"packets":4,"errors":0,"dropped":0,"carrier_errors":0,"collisions":0}}},'
    '{"ifindex":2,"link":"r1-eth0","ifname":"r1-eth1","flags":["BROADCAST","MULTICAST"],"mtu"'
    ':1500,"qdisc":"noop","operstate":"DOWN","linkmode":"DEFAULT","group":"default","txqlen":'
    '1000,"link_type":"ether","address":"0a:2d:8e:6f:ee:6d","broadcast":"ff:ff:ff:ff:ff:ff","'
    'stats64":{"rx":{"bytes":0,"packets":0,"errors":0,"dropped":0,"over_errors":0,"multicast"'
    ':0},"tx":{"bytes":0,"packets":0,"errors":0,"dropped":0,"carrier_errors":0,"collisions":0'
    '}}},{"ifindex":3,"link":"r1-eth1","ifname":"r1-eth0","flags":["NO-CARRIER","BROADCAST","'
    'MULTICAST","UP","M-DOWN"],"mtu":1500,"qdisc":"noqueue","operstate":"LOWERLAYERDOWN","lin'
    'kmode":"DEFAULT","group":"default","txqlen":1000,"link_type":"ether","address":"3e:94:be'
    ':92:f0:90","broadcast":"ff:ff:ff:ff:ff:ff","stats64":{"rx":{"bytes":0,"packets":0,"error'
    's":0,"dropped":0,"over_errors":0,"multicast":0},"tx":{"bytes":0,"packets":0,"errors":0,"'
    'dropped":0,"carrier_errors":0,"collisions":0}}}]')


def test_links_name_mac_up_flag_and_packet_counts():
    links = parse_links(IP_S_LINK)
    assert set(links) == {"lo", "r1-eth0", "r1-eth1"}
    assert links["lo"] == Link("lo", "00:00:00:00:00:00", True, 4, 4)
    # set up is the UP flag, whatever the cable: r1-eth0 is up with no carrier
    assert links["r1-eth0"].up and links["r1-eth0"].mac == "3e:94:be:92:f0:90"
    assert not links["r1-eth1"].up
    assert (links["r1-eth1"].rx_packets, links["r1-eth1"].tx_packets) == (0, 0)


def test_links_of_nothing_and_without_64_bit_counters():
    assert parse_links("") == {}
    old = IP_S_LINK.replace('"stats64"', '"stats"')
    assert parse_links(old)["lo"].rx_packets == 4
