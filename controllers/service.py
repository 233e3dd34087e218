"""One virtual service, as a student writes it: keepalived's ``virtual_server`` in YAML.

A *virtual service* is what IPVS calls ``ip_vs_service`` and ``ipvsadm -A -t VIP:PORT``
creates: a virtual IP address and port (the VIP) that clients connect to, a scheduler
(``lb_algo``, ``ipvsadm -s``) that picks a *real server* for every new connection, a
forwarding method (``lb_kind``) and the real servers themselves (``ipvsadm -a -r``), each
with a weight.  keepalived's ``virtual_server`` block adds the health checks that take a
failing real server out of the pool and put it back when it recovers.  The lab's
controller plays both parts; this module only reads and checks the configuration.

Example (``virtual_server:`` may be left out and the settings written at the top)::

    virtual_server:
      name: web
      vip: 10.0.0.100            # the address clients use; owned by no host
      port: 80
      protocol: tcp              # only tcp
      lb_algo: wlc               # rr wrr lc wlc sed nq sh dh lblc lblcr fo ovf mh twos
      lb_kind: NAT               # NAT (ipvsadm -m) or DR (ipvsadm -g)
      persistence_timeout: 0     # ipvsadm -p SECONDS; 0 = no persistence
      inhibit_on_failure: false  # true: a failed server gets weight 0 instead of removal
      health_check:
        type: http               # icmp | tcp | http
        interval: 1              # keepalived delay_loop, HAProxy inter (seconds)
        timeout: 1               # keepalived connect_timeout (seconds)
        rise: 2                  # HAProxy: successes in a row to come back up
        fall: 3                  # HAProxy: failures in a row to go down
        path: /health            # http only
        status: 200              # http only
      real_servers:
        - {name: web1, ip: 10.0.0.11, port: 80, weight: 3}
        - {name: web2, ip: 10.0.0.12, weight: 1}    # port: the service port

Settings and their sources:

=====================  =================================================================
name                   the service's name (letters, digits, ``_``, ``-``)
vip, port              ``virtual_server VIP PORT``; ``ipvsadm -A -t VIP:PORT``
protocol               keepalived ``protocol TCP``; only TCP: the connection table follows
                       TCP states (SYN, ESTABLISHED, FIN/RST) and UDP has none
lb_algo                keepalived ``lb_algo``, ``ipvsadm -s``; default ``wlc`` (as ipvsadm)
lb_kind                keepalived ``lb_kind``: ``NAT`` rewrites the destination to the real
                       server (``ipvsadm -m``), ``DR`` (direct routing, ``ipvsadm -g``)
                       only changes the destination MAC, so the real server must also own
                       the VIP (on ``lo``) and answer on the *service* port.  ``TUN``
                       (IP-in-IP) is not part of the lab.  Lower case is accepted.
persistence_timeout    ``ipvsadm -p``: a client keeps going to the same real server while
                       it has connections and for this many seconds after
inhibit_on_failure     keepalived: on a failed check set the weight to 0 (quiesce: existing
                       connections go on, no new ones) instead of removing the server
sh_fallback, sh_port   the ``sh`` scheduler's flags (``ipvsadm -b sh-fallback,sh-port``)
mh_fallback, mh_port   the ``mh`` scheduler's flags (``ipvsadm -b mh-fallback,mh-port``;
                       keepalived ``mh-fallback``, ``mh-port``); a scheduler's flags are
                       ignored under another scheduler, as keepalived ignores them
vmac                   the MAC the controller answers ARP for the VIP with; default
                       ``02:fe:`` + the four VIP octets in hex (locally administered)
health_check           one check for every real server, see :class:`HealthCheck`
real_servers           ``real_server IP PORT { weight W }``, ``ipvsadm -a -r IP:PORT -w W``
=====================  =================================================================

A real server without ``port`` gets the service port (as ``ipvsadm -a`` does when
``-r`` has no port).  Weights go from 0 to 65535 (the ipvsadm range); weight 0 means
quiesced.  Every mistake raises :class:`ServiceConfigError` with one sentence naming
the setting, e.g. ``real_servers[1].weight must be an integer >= 0, got -1``.

Types, ranges, allowed values and required settings are the JSON schema
:data:`SERVICE_SCHEMA`, checked by ``jsonschema`` through :mod:`controllers.validation`
(which also words the sentences); addresses, aliases, duplicates and the DR port rule
are checked in Python after it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from controllers.schedulers import ALGORITHMS
from controllers.validation import ValidationError, check, load_yaml

__all__ = [
    "ServiceConfigError",
    "HealthCheck",
    "RealServerSpec",
    "VirtualService",
    "CHECK_TYPES",
    "LB_KINDS",
    "SERVICE_SCHEMA",
    "derive_vmac",
    "parse_service",
    "load_service",
    "service_to_dict",
]

CHECK_TYPES = ("icmp", "tcp", "http")
LB_KINDS = ("NAT", "DR")
MAX_WEIGHT = 65535  # ipvsadm: "The valid values of weight are 0 through to 65535"

# printable ASCII without space, quotes, braces, '#', ';' or backslash
URL_PATH = r"/[!$-:<-\[\]-z|~]*"


class ServiceConfigError(ValidationError):
    """A virtual service configuration mistake; the message names the setting."""


# ---------------------------------------------------------------------------------------
# the configuration objects
# ---------------------------------------------------------------------------------------


@dataclass
class HealthCheck:
    """How every real server of the service is checked.

    ``icmp`` sends an echo request, ``tcp`` opens a TCP connection (keepalived
    ``TCP_CHECK``), ``http`` sends ``GET path`` and wants ``status`` and, if ``body`` is
    set, that text in the response (keepalived ``HTTP_GET``; HAProxy ``http-check
    expect``).  One check runs every ``interval`` seconds (keepalived ``delay_loop``,
    HAProxy ``inter``) and fails after ``timeout`` seconds without an answer (keepalived
    ``connect_timeout``).  A server goes down after ``fall`` failures in a row and comes
    back after ``rise`` successes in a row (HAProxy ``fall``/``rise``); see
    ``controllers.health``.

    YAML aliases: ``delay_loop`` = ``interval``, ``connect_timeout`` = ``timeout``, and
    keepalived's ``retry: N`` = ``fall: N + 1``: keepalived retries a failed check N
    more times before it declares the server down, so N + 1 failures in a row take it
    down.  (keepalived runs those retries after ``delay_before_retry``, not after
    ``delay_loop``; here every check is ``interval`` apart.)

    ``timeout`` may be longer than ``interval``: checks of one server then overlap.
    ``path``/``status``/``body`` are only used by ``http`` and ``port`` only by
    ``tcp``/``http``; for other types they are ignored (not checked, left at default).
    """

    type: str = "tcp"
    interval: float = 1.0
    timeout: float = 1.0
    rise: int = 1
    fall: int = 1
    path: str = "/"
    status: int = 200
    body: str | None = None
    port: int | None = None

    def target_port(self, server):
        """The TCP port checked on ``server``: ``port`` if set, else the server's port."""
        return server.port if self.port is None else self.port


