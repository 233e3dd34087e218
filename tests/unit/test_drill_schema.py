"""redlab.drill.schema: a drill file is checked before anything starts, each mistake one
sentence naming the file, the line, the field and the fix."""

import re
import textwrap

import pytest

import redlab.drill.schema as schema_module
from controllers.validation import ValidationError
from redlab.drill.schema import DrillFileError, check_drill, load_drill, variant
from redlab.errors import ConfigError, RedlabError

VALID = """\
drill: vrrp-crash
description: the keepalived master crashes under a probe
network:
  topology: vrrp_pair
  params: {}
  keepalived: {advert_int: 1, use_vmac: false}
  controller: {garp_reaction: true}
probes:
  - {name: web, type: http, from: client1, url: "http://10.0.0.100/", interval: 0.05, timeout: 0.5}
timeline:
  - {id: crash, at: 2.0, fault: host_crash, host: web1}
  - {id: back, when: {probe: web, good: 10}, step: undo, of: crash}
expect:
  - {after: crash, recover_within: 5.0, probe: web}
  - {after: crash, max_lost: 10, probe: web}
  - {after: crash, vip_held_by_one: {vip: 10.0.0.100, hosts: [web1, web2]}, within: 5.0}
  - {after: crash, arp_moved: {client: client1, vip: 10.0.0.100, to: web2}, within: 5.0}
  - {during: [crash, back], never_failed: web}
variants:
  use_vmac: {network: {keepalived: {use_vmac: true}}}
gameday: {faults: [crash], restore_within: 60}
"""

# a load-balancer drill: a service, a drain and a command, on the service LAN
LB = """\
drill: lb-maintenance
network:
  topology: service_lan
  params: {servers: 2, dns: false}
  service:
    name: web
    vip: 10.0.0.100
    lb_algo: rr
    real_servers:
      - {name: web1, ip: 10.0.0.11}
      - {name: web2, ip: 10.0.0.12}
probes:
  - {name: web, type: http, from: client1, url: "http://10.0.0.100/"}
  - {name: port, type: tcp, from: client1, host: web2, port: 80}
  - {name: ping, type: icmp, from: client1, host: 10.0.0.100}
timeline:
  - {id: drain, at: 1, fault: lb, action: drain, server: web1}
  - {id: upgrade, at: 3, fault: command, host: web1, run: "nginx -s reload"}
  - {id: back, at: 5, step: undo, of: drain}
expect:
  - {during: [drain, back], max_lost: 0, probe: web}
"""


