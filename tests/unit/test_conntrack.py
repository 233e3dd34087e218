"""controllers.conntrack: the IPVS-like connection table of one virtual service."""

import pytest

from controllers.conntrack import CLOSING, SYN_RECV, SYN_RECV_TIMEOUT, Connection, \
    ConnectionTable

CLIENT = "10.0.1.5"


@pytest.fixture
def table():
    return ConnectionTable()


# --- one connection's life -------------------------------------------------------------


def test_connection_life_moves_between_inactive_and_active(table):
    conn = table.add(CLIENT, 40000, "web1", now=1.0)
    assert conn == Connection(CLIENT, 40000, "web1", SYN_RECV, 1.0, 1.0)
    assert not conn.active
    assert table.counts("web1") == (0, 1)      # SYN_RECV is InActConn

    assert table.established(CLIENT, 40000, now=1.1) is True
    assert conn.active and conn.updated == 1.1 and conn.created == 1.0
    assert table.counts("web1") == (1, 0)      # ESTABLISHED is ActiveConn

    assert table.closing(CLIENT, 40000, now=5.0) is True
    assert conn.state == CLOSING and not conn.active
    assert table.counts("web1") == (0, 1)      # FIN/RST seen: InActConn again

    assert table.remove(CLIENT, 40000) is conn
    assert table.counts("web1") == (0, 0)
    assert len(table) == 0
    assert table.get(CLIENT, 40000) is None


def test_transitions_report_whether_the_state_changed(table):
    table.add(CLIENT, 1, "web1", now=0)
    assert table.established(CLIENT, 1, now=1) is True
    assert table.established(CLIENT, 1, now=2) is False     # already established
    assert table.get(CLIENT, 1).updated == 1                # untouched by the no-op
    assert table.closing(CLIENT, 1, now=3) is True
    assert table.closing(CLIENT, 1, now=4) is False
    assert table.established(CLIENT, 1, now=5) is False     # no way back from CLOSING
    assert table.get(CLIENT, 1).state == CLOSING


def test_unknown_connections_change_nothing(table):
    assert table.established(CLIENT, 9, now=0) is False
    assert table.closing(CLIENT, 9, now=0) is False
    assert table.remove(CLIENT, 9) is None


def test_rst_before_the_handshake_closes_a_syn_recv_connection(table):
    table.add(CLIENT, 1, "web1", now=0)
    assert table.closing(CLIENT, 1, now=0.5) is True
    assert table.counts("web1") == (0, 1)


def test_adding_an_open_connection_twice_is_refused(table):
    table.add(CLIENT, 1, "web1", now=0)
    with pytest.raises(ValueError, match="already in the table"):
        table.add(CLIENT, 1, "web2", now=1)
    assert table.counts("web2") == (0, 0)


def test_new_syn_on_a_closing_connection_replaces_it(table):
    table.add(CLIENT, 1, "web1", now=0)
    table.established(CLIENT, 1, now=0)
    table.closing(CLIENT, 1, now=1)
    conn = table.add(CLIENT, 1, "web2", now=2)
    assert table.get(CLIENT, 1) is conn and conn.state == SYN_RECV
    assert table.all_counts() == {"web2": (0, 1)}
    assert len(table) == 1


def test_same_client_different_ports_are_different_connections(table):
    table.add(CLIENT, 1, "web1", now=0)
    table.add(CLIENT, 2, "web1", now=0)
    table.add("10.0.1.6", 1, "web2", now=0)
    table.established(CLIENT, 2, now=0)
    assert table.all_counts() == {"web1": (1, 1), "web2": (0, 1)}
    assert len(table) == 3


# --- many connections ------------------------------------------------------------------


def test_n_long_lived_connections_are_counted(table):
    for port in range(1000, 1100):
        server = "web1" if port % 4 else "web2"   # 75 to web1, 25 to web2
        table.add(CLIENT, port, server, now=0)
        table.established(CLIENT, port, now=0.01)
    for port in range(1000, 1010):                # 10 of them close, 7 on web1, 3 on web2
        table.closing(CLIENT, port, now=100)
    table.add(CLIENT, 2000, "web2", now=100)      # one half-open
    assert table.counts("web1") == (68, 7)
    assert table.counts("web2") == (22, 4)
    assert table.all_counts() == {"web1": (68, 7), "web2": (22, 4)}
    assert len(table) == 101
    assert len(table.of_server("web1")) == 75
    assert len(list(table)) == 101


