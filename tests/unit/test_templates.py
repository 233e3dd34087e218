"""Daemon configs rendered from their templates, without starting any daemon."""

import subprocess
from types import SimpleNamespace

import pytest

from redlab.daemons import Bind, HAProxy, Keepalived, Nginx, render_template
from redlab.errors import ConfigError, DaemonError


class FakeRun:
    def __init__(self, root):
        self.root = root

    def folder(self, *parts):
        path = self.root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path


class FakeNode:
    """Just what a daemon asks of a Mininet host before it starts."""

    def __init__(self, tmp_path, name="web1"):
        self.name = name
        self.run = FakeRun(tmp_path / "run")
        self.commands = []
        self.dry_run_result = (0, b"")

    def IP(self):
        return "10.0.0.11"

    def defaultIntf(self):
        return SimpleNamespace(name="%s-eth0" % self.name)

    def cmd(self, command):
        self.commands.append(command)
        return ""

    def popen(self, command, **kwargs):
        self.commands.append(command)
        return FakeProc(*self.dry_run_result)


class FakeProc:
    def __init__(self, returncode, output):
        self.returncode = returncode
        self.output = output

    def communicate(self, timeout=None):
        return self.output, None


@pytest.fixture
def node(tmp_path):
    return FakeNode(tmp_path)


def rendered(daemon):
    daemon.render()
    return daemon.config_file.read_text()


# --- render_template -------------------------------------------------------------------


def test_missing_value_names_the_template_and_the_culprit():
    with pytest.raises(ConfigError) as info:
        render_template("nginx.conf.j2", dict(node="web1"), "web1/nginx")
    assert "nginx.conf.j2" in str(info.value)
    assert "web1/nginx" in str(info.value)


def test_unknown_template_is_a_config_error():
    with pytest.raises(ConfigError, match="no-such.j2"):
        render_template("no-such.j2", {}, "web1/x")


# --- nginx -----------------------------------------------------------------------------


def test_nginx_listens_on_its_port_and_says_who_served(node):
    config = rendered(Nginx(node, port=8080))
    assert "listen 8080 default_server" in config
    assert "add_header X-Served-By web1 always;" in config
    assert "return 500" not in config
    assert "location = /health" in config
    assert str(node.run.root / "web1" / "nginx" / "nginx.pid") in config


def test_nginx_error500_mode_answers_500(node):
    config = rendered(Nginx(node, mode="error500"))
    assert 'return 500 "web1: internal server error\\n";' in config
    assert "try_files" not in config


def test_nginx_unknown_mode_lists_the_modes(node):
    with pytest.raises(ConfigError) as info:
        Nginx(node, mode="slow").render()
    assert "normal, error500" in str(info.value)
    assert "'slow'" in str(info.value)


def test_nginx_prepare_publishes_host_and_version(node):
    nginx = Nginx(node, version="v7")
    nginx.render()
    nginx.prepare()
    assert (nginx.docroot / "index.html").read_text() == "web1 v7\n"


# --- keepalived ------------------------------------------------------------------------


def test_keepalived_renders_the_vrrp_instance(node):
    keepalived = Keepalived(node, vip="10.0.0.100/24", vrid=51, priority=150)
    config = rendered(keepalived)
    assert "interface web1-eth0" in config
    assert "virtual_router_id 51" in config
    assert "priority 150" in config
    assert "        10.0.0.100/24\n" in config
    assert "notify %s" % keepalived.path("notify.sh") in config
    assert "use_vmac" not in config
    assert "vrrp_garp_master_delay" not in config


def test_keepalived_tracks_the_web_service_only_when_asked(node):
    assert "vrrp_script" not in rendered(Keepalived(node, vip="10.0.0.100"))
    config = rendered(Keepalived(node, vip="10.0.0.100", check_http=dict(fall=3, path="/h")))
    assert "vrrp_script chk_web {" in config and "fall 3" in config and "rise 2" in config
    assert "-s -f -o /dev/null -m 1 http://10.0.0.11:80/h\"" in config
    assert "track_script {\n        chk_web\n    }" in config


def test_keepalived_use_vmac_only_when_asked(node):
    keepalived = Keepalived(node, vip="10.0.0.100", vrid=7, use_vmac=True)
    assert "    use_vmac\n" in rendered(keepalived)
    assert keepalived.vmac == "00:00:5e:00:01:07"


def test_keepalived_fractional_advert_int_uses_vrrp_version_3(node):
    """VRRPv2 rounds advert_int 0.1 to whole seconds; VRRPv3 counts centiseconds."""
    assert "version" not in rendered(Keepalived(node, vip="10.0.0.100", advert_int=1))
    config = rendered(Keepalived(node, vip="10.0.0.100", advert_int=0.1))
    assert "    advert_int 0.1\n    version 3\n" in config


