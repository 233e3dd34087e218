"""controllers.service: the virtual service a student writes in YAML."""

import copy
import json
import re
import textwrap

import pytest

import controllers.service as service_module
from controllers.schedulers import ALGORITHMS, MaglevHashing, make_scheduler
from controllers.service import HealthCheck, RealServerSpec, ServiceConfigError, \
    VirtualService, derive_vmac, load_service, parse_service, service_to_dict

VALID_YAML = """\
virtual_server:
  name: web
  vip: 10.0.0.100
  port: 8080
  protocol: TCP
  lb_algo: WRR
  lb_kind: nat
  persistence_timeout: 300
  inhibit_on_failure: true
  health_check:
    type: http
    interval: 2
    timeout: 0.5
    rise: 2
    fall: 3
    port: 8081
    path: /health
    status: 204
    body: ok
  real_servers:
    - {name: web1, ip: 10.0.0.11, port: 8080, weight: 3}
    - {name: web2, ip: 10.0.0.12, weight: 0}
"""


def base(**overrides):
    data = {
        "name": "web",
        "vip": "10.0.0.100",
        "real_servers": [
            {"name": "web1", "ip": "10.0.0.11", "port": 80, "weight": 1},
            {"name": "web2", "ip": "10.0.0.12", "port": 80, "weight": 2},
        ],
    }
    data.update(overrides)
    return data


def error_of(data):
    with pytest.raises(ServiceConfigError) as info:
        parse_service(data)
    return str(info.value)


