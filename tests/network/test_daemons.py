"""Every daemon renders, passes its own dry run, serves for real inside its host, and stops.

A broken configuration is refused before start with an error naming the host, the
daemon and the daemon's own message.
"""

import re

import pytest

from redlab import addressing as ap
from redlab.daemons import Bind, HAProxy, Keepalived, Nginx
from redlab.errors import DaemonError
from topologies.service_lan import ZONE, ServiceLanTopo
from topologies.vrrp_pair import VRRPPairTopo


@pytest.fixture
def lan(network):
    return network(ServiceLanTopo(servers=2))


def http(client, url):
    return client.cmd("curl -s -m 2 -D - %s" % url)


def served_by(reply):
    found = re.search(r"(?im)^x-served-by: (\S+)", reply)
    return found.group(1) if found else None


def test_nginx_serves_and_stops(lan):
    nginx = lan["web1"].daemons["nginx"]
    reply = http(lan["client1"], "http://%s/" % ap.web(1))
    assert "200 OK" in reply and "X-Served-By: web1" in reply and "web1 v1" in reply
    nginx.stop()
    assert not nginx.running
    assert lan["web1"].processes() == []
    assert http(lan["client1"], "http://%s/" % ap.web(1)) == ""


def test_bind_answers_round_robin_and_stops(lan):
    named = lan["dns1"].daemons["named"]
    answers = lan["client1"].cmd("dig +short +norec @%s www.%s A" % (ap.dns(1), ZONE)).split()
    assert sorted(answers) == sorted([ap.web(1), ap.web(2)])
    named.stop()
    assert not named.running
    out = lan["client1"].cmd("dig +short +tries=1 +time=1 @%s www.%s A" % (ap.dns(1), ZONE))
    assert "timed out" in out or "no servers could be reached" in out


def test_haproxy_forwards_to_web_servers(lan):
    director = lan["director"]
    servers = [dict(name="web%d" % n, ip=ap.web(n)) for n in (1, 2)]
    haproxy = director.start_daemon(HAProxy(director, servers=servers))
    seen = {served_by(http(lan["client1"], "http://%s/" % ap.director())) for _ in range(6)}
    assert seen == {"web1", "web2"}
    haproxy.stop()
    assert not haproxy.running


def test_keepalived_elects_a_master_and_stops(network):
    net = network(VRRPPairTopo())
    from redlab.wait import wait_until
    k1, k2 = net["web1"].daemons["keepalived"], net["web2"].daemons["keepalived"]
    wait_until(lambda: (k1.current_state() == "MASTER", k1.transitions()), 10, "web1 master")
    assert k2.current_state() == "BACKUP"
    assert ap.vip(1) in net["web1"].cmd("ip -4 addr show")
    k1.stop()
    assert not k1.running
    wait_until(lambda: (k2.current_state() == "MASTER", k2.transitions()), 10, "web2 master")


@pytest.mark.parametrize("make, message", [
    (lambda h: Nginx(h, workers="lots"), '"worker_processes" directive invalid value'),
    (lambda h: Bind(h, zone=ZONE, records=[("www", "10.0.0.999")]), "bad dotted quad"),
    (lambda h: Keepalived(h, vip="10.0.0.100/24", interface="nosuch0"), "nosuch0"),
    (lambda h: HAProxy(h, servers=[dict(name="w", ip=ap.web(1))], balance="nonsense"),
     "nonsense"),
])
def test_bad_config_is_refused_naming_host_and_daemon(network, make, message):
    net = network(ServiceLanTopo(servers=1, dns=False), services=False)
    daemon = make(net["web1"])
    with pytest.raises(DaemonError) as err:
        daemon.start()
    text = str(err.value)
    assert text.startswith("web1: %s configuration " % daemon.name), text
    assert message in text
    assert not daemon.running and net["web1"].processes() == []