@dataclass
class RealServerSpec:
    """One real server (``real_server IP PORT``), identified in the service by name."""

    name: str
    ip: str
    port: int = 80
    weight: int = 1


def derive_vmac(vip):
    """The default VIP MAC: ``02:fe:`` + the four octets, 10.0.0.100 -> 02:fe:0a:00:00:64.

    ``02`` sets the locally-administered bit and keeps the unicast bit clear, so the
    address can never clash with a vendor-assigned NIC address.
    """
    try:
        octets = ipaddress.IPv4Address(vip).packed
    except ValueError:
        raise ServiceConfigError(f"vip {vip!r} is not an IPv4 address") from None
    return "02:fe:" + ":".join(f"{b:02x}" for b in octets)


@dataclass
class VirtualService:
    """A virtual service (keepalived ``virtual_server``, ``ipvsadm -A``); see the module
    docstring for each setting.  Build it with :func:`parse_service` or
    :func:`load_service`, which check every value; the constructor does not."""

    name: str
    vip: str
    port: int = 80
    protocol: str = "tcp"
    lb_algo: str = "wlc"
    lb_kind: str = "NAT"
    persistence_timeout: int = 0
    inhibit_on_failure: bool = False
    sh_fallback: bool = False
    sh_port: bool = False
    mh_fallback: bool = False
    mh_port: bool = False
    health_check: HealthCheck = field(default_factory=HealthCheck)
    real_servers: list[RealServerSpec] = field(default_factory=list)
    vmac: str = ""

    def __post_init__(self):
        if not self.vmac:
            self.vmac = derive_vmac(self.vip)

    def server(self, name):
        """The real server called ``name``; KeyError naming the known ones otherwise."""
        for spec in self.real_servers:
            if spec.name == name:
                return spec
        known = ", ".join(s.name for s in self.real_servers) or "none"
        raise KeyError(f"virtual service {self.name} has no real server {name!r}; "
                       f"known: {known}")

    def scheduler_options(self, lb_algo=None):
        """Keyword options for ``schedulers.make_scheduler(lb_algo, ...)``: for the
        service's own ``lb_algo`` by default, or for the one it is being switched to.

        ``sh`` gets ``fallback``/``port`` from ``sh_fallback``/``sh_port``, ``mh`` from
        ``mh_fallback``/``mh_port``; the other schedulers take none (a scheduler's flags
        are ignored for the others, as keepalived ignores ``sh-port`` with ``lb_algo
        wlc``).  The kernel's flags are shared bits (``IP_VS_SVC_F_SCHED1``/``SCHED2``),
        but a service names them for the scheduler it means.
        """
        algo = str(self.lb_algo if lb_algo is None else lb_algo).strip().lower()
        if algo == "sh":
            return {"fallback": self.sh_fallback, "port": self.sh_port}
        if algo == "mh":
            return {"fallback": self.mh_fallback, "port": self.mh_port}
        return {}