def write(tmp_path, text, name="svc.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


# --- a valid file ----------------------------------------------------------------------


def test_valid_yaml_file_is_read_with_every_setting(tmp_path):
    svc = load_service(write(tmp_path, VALID_YAML))
    assert svc == VirtualService(
        name="web", vip="10.0.0.100", port=8080, protocol="tcp", lb_algo="wrr",
        lb_kind="NAT", persistence_timeout=300, inhibit_on_failure=True,
        sh_fallback=False, sh_port=False,
        health_check=HealthCheck(type="http", interval=2.0, timeout=0.5, rise=2, fall=3,
                                 path="/health", status=204, body="ok", port=8081),
        real_servers=[RealServerSpec("web1", "10.0.0.11", 8080, 3),
                      RealServerSpec("web2", "10.0.0.12", 8080, 0)],
        vmac="02:fe:0a:00:00:64")


def test_valid_file_round_trips_through_service_to_dict(tmp_path):
    svc = load_service(write(tmp_path, VALID_YAML))
    data = service_to_dict(svc)
    assert parse_service(data) == svc
    assert parse_service(json.loads(json.dumps(data))) == svc  # JSON-safe, too
    assert parse_service({"virtual_server": data}) == svc
    again = write(tmp_path, json.dumps(data), "again.yaml")  # JSON is YAML
    assert load_service(again) == svc


def test_round_trip_of_a_minimal_service_keeps_defaults():
    svc = parse_service(base())
    assert (svc.port, svc.protocol, svc.lb_algo, svc.lb_kind) == (80, "tcp", "wlc", "NAT")
    assert svc.health_check == HealthCheck()
    data = service_to_dict(svc)
    assert "path" not in data["health_check"]  # http settings only for http checks
    assert parse_service(data) == svc


def test_the_module_docstring_example_is_a_valid_service(tmp_path):
    doc = service_module.__doc__
    block = doc.split("Example (")[1].split("::\n\n", 1)[1].split("\n\n")[0]
    svc = load_service(write(tmp_path, textwrap.dedent(block)))
    assert svc.name == "web" and svc.lb_algo == "wlc"
    assert svc.health_check.fall == 3 and svc.health_check.path == "/health"
    assert [s.name for s in svc.real_servers] == ["web1", "web2"]


def test_settings_may_be_given_without_the_virtual_server_key():
    assert parse_service(base()) == parse_service({"virtual_server": base()})


def test_real_server_without_port_gets_the_service_port():
    data = base(port=8080)
    del data["real_servers"][1]["port"]
    data["real_servers"][0]["port"] = 9000
    svc = parse_service(data)
    assert [s.port for s in svc.real_servers] == [9000, 8080]


def test_weight_defaults_to_one_and_zero_is_allowed():
    data = base()
    del data["real_servers"][0]["weight"]
    data["real_servers"][1]["weight"] = 0
    assert [s.weight for s in parse_service(data).real_servers] == [1, 0]


def test_addresses_are_normalised():
    svc = parse_service(base(vmac="02:AA:BB:CC:DD:EE"))
    assert svc.vmac == "02:aa:bb:cc:dd:ee"


# --- aliases ---------------------------------------------------------------------------


def test_keepalived_delay_loop_and_connect_timeout_are_interval_and_timeout():
    svc = parse_service(base(health_check={"delay_loop": 3, "connect_timeout": 2}))
    assert (svc.health_check.interval, svc.health_check.timeout) == (3.0, 2.0)


def test_keepalived_retry_n_means_n_plus_one_failures():
    # keepalived re-tries a failed check `retry` more times before declaring it down
    assert parse_service(base(health_check={"retry": 2})).health_check.fall == 3
    assert parse_service(base(health_check={"retry": 0})).health_check.fall == 1


def test_timeout_longer_than_interval_is_allowed():
    svc = parse_service(base(health_check={"interval": 1, "timeout": 5}))
    assert svc.health_check.timeout == 5.0


@pytest.mark.parametrize("canonical, alias, value", [
    ("interval", "delay_loop", 1), ("timeout", "connect_timeout", 1), ("fall", "retry", 1)])
def test_a_setting_and_its_alias_together_are_refused(canonical, alias, value):
    message = error_of(base(health_check={canonical: value, alias: value}))
    assert message == (f"health_check sets both {canonical} and {alias}; they are the "
                       "same setting, keep one")


def test_delay_loop_at_the_top_level_points_to_health_check():
    message = error_of(base(delay_loop=2))
    assert message.startswith("unknown setting 'delay_loop' in virtual_server; known: ")
    assert "(delay_loop belongs in health_check)" in message


def test_alias_errors_name_the_key_the_user_wrote():
    assert error_of(base(health_check={"delay_loop": 0})) == \
        "health_check.delay_loop must be a number of seconds > 0, got 0"
    assert error_of(base(health_check={"retry": -1})) == \
        "health_check.retry must be an integer >= 0, got -1"


# --- vmac and lb_kind ------------------------------------------------------------------


@pytest.mark.parametrize("vip, vmac", [
    ("10.0.0.100", "02:fe:0a:00:00:64"),
    ("192.168.1.254", "02:fe:c0:a8:01:fe"),
    ("172.16.0.1", "02:fe:ac:10:00:01"),
])
def test_vmac_is_derived_from_the_vip(vip, vmac):
    assert derive_vmac(vip) == vmac
    assert parse_service(base(vip=vip)).vmac == vmac
    assert VirtualService(name="x", vip=vip).vmac == vmac


def test_a_given_vmac_is_kept():
    assert parse_service(base(vmac="02:00:00:00:01:01")).vmac == "02:00:00:00:01:01"


def test_unquoted_mac_read_as_a_number_by_yaml_gets_a_hint(tmp_path):
    text = VALID_YAML.replace("  port: 8080\n", "  port: 8080\n  vmac: 52:54:00:12:34:56\n", 1)
    with pytest.raises(ServiceConfigError) as info:
        load_service(write(tmp_path, text))
    assert "vmac must be a MAC address string; quote it in YAML" in str(info.value)


@pytest.mark.parametrize("vmac, message", [
    ("02:fe:0a:00:00", "vmac '02:fe:0a:00:00' is not a MAC address like 02:fe:0a:00:00:64"),
    ("01:00:5e:00:00:01",
     "vmac 01:00:5e:00:00:01 is a multicast MAC address; the VIP needs a unicast one"),
])
def test_bad_vmac(vmac, message):
    assert error_of(base(vmac=vmac)) == message


@pytest.mark.parametrize("written, kind", [("DR", "DR"), ("dr", "DR"), ("NAT", "NAT"),
                                          ("nat", "NAT")])
def test_lb_kind_accepts_keepalived_names_in_any_case(written, kind):
    assert parse_service(base(lb_kind=written)).lb_kind == kind


def test_dr_cannot_change_the_port():
    data = base(lb_kind="DR", port=80)
    data["real_servers"][1]["port"] = 8080
    assert error_of(data) == ("real_servers[1].port is 8080 but lb_kind DR cannot change "
                              "the port: it must be the service port 80")


# --- the error messages ----------------------------------------------------------------


def test_negative_weight_names_the_field():
    data = base()
    data["real_servers"][1]["weight"] = -1
    assert error_of(data) == "real_servers[1].weight must be an integer >= 0, got -1"


@pytest.mark.parametrize("weight", [True, 1.5, "2", None])
def test_weight_must_be_a_real_integer(weight):
    data = base()
    data["real_servers"][0]["weight"] = weight
    assert error_of(data) == \
        f"real_servers[0].weight must be an integer >= 0, got {weight!r}"


def test_weight_above_the_ipvsadm_limit():
    data = base()
    data["real_servers"][0]["weight"] = 65536
    assert error_of(data) == ("real_servers[0].weight must be at most 65535 (the ipvsadm "
                              "limit), got 65536")


def test_unknown_algorithm_lists_the_fourteen():
    assert error_of(base(lb_algo="fast")) == (
        "lb_algo 'fast' is unknown; choose one of rr, wrr, lc, wlc, sed, nq, sh, dh, "
        "lblc, lblcr, fo, ovf, mh, twos")


def test_vip_used_by_a_real_server():
    assert error_of(base(vip="10.0.0.11")) == (
        "vip 10.0.0.11 is also the address of real server web1; the VIP must be its "
        "own address")


def test_real_server_listed_twice():
    data = base()
    data["real_servers"].append({"name": "web1", "ip": "10.0.0.13"})
    assert error_of(data) == "real server web1 is listed twice"


def test_two_real_servers_on_one_address():
    data = base()
    data["real_servers"][1]["ip"] = "10.0.0.11"
    assert error_of(data) == "real servers web1 and web2 both use 10.0.0.11:80"


def test_same_ip_on_different_ports_is_two_real_servers():
    data = base()
    data["real_servers"][1].update(ip="10.0.0.11", port=81)
    assert [s.port for s in parse_service(data).real_servers] == [80, 81]


@pytest.mark.parametrize("vip, message", [
    ("abc", "vip 'abc' is not an IPv4 address"),
    ("10.0.0.256", "vip '10.0.0.256' is not an IPv4 address"),
    ("fe80::1", "vip 'fe80::1' is not an IPv4 address"),
    (167772260, "vip 167772260 is not an IPv4 address"),
    ("224.0.0.18", "vip 224.0.0.18 is not a unicast IPv4 address"),
    ("0.0.0.0", "vip 0.0.0.0 is not a unicast IPv4 address"),
])
def test_vip_must_be_a_unicast_ipv4_address(vip, message):
    assert error_of(base(vip=vip)) == message


def test_real_server_ip_must_be_ipv4():
    data = base()
    data["real_servers"][1]["ip"] = "web2.example"
    assert error_of(data) == "real_servers[1].ip 'web2.example' is not an IPv4 address"


@pytest.mark.parametrize("kind", ["TUN", "tun", "masq", 1])
def test_lb_kind_must_be_nat_or_dr(kind):
    assert error_of(base(lb_kind=kind)) == f"lb_kind must be NAT or DR, not {kind!r}"


def test_lb_kind_tun_message():
    assert error_of(base(lb_kind="TUN")) == "lb_kind must be NAT or DR, not 'TUN'"


def test_unknown_key_in_a_real_server_lists_the_known_ones():
    data = base()
    data["real_servers"][0]["wieght"] = 2
    assert error_of(data) == ("unknown setting 'wieght' in real_servers[0]; known: name, "
                              "ip, port, weight")


def test_unknown_key_in_health_check():
    message = error_of(base(health_check={"intervall": 1}))
    assert message.startswith("unknown setting 'intervall' in health_check; known: type, ")


def test_unknown_key_next_to_virtual_server():
    data = {"virtual_server": base(), "real_servers": []}
    assert error_of(data).startswith("unknown setting 'real_servers' next to virtual_server")


def test_udp_is_refused_with_the_reason():
    message = error_of(base(protocol="udp"))
    assert message.startswith("protocol 'udp' is not supported; only tcp is")
    assert "TCP states" in message
    assert error_of(base(protocol="sctp")) == "protocol 'sctp' is not supported; only tcp is"


@pytest.mark.parametrize("port", [0, 65536, -80, "80", True, 80.0])
def test_service_port_range(port):
    assert error_of(base(port=port)) == \
        f"port must be an integer from 1 to 65535, got {port!r}"


@pytest.mark.parametrize("port", [0, 65536])
def test_real_server_port_range(port):
    data = base()
    data["real_servers"][1]["port"] = port
    assert error_of(data) == \
        f"real_servers[1].port must be an integer from 1 to 65535, got {port}"


@pytest.mark.parametrize("setting, value, message", [
    ("rise", 0, "health_check.rise must be an integer >= 1, got 0"),
    ("fall", 0, "health_check.fall must be an integer >= 1, got 0"),
    ("fall", True, "health_check.fall must be an integer >= 1, got True"),
    ("interval", 0, "health_check.interval must be a number of seconds > 0, got 0"),
    ("interval", "1s", "health_check.interval must be a number of seconds > 0, got '1s'"),
    ("timeout", -1.5, "health_check.timeout must be a number of seconds > 0, got -1.5"),
    ("connect_timeout", float("inf"),
     "health_check.connect_timeout must be a number of seconds > 0, got inf"),
    ("type", "ssl", "health_check.type must be icmp, tcp or http, not 'ssl'"),
    ("port", 70000, "health_check.port must be an integer from 1 to 65535, got 70000"),
])
def test_health_check_values(setting, value, message):
    assert error_of(base(health_check={setting: value})) == message


@pytest.mark.parametrize("setting, value, message", [
    ("path", "health", "health_check.path must be a URL path starting with / without spaces, "
                       "quotes, braces, '#' or ';', got 'health'"),
    ("status", 99, "health_check.status must be an HTTP status code from 100 to 599, "
                   "got 99"),
    ("body", 42, "health_check.body must be the text the response must contain, got 42"),
])
def test_http_settings_are_checked_for_http(setting, value, message):
    assert error_of(base(health_check={"type": "http", setting: value})) == message


def test_http_settings_are_ignored_for_other_checks():
    check = {"type": "tcp", "path": "nonsense", "status": 99, "body": 42}
    assert parse_service(base(health_check=check)).health_check == HealthCheck(type="tcp")
    icmp = parse_service(base(health_check={"type": "ICMP", "port": 0})).health_check
    assert icmp == HealthCheck(type="icmp")


@pytest.mark.parametrize("name", ["", "web 1", "wéb", "a.b", 7])
def test_real_server_names(name):
    data = base()
    data["real_servers"][0]["name"] = name
    assert error_of(data) == ("real_servers[0].name must be a non-empty name of letters, "
                              f"digits, _ and -, got {name!r}")


def test_service_name_is_required_and_checked():
    data = base()
    del data["name"]
    assert error_of(data) == "name is missing"
    assert error_of(base(name="my web")).startswith("name must be a non-empty name")


def test_missing_required_settings():
    data = base()
    del data["vip"]
    assert error_of(data) == "vip is missing"
    data = base()
    del data["real_servers"][0]["ip"]
    assert error_of(data) == "real_servers[0].ip is missing"
    data = base()
    del data["real_servers"]
    assert error_of(data) == "real_servers is missing; list at least one real server"


def test_at_least_one_real_server():
    assert error_of(base(real_servers=[])) == \
        "real_servers must list at least one real server"
    assert error_of(base(real_servers={"web1": {}})) == \
        "real_servers must be a list of real servers, got a mapping"
    assert error_of(base(real_servers=["web1"])) == \
        "real_servers[0] must be a mapping with name, ip, port, weight, got 'web1'"


@pytest.mark.parametrize("setting", ["inhibit_on_failure", "sh_fallback", "sh_port",
                                     "mh_fallback", "mh_port"])
def test_flags_must_be_booleans(setting):
    assert error_of(base(**{setting: "yes please"})) == \
        f"{setting} must be true or false, got 'yes please'"


def test_persistence_timeout_must_be_a_non_negative_integer():
    assert error_of(base(persistence_timeout=-1)) == \
        "persistence_timeout must be an integer >= 0, got -1"


def test_not_a_mapping():
    assert error_of(["web"]) == "a virtual service must be a mapping of settings, got a list"
    assert error_of({"virtual_server": "web"}) == \
        "virtual_server must be a mapping of settings, got a string"


def test_error_is_a_value_error_and_one_sentence():
    data = base()
    data["real_servers"][1]["weight"] = -1
    with pytest.raises(ValueError) as info:
        parse_service(data)
    assert re.fullmatch(r"[^\n]+", str(info.value)) and ". " not in str(info.value)


# --- files -----------------------------------------------------------------------------


def test_missing_file_names_the_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ServiceConfigError) as info:
        load_service(path)
    assert str(info.value) == f"service file {path} does not exist"


