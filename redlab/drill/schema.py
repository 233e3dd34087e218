"""The drill file: its JSON schema, and :func:`load_drill`, which finds every mistake before
anything starts and tells it in one sentence naming the line, the field and the fix.

A drill file (YAML) says which network to build, how clients probe it, which faults and
operator steps happen when, and what must hold afterwards::

    drill: vrrp-crash
    description: the keepalived master crashes under a probe
    network:
      topology: vrrp_pair            # a name from topologies/
      params: {}                     # keyword arguments of its Topo
      keepalived: {advert_int: 1, use_vmac: false}
      controller: {garp_reaction: true}
    probes:
      - {name: web, type: http, from: client1, url: "http://10.0.0.100/", interval: 0.05}
    timeline:
      - {id: crash, at: 2.0, fault: host_crash, host: web1}
      - {id: back, when: {probe: web, good: 10}, step: undo, of: crash}
    expect:
      - {after: crash, recover_within: 5.0, probe: web}
      - {after: crash, max_lost: 10, probe: web}
      - {after: crash, vip_held_by_one: {vip: 10.0.0.100, hosts: [web1, web2]}, within: 5.0}
      - {after: crash, arp_moved: {client: client1, vip: 10.0.0.100, to: web2}, within: 5.0}
      - {during: [crash, back], never_failed: web}
    variants:                        # for --compare: named overrides of the fields above
      use_vmac: {network: {keepalived: {use_vmac: true}}}
    gameday: {faults: [crash], restore_within: 60}

The fields:

``network``
    ``topology``: a topology of ``topologies/``; ``params``: its ``build()`` keyword
    arguments (servers, weights, bandwidths, TTLs); ``keepalived``: options of the
    topology's keepalived daemons (``advert_int``, ``use_vmac``, ``nopreempt``, ``garp``,
    ``garp_master_delay``, a ``vrrp_script`` HTTP check); ``controller``: the os-ken
    switch's options (``garp_reaction``); ``service``: a load-balancer service as in
    ``service.yaml`` (a mapping, or the path of a service file next to the drill);
    ``setup``: what is done, in order, once the network is up and before the probes
    start: ``{host: H, run: COMMAND}`` (a shell command in host H; it must exit 0) or
    ``{unplug: H}`` (H's cables out of the switches: the switch side of each of its
    links goes down, as a cold spare on the shelf).
``probes``
    what a client sees, ``interval`` seconds apart with a ``timeout``: ``http`` (``url``),
    ``tcp`` (``host``, ``port``), ``icmp`` (``host``), ``dns`` (``server``, the ``query``d
    name and its ``qtype``, as in ``dig @server query qtype``: ``name`` and ``type`` are
    the probe's own).  A target is a host of the topology or an IPv4 address.
``timeline``
    faults and operator steps, each ``at`` seconds after every probe answers steadily or
    ``when`` a probe has seen ``good`` (or ``failed``) answers in a row, or a real
    server of the load balancer has at most ``active`` connections or its ``health`` is
    up or down (``when: {server: web1, active: 0}``: drained): ``link_down``
    (``link: [a, b]``), ``host_crash``, ``daemon_stop`` (``daemon``), ``http_500``,
    ``hang`` (a daemon, nginx unless named), ``controller_kill``, ``lb`` (``action``:
    drain, weight, add or remove a real ``server``, with ``weight`` / ``ip``),
    ``command`` (``run`` on ``host``; ``undo``: the command that reverts it),
    ``keepalived_priority`` (a planned switchover).
    Each is undone at the end; ``step: undo, of: ID`` undoes one earlier.
``expect``
    each ``after`` a timeline entry (judged only once that entry happened) or
    ``during: [FROM, TO]`` (from FROM's mark until TO began: a step's undo can take effect
    before it returns): ``recover_within`` seconds, at most ``max_lost`` requests,
    ``served_by`` a host (from some time on, every answer
    came from it), ``not_served_by`` a host (from some time on, no answer named it: a dead
    server left the pool, or its address left the DNS answers), ``vip_held_by_one`` of some hosts (no split brain), a client's
    ``arp_moved`` to a host's MAC (these three ``within`` a deadline), ``never_failed``
    (a probe that must not notice), ``fails_within`` seconds (a probe that must notice:
    a health check's view of a fault).
``variants``
    named overrides (mappings merge, lists and values replace) for ``--compare``.
``gameday``
    the faults one of which is injected unseen, and the targets: ``restore_within``
    seconds, at most ``max_lost`` requests of ``probe``.

Types, ranges, allowed values and required fields are :data:`DRILL_SCHEMA` (JSON Schema
2020-12, checked through :mod:`controllers.validation`); what names what (hosts of the
topology, probes, timeline ids) and the cross-field rules are checked in Python.
"""