# ---------------------------------------------------------------------------------------
# the schema: every setting's type, range and allowed values (JSON Schema 2020-12, read by
# controllers.validation); what a schema cannot say is checked in parse_service below
# ---------------------------------------------------------------------------------------


def _any_case(*words):
    """A pattern for one of ``words`` in any case, blanks around allowed (``WRR``, ``nat``)."""
    return r"(?i)^\s*(" + "|".join(words) + r")\s*\Z"


_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
_SECONDS = {"type": "number", "exclusiveMinimum": 0, "x-unit": "seconds"}
_NAME = {"type": "string", "pattern": r"^[A-Za-z0-9_-]+\Z",
         "errorMessage": "{where} must be a non-empty name of letters, digits, _ and -, "
                         "got {value!r}"}
# unicast or not: parse_service
_IPV4 = {"type": "string", "format": "ipv4",
         "errorMessage": "{where} {value!r} is not an IPv4 address"}
_AT_LEAST_0 = "{where} must be an integer >= 0, got {value!r}"
_UNKNOWN = "unknown setting {key!r} in {where}; known: {known}{hint}"

_HEALTH_CHECK = {
    "type": ["object", "null"],
    "errorMessage": {"type": "{where} must be a mapping of settings, got {type}",
                     "additionalProperties": _UNKNOWN},
    "properties": {
        "type": {"type": "string", "pattern": _any_case(*CHECK_TYPES),
                 "errorMessage": "{where} must be icmp, tcp or http, not {value!r}"},
        "interval": _SECONDS, "delay_loop": _SECONDS,
        "timeout": _SECONDS, "connect_timeout": _SECONDS,
        "rise": {"type": "integer", "minimum": 1},
        "fall": {"type": "integer", "minimum": 1},
        "retry": {"type": "integer", "minimum": 0},
        # port, path, status and body are only read by the check types that use them
        "port": True, "path": True, "status": True, "body": True,
    },
    "additionalProperties": False,
    "allOf": [
        {"if": {"properties": {"type": {"pattern": _any_case("tcp", "http")}}},
         "then": {"properties": {"port": dict(_PORT, type=["integer", "null"])}}},
        {"if": {"properties": {"type": {"pattern": _any_case("http")}},
                "required": ["type"]},
         "then": {"properties": {
             # it lands in keepalived's configuration (lab 05's IPVS part): whitespace,
             # quotes, braces or a comment sign could add a block of the student's own,
             # such as a MISC_CHECK running a command as root
             "path": {"type": "string", "pattern": "^" + URL_PATH + r"\Z",
                      "errorMessage": "{where} must be a URL path starting with / without "
                                      "spaces, quotes, braces, '#' or ';', got {value!r}"},
             "status": {"type": "integer", "minimum": 100, "maximum": 599,
                        "errorMessage": "{where} must be an HTTP status code from 100 to "
                                        "599, got {value!r}"},
             "body": {"type": ["string", "null"],
                      "errorMessage": "{where} must be the text the response must "
                                      "contain, got {value!r}"},
         }}},
    ],
}

