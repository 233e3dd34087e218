"""redlab.addressing: the address plan written in the module docstring."""

import pytest

from redlab import addressing as ap
from redlab.errors import ConfigError


def test_web_servers_are_dot_ten_plus_n_on_the_service_lan():
    assert [ap.web(n) for n in (1, 2, 9)] == ["10.0.0.11", "10.0.0.12", "10.0.0.19"]


def test_vips_start_at_dot_100():
    assert ap.vip() == "10.0.0.100"
    assert ap.vip(10) == "10.0.0.109"


def test_dns_servers_start_at_dot_53():
    assert ap.dns() == "10.0.0.53"
    assert ap.dns(3) == "10.0.0.55"


def test_director_is_dot_2_and_router_dot_1():
    assert ap.director() == "10.0.0.2"
    assert ap.router() == "10.0.0.1"
    assert ap.router(ap.CLIENTS) == "10.0.1.1"


def test_clients_on_the_client_lan_start_at_dot_101():
    assert ap.client(1) == "10.0.1.101"
    assert ap.client(2) == "10.0.1.102"


def test_clients_on_the_service_lan_start_at_dot_201():
    assert ap.client(1, ap.SERVICE) == "10.0.0.201"


def test_cidr_adds_the_prefix_of_the_lan():
    assert ap.cidr("10.0.0.11") == "10.0.0.11/24"
    assert ap.cidr("10.0.2.5", ap.Lan("wide", "10.0.0.0/16")) == "10.0.2.5/16"


def test_iface_is_address_with_prefix():
    assert ap.SERVICE.iface(11) == "10.0.0.11/24"


@pytest.mark.parametrize("number", [0, 255, 300, -1])
def test_host_outside_the_lan_is_a_config_error(number):
    with pytest.raises(ConfigError, match="outside service"):
        ap.SERVICE.host(number)


def test_host_range_ends_are_usable():
    assert ap.SERVICE.host(1) == "10.0.0.1"
    assert ap.SERVICE.host(254) == "10.0.0.254"


def test_client_number_past_the_lan_is_a_config_error():
    with pytest.raises(ConfigError):
        ap.client(155)          # .100 + 155 = .255, the broadcast address


def test_mac_spells_the_ipv4_address():
    assert ap.mac_for("10.0.0.11") == "02:00:0a:00:00:0b"
    assert ap.mac_for("10.0.1.201/24") == "02:00:0a:00:01:c9"


def test_check_unique_names_the_duplicate_ip_and_both_nodes():
    with pytest.raises(ConfigError) as info:
        ap.check_unique([("web1", "10.0.0.11/24"), ("web2", "10.0.0.12/24"),
                         ("web3", "10.0.0.11")])
    message = str(info.value)
    assert "10.0.0.11" in message
    assert "web1" in message and "web3" in message
    assert "web2" not in message


def test_check_unique_accepts_distinct_addresses_and_none():
    ap.check_unique([("web1", "10.0.0.11/24"), ("web2", "10.0.0.12/24"),
                     ("s1", None), ("s2", None), ("h1", ""), ("h2", "")])


def test_check_unique_accepts_one_node_listing_its_address_twice():
    ap.check_unique([("web1", "10.0.0.11/24"), ("web1", "10.0.0.11")])


@pytest.mark.parametrize("make, n", [(ap.web, 10), (ap.web, 0), (ap.vip, 11), (ap.dns, 8)])
def test_role_numbers_outside_the_plan_are_refused(make, n):
    # web(43) would otherwise be dns(1) and web(90) vip(1): the plan keeps roles apart
    with pytest.raises(ConfigError, match="outside the address plan"):
        make(n)
