"""controllers.learning: where each MAC and IP lives, per switch."""

import pytest

from controllers.learning import MOVED, NEW, SAME, Change, MacTable, is_gratuitous, \
    is_multicast

VMAC = "00:00:5e:00:01:33"
WEB1_MAC, WEB2_MAC = "02:00:0a:00:00:0b", "02:00:0a:00:00:0c"
VIP = "10.0.0.100"


@pytest.fixture
def table():
    return MacTable()


def test_first_sighting_of_a_mac_is_new(table):
    assert table.learn(1, VMAC, 2) == Change(NEW)
    assert table.port_of(1, VMAC) == 2


def test_same_mac_on_same_port_is_same(table):
    table.learn(1, VMAC, 2)
    assert table.learn(1, VMAC, 2) == Change(SAME)


def test_mac_on_another_port_moved_and_tells_the_old_port(table):
    table.learn(1, VMAC, 2)
    assert table.learn(1, VMAC, 3) == Change(MOVED, old_port=2)
    assert table.port_of(1, VMAC) == 3


def test_ip_bound_to_a_new_mac_moved_and_tells_old_mac_and_port(table):
    assert table.learn_ip(1, VIP, WEB1_MAC, 2) == Change(NEW)
    assert table.learn_ip(1, VIP, WEB1_MAC, 2) == Change(SAME)
    assert table.learn_ip(1, VIP, WEB2_MAC, 3) == Change(MOVED, old_port=2, old_mac=WEB1_MAC)


def test_ip_same_mac_behind_another_port_moved(table):
    table.learn_ip(1, VIP, VMAC, 2)
    assert table.learn_ip(1, VIP, VMAC, 3) == Change(MOVED, old_port=2, old_mac=VMAC)


def test_arp_probe_sender_zero_ip_is_not_learned(table):
    assert table.learn_ip(1, "0.0.0.0", WEB1_MAC, 2) == Change(SAME)
    assert table.learn_ip(1, "0.0.0.0", WEB2_MAC, 3) == Change(SAME)


def test_datapaths_are_separate(table):
    table.learn(1, VMAC, 2)
    table.learn_ip(1, VIP, VMAC, 2)
    assert table.learn(2, VMAC, 5) == Change(NEW)
    assert table.learn_ip(2, VIP, VMAC, 5) == Change(NEW)
    assert table.port_of(1, VMAC) == 2
    assert table.macs(1) == {VMAC: 2}
    assert table.macs(2) == {VMAC: 5}


def test_forget_datapath_forgets_only_that_switch(table):
    for dpid in (1, 2):
        table.learn(dpid, VMAC, 2)
        table.learn_ip(dpid, VIP, VMAC, 2)
    table.forget_datapath(1)
    assert table.macs(1) == {}
    assert table.port_of(1, VMAC) is None
    assert table.learn_ip(1, VIP, VMAC, 2) == Change(NEW)
    assert table.learn(2, VMAC, 2) == Change(SAME)
    assert table.learn_ip(2, VIP, VMAC, 2) == Change(SAME)


def test_gratuitous_arp_has_sender_ip_equal_to_target_ip():
    assert is_gratuitous(VIP, VIP)
    assert not is_gratuitous("10.0.0.201", VIP)


@pytest.mark.parametrize("mac, multicast", [
    ("ff:ff:ff:ff:ff:ff", True), ("01:00:5e:00:00:12", True), ("33:33:00:00:00:01", True),
    (VMAC, False), (WEB1_MAC, False), ("03:00:00:00:00:00", True),
])
def test_multicast_is_the_low_bit_of_the_first_octet(mac, multicast):
    assert is_multicast(mac) is multicast