_REAL_SERVER = {
    "type": "object",
    "errorMessage": {"type": "{where} must be a mapping with {known}, got {value!r}",
                     "additionalProperties": _UNKNOWN},
    "properties": {
        "name": _NAME,
        "ip": _IPV4,
        "port": dict(_PORT, type=["integer", "null"]),   # null: the service port
        "weight": {"type": "integer", "minimum": 0, "maximum": MAX_WEIGHT,
                   "errorMessage": {"type": _AT_LEAST_0, "minimum": _AT_LEAST_0,
                                    "maximum": "{where} must be at most 65535 (the "
                                               "ipvsadm limit), got {value!r}"}},
    },
    "required": ["name", "ip"],
    "additionalProperties": False,
}

SERVICE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "a virtual service (keepalived virtual_server)",
    "type": "object",
    "errorMessage": {"type": "a virtual service must be a mapping of settings, got {type}",
                     "additionalProperties": _UNKNOWN},
    # keepalived spellings that belong in health_check
    "x-hints": {**{key: f"{key} belongs in health_check" for key in (
        "delay_loop", "connect_timeout", "retry", "interval", "timeout", "rise", "fall")},
        # keepalived's and ipvsadm's spelling of the scheduler flags
        **{flag: f"it is spelt {flag.replace('-', '_')} here" for flag in (
            "sh-fallback", "sh-port", "mh-fallback", "mh-port")}},
    "properties": {
        "name": _NAME,
        "vip": _IPV4,
        "port": _PORT,
        "protocol": {"type": "string", "pattern": _any_case("tcp"),
                     "errorMessage": "{where} {value!r} is not supported; only tcp is{hint}",
                     "x-hints": {"udp": "the connection table and health checks follow "
                                        "TCP states"}},
        "lb_algo": {"type": "string", "pattern": _any_case(*ALGORITHMS),
                    "errorMessage": "{where} {value!r} is unknown; choose one of "
                                    + ", ".join(ALGORITHMS)},
        "lb_kind": {"type": "string", "pattern": _any_case(*LB_KINDS),
                    "errorMessage": "{where} must be NAT or DR, not {value!r}"},
        "persistence_timeout": {"type": "integer", "minimum": 0},
        "inhibit_on_failure": {"type": "boolean"},
        "sh_fallback": {"type": "boolean"},
        "sh_port": {"type": "boolean"},
        "mh_fallback": {"type": "boolean"},
        "mh_port": {"type": "boolean"},
        "vmac": {"type": ["string", "null"],
                 "pattern": r"^\s*[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}\s*\Z",
                 "errorMessage": {
                     "type": "{where} must be a MAC address string; quote it in YAML (an "
                             "unquoted MAC such as 52:54:00:12:34:56 is read as a number), "
                             "got {value!r}",
                     "pattern": "{where} {value!r} is not a MAC address like "
                                "02:fe:0a:00:00:64"}},
        "health_check": _HEALTH_CHECK,
        "real_servers": {"type": "array", "items": _REAL_SERVER, "minItems": 1,
                         "errorMessage": {
                             "type": "{where} must be a list of real servers, got {type}",
                             "minItems": "{where} must list at least one real server",
                             "required": "{where} is missing; list at least one real "
                                         "server"}},
    },
    "required": ["name", "vip", "real_servers"],
    "additionalProperties": False,
}