def test_keepalived_use_vmac_makes_the_base_interface_ignore_arp(node):
    Keepalived(node, vip="10.0.0.100", use_vmac=True).prepare()
    assert len(node.commands) == 1
    assert "net.ipv4.conf.web1-eth0.arp_ignore=1" in node.commands[0]


def test_keepalived_without_vmac_runs_nothing_in_the_host(node):
    Keepalived(node, vip="10.0.0.100").prepare()
    assert node.commands == []


def test_keepalived_notify_script_logs_transitions(node):
    keepalived = Keepalived(node, vip="10.0.0.100")
    keepalived.prepare()
    script = str(keepalived.path("notify.sh"))
    subprocess.run(["sh", script, "INSTANCE", "VI_1", "MASTER", "150"], check=True, timeout=5)
    assert [state for _, state in keepalived.transitions()] == ["MASTER"]
    assert keepalived.current_state() == "MASTER"


@pytest.mark.parametrize("bad", [dict(vrid=0), dict(vrid=256), dict(priority=0),
                                 dict(priority=256)])
def test_keepalived_rejects_out_of_range_ids_naming_the_node(node, bad):
    with pytest.raises(ConfigError, match="^web1/keepalived: "):
        Keepalived(node, vip="10.0.0.100", **bad)


# --- bind ------------------------------------------------------------------------------


def test_bind_zone_lists_the_a_records_with_the_ttl(node):
    bind = Bind(node, zone="lab.example", ttl=30,
                records=[("www", "10.0.0.11"), ("www", "10.0.0.12")])
    config = rendered(bind)
    bind.prepare()
    zone = bind.zone_file.read_text()
    assert "$TTL 30" in zone
    assert "www 30 IN A 10.0.0.11\n" in zone
    assert "www 30 IN A 10.0.0.12\n" in zone
    assert "listen-on port 53 { 10.0.0.11; };" in config
    assert 'zone "lab.example"' in config
    assert "recursion no;" in config
    assert node.commands == []


def test_bind_with_forwarders_is_a_caching_resolver_without_zones(node):
    bind = Bind(node, forwarders=["10.0.0.53"], max_cache_ttl=5)
    config = rendered(bind)
    bind.prepare()
    assert "forwarders { 10.0.0.53; };" in config
    assert "max-cache-ttl 5;" in config
    assert "zone " not in config
    assert not bind.zone_file.exists()


# --- haproxy ---------------------------------------------------------------------------


def test_haproxy_lists_servers_with_health_checks(node):
    servers = [dict(name="web1", ip="10.0.0.11"), dict(name="web2", ip="10.0.0.12",
                                                       port=8080, weight=3)]
    config = rendered(HAProxy(node, servers, port=80, inter="100ms", rise=3, fall=2))
    assert "bind 0.0.0.0:80" in config
    assert "server web1 10.0.0.11:80 weight 1 check inter 100ms rise 3 fall 2\n" in config
    assert "server web2 10.0.0.12:8080 weight 3 check inter 100ms rise 3 fall 2\n" in config
    assert "option httpchk GET /health" in config


def test_haproxy_tcp_mode_without_checks(node):
    config = rendered(HAProxy(node, [dict(name="web1", ip="10.0.0.11")], mode="tcp",
                              check=False))
    assert "mode tcp" in config
    assert "httpchk" not in config
    assert "server web1 10.0.0.11:80 weight 1\n" in config


def test_haproxy_health_checks_do_not_hide_the_dry_run(node):
    # the ``check`` option once became an attribute that shadowed Daemon.check()
    haproxy = HAProxy(node, [dict(name="web1", ip="10.0.0.11")], check=True)
    haproxy.binary_path = "/usr/sbin/haproxy"
    haproxy.render()
    haproxy.check()
    assert node.commands == [["/usr/sbin/haproxy", "-c", "-q", "-f", str(haproxy.config_file)]]


def test_failed_dry_run_names_the_node_and_quotes_the_output(node):
    node.dry_run_result = (1, b"[NOTICE] reading\n[ALERT] parsing line 3: unknown keyword\n")
    haproxy = HAProxy(node, [dict(name="web1", ip="10.0.0.11")])
    haproxy.render()
    with pytest.raises(DaemonError) as info:
        haproxy.check()
    assert str(info.value).startswith("web1: haproxy configuration %s is invalid" %
                                      haproxy.config_file)
    assert "[ALERT] parsing line 3: unknown keyword" in str(info.value)