def test_all_counts_leaves_out_servers_without_connections(table):
    table.add(CLIENT, 1, "web1", now=0)
    table.add(CLIENT, 2, "web2", now=0)
    table.remove(CLIENT, 1)
    assert table.all_counts() == {"web2": (0, 1)}
    assert table.counts("web1") == (0, 0)
    assert table.counts("never-seen") == (0, 0)


def test_of_server_oldest_first(table):
    for port, server in [(1, "web1"), (2, "web2"), (3, "web1")]:
        table.add(CLIENT, port, server, now=port)
    assert [c.client_port for c in table.of_server("web1")] == [1, 3]
    assert table.of_server("web3") == []


def test_closing_since_uses_the_time_closing_started(table):
    for port in (1, 2, 3):
        table.add(CLIENT, port, "web1", now=0)
        table.established(CLIENT, port, now=0)
    table.closing(CLIENT, 1, now=10)
    table.closing(CLIENT, 2, now=15)
    assert [c.client_port for c in table.closing_since(5, now=20)] == [1, 2]  # 10 s, 5 s
    assert [c.client_port for c in table.closing_since(6, now=20)] == [1]
    assert table.closing_since(11, now=20) == []
    assert table.closing_since(0, now=20) != []   # port 3 is established: never listed
    assert all(c.state == CLOSING for c in table.closing_since(0, now=20))


# --- persistence -----------------------------------------------------------------------


def test_no_persistence_by_default(table):
    table.add(CLIENT, 1, "web1", now=0)
    assert table.persistent_server(CLIENT, now=0) is None
    assert table.templates() == {}


def test_template_lives_while_connections_exist_and_timeout_after():
    table = ConnectionTable(persistence_timeout=300)
    assert table.persistent_server(CLIENT, now=0) is None
    table.add(CLIENT, 1, "web2", now=0)
    table.established(CLIENT, 1, now=0)
    assert table.persistent_server(CLIENT, now=0) == "web2"
    # a long-lived connection keeps the template alive past the timeout
    assert table.persistent_server(CLIENT, now=5000) == "web2"
    table.closing(CLIENT, 1, now=5000)
    assert table.persistent_server(CLIENT, now=5100) == "web2"   # still in the table
    table.remove(CLIENT, 1, now=5200)
    assert table.persistent_server(CLIENT, now=5200) == "web2"
    assert table.persistent_server(CLIENT, now=5499.9) == "web2"
    assert table.persistent_server(CLIENT, now=5500) is None     # 300 s after the end
    assert table.templates() == {}                               # and dropped
    assert table.persistent_server(CLIENT, now=5200) is None


def test_template_timeout_counts_from_the_last_added_connection():
    table = ConnectionTable(persistence_timeout=60)
    table.add(CLIENT, 1, "web1", now=0)
    table.remove(CLIENT, 1, now=0)
    table.add(CLIENT, 2, "web1", now=50)
    table.remove(CLIENT, 2, now=50)
    assert table.persistent_server(CLIENT, now=109) == "web1"
    assert table.persistent_server(CLIENT, now=110) is None


def test_remove_without_now_ends_at_the_last_state_change():
    table = ConnectionTable(persistence_timeout=60)
    table.add(CLIENT, 1, "web1", now=0)
    table.established(CLIENT, 1, now=1)
    table.closing(CLIENT, 1, now=100)
    table.remove(CLIENT, 1)
    assert table.persistent_server(CLIENT, now=159) == "web1"
    assert table.persistent_server(CLIENT, now=160) is None


def test_templates_are_per_client_ip():
    table = ConnectionTable(persistence_timeout=60)
    table.add(CLIENT, 1, "web1", now=0)
    table.add("10.0.1.6", 1, "web2", now=0)
    assert table.persistent_server(CLIENT, now=1) == "web1"
    assert table.persistent_server("10.0.1.6", now=1) == "web2"
    assert table.persistent_server("10.0.1.7", now=1) is None


def test_adding_to_another_server_rebinds_the_template():
    table = ConnectionTable(persistence_timeout=60)
    table.add(CLIENT, 1, "web1", now=0)
    table.add(CLIENT, 2, "web2", now=1)     # e.g. web1 went down, controller chose web2
    assert table.persistent_server(CLIENT, now=2) == "web2"
    table.remove(CLIENT, 2, now=2)
    # the template now follows web2: web1's remaining connection does not keep it alive
    assert table.persistent_server(CLIENT, now=61) == "web2"
    assert table.persistent_server(CLIENT, now=62) is None


