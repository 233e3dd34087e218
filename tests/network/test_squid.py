"""The carrier gateway's Squid (lab 03), for real: it forwards, logs where each request
went, keeps a name for its ``negative_dns_ttl`` whatever the record's TTL (Squid 5.7),
and leaves a dead first address for the next one instead of failing the request.
"""

import re

import pytest

from redlab import addressing as ap
from redlab.daemons import Squid
from redlab.errors import ConfigError
from redlab.faults import host_crash
from redlab.wait import wait_until
from topologies.dns_rr import NAME, ZONE, DNSRoundRobinTopo

URL = "http://%s.%s/" % (NAME, ZONE)
HOST = "%s.%s" % (NAME, ZONE)


def fetch(phone):
    """``(status, X-Served-By, seconds)`` of one request through the gateway's Squid."""
    out = phone.cmd("curl -s -m 5 -D - -o /dev/null -w 'took=%%{time_total}\\n' -x http://%s:3128 %s"
                    % (ap.router(ap.CLIENTS), URL))
    status = re.search(r"^HTTP/\S+ (\d+)", out, re.M)
    server = re.search(r"(?im)^x-served-by: (\S+)", out)
    took = re.search(r"took=([\d.]+)", out)
    return (int(status.group(1)) if status else None, server.group(1) if server else None,
            float(took.group(1)) if took else None)


def dns_rr(network, ttl, hold, servers=3):
    net = network(DNSRoundRobinTopo(ttl=ttl, servers=servers, phones=1, pcs=1,
                                    proxy=dict(negative_dns_ttl=hold)))
    return net, net["carriergw"].daemons["squid"]


@pytest.mark.parametrize("ttl, hold", [(1, 3), (5, 3), (5, 60)])
def test_squid_keeps_a_name_for_negative_dns_ttl_whatever_the_ttl(network, ttl, hold):
    net, squid = dns_rr(network, ttl, hold)
    status, server, _ = fetch(net["phone1"])
    assert status == 200 and server in ("web1", "web2", "web3")
    held = squid.ipcache(HOST)
    # its clock ticks in whole seconds: right after the lookup, hold or hold - 1 left
    assert held and held["ttl"] in (hold - 1, hold), held
    assert sorted(held["addresses"]) == sorted(ap.web(n) for n in (1, 2, 3))
    # the access log says which server the request went to: the first of the answer
    # (Squid writes the line when the transaction ends, which may be after curl's end)
    rows = wait_until(lambda: [r for r in squid.requests() if r["url"] == URL], 5,
                      "Squid to log the request")
    assert rows[0]["status"] == 200 and rows[0]["upstream"] == held["addresses"][0]
    assert server == "web%d" % (int(rows[0]["upstream"].rsplit(".", 1)[1]) - ap.WEB_BASE)
    # the gateway's BIND saw exactly one A query from Squid for the name
    queries = [q for q in net["carriergw"].daemons["named"].queries()
               if q["name"] == HOST and q["type"] == "A"]
    assert len(queries) == 1 and queries[0]["client"] == ap.router(ap.CLIENTS), queries


def test_squid_tries_the_next_address_when_the_first_is_dead(network):
    net, squid = dns_rr(network, ttl=5, hold=30)
    phone = net["phone1"]
    assert fetch(phone)[0] == 200
    first = squid.ipcache(HOST)["addresses"][0]
    dead = "web%d" % (int(first.rsplit(".", 1)[1]) - ap.WEB_BASE)
    fault = host_crash(net, dead)
    try:
        status, server, took = fetch(phone)
        assert status == 200 and server not in (None, dead), (status, server)
        # the same cached answer, yet Squid remembers: the next requests neither go to
        # the dead server nor wait for it (waiting took 0.7-2.7 s in every run measured)
        assert sorted(squid.ipcache(HOST)["addresses"]) == sorted(ap.web(n) for n in (1, 2, 3))
        later = [fetch(phone) for _ in range(3)]
        assert all(s == 200 and srv != dead and t < 0.5 for s, srv, t in later), (took, later)
        rows = squid.requests(fault.at)
        assert [r["upstream"] for r in rows if r["url"] == URL and r["upstream"] == first] == []
    finally:
        fault.undo()


def test_a_bad_squid_setting_is_refused_before_start(network):
    net = network(DNSRoundRobinTopo(servers=1, phones=1, pcs=0), services=False)
    with pytest.raises(ConfigError, match="forward_max_tries must be a whole number >= 1"):
        Squid(net["carriergw"], resolvers=[ap.router(ap.CLIENTS)], forward_max_tries=0).start()
    with pytest.raises(ConfigError, match="needs at least one DNS server"):
        Squid(net["carriergw"], resolvers=[]).start()
    assert net["carriergw"].processes() == []