# the true/false settings, all false by default
_FLAGS = ("inhibit_on_failure", "sh_fallback", "sh_port", "mh_fallback", "mh_port")

# the settings may also sit under one `virtual_server:` key
_WRAPPED = {
    "type": "object",
    "properties": {"virtual_server": {
        "type": "object",
        "errorMessage": "{where} must be a mapping of settings, got {type}"}},
    "additionalProperties": False,
    "errorMessage": {"additionalProperties": "unknown setting {key!r} next to "
                                             "virtual_server; put every setting inside "
                                             "virtual_server"},
}


# ---------------------------------------------------------------------------------------
# what the schema cannot say: addresses, aliases, duplicates, DR's port
# ---------------------------------------------------------------------------------------


def _fail(message):
    raise ServiceConfigError(message)


def _ipv4(value, where):
    try:
        addr = ipaddress.IPv4Address(value) if isinstance(value, str) else None
    except ValueError:
        addr = None
    if addr is None:
        _fail(f"{where} {value!r} is not an IPv4 address")
    if addr.is_multicast or addr.is_unspecified or addr == ipaddress.IPv4Address(
            "255.255.255.255"):
        _fail(f"{where} {addr} is not a unicast IPv4 address")
    return str(addr)


def _vmac(value):
    mac = value.strip().lower()
    if int(mac[:2], 16) & 1:
        _fail(f"vmac {mac} is a multicast MAC address; the VIP needs a unicast one")
    return mac


def _alias(data, canonical, alias):
    """The key the user wrote for one setting (``canonical`` or its ``alias``)."""
    if canonical in data and alias in data:
        _fail(f"health_check sets both {canonical} and {alias}; they are the same "
              "setting, keep one")
    return alias if alias in data else canonical


def _parse_health_check(data):
    """The :class:`HealthCheck` of valid settings; only the type's own settings are read."""
    check = HealthCheck()
    if data is None:
        return check
    check.type = data.get("type", check.type).strip().lower()
    for canonical, alias in (("interval", "delay_loop"), ("timeout", "connect_timeout")):
        key = _alias(data, canonical, alias)
        if key in data:
            setattr(check, canonical, float(data[key]))
    check.rise = data.get("rise", check.rise)
    if _alias(data, "fall", "retry") == "retry":
        check.fall = data["retry"] + 1
    else:
        check.fall = data.get("fall", check.fall)
    if check.type in ("tcp", "http"):
        check.port = data.get("port")
    if check.type == "http":
        check.path = data.get("path", check.path)
        check.status = data.get("status", check.status)
        check.body = data.get("body")
    return check


def _parse_real_server(data, index, default_port):
    where = f"real_servers[{index}]"
    port = default_port if data.get("port") is None else data["port"]
    return RealServerSpec(name=data["name"], ip=_ipv4(data["ip"], f"{where}.ip"),
                          port=port, weight=data.get("weight", 1))