from __future__ import annotations

import copy
import inspect
import ipaddress
from pathlib import Path

from controllers.validation import (ValidationError, check, field_path, load_yaml, suggest,
                                    unknown_field, unknown_value, with_defaults)
from redlab.errors import ConfigError

__all__ = ["DRILL_SCHEMA", "DrillFileError", "load_drill", "check_drill", "variant",
           "PROBE_TYPES", "FAULTS", "DAEMONS", "LB_ACTIONS", "EXPECTATIONS"]

PROBE_TYPES = ("http", "tcp", "icmp", "dns")
FAULTS = ("link_down", "host_crash", "daemon_stop", "http_500", "hang", "controller_kill",
          "lb", "command", "keepalived_priority")
DAEMONS = ("keepalived", "nginx", "named", "haproxy", "squid")
LB_ACTIONS = ("drain", "weight", "add", "remove")
EXPECTATIONS = ("recover_within", "max_lost", "served_by", "not_served_by", "vip_held_by_one",
                "arp_moved", "never_failed", "fails_within")
DNS_TYPES = ("A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT")


class DrillFileError(ConfigError, ValidationError):
    """A mistake in a drill file: one sentence with the file, the line, the field and the fix."""

    def __init__(self, message, path=()):
        ValidationError.__init__(self, message, path)


# ---------------------------------------------------------------------------------------
# the schema
# ---------------------------------------------------------------------------------------

_NAME = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*\Z",
         "errorMessage": "{where} must be a name made of letters, digits, '-', '_' and '.' "
                         "that starts with a letter or digit, got {value!r}"}
_SECONDS = {"type": "number", "exclusiveMinimum": 0, "x-unit": "seconds"}
_COUNT = {"type": "integer", "minimum": 1}
_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
_HOST = {"type": "string", "minLength": 1}          # a host of the topology: check_drill
_TARGET = {"type": "string", "minLength": 1}        # a host or an IPv4 address: check_drill
_IPV4 = {"type": "string", "format": "ipv4",
         "errorMessage": "{where} {value!r} is not an IPv4 address"}
_URL_PATH = {"type": "string", "pattern": r"^/[!$-:<-\[\]-z|~]*\Z",
             "errorMessage": "{where} must be a URL path starting with / without spaces, "
                             "quotes, braces, '#' or ';', got {value!r}"}
_PAIR = {"type": "array", "items": _NAME, "minItems": 2, "maxItems": 2,
         "errorMessage": "{where} must be two timeline ids [FROM, TO], got {value!r}"}


def _when(field, value, properties, required=(), more=()):
    """``if field == value then these fields (some required)``: one kind of a probe or
    of a timeline entry and its own fields."""
    then = {"properties": properties, "required": list(required)}
    if more:
        then["allOf"] = list(more)
    return {"if": {"properties": {field: {"const": value}}, "required": [field]},
            "then": then}


_VRRP_SCRIPT = {
    "type": "object",
    "properties": {
        "port": dict(_PORT, default=80),
        "path": dict(_URL_PATH, default="/"),
        "interval": dict(_SECONDS, default=1),
        "timeout": dict(_SECONDS, default=1),
        "rise": dict(_COUNT, default=2),
        "fall": dict(_COUNT, default=2),
    },
    "additionalProperties": False,
}