def test_forget_server_drops_its_templates_only():
    table = ConnectionTable(persistence_timeout=60)
    table.add(CLIENT, 1, "web1", now=0)
    table.add("10.0.1.6", 1, "web2", now=0)
    table.forget_server("web1")
    assert table.persistent_server(CLIENT, now=1) is None   # even with a connection
    assert table.persistent_server("10.0.1.6", now=1) == "web2"
    assert table.get(CLIENT, 1) is not None                 # connections stay
    assert table.templates() == {"10.0.1.6": "web2"}


@pytest.mark.parametrize("timeout", [-1, True, "60", float("nan")])
def test_persistence_timeout_must_be_seconds(timeout):
    with pytest.raises(ValueError, match="persistence_timeout"):
        ConnectionTable(persistence_timeout=timeout)


@pytest.mark.parametrize("timeout", [0, -1, True, "60", float("inf")])
def test_syn_recv_timeout_must_be_positive_seconds(timeout):
    with pytest.raises(ValueError, match="syn_recv_timeout"):
        ConnectionTable(syn_recv_timeout=timeout)


# --- IPVS's counting through a handshake, and half-open expiry ------------------------


def test_the_kernels_syn_recv_timeout_is_the_default():
    # ip_vs_proto_tcp.c, tcp_timeouts[IP_VS_TCP_S_SYN_RECV] = 1*60*HZ
    assert SYN_RECV_TIMEOUT == 60
    assert ConnectionTable().syn_recv_timeout == 60


def test_handshake_counts_as_ipvs_does(table):
    """SYN -> InActConn; the server's SYN-ACK changes nothing (the controller does not
    call anything for it); the client's ACK -> ActiveConn; FIN -> InActConn."""
    table.add(CLIENT, 40000, "web1", now=0)             # client's SYN, scheduled
    assert table.get(CLIENT, 40000).state == SYN_RECV   # (server's SYN-ACK: still SYN_RECV)
    assert table.established(CLIENT, 40000, now=0.01)   # client's ACK completes it
    assert table.counts("web1") == (1, 0)
    assert table.closing(CLIENT, 40000, now=3)
    assert table.counts("web1") == (0, 1)


def test_half_open_entries_expire_after_the_syn_recv_timeout():
    table = ConnectionTable(syn_recv_timeout=5)
    table.add(CLIENT, 1, "web1", now=0)                  # never completes
    table.add(CLIENT, 2, "web1", now=0)
    table.established(CLIENT, 2, now=0.1)               # completes
    table.add(CLIENT, 3, "web2", now=3)                  # younger half-open
    table.add(CLIENT, 4, "web2", now=0)
    table.closing(CLIENT, 4, now=0.5)                    # SYN then RST: closing, not SYN_RECV
    assert table.expire_half_open(now=4.9) == []
    expired = table.expire_half_open(now=5)
    assert [(c.client_port, c.state) for c in expired] == [(1, SYN_RECV)]
    assert table.get(CLIENT, 1) is None
    assert table.counts("web1") == (1, 0)
    assert table.counts("web2") == (0, 2)
    assert [c.client_port for c in table.expire_half_open(now=8)] == [3]
    assert table.expire_half_open(now=1000) == []        # established/closing never expire here
    assert table.all_counts() == {"web1": (1, 0), "web2": (0, 1)}


def test_a_syn_flood_weighs_as_inactconn_for_wlc_and_leaves_on_its_own():
    """3000 spoofed SYNs spread over three servers: wlc still sees ActiveConn 0 and
    picks by InActConn (weighted 1, not 256); all gone after the timeout."""
    from controllers.schedulers import RealServer, make_scheduler

    table = ConnectionTable(syn_recv_timeout=60)
    names = ["web1", "web2", "web3"]
    for n in range(3000):
        table.add("198.51.100.%d" % (n % 250), 1024 + n, names[n % 3], now=n / 1000)
    table.add(CLIENT, 50000, "web3", now=3)
    table.established(CLIENT, 50000, now=3)
    servers = [RealServer(name=name, ip="10.0.0.%d" % i, port=80, weight=1)
               for i, name in enumerate(names, 1)]
    for server in servers:
        server.active_conns, server.inactive_conns = table.counts(server.name)
    assert [(s.active_conns, s.inactive_conns) for s in servers] == \
        [(0, 1000), (0, 1000), (1, 1000)]
    # wlc overhead = 256 * active + inactive: 1000, 1000, 1256; web1 is the first lowest
    assert make_scheduler("wlc").pick(servers, client_ip=CLIENT, dest_ip="10.0.0.100").name \
        == "web1"
    assert len(table.expire_half_open(now=63)) == 3000
    assert table.all_counts() == {"web3": (1, 0)}