def write(tmp_path, text, name="drill.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def edited(text, old, new):
    assert old in text, old
    return text.replace(old, new, 1)


def error_of(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(DrillFileError) as info:
        load_drill(path)
    return str(info.value)


# --- a valid file -----------------------------------------------------------------------


def test_a_valid_drill_loads_with_its_defaults(tmp_path):
    drill = load_drill(write(tmp_path, VALID))
    assert drill["network"] == {
        "topology": "vrrp_pair", "params": {},
        "keepalived": {"advert_int": 1, "use_vmac": False, "nopreempt": False, "garp": True},
        "controller": {"garp_reaction": True}, "daemons": []}
    assert drill["timeline"][1] == {"id": "back", "when": {"probe": "web", "good": 10},
                                    "step": "undo", "of": "crash"}
    assert drill["gameday"] == {"faults": ["crash"], "restore_within": 60}
    assert len(drill["expect"]) == 5


def test_a_minimal_drill_gets_every_default(tmp_path):
    text = ("drill: ping\nnetwork: {topology: vrrp_pair}\n"
            "probes: [{name: p, type: icmp, from: client1, host: web1}]\n")
    assert load_drill(write(tmp_path, text)) == {
        "drill": "ping", "description": "",
        "network": {"topology": "vrrp_pair", "params": {},
                    "keepalived": {"advert_int": 1, "use_vmac": False, "nopreempt": False,
                                   "garp": True},
                    "controller": {"garp_reaction": True}, "daemons": []},
        "probes": [{"name": "p", "type": "icmp", "from": "client1", "host": "web1",
                    "interval": 0.05, "timeout": 0.5}],
        "timeline": [], "expect": [], "variants": {}}


def test_defaults_of_a_kind_are_filled_in(tmp_path):
    text = edited(VALID, "fault: host_crash, host: web1", "fault: hang, host: web1")
    text = edited(text, "keepalived: {advert_int: 1, use_vmac: false}",
                  "keepalived: {vrrp_script: {path: /health}}")
    text = edited(text, "timeline:\n", "  - {name: dns, type: dns, from: client1, server: web1,"
                                       " query: www.lab.example}\ntimeline:\n")
    drill = load_drill(write(tmp_path, text))
    assert drill["timeline"][0]["daemon"] == "nginx"
    assert drill["probes"][1]["qtype"] == "A"
    assert drill["network"]["keepalived"]["vrrp_script"] == {
        "path": "/health", "port": 80, "interval": 1, "timeout": 1, "rise": 2, "fall": 2}


def test_the_module_docstring_example_is_a_valid_drill(tmp_path):
    doc = schema_module.__doc__
    block = doc.split("operator steps happen when, and what must hold afterwards::\n\n")[1]
    block = block.split("\n\n")[0]
    drill = load_drill(write(tmp_path, textwrap.dedent(block)))
    assert drill["drill"] == "vrrp-crash" and len(drill["expect"]) == 5


def test_a_load_balancer_drill_with_its_service(tmp_path):
    drill = load_drill(write(tmp_path, LB))
    service = drill["network"]["service"]
    assert service["lb_algo"] == "rr" and service["vmac"] == "02:fe:0a:00:00:64"
    assert [s["port"] for s in service["real_servers"]] == [80, 80]  # parsed, defaults in


def test_a_service_file_next_to_the_drill(tmp_path):
    write(tmp_path, "name: web\nvip: 10.0.0.100\nreal_servers:\n"
                    "  - {name: web1, ip: 10.0.0.11}\n  - {name: web2, ip: 10.0.0.12}\n",
          "service.yaml")
    text = LB.split("  service:\n")[0] + "  service: service.yaml\n" + \
        "probes:" + LB.split("probes:")[1]
    drill = load_drill(write(tmp_path, text))
    assert drill["network"]["service"]["real_servers"][1]["name"] == "web2"


def test_a_drill_file_error_is_a_redlab_error_and_a_value_error(tmp_path):
    with pytest.raises(DrillFileError) as info:
        load_drill(tmp_path / "none.yaml")
    assert isinstance(info.value, ConfigError) and isinstance(info.value, RedlabError)
    assert isinstance(info.value, ValueError)


# --- variants ---------------------------------------------------------------------------


def test_a_variant_is_the_drill_with_its_overrides(tmp_path):
    drill = load_drill(write(tmp_path, VALID))
    vmac = variant(drill, "use_vmac")
    assert vmac["network"]["keepalived"]["use_vmac"] is True
    assert vmac["network"]["keepalived"]["advert_int"] == 1       # merged, not replaced
    assert vmac["variants"] == {} and vmac["timeline"] == drill["timeline"]
    assert drill["network"]["keepalived"]["use_vmac"] is False    # the drill is untouched
    assert variant(drill, "default") is drill


def test_a_variant_replaces_lists(tmp_path):
    text = edited(VALID, "  use_vmac: {network: {keepalived: {use_vmac: true}}}\n",
                  "  use_vmac: {network: {keepalived: {use_vmac: true}}}\n"
                  "  ping: {probes: [{name: web, type: icmp, from: client1, host: web2}]}\n")
    drill = load_drill(write(tmp_path, text))
    assert variant(drill, "ping")["probes"] == [{"name": "web", "type": "icmp",
                                                 "from": "client1", "host": "web2",
                                                 "interval": 0.05, "timeout": 0.5}]


def test_an_unknown_variant_names_the_known_ones(tmp_path):
    drill = load_drill(write(tmp_path, VALID))
    with pytest.raises(ConfigError) as info:
        variant(drill, "use_vmc")
    assert str(info.value) == ("drill vrrp-crash variant 'use_vmc' is unknown; did you mean "
                               "'use_vmac'? (choose one of: default, use_vmac)")


# --- every kind of mistake: (id, old, new, line, sentence) -------------------------------

ERRORS = [
    # unknown keys, with a suggestion when one is close
    ("unknown-top-level-key", "network:\n", "netwrok:\n", 3,
     "the drill has no field 'netwrok'; did you mean 'network'? (fields: drill, "
     "description, network, probes, timeline, expect, variants, gameday)"),
    ("unknown-timeline-key", "at: 2.0, fault: host_crash", "atx: 2.0, fault: host_crash", 11,
     "timeline[0] has no field 'atx'; did you mean 'at'? (fields: id, at, when, fault, step, "
     "host)"),
    ("misspelt-fault-field", "host_crash, host: web1", "host_crash, hots: web1", 11,
     "timeline[0] has no field 'hots'; did you mean 'host'? (fields: id, at, when, fault, "
     "step, host)"),
    ("field-of-another-probe-type", "timeout: 0.5}", "timeout: 0.5, port: 80}", 9,
     "probes[0] has no field 'port'; remove it or use one of: name, type, from, interval, "
     "timeout, url"),
    ("keepalived-key-with-hint", "advert_int: 1,", "priority: 150, advert_int: 1,", 6,
     "network.keepalived has no field 'priority'; remove it or use one of: advert_int, "
     "use_vmac, nopreempt, garp, garp_master_delay, vrrp_script (a priority change is a "
     "timeline entry: fault: keepalived_priority)"),
    ("unknown-expectation-key", "max_lost: 10,", "max_loss: 10,", 15,
     "expect[1] has no field 'max_loss'; did you mean 'max_lost'? (fields: after, during, "
     "probe, within, recover_within, max_lost, served_by, not_served_by, vip_held_by_one, "
     "arp_moved, never_failed, fails_within)"),
    # wrong types
    ("interval-not-a-number", "interval: 0.05", "interval: fast", 9,
     "probes[0].interval must be a number of seconds > 0, got 'fast'"),
    ("boolean", "use_vmac: false", "use_vmac: nope", 6,
     "network.keepalived.use_vmac must be true or false, got 'nope'"),
    ("description-a-list", "description: the", "description:\n  - the", 2,
     "description must be a string, got ['the keepalived master crashes under a probe']"),
    ("drill-name", "drill: vrrp-crash", "drill: vrrp crash", 1,
     "drill must be a name made of letters, digits, '-', '_' and '.' that starts with a letter "
     "or digit, got 'vrrp crash'"),
    ("link-shape", "fault: host_crash, host: web1", "fault: link_down, link: [web1]", 11,
     "timeline[0].link must be the two ends of the link, such as [s1, web1], got ['web1']"),
    ("during-shape", "during: [crash, back]", "during: [crash]", 18,
     "expect[4].during must be two timeline ids [FROM, TO], got ['crash']"),
    ("url", 'url: "http://10.0.0.100/"', 'url: "10.0.0.100/"', 9,
     "probes[0].url must be an http:// URL such as http://10.0.0.100/, got '10.0.0.100/'"),
    ("vip-not-ipv4", "vip_held_by_one: {vip: 10.0.0.100", "vip_held_by_one: {vip: 10.0.0.300",
     16, "expect[2].vip_held_by_one.vip '10.0.0.300' is not an IPv4 address"),
    ("variants-not-mappings", "use_vmac: {network: {keepalived: {use_vmac: true}}}",
     "use_vmac: true", 20, "variants.use_vmac must be a mapping of the fields it changes, "
     "such as {network: {keepalived: {use_vmac: true}}}, got True"),
    # out of range
    ("interval-zero", "interval: 0.05", "interval: 0", 9,
     "probes[0].interval must be a number of seconds > 0, got 0"),
    ("advert-int", "advert_int: 1,", "advert_int: 300,", 6,
     "network.keepalived.advert_int must be a number of seconds > 0 and <= 255, got 300"),
    ("negative-at", "at: 2.0", "at: -1", 11,
     "timeline[0].at must be a number of seconds >= 0, got -1"),
    ("max-lost", "max_lost: 10", "max_lost: -1", 15,
     "expect[1].max_lost must be an integer >= 0, got -1"),
    ("good-count", "good: 10", "good: 0", 12,
     "timeline[1].when.good must be an integer >= 1, got 0"),
    ("priority", "fault: host_crash, host: web1",
     "fault: keepalived_priority, host: web1, priority: 255", 11,
     "timeline[0].priority must be an integer from 1 to 254, got 255"),
    ("no-probes", "probes:\n  - {name: web, type: http, from: client1, "
                  "url: \"http://10.0.0.100/\", interval: 0.05, timeout: 0.5}\n",
     "probes: []\n", 8, "probes must be a non-empty list, got []"),
    ("hosts-twice", "hosts: [web1, web2]", "hosts: [web1, web1]", 16,
     "expect[2].vip_held_by_one.hosts lists 'web1' twice; list it once"),
    # enums
    ("fault-kind", "fault: host_crash", "fault: host_crsh", 11,
     "timeline[0].fault 'host_crsh' is unknown; did you mean 'host_crash'? (choose one of: "
     "link_down, host_crash, daemon_stop, http_500, hang, controller_kill, lb, command, "
     "keepalived_priority)"),
    ("probe-type", "type: http", "type: htp", 9,
     "probes[0].type 'htp' is unknown; did you mean 'http'? (choose one of: http, tcp, icmp, "
     "dns)"),
    ("daemon", "fault: host_crash, host: web1", "fault: daemon_stop, host: web1, daemon: nginz",
     11, "timeline[0].daemon 'nginz' is unknown; did you mean 'nginx'? (choose one of: "
     "keepalived, nginx, named, haproxy, squid)"),
    ("step", "step: undo", "step: redo", 12,
     "timeline[1].step 'redo' is unknown; choose one of: undo"),
    # missing
    ("drill-missing", "drill: vrrp-crash\n", "", 1, "drill is missing"),
    ("topology-empty", "topology: vrrp_pair", "topology:", 4,
     "network.topology must be a non-empty string, got None"),
    ("topology-missing", "  topology: vrrp_pair\n", "", 3,
     "network has neither topology nor nodes; add topology: NAME (one of topologies/) or "
     "nodes: and links:"),
    ("url-missing", 'url: "http://10.0.0.100/", ', "", 9,
     "probes[0].url is missing; type http needs it"),
    ("link-missing", "fault: host_crash, host: web1", "fault: link_down", 11,
     "timeline[0].link is missing; fault link_down needs it"),
    ("of-missing", "step: undo, of: crash", "step: undo", 12,
     "timeline[1].of is missing; step undo needs it"),
    ("restore-within-missing", "restore_within: 60}", "probe: web}", 21,
     "gameday.restore_within is missing"),
    ("probe-of-recover-within", "recover_within: 5.0, probe: web}", "recover_within: 5.0}", 14,
     "expect[0] has recover_within but no probe; add probe too"),
    ("within-of-vip-held", ", within: 5.0}\n  - {after: crash, arp", "}\n  - {after: crash, arp",
     16, "expect[2] has vip_held_by_one but no within; add within too"),
    ("neither-fault-nor-step", "fault: host_crash, host: web1", "host: web1", 11,
     "timeline[0] needs fault: KIND (what breaks) or step: undo"),
    # names: hosts, probes, timeline ids, topologies
    ("unknown-topology", "topology: vrrp_pair", "topology: vrrp_par", 4,
     "network.topology 'vrrp_par' is unknown; did you mean 'vrrp_pair'? (choose one of: "
     "cold_standby, declared, dns_rr, routed, service_lan, vip_takeover, vrrp_pair)"),
    ("unknown-topology-param", "params: {}", "params: {server: 3}", 5,
     "network.params of topology vrrp_pair has no field 'server'; did you mean 'servers'? "
     "(fields: use_vmac, advert_int, servers, deploy_from)"),
    ("probe-from-unknown-host", "from: client1", "from: clinet1", 9,
     "probes[0].from 'clinet1' names no host of topology vrrp_pair; did you mean 'client1'? "
     "(choose one of: client1, web1, web2)"),
    ("fault-host-unknown", "host: web1}", "host: web9}", 11,
     "timeline[0].host 'web9' names no host of topology vrrp_pair; did you mean 'web2'? "
     "(choose one of: client1, web1, web2)"),
    ("fault-host-a-switch", "host: web1}", "host: s1}", 11,
     "timeline[0].host 's1' names no host of topology vrrp_pair; choose one of: client1, "
     "web1, web2"),
    ("after-unknown-id", "after: crash, recover_within", "after: crsh, recover_within", 14,
     "expect[0].after 'crsh' names no timeline entry; did you mean 'crash'? (choose one of: "
     "crash, back)"),
    ("during-unknown-id", "during: [crash, back]", "during: [crash, bakc]", 18,
     "expect[4].during[1] 'bakc' names no timeline entry; did you mean 'back'? (choose one "
     "of: crash, back)"),
    ("when-unknown-probe", "when: {probe: web,", "when: {probe: webb,", 12,
     "timeline[1].when.probe 'webb' names no probe; did you mean 'web'? (choose one of: web)"),
    ("expect-unknown-probe", "max_lost: 10, probe: web}", "max_lost: 10, probe: wbe}", 15,
     "expect[1].probe 'wbe' names no probe; did you mean 'web'? (choose one of: web)"),
    ("never-failed-unknown-probe", "never_failed: web", "never_failed: http", 18,
     "expect[4].never_failed 'http' names no probe; choose one of: web"),
    ("undo-a-later-entry", "step: undo, of: crash", "step: undo, of: back", 12,
     "timeline[1].of 'back' names no earlier timeline entry; choose one of: crash"),
    ("arp-moved-to-unknown", "to: web2}", "to: web3}", 17,
     "expect[3].arp_moved.to 'web3' names no host of topology vrrp_pair; did you mean "
     "'web2'? (choose one of: client1, web1, web2)"),
    ("vip-held-by-unknown", "hosts: [web1, web2]", "hosts: [web1, client2]", 16,
     "expect[2].vip_held_by_one.hosts[1] 'client2' names no host of topology vrrp_pair; did "
     "you mean 'client1'? (choose one of: client1, web1, web2)"),
    ("gameday-unknown-fault", "faults: [crash]", "faults: [crush]", 21,
     "gameday.faults[0] 'crush' names no timeline entry; did you mean 'crash'? (choose one "
     "of: crash, back)"),
    ("gameday-a-step", "faults: [crash]", "faults: [back]", 21,
     "gameday.faults[0] 'back' is a step, not a fault; list faults only"),
    ("gameday-unknown-probe", "restore_within: 60}", "restore_within: 60, probe: wb}", 21,
     "gameday.probe 'wb' names no probe; did you mean 'web'? (choose one of: web)"),
    # cross-field rules
    ("probe-names-twice", "timeout: 0.5}\n",
     "timeout: 0.5}\n  - {name: web, type: icmp, from: client1, host: web1}\n", 10,
     "probes[1].name 'web' is already probes[0]; give each probe its own name"),
    ("timeline-ids-twice", "{id: back, when", "{id: crash, when", 12,
     "timeline[1].id 'crash' is already timeline[0]; give each entry its own id"),
    ("at-and-when", "{id: crash, at: 2.0,", "{id: crash, at: 2.0, when: {probe: web, good: 1},",
     11, "timeline[0] has both at and when; keep one"),
    ("neither-at-nor-when", "{id: crash, at: 2.0,", "{id: crash,", 11,
     "timeline[0] has neither at nor when; add at: SECONDS or when: {probe: NAME, good: N}"),
    ("fault-and-step", "step: undo, of: crash", "step: undo, of: crash, fault: controller_kill", 12,
     "timeline[1] has both fault and step; keep one"),
    ("good-and-failed", "good: 10}", "good: 10, failed: 1}", 12,
     "timeline[1].when has both good and failed; keep one"),
    ("when-counts-nothing", "when: {probe: web, good: 10}", "when: {probe: web}", 12,
     "timeline[1].when has neither good nor failed; add good: N or failed: N (answers in a "
     "row)"),
    ("undo-a-step", "step: undo, of: crash}\n",
     "step: undo, of: crash}\n  - {id: again, at: 9, step: undo, of: back}\n", 13,
     "timeline[2].of 'back' is a step, not a fault; undo a fault"),
    ("after-and-during", "{during: [crash, back],", "{during: [crash, back], after: crash,", 18,
     "expect[4] has both after and during; keep one"),
    ("neither-after-nor-during", "{after: crash, max_lost: 10,", "{max_lost: 10,", 15,
     "expect[1] has neither after nor during; add after: ID (a timeline id) or during: "
     "[FROM, TO]"),
    ("two-checks", "never_failed: web}", "never_failed: web, max_lost: 0, probe: web}", 18,
     "expect[4] checks max_lost and never_failed; write one entry per check"),
    ("no-check", "{during: [crash, back], never_failed: web}", "{during: [crash, back]}", 18,
     "expect[4] checks nothing; add one of recover_within, max_lost, served_by, "
     "not_served_by, vip_held_by_one, arp_moved, never_failed, fails_within"),
    ("link-unknown-node", "fault: host_crash, host: web1", "fault: link_down, link: [s1, web9]",
     11, "timeline[0].link 'web9' is not a node of topology vrrp_pair; did you mean 'web2'? "
     "(nodes: client1, web1, web2, s1)"),
    ("link-that-does-not-exist", "fault: host_crash, host: web1",
     "fault: link_down, link: [web1, web2]", 11,
     "timeline[0].link: topology vrrp_pair has no link between web1 and web2; web1 is linked "
     "to s1"),
    # variants
    ("variant-unknown-field", "keepalived: {use_vmac: true}", "keepalived: {use_vmc: true}", 20,
     "variant use_vmac: network.keepalived has no field 'use_vmc'; did you mean 'use_vmac'? "
     "(fields: advert_int, use_vmac, nopreempt, garp, garp_master_delay, vrrp_script)"),
    ("variant-wrong-value", "keepalived: {use_vmac: true}", "keepalived: {use_vmac: 3}", 20,
     "variant use_vmac: network.keepalived.use_vmac must be true or false, got 3"),
    ("variant-changes-the-name", "use_vmac: {network:", "use_vmac: {drill: other, network:", 20,
     "variants.use_vmac cannot change drill; remove it from the variant"),
    ("variant-breaks-a-name", "use_vmac: {network: {keepalived: {use_vmac: true}}}",
     "use_vmac: {network: {topology: dns_rr}}", 20,
     "variant use_vmac: probes[0].from 'client1' names no host of topology dns_rr; choose "
     "one of: carriergw, dns1, pc1, pc2, pc3, phone1, phone2, phone3, web1, web2, web3"),
]


@pytest.mark.parametrize("old, new, line, sentence", [c[1:] for c in ERRORS],
                         ids=[c[0] for c in ERRORS])
def test_each_mistake_is_one_sentence_with_its_line(tmp_path, old, new, line, sentence):
    path = tmp_path / "drill.yaml"
    assert error_of(tmp_path, edited(VALID, old, new)) == \
        f"drill file {path}, line {line}: {sentence}"


@pytest.mark.parametrize("old, new", [c[1:3] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_every_error_is_one_line(tmp_path, old, new):
    message = error_of(tmp_path, edited(VALID, old, new))
    assert re.fullmatch(r"[^\n]+", message) and ". " not in message


def test_the_error_keeps_the_field_path(tmp_path):
    path = write(tmp_path, edited(VALID, "host: web1}", "host: web9}"))
    with pytest.raises(DrillFileError) as info:
        load_drill(path)
    assert info.value.path == ("timeline", 0, "host")


# --- the network's parameters and service -----------------------------------------------


LB_ERRORS = [
    ("params-that-do-not-build", "params: {servers: 2, dns: false}",
     "params: {servers: 3, bw: [1, 2]}", 4,
     "network.params do not build topology service_lan (bw needs one capacity per web "
     "server (3), got [1, 2]); fix them"),
    ("service-mistake", "{name: web2, ip: 10.0.0.12}", "{name: web2, ip: 10.0.0.12, weight: -1}",
     11, "network.service: real_servers[1].weight must be an integer >= 0, got -1"),
    ("service-semantic", "ip: 10.0.0.12}", "ip: 10.0.0.11}", 5,
     "network.service: real servers web1 and web2 both use 10.0.0.11:80"),
    ("service-type", "  service:\n", "  service: 3\n  other:\n", 5,
     "network.service must be a service (a mapping as in service.yaml) or the path of a "
     "service file, got 3"),
    ("lb-server-unknown", "action: drain, server: web1", "action: drain, server: web3", 17,
     "timeline[0].server 'web3' names no real server of network.service; did you mean "
     "'web2'? (choose one of: web1, web2)"),
    ("lb-add-an-existing-server", "action: drain, server: web1",
     "action: add, server: web1, ip: 10.0.0.13", 17,
     "timeline[0].server 'web1' is already a real server; add a new name"),
    ("lb-add-without-ip", "action: drain, server: web1", "action: add, server: web3", 17,
     "timeline[0].ip is missing; action add needs it"),
    ("lb-weight-range", "action: drain, server: web1", "action: weight, server: web1, "
                                                        "weight: 70000", 17,
     "timeline[0].weight must be an integer from 0 to 65535, got 70000"),
    ("tcp-target", "host: web2, port: 80", "host: web9, port: 80", 14,
     "probes[1].host 'web9' names no host of topology service_lan and is no IPv4 address; "
     "did you mean 'web2'? (choose one of: client1, director, web1, web2)"),
    ("tcp-port", "host: web2, port: 80", "host: web2, port: 0", 14,
     "probes[1].port must be an integer from 1 to 65535, got 0"),
    ("tcp-port-missing", "host: web2, port: 80", "host: web2", 14,
     "probes[1].port is missing; type tcp needs it"),
    ("command-run-empty", 'run: "nginx -s reload"', 'run: ""', 18,
     "timeline[1].run must be a non-empty string, got ''"),
    ("when-server-unknown", "{id: back, at: 5,", "{id: back, when: {server: web7, active: 0},",
     19, "timeline[2].when.server 'web7' names no real server of network.service; did you "
         "mean 'web2'? (choose one of: web1, web2)"),
    ("when-server-no-state", "{id: back, at: 5,", "{id: back, when: {server: web1},", 19,
     "timeline[2].when has neither active nor health; add active: N (ActiveConn at most "
     "N) or health: up|down"),
    ("when-probe-and-server", "{id: back, at: 5,",
     "{id: back, when: {probe: web, server: web1, good: 3},", 19,
     "timeline[2].when has both probe and server; keep one"),
    ("when-active-on-a-probe", "{id: back, at: 5,",
     "{id: back, when: {probe: web, active: 0},", 19,
     "timeline[2].when.active is about a server; use it with server: NAME, not probe"),
    ("when-health-value", "{id: back, at: 5,", "{id: back, when: {server: web1, health: ok},",
     19, "timeline[2].when.health 'ok' is unknown; choose one of: up, down"),
]


def test_a_server_condition_needs_a_load_balancer(tmp_path):
    text = edited(VALID, "{id: back, when: {probe: web, good: 10},",
                  "{id: back, when: {server: web1, active: 0},")
    assert error_of(tmp_path, text).endswith(
        "timeline[1].when.server needs a load balancer; add network.service")


def test_a_drained_server_condition_loads(tmp_path):
    text = edited(LB, "{id: back, at: 5,", "{id: back, when: {server: web1, active: 0},")
    drill = load_drill(write(tmp_path, text))
    assert drill["timeline"][2]["when"] == {"server": "web1", "active": 0}


@pytest.mark.parametrize("old, new, line, sentence", [c[1:] for c in LB_ERRORS],
                         ids=[c[0] for c in LB_ERRORS])
def test_network_mistakes(tmp_path, old, new, line, sentence):
    path = tmp_path / "drill.yaml"
    message = error_of(tmp_path, edited(LB, old, new))
    assert message == f"drill file {path}, line {line}: {sentence}"
    assert re.fullmatch(r"[^\n]+", message) and ". " not in message


def test_a_broken_service_file_is_named(tmp_path):
    service = write(tmp_path, "name: web\nvip: 10.0.0.100\n", "service.yaml")
    text = LB.split("  service:\n")[0] + "  service: service.yaml\n" + \
        "probes:" + LB.split("probes:")[1]
    assert error_of(tmp_path, text) == (
        f"drill file {tmp_path / 'drill.yaml'}, line 5: network.service: service file "
        f"{service}: real_servers is missing; list at least one real server")


# --- the file itself --------------------------------------------------------------------


def test_yaml_syntax_error_gives_the_line(tmp_path):
    text = edited(VALID, "hosts: [web1, web2]}", "hosts: [web1, web2}")
    message = error_of(tmp_path, text)
    assert message.startswith(f"drill file {tmp_path / 'drill.yaml'} is not valid YAML: ")
    assert re.search(r"\(line 16, column \d+\)$", message)


def test_a_key_written_twice_gives_both_lines(tmp_path):
    text = edited(VALID, "  params: {}\n", "  params: {}\n  params: {servers: 3}\n")
    assert error_of(tmp_path, text) == (
        f"drill file {tmp_path / 'drill.yaml'} is not valid YAML: key 'params' appears twice "
        "(first on line 5) (line 6, column 3)")


def test_a_file_that_is_a_list(tmp_path):
    assert error_of(tmp_path, "- drill: x\n") == (
        f"drill file {tmp_path / 'drill.yaml'}, line 1: the file holds a list, not a "
        "mapping; write one 'key: value' per line")


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DrillFileError) as info:
        load_drill(tmp_path / "nope.yaml")
    assert str(info.value) == f"drill file {tmp_path / 'nope.yaml'} does not exist"
    assert error_of(tmp_path, "") == f"drill file {tmp_path / 'drill.yaml'} is empty"


def test_check_drill_on_data_gives_the_path():
    import yaml
    data = yaml.safe_load(edited(VALID, "host: web1}", "host: 5}"))
    with pytest.raises(ValidationError) as info:
        check_drill(data)
    assert str(info.value) == "timeline[0].host must be a non-empty string, got 5"
    assert info.value.path == ("timeline", 0, "host")


def test_a_reference_into_an_empty_timeline_says_what_to_add(tmp_path):
    text = ("drill: ping\nnetwork: {topology: vrrp_pair}\n"
            "probes: [{name: p, type: icmp, from: client1, host: web1}]\n"
            "expect: [{after: crash, max_lost: 0, probe: p}]\n")
    assert error_of(tmp_path, text) == (
        f"drill file {tmp_path / 'drill.yaml'}, line 4: expect[0].after 'crash' names no "
        "timeline entry; add a timeline entry with id: crash")


# --- a network declared node by node ------------------------------------------------------

DECLARED = """\
drill: declared-pair
network:
  nodes:
    client1: {role: client, ip: 10.0.0.201/24}
    web1: {role: web, ip: 10.0.0.11/24, vrrp: {vip: 10.0.0.100/24, vrid: 51, priority: 150}}
    web2: {role: web, ip: 10.0.0.12/24, vrrp: {vip: 10.0.0.100/24, vrid: 51, priority: 100}}
    s1: {role: switch}
  links:
    - [client1, s1]
    - [web1, s1]
    - {ends: [web2, s1], delay: 1ms}
probes:
  - {name: web, type: http, from: client1, url: "http://10.0.0.100/"}
timeline:
  - {id: cut, at: 2, fault: link_down, link: [web1, s1]}
expect:
  - {after: cut, vip_held_by_one: {vip: 10.0.0.100, hosts: [web1, web2]}, within: 5}
"""


def test_a_declared_network_loads_and_builds(tmp_path):
    from redlab.drill.engine import refuse_unsupported
    drill = load_drill(write(tmp_path, DECLARED))
    topo = refuse_unsupported(drill)
    assert sorted(topo.hosts()) == ["client1", "web1", "web2"]
    assert topo.nodeInfo("web1")["vrrp"]["priority"] == 150
    assert topo.linkInfo("web2", "s1")["delay"] == "1ms"


DECLARED_ERRORS = [
    ("topology-and-nodes", "network:\n", "network:\n  topology: vrrp_pair\n", 2,
     "network has both topology and nodes; keep one"),
    ("link-to-nowhere", "[web1, s1]", "[web1, s2]", 3,
     "network: links[1] names s2, which is not a node; declare it under nodes"),
    ("host-alone", "    - [client1, s1]\n", "", 3,
     "network: host client1 has no link; add one under links"),
    ("bad-role", "{role: client,", "{role: laptop,", 4,
     "network.nodes.client1.role 'laptop' is unknown; choose one of: client, web, dns, "
     "director, router, host, switch"),
    ("bad-ip", "ip: 10.0.0.201/24", "ip: 10.0.0.201", 4,
     "network.nodes.client1.ip must be an address with its prefix, such as 10.0.0.11/24, "
     "got '10.0.0.201'"),
    ("vrrp-typo", "vrid: 51, priority: 150", "vrid: 51, prio: 150", 3,
     "network: node web1's vrrp has no option prio; options: vip, vrid, priority"),
    ("vrrp-on-a-client", "{role: client, ip: 10.0.0.201/24}",
     "{role: client, ip: 10.0.0.201/24, vrrp: {vip: 10.0.0.100/24}}", 3,
     "network: node client1 has vrrp, which only a web node runs; set role: web"),
    ("bad-link", "{ends: [web2, s1], delay: 1ms}", "{ends: [web2, s1], delay: soon}", 11,
     "network.links[2].delay must be a delay such as 5ms, got 'soon'"),
    ("bad-link-shape", "[web1, s1]", "[web1, s1, s2]", 10,
     "network.links[1] must be a list of 2 items, got ['web1', 's1', 's2']"),
    ("params-with-nodes", "network:\n", "network:\n  params: {servers: 2}\n", 3,
     "network.params is for a topology; with network.nodes, remove it"),
]


@pytest.mark.parametrize("old, new, line, sentence", [c[1:] for c in DECLARED_ERRORS],
                         ids=[c[0] for c in DECLARED_ERRORS])
def test_declared_network_mistakes(tmp_path, old, new, line, sentence):
    path = tmp_path / "drill.yaml"
    message = error_of(tmp_path, edited(DECLARED, old, new))
    assert message.startswith(f"drill file {path}, line {line}: ")
    assert message.endswith(sentence) if "options:" not in sentence else \
        sentence.split("; options:")[0] in message
    assert re.fullmatch(r"[^\n]+", message)


def test_more_daemons_are_checked_against_their_class(tmp_path):
    haproxy = ("  daemons:\n    - {host: director, daemon: haproxy, options: "
               "{servers: [{name: web1, ip: 10.0.0.11}], inter: 200ms}}\n")
    text = edited(LB, "  service:\n", haproxy + "  service:\n")
    drill = load_drill(write(tmp_path, text))
    assert drill["network"]["daemons"][0]["options"]["inter"] == "200ms"
    path = tmp_path / "drill.yaml"
    assert error_of(tmp_path, text.replace("inter: 200ms", "interval: 200ms")).startswith(
        f"drill file {path}, line 6: network.daemons[0]: haproxy has no option interval; "
        "options: servers, port")
    assert error_of(tmp_path, text.replace("servers: [{name: web1, ip: 10.0.0.11}], ", "")) \
        == f"drill file {path}, line 6: network.daemons[0]: haproxy needs servers"
    assert error_of(tmp_path, text.replace("host: director", "host: dns1")).endswith(
        "network.daemons[0].host 'dns1' names no host of topology service_lan; choose one "
        "of: client1, director, web1, web2")


def test_a_server_added_by_an_earlier_entry_can_be_drained(tmp_path):
    text = edited(LB, "{id: drain, at: 1, fault: lb, action: drain, server: web1}",
                  "{id: add, at: 0.5, fault: lb, action: add, server: web3, ip: 10.0.0.13}\n"
                  "  - {id: drain, at: 1, fault: lb, action: drain, server: web3}")
    assert load_drill(write(tmp_path, text))["timeline"][1]["server"] == "web3"
    text = edited(LB, "{id: drain, at: 1, fault: lb, action: drain, server: web1}",
                  "{id: drain, at: 1, fault: lb, action: drain, server: web3}\n"
                  "  - {id: add, at: 2, fault: lb, action: add, server: web3, ip: 10.0.0.13}")
    assert "names no real server" in error_of(tmp_path, text)