def test_yaml_syntax_error_names_the_file_and_line(tmp_path):
    path = write(tmp_path, "virtual_server:\n  name: web\n  vip: [10.0.0.100\n")
    with pytest.raises(ServiceConfigError) as info:
        load_service(path)
    message = str(info.value)
    assert message.startswith(f"service file {path} is not valid YAML: ")
    assert "(line " in message


def test_key_written_twice_is_refused(tmp_path):
    text = VALID_YAML.replace("    rise: 2\n", "    rise: 2\n    rise: 5\n")
    path = write(tmp_path, text)
    with pytest.raises(ServiceConfigError) as info:
        load_service(path)
    message = str(info.value)
    assert message.startswith(f"service file {path} is not valid YAML: key 'rise' "
                              "appears twice (first on line 14)")
    assert "(line 15, column 5)" in message


def test_same_key_in_different_mappings_is_fine(tmp_path):
    svc = load_service(write(tmp_path, VALID_YAML))  # 'port' in 3 mappings, 'name' in 3
    assert svc.port == 8080


def test_empty_file(tmp_path):
    path = write(tmp_path, "# nothing yet\n")
    with pytest.raises(ServiceConfigError) as info:
        load_service(path)
    assert str(info.value) == f"service file {path} is empty"


def test_validation_error_in_a_file_names_file_and_field(tmp_path):
    path = write(tmp_path, VALID_YAML.replace("weight: 3", "weight: -1"))
    with pytest.raises(ServiceConfigError) as info:
        load_service(path)
    assert str(info.value) == \
        f"service file {path}: real_servers[0].weight must be an integer >= 0, got -1"