_NETWORK = {
    "type": "object",
    "properties": {
        "topology": {"type": "string", "minLength": 1},
        "params": {"type": "object", "default": {}},
        "keepalived": {
            "type": "object",
            "default": {},
            "properties": {
                "advert_int": dict(_SECONDS, maximum=255, default=1),
                "use_vmac": {"type": "boolean", "default": False},
                "nopreempt": {"type": "boolean", "default": False},
                "garp": {"type": "boolean", "default": True},
                "garp_master_delay": {"type": "integer", "minimum": 0, "x-unit": "seconds"},
                "vrrp_script": _VRRP_SCRIPT,
            },
            "additionalProperties": False,
            "x-hints": {"priority": "a priority change is a timeline entry: "
                                    "fault: keepalived_priority"},
        },
        "controller": {
            "type": "object",
            "default": {},
            "properties": {"garp_reaction": {"type": "boolean", "default": True}},
            "additionalProperties": False,
        },
        "nodes": {
            "type": "object", "minProperties": 1,
            "propertyNames": _NAME,
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "role": {"enum": ["client", "web", "dns", "director", "router", "host",
                                      "switch"], "default": "host"},
                    "ip": {"type": "string",
                           "pattern": r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}\Z",
                           "errorMessage": "{where} must be an address with its prefix, such "
                                           "as 10.0.0.11/24, got {value!r}"},
                    "default_route": {"type": "string", "pattern": r"^via \S+\Z",
                                      "errorMessage": "{where} must be 'via A.B.C.D', got "
                                                      "{value!r}"},
                    "routes": {"type": "array", "items": {
                        "type": "array", "items": {"type": "string"}, "minItems": 2,
                        "maxItems": 2, "errorMessage": "{where} must be [PREFIX, VIA], got "
                                                       "{value!r}"}},
                    "vrrp": {"type": "object"},
                    "nginx": {"type": "object"},
                    "dns": {"type": "object"},
                },
                "additionalProperties": False,
            },
        },
        "links": {"type": "array", "items": {
            "anyOf": [
                {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2},
                {"type": "object",
                 "properties": {"ends": {"type": "array", "items": {"type": "string"},
                                         "minItems": 2, "maxItems": 2},
                                "bw": {"type": "number", "exclusiveMinimum": 0},
                                "delay": {"type": "string", "pattern": r"^\d+(\.\d+)?(us|ms|s)\Z",
                                          "errorMessage": "{where} must be a delay such "
                                                          "as 5ms, got {value!r}"},
                                "loss": {"type": "number", "minimum": 0, "maximum": 100}},
                 "required": ["ends"], "additionalProperties": False}],
            "errorMessage": {"anyOf": "{where} must be [A, B] or {{ends: [A, B], bw: MBIT, "
                                      "delay: 5ms, loss: PERCENT}}, got {value!r}"}}},
        "setup": {"type": "array", "items": {
            "type": "object",
            "properties": {"host": _HOST, "run": {"type": "string", "minLength": 1},
                           "unplug": _HOST},
            "anyOf": [{"required": ["host", "run"]}, {"required": ["unplug"]}],
            "errorMessage": {"anyOf": "{where} needs host: H and run: COMMAND (a command "
                                      "in a host) or unplug: H (its cables out of the "
                                      "switches)"},
            "additionalProperties": False}},
        "daemons": {"type": "array", "default": [], "items": {
            "type": "object",
            "properties": {"host": _HOST, "daemon": {"enum": list(DAEMONS)},
                           "options": {"type": "object", "default": {}}},
            "required": ["host", "daemon"],
            "additionalProperties": False}},
        "service": {"type": ["object", "string"],
                    "errorMessage": "{where} must be a service (a mapping as in "
                                    "service.yaml) or the path of a service file, "
                                    "got {value!r}"},
    },
    "additionalProperties": False,
}

_PROBE = {
    "type": "object",
    "properties": {
        "name": _NAME,
        "type": {"enum": list(PROBE_TYPES)},
        "from": _HOST,
        "interval": dict(_SECONDS, default=0.05),
        "timeout": dict(_SECONDS, default=0.5),
    },
    "required": ["name", "type", "from"],
    "allOf": [
        _when("type", "http", {"url": {
            "type": "string", "pattern": r"^https?://[^\s/]+(/\S*)?\Z",
            "errorMessage": "{where} must be an http:// URL such as http://10.0.0.100/, "
                            "got {value!r}"}}, ["url"]),
        _when("type", "tcp", {"host": _TARGET, "port": _PORT}, ["host", "port"]),
        _when("type", "icmp", {"host": _TARGET}, ["host"]),
        _when("type", "dns", {"server": _TARGET, "query": {"type": "string", "minLength": 1},
                              "qtype": {"enum": list(DNS_TYPES), "default": "A"}},
              ["server", "query"]),
    ],
    "unevaluatedProperties": False,
}