def parse_service(data):
    """Check a virtual service given as a mapping and build the :class:`VirtualService`.

    ``data`` is either ``{"virtual_server": {...}}`` or the settings themselves.
    Raises :class:`ServiceConfigError` for the most relevant mistake: first the schema
    (:data:`SERVICE_SCHEMA`), then addresses, aliases and duplicates.
    """
    if isinstance(data, dict) and "virtual_server" in data:
        check(data, _WRAPPED, root="the file", error=ServiceConfigError)
        data = data["virtual_server"]
    check(data, SERVICE_SCHEMA, root="virtual_server", error=ServiceConfigError)

    vip = _ipv4(data["vip"], "vip")
    port = data.get("port", 80)
    kind = data.get("lb_kind", "NAT").strip().upper()
    vmac = _vmac(data["vmac"]) if data.get("vmac") is not None else derive_vmac(vip)
    check_ = _parse_health_check(data.get("health_check"))
    specs = [_parse_real_server(item, i, port) for i, item in enumerate(data["real_servers"])]

    by_name, by_address = {}, {}
    for i, spec in enumerate(specs):
        if spec.name in by_name:
            _fail(f"real server {spec.name} is listed twice")
        by_name[spec.name] = spec
        address = (spec.ip, spec.port)
        if address in by_address:
            _fail(f"real servers {by_address[address].name} and {spec.name} both use "
                  f"{spec.ip}:{spec.port}")
        by_address[address] = spec
        if spec.ip == vip:
            _fail(f"vip {vip} is also the address of real server {spec.name}; the VIP "
                  "must be its own address")
        if kind == "DR" and spec.port != port:
            _fail(f"real_servers[{i}].port is {spec.port} but lb_kind DR cannot change "
                  f"the port: it must be the service port {port}")

    return VirtualService(
        name=data["name"], vip=vip, port=port, protocol="tcp",
        lb_algo=data.get("lb_algo", "wlc").strip().lower(), lb_kind=kind,
        persistence_timeout=data.get("persistence_timeout", 0), health_check=check_,
        real_servers=specs, vmac=vmac,
        **{key: data.get(key, False) for key in _FLAGS})


# ---------------------------------------------------------------------------------------
# YAML in, plain dict out
# ---------------------------------------------------------------------------------------


def load_service(path):
    """Read a virtual service from a YAML file; every error names the file."""
    document = load_yaml(path, "service file", error=ServiceConfigError)
    try:
        return parse_service(document.data)
    except ServiceConfigError as exc:
        raise ServiceConfigError(f"service file {path}: {exc}", exc.path) from None


def service_to_dict(svc):
    """The service as plain data (JSON/YAML-safe); ``parse_service`` gives it back.

    Settings are written under their canonical names (``interval``, ``timeout``,
    ``fall``), ``vmac`` and every real server's port always, the http settings only for
    an http check.
    """
    check = svc.health_check
    check_data = {"type": check.type, "interval": check.interval,
                  "timeout": check.timeout, "rise": check.rise, "fall": check.fall}
    if check.port is not None:
        check_data["port"] = check.port
    if check.type == "http":
        check_data.update(path=check.path, status=check.status)
        if check.body is not None:
            check_data["body"] = check.body
    return {
        "name": svc.name,
        "vip": svc.vip,
        "port": svc.port,
        "protocol": svc.protocol,
        "lb_algo": svc.lb_algo,
        "lb_kind": svc.lb_kind,
        "persistence_timeout": svc.persistence_timeout,
        "inhibit_on_failure": svc.inhibit_on_failure,
        "sh_fallback": svc.sh_fallback,
        "sh_port": svc.sh_port,
        "mh_fallback": svc.mh_fallback,
        "mh_port": svc.mh_port,
        "vmac": svc.vmac,
        "health_check": check_data,
        "real_servers": [{"name": s.name, "ip": s.ip, "port": s.port, "weight": s.weight}
                         for s in svc.real_servers],
    }