def test_yaml_tags_that_build_python_objects_are_refused(tmp_path):
    path = write(tmp_path, "name: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ServiceConfigError, match="is not valid YAML"):
        load_service(path)


# --- helpers ---------------------------------------------------------------------------


def test_server_lookup():
    svc = parse_service(base())
    assert svc.server("web2") == RealServerSpec("web2", "10.0.0.12", 80, 2)
    with pytest.raises(KeyError) as info:
        svc.server("web9")
    assert "no real server 'web9'" in str(info.value)
    assert "known: web1, web2" in str(info.value)


def test_scheduler_options_only_for_sh():
    svc = parse_service(base(lb_algo="sh", sh_fallback=True, sh_port=False))
    assert svc.scheduler_options() == {"fallback": True, "port": False}
    svc = parse_service(base(lb_algo="wlc", sh_fallback=True))
    assert svc.scheduler_options() == {}


def test_scheduler_options_for_mh():
    svc = parse_service(base(lb_algo="mh", mh_fallback=True, sh_fallback=False))
    assert svc.scheduler_options() == {"fallback": True, "port": False}
    svc = parse_service(base(lb_algo="mh", mh_port=True, sh_fallback=True))
    assert svc.scheduler_options() == {"fallback": False, "port": True}
    # switching the service to another scheduler (set_scheduler) takes that one's flags
    assert svc.scheduler_options("sh") == {"fallback": True, "port": False}
    assert svc.scheduler_options("MH") == {"fallback": False, "port": True}
    assert svc.scheduler_options("twos") == {}


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_scheduler_options_build_a_scheduler(algo):
    svc = parse_service(base(lb_algo=algo, sh_port=True, mh_port=True, mh_fallback=True))
    assert make_scheduler(svc.lb_algo, **svc.scheduler_options()).name == algo


MH_YAML = """\
virtual_server:
  name: web
  vip: 10.0.0.100
  lb_algo: MH
  mh_fallback: true
  mh_port: true
  real_servers:
    - {name: web1, ip: 10.0.0.11, weight: 3}
    - {name: web2, ip: 10.0.0.12, weight: 1}
"""


def test_an_mh_service_file_with_its_flags_validates_and_round_trips(tmp_path):
    svc = load_service(write(tmp_path, MH_YAML))
    assert (svc.lb_algo, svc.mh_fallback, svc.mh_port) == ("mh", True, True)
    assert (svc.sh_fallback, svc.sh_port) == (False, False)
    assert parse_service(service_to_dict(svc)) == svc
    scheduler = make_scheduler(svc.lb_algo, **svc.scheduler_options())
    assert isinstance(scheduler, MaglevHashing)
    assert (scheduler.fallback, scheduler.port) == (True, True)


@pytest.mark.parametrize("algo", ["fo", "ovf", "twos"])
def test_the_other_new_schedulers_are_accepted(algo):
    svc = parse_service(base(lb_algo=algo.upper()))
    assert svc.lb_algo == algo and svc.scheduler_options() == {}


@pytest.mark.parametrize("flag", ["sh-fallback", "sh-port", "mh-fallback", "mh-port"])
def test_keepalived_spelling_of_a_flag_points_to_ours(flag):
    message = error_of(base(lb_algo=flag[:2], **{flag: True}))
    assert message.startswith(f"unknown setting '{flag}' in virtual_server; known: ")
    assert message.endswith(f"(it is spelt {flag.replace('-', '_')} here)")


def test_health_check_target_port():
    svc = parse_service(base(health_check={"port": 8081}))
    assert svc.health_check.target_port(svc.server("web1")) == 8081
    svc = parse_service(base())
    assert svc.health_check.target_port(svc.server("web1")) == 80


def test_parse_does_not_modify_its_input():
    data = base(health_check={"retry": 2, "delay_loop": 3})
    before = copy.deepcopy(data)
    parse_service(data)
    assert data == before


@pytest.mark.parametrize("path", [
    '/health\n  }\n  MISC_CHECK {\n    misc_path "/bin/touch /root/pwned"\n  }\n  url {\n    path /',
    "/health }", '/a"b', "/a#b", "/a;b", "/a\\b", "/a b", "/a\tb"])
def test_a_health_check_path_cannot_add_to_keepalived_s_configuration(path):
    """The path lands in keepalived's configuration (lab 05's IPVS part): a student's
    service.yaml must not be able to add a MISC_CHECK that keepalived would run as root."""
    message = error_of(base(health_check={"type": "http", "path": path}))
    assert "health_check.path must be a URL path starting with / without spaces" in message


def test_an_ordinary_health_check_path_with_a_query_is_accepted():
    svc = parse_service(base(health_check={"type": "http", "path": "/health?probe=1&x=%20"}))
    assert svc.health_check.path == "/health?probe=1&x=%20"