_TIMELINE_ENTRY = {
    "type": "object",
    "properties": {
        "id": _NAME,
        "at": {"type": "number", "minimum": 0, "x-unit": "seconds"},
        "when": {
            "type": "object",
            "properties": {"probe": _NAME, "good": _COUNT, "failed": _COUNT,
                           "server": _NAME, "active": {"type": "integer", "minimum": 0},
                           "health": {"enum": ["up", "down"]}},
            "additionalProperties": False,
        },
        "fault": {"enum": list(FAULTS)},
        "step": {"enum": ["undo"]},
    },
    "anyOf": [{"required": ["fault"]}, {"required": ["step"]}],
    "errorMessage": {"anyOf": "{where} needs fault: KIND (what breaks) or step: undo"},
    "allOf": [
        _when("step", "undo", {"of": _NAME}, ["of"]),
        _when("fault", "link_down", {"link": {
            "type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2,
            "errorMessage": "{where} must be the two ends of the link, such as [s1, web1], "
                            "got {value!r}"}}, ["link"]),
        _when("fault", "host_crash", {"host": _HOST}, ["host"]),
        _when("fault", "daemon_stop", {"host": _HOST, "daemon": {"enum": list(DAEMONS)}},
              ["host", "daemon"]),
        _when("fault", "http_500", {"host": _HOST}, ["host"]),
        _when("fault", "hang", {"host": _HOST,
                                "daemon": {"enum": list(DAEMONS), "default": "nginx"}},
              ["host"]),
        _when("fault", "controller_kill", {}),
        _when("fault", "lb", {
            "action": {"enum": list(LB_ACTIONS)},
            "server": _NAME,
            "weight": {"type": "integer", "minimum": 0, "maximum": 65535},
            "ip": _IPV4,
        }, ["action", "server"], more=[
            _when("action", "weight", {}, ["weight"]),
            _when("action", "add", {}, ["ip"]),
        ]),
        _when("fault", "command", {"host": _HOST, "run": {"type": "string", "minLength": 1},
                                   "undo": {"type": "string", "minLength": 1}},
              ["host", "run"]),
        _when("fault", "keepalived_priority", {
            "host": _HOST, "priority": {"type": "integer", "minimum": 1, "maximum": 254}},
            ["host", "priority"]),
    ],
    "unevaluatedProperties": False,
}

_EXPECTATION = {
    "type": "object",
    "properties": {
        "after": _NAME,
        "during": _PAIR,
        "probe": _NAME,
        "within": _SECONDS,
        "recover_within": _SECONDS,
        "max_lost": {"type": "integer", "minimum": 0},
        "served_by": _HOST,
        "not_served_by": _HOST,
        "vip_held_by_one": {
            "type": "object",
            "properties": {"vip": _IPV4,
                           "hosts": {"type": "array", "items": _HOST, "minItems": 2,
                                     "uniqueItems": True}},
            "required": ["vip", "hosts"],
            "additionalProperties": False,
        },
        "arp_moved": {
            "type": "object",
            "properties": {"client": _HOST, "vip": _IPV4, "to": _HOST},
            "required": ["client", "vip", "to"],
            "additionalProperties": False,
        },
        "never_failed": _NAME,
        "fails_within": _SECONDS,
    },
    "dependentRequired": {"recover_within": ["probe"], "max_lost": ["probe"],
                          "served_by": ["probe", "within"],
                          "not_served_by": ["probe", "within"],
                          "fails_within": ["probe"], "vip_held_by_one": ["within"],
                          "arp_moved": ["within"]},
    "additionalProperties": False,
}

_GAMEDAY = {
    "type": "object",
    "properties": {
        "faults": {"type": "array", "items": _NAME, "minItems": 1, "uniqueItems": True},
        "restore_within": _SECONDS,
        "max_lost": {"type": "integer", "minimum": 0},
        "probe": _NAME,
    },
    "required": ["faults", "restore_within"],
    "additionalProperties": False,
}