# -- Squid (lab 03's carrier gateway) and BIND's query log ---------------------------------

def test_squid_ipcache_page_is_read_in_squids_order():
    from redlab.daemons.squid import parse_ipcache
    page = (" Hostname                        Flg lstref    TTL  N(b)\n"
            " www.lab.example                          0      4  3( 1)"
            "                                     10.0.0.12-BAD\n"
            "                                                                     "
            "                         10.0.0.13-OK \n"
            "                                                                     "
            "                         10.0.0.11-OK \n"
            " gone.lab.example                N      2      1  0( 0)\n")
    assert parse_ipcache(page, "www.lab.example") == dict(
        addresses=["10.0.0.12", "10.0.0.13", "10.0.0.11"], bad=["10.0.0.12"], ttl=4,
        negative=False)
    assert parse_ipcache(page, "gone.lab.example") == dict(addresses=[], bad=[], ttl=1,
                                                           negative=True)
    assert parse_ipcache(page, "lab.example") is None
    assert parse_ipcache("", "www.lab.example") is None


def test_named_query_log_lines_become_queries():
    import time

    from redlab.daemons.bind import parse_querylog
    log = ("28-Nov-2026 13:06:02.316 client @0x7f4a48031c98 10.0.1.1#39641 (www.lab.example): "
           "query: www.lab.example IN A + (10.0.1.1)\n"
           "28-Nov-2026 13:06:02.316 client @0x7f4a48031c98 10.0.1.1#39641 (www.lab.example): "
           "query failed (SERVFAIL) for www.lab.example/IN/A at query.c:7177\n"
           "28-Nov-2026 13:06:03.5 client @0x7f 10.0.1.101#5353 (1.0.0.10.in-addr.arpa): "
           "query: 1.0.0.10.in-addr.arpa IN PTR + (10.0.1.1)\n"
           "28-Nov-2026 13:06:04.000 running\n")
    rows = parse_querylog(log)
    assert [(r["client"], r["name"], r["type"]) for r in rows] == [
        ("10.0.1.1", "www.lab.example", "A"), ("10.0.1.101", "1.0.0.10.in-addr.arpa", "PTR")]
    local = time.mktime((2026, 11, 28, 13, 6, 2, 0, 0, -1))
    assert rows[0]["t"] == pytest.approx(local + 0.316) and rows[1]["t"] == pytest.approx(local + 1.5)


@pytest.mark.parametrize("option, value, words", [
    ("forward_max_tries", 0, "forward_max_tries must be a whole number >= 1"),
    ("negative_dns_ttl", 0.5, "negative_dns_ttl must be a whole number >= 1"),
    ("connect_timeout", "1s", "connect_timeout must be a whole number >= 1"),
])
def test_squid_refuses_a_setting_it_cannot_take(option, value, words):
    from types import SimpleNamespace

    from redlab.daemons import Squid
    node = SimpleNamespace(name="carriergw")
    squid = Squid(node, resolvers=["10.0.1.1"], **{option: value})
    with pytest.raises(ConfigError, match=words):
        squid.values()
    assert "10.0.1.1" in str(Squid(node, resolvers=["10.0.1.1"]).values()["resolvers"])


def test_squid_config_caches_names_not_pages_and_squid_accepts_it(node):
    from redlab.daemons import Squid
    from redlab.system import find_binary
    squid = Squid(node, resolvers=["10.0.1.1"], allow=["10.0.1.0/24"], negative_dns_ttl=5,
                  connect_timeout=1)
    config = rendered(squid)
    for line in ("http_port 3128", "acl users src 10.0.1.0/24", "cache deny all",
                 "dns_nameservers 10.0.1.1", "hosts_file none", "negative_dns_ttl 5 seconds",
                 "forward_max_tries 25", "connect_timeout 1 seconds",
                 "pid_filename %s/squid.pid" % squid.folder,
                 "access_log stdio:%s/access.log logformat=redlab" % squid.folder,
                 "cache_effective_user proxy"):
        assert "\n%s\n" % line in config, line
    if find_binary("squid"):           # Squid's own parser, as the daemon's dry run uses it
        done = subprocess.run(["squid", "-k", "parse", "-f", str(squid.config_file)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        assert done.returncode == 0, done.stdout.decode(errors="replace")[-800:]


def test_bind_query_log_only_when_asked(node):
    assert "querylog" not in rendered(Bind(node, forwarders=["10.0.0.53"]))
    assert "    querylog yes;" in rendered(Bind(node, forwarders=["10.0.0.53"], querylog=True))