DRILL_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "a redlab drill file",
    "type": "object",
    "properties": {
        "drill": _NAME,
        "description": {"type": "string", "default": ""},
        "network": _NETWORK,
        "probes": {"type": "array", "items": _PROBE, "minItems": 1},
        "timeline": {"type": "array", "items": _TIMELINE_ENTRY, "default": []},
        "expect": {"type": "array", "items": _EXPECTATION, "default": []},
        "variants": {
            "type": "object",
            "default": {},
            "additionalProperties": {
                "type": "object",
                "errorMessage": "{where} must be a mapping of the fields it changes, such "
                                "as {{network: {{keepalived: {{use_vmac: true}}}}}}, "
                                "got {value!r}"},
        },
        "gameday": _GAMEDAY,
    },
    "required": ["drill", "network", "probes"],
    "additionalProperties": False,
}


# ---------------------------------------------------------------------------------------
# what the schema cannot say: names that must name something, and cross-field rules
# ---------------------------------------------------------------------------------------


def _words(items):
    return ", ".join(str(i) for i in items) or "none"


class _Checks:
    """The checks of one (valid) drill: each mistake raises a one-sentence
    :class:`controllers.validation.ValidationError` with the field's path."""

    def __init__(self, drill, folder):
        self.drill = drill
        self.folder = folder
        self.topology = drill["network"].get("topology", "declared")
        self.hosts = []
        self.nodes = []
        self.links = set()
        self.probes = {}
        self.entries = {}

    @staticmethod
    def fail(path, message):
        raise ValidationError(message, path)

    def one_of(self, path, data, first, second, fix):
        """Exactly one of two fields: ``at`` or ``when``, ``after`` or ``during``..."""
        where = field_path(path, "the drill")
        if first in data and second in data:
            self.fail(path, f"{where} has both {first} and {second}; keep one")
        if first not in data and second not in data:
            self.fail(path, f"{where} has neither {first} nor {second}; {fix}")

    # --- names --------------------------------------------------------------------------

    def _none(self, path, where, name, what, choices, fix="there is none"):
        """``where 'x' names no WHAT; did you mean 'y'? (choose one of: a, b)``, raised."""
        close = suggest(name, choices)
        if close is not None:
            fix = f"did you mean {close!r}? (choose one of: {_words(choices)})"
        elif choices:
            fix = f"choose one of: {_words(choices)}"
        self.fail(path, f"{where} {name!r} names no {what}; {fix}")

    def host(self, path, name, where):
        if name not in self.hosts:
            self._none(path, where, name, f"host of topology {self.topology}", self.hosts)

    def target(self, path, name, where):
        try:
            ipaddress.IPv4Address(name)
        except ValueError:
            if name not in self.hosts:
                self._none(path, where, name, f"host of topology {self.topology} and is "
                                              "no IPv4 address", self.hosts)

    def probe(self, path, name, where):
        if name not in self.probes:
            self._none(path, where, name, "probe", list(self.probes))

    def entry(self, path, name, where, before=None):
        """A timeline id (of an entry before timeline[``before``] when given)."""
        known = [i for i in self.entries if before is None or self.entries[i] < before]
        if name not in known:
            what = "earlier timeline entry" if before is not None else "timeline entry"
            self._none(path, where, name, what, known,
                       f"add a timeline entry with id: {name}")

    # --- sections -----------------------------------------------------------------------

    def network(self):
        import topologies

        net = self.drill["network"]
        self.one_of(("network",), net, "topology", "nodes",
                    "add topology: NAME (one of topologies/) or nodes: and links:")
        if "links" in net and "nodes" not in net:
            self.fail(("network", "links"), "network.links needs network.nodes; declare the "
                                            "nodes, or use a topology")
        if "nodes" in net:
            if net.get("params"):
                self.fail(("network", "params"), "network.params is for a topology; with "
                                                 "network.nodes, remove it")
            return self.declared(net)
        found = topologies.all_topologies()
        if self.topology not in found:
            self.fail(("network", "topology"),
                      unknown_value("network.topology", self.topology, sorted(found)))
        cls = found[self.topology]
        params = net["params"]
        accepted = [p for p in inspect.signature(cls.build).parameters.values()
                    if p.name != "self"]
        if not any(p.kind is p.VAR_KEYWORD for p in accepted):
            names = [p.name for p in accepted]
            for key in params:
                if key not in names:
                    self.fail(("network", "params", key), unknown_field(
                        f"network.params of topology {self.topology}", key, names))
        try:
            topo = cls(**params)
        except Exception as exc:  # noqa: BLE001 -- any mistake in a Topo's parameters
            reason = " ".join(str(exc).split()) or type(exc).__name__
            self.fail(("network", "params"), f"network.params do not build topology "
                                             f"{self.topology} ({reason}); fix them")
        self.learn(topo, net)

    def declared(self, net):
        """``network.nodes`` and ``links``: built now, so that a link to an unknown node or a
        daemon option that does not exist is found before anything starts."""
        import topologies
        _name, params = topology_spec(net)
        try:
            topo = topologies.get("declared")(**params)
        except ValueError as exc:
            self.fail(("network", "nodes"), f"network: {exc}")
        self.learn(topo, net)

    def learn(self, topo, net):
        self.hosts = list(topo.hosts())
        self.nodes = self.hosts + list(topo.switches())
        self.links = {frozenset(link) for link in topo.links()}
        if "service" in net:
            net["service"] = self.service(net["service"])

    def daemons(self):
        """``network.daemons``: each on a host of the network, with its class's options."""
        from topologies.declared import daemon_options_error
        for n, spec in enumerate(self.drill["network"]["daemons"]):
            path, where = ("network", "daemons", n), f"network.daemons[{n}]"
            self.host(path + ("host",), spec["host"], f"{where}.host")
            error = daemon_options_error(daemon_class(spec["daemon"]), spec["options"])
            if error:
                self.fail(path + ("options",), f"{where}: {spec['daemon']} {error}")

    def service(self, value):
        """The service as plain data: parsed from the mapping or the file it names."""
        from controllers.service import (ServiceConfigError, load_service, parse_service,
                                         service_to_dict)
        path = ("network", "service")
        try:
            if isinstance(value, str):
                svc = load_service(self.folder / value)
            else:
                svc = parse_service(value)
        except ServiceConfigError as exc:
            self.fail(path + exc.path, f"network.service: {exc}")
        return service_to_dict(svc)

    def setup(self):
        for i, step in enumerate(self.drill["network"].get("setup", ())):
            path, where = ("network", "setup", i), f"network.setup[{i}]"
            if "unplug" in step and ("host" in step or "run" in step):
                self.fail(path, f"{where} has unplug and {'host' if 'host' in step else 'run'};"
                                " write one step per entry")
            for key in ("host", "unplug"):
                if key in step:
                    self.host(path + (key,), step[key], f"{where}.{key}")

    def probes_(self):
        for i, probe in enumerate(self.drill["probes"]):
            path = ("probes", i)
            if probe["name"] in self.probes:
                self.fail(path + ("name",), f"probes[{i}].name {probe['name']!r} is already "
                                            f"probes[{self.probes[probe['name']]}]; give "
                                            "each probe its own name")
            self.probes[probe["name"]] = i
            self.host(path + ("from",), probe["from"], f"probes[{i}].from")
            for key in ("host", "server"):
                if key in probe:
                    self.target(path + (key,), probe[key], f"probes[{i}].{key}")

    def timeline(self):
        for i, entry in enumerate(self.drill["timeline"]):
            if "id" in entry:
                if entry["id"] in self.entries:
                    self.fail(("timeline", i, "id"),
                              f"timeline[{i}].id {entry['id']!r} is already "
                              f"timeline[{self.entries[entry['id']]}]; give each entry "
                              "its own id")
                self.entries[entry["id"]] = i
        for i, entry in enumerate(self.drill["timeline"]):
            self.timeline_entry(i, entry)

    def timeline_entry(self, i, entry):
        path, where = ("timeline", i), f"timeline[{i}]"
        self.one_of(path, entry, "fault", "step", "")
        self.one_of(path, entry, "at", "when", "add at: SECONDS or when: {probe: NAME, "
                                               "good: N}")
        when = entry.get("when")
        if when is not None:
            self.when(path + ("when",), when, f"{where}.when")
        if "step" in entry:
            self.entry(path + ("of",), entry["of"], f"{where}.of", before=i)
            undone = self.drill["timeline"][self.entries[entry["of"]]]
            if "fault" not in undone:
                self.fail(path + ("of",), f"{where}.of {entry['of']!r} is a step, not a "
                                          "fault; undo a fault")
        if "host" in entry:
            self.host(path + ("host",), entry["host"], f"{where}.host")
        if "link" in entry:
            self.link(path + ("link",), entry["link"], f"{where}.link")
        if entry.get("fault") == "lb":
            self.lb_server(path, entry, where)

    def when(self, path, when, where):
        """A probe's streak (``probe``, ``good``/``failed``) or a real server's state in
        the load balancer (``server``, ``active``: ActiveConn at most N, or ``health``)."""
        self.one_of(path, when, "probe", "server", "add probe: NAME (answers in a row) or "
                                                   "server: NAME (a real server's state)")
        if "probe" in when:
            for key in ("active", "health"):
                if key in when:
                    self.fail(path + (key,), f"{where}.{key} is about a server; use it "
                                             "with server: NAME, not probe")
            self.one_of(path, when, "good", "failed",
                        "add good: N or failed: N (answers in a row)")
            self.probe(path + ("probe",), when["probe"], f"{where}.probe")
            return
        for key in ("good", "failed"):
            if key in when:
                self.fail(path + (key,), f"{where}.{key} is about a probe; use it with "
                                         "probe: NAME, not server")
        self.one_of(path, when, "active", "health",
                    "add active: N (ActiveConn at most N) or health: up|down")
        service = self.drill["network"].get("service")
        if service is None:
            self.fail(path + ("server",), f"{where}.server needs a load balancer; add "
                                          "network.service")
        names = [s["name"] for s in service["real_servers"]]
        names += [e["server"] for e in self.drill["timeline"]
                  if e.get("fault") == "lb" and e.get("action") == "add"]
        if when["server"] not in names:
            self._none(path + ("server",), f"{where}.server", when["server"],
                       "real server of network.service", names)

    def link(self, path, ends, where):
        for end in ends:
            if end not in self.nodes:
                close = suggest(end, self.nodes)
                mean = f"did you mean {close!r}? " if close else ""
                self.fail(path, f"{where} {end!r} is not a node of topology {self.topology}; "
                                f"{mean}(nodes: {_words(self.nodes)})")
        if frozenset(ends) not in self.links:
            a, b = ends
            peers = sorted(n for link in self.links if a in link for n in link if n != a)
            self.fail(path, f"{where}: topology {self.topology} has no link between {a} "
                            f"and {b}; {a} is linked to {_words(peers)}")

    def lb_server(self, path, entry, where):
        service = self.drill["network"].get("service")
        if service is None:
            return      # the topology's own service: known only once it runs
        names = [s["name"] for s in service["real_servers"]]
        names += [e["server"] for e in self.drill["timeline"]     # added by an earlier entry
                  if e is not entry and e.get("fault") == "lb" and e.get("action") == "add"
                  and self.drill["timeline"].index(e) < self.drill["timeline"].index(entry)]
        if entry["action"] == "add":
            if entry["server"] in names:
                self.fail(path + ("server",), f"{where}.server {entry['server']!r} is "
                                              "already a real server; add a new name")
        elif entry["server"] not in names:
            self._none(path + ("server",), f"{where}.server", entry["server"],
                       "real server of network.service", names)

    def expectations(self):
        for i, item in enumerate(self.drill["expect"]):
            path, where = ("expect", i), f"expect[{i}]"
            checks = [key for key in EXPECTATIONS if key in item]
            if not checks:
                self.fail(path, f"{where} checks nothing; add one of {_words(EXPECTATIONS)}")
            if len(checks) > 1:
                self.fail(path, f"{where} checks {' and '.join(checks)}; write one entry "
                                "per check")
            self.one_of(path, item, "after", "during", "add after: ID (a timeline id) or "
                                                       "during: [FROM, TO]")
            if "after" in item:
                self.entry(path + ("after",), item["after"], f"{where}.after")
            for n, name in enumerate(item.get("during", ())):
                self.entry(path + ("during", n), name, f"{where}.during[{n}]")
            for key in ("probe", "never_failed"):
                if key in item:
                    self.probe(path + (key,), item[key], f"{where}.{key}")
            for key in ("served_by", "not_served_by"):
                if key in item:
                    self.host(path + (key,), item[key], f"{where}.{key}")
            for n, name in enumerate(item.get("vip_held_by_one", {}).get("hosts", ())):
                self.host(path + ("vip_held_by_one", "hosts", n), name,
                          f"{where}.vip_held_by_one.hosts[{n}]")
            for key in ("client", "to"):
                if key in item.get("arp_moved", {}):
                    self.host(path + ("arp_moved", key), item["arp_moved"][key],
                              f"{where}.arp_moved.{key}")

    def gameday(self):
        gameday = self.drill.get("gameday")
        if gameday is None:
            return
        for n, name in enumerate(gameday["faults"]):
            self.entry(("gameday", "faults", n), name, f"gameday.faults[{n}]")
            if "fault" not in self.drill["timeline"][self.entries[name]]:
                self.fail(("gameday", "faults", n), f"gameday.faults[{n}] {name!r} is a "
                                                    "step, not a fault; list faults only")
        if "probe" in gameday:
            self.probe(("gameday", "probe"), gameday["probe"], "gameday.probe")

    def run(self):
        self.network()
        self.daemons()
        self.setup()
        self.probes_()
        self.timeline()
        self.expectations()
        self.gameday()
        return self.drill


def daemon_class(name):
    """The :mod:`redlab.daemons` class of a daemon's name in a drill file."""
    from redlab import daemons
    return {"keepalived": daemons.Keepalived, "nginx": daemons.Nginx, "named": daemons.Bind,
            "haproxy": daemons.HAProxy, "squid": daemons.Squid}[name]


def topology_spec(network):
    """``(topology name, its build() keyword arguments)`` of a drill's network: a
    topology of ``topologies/`` with ``params``, or ``declared`` from ``nodes`` and
    ``links``."""
    if "nodes" in network:
        return "declared", {"nodes": network["nodes"], "links": network.get("links", [])}
    return network["topology"], network.get("params", {})


def check_drill(data, folder="."):
    """Validate drill data (a mapping) and return it with its defaults filled in.

    Raises :class:`controllers.validation.ValidationError` (one sentence, ``.path`` the
    field) for the first mistake: the schema first, then the names and cross-field rules,
    then each variant (its merged drill checked the same way).
    """
    check(data, DRILL_SCHEMA, root="the drill")
    drill = _Checks(with_defaults(data, DRILL_SCHEMA), Path(folder)).run()
    for name in drill["variants"]:
        _check_variant(drill, name, folder)
    return drill


def _check_variant(drill, name, folder):
    override = drill["variants"][name]
    for key in override:
        if key in ("drill", "variants"):
            raise ValidationError(f"variants.{name} cannot change {key}; remove it from the "
                                  "variant", ("variants", name, key))
    try:
        merged = _merge(drill, override)
        check(merged, DRILL_SCHEMA, root="the drill")
        checked = _Checks(with_defaults(merged, DRILL_SCHEMA), Path(folder)).run()
    except ValidationError as exc:
        raise ValidationError(f"variant {name}: {exc}", ("variants", name) + exc.path) \
            from None
    if "service" in override.get("network", {}):      # parsed, as the drill's own
        override["network"]["service"] = checked["network"]["service"]


def _merge(base, override):
    """``base`` with ``override`` on top: mappings merge, anything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def variant(drill, name):
    """The drill as run for one of its variants (``"default"``: the drill itself)."""
    if name == "default" and name not in drill["variants"]:
        return drill
    if name not in drill["variants"]:
        raise ConfigError(unknown_value(f"drill {drill['drill']} variant", name,
                                        ["default", *drill["variants"]]))
    merged = with_defaults(_merge(drill, drill["variants"][name]), DRILL_SCHEMA)
    merged["variants"] = {}
    return merged


def load_drill(path):
    """Read and check a drill file; every mistake is a :class:`DrillFileError` naming the
    file, the line and the field, found before anything starts.  Returns the drill as a
    dict with its defaults filled in (``network.service`` parsed to plain data)."""
    document = load_yaml(path, "drill file", error=DrillFileError)
    try:
        return check_drill(document.data, Path(path).parent)
    except ValidationError as exc:
        raise document.fail(exc, DrillFileError) from None
