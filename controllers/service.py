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
      lb_algo: wlc               # rr wrr lc wlc sed nq sh dh lblc lblcr (ipvsadm -s)
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
vmac                   the MAC the controller answers ARP for the VIP with; default
                       ``02:fe:`` + the four VIP octets in hex (locally administered)
health_check           one check for every real server, see :class:`HealthCheck`
real_servers           ``real_server IP PORT { weight W }``, ``ipvsadm -a -r IP:PORT -w W``
=====================  =================================================================

A real server without ``port`` gets the service port (as ``ipvsadm -a`` does when
``-r`` has no port).  Weights go from 0 to 65535 (the ipvsadm range); weight 0 means
quiesced.  Every mistake raises :class:`ServiceConfigError` with one sentence naming
the setting, e.g. ``real_servers[1].weight must be an integer >= 0, got -1``.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field

from controllers.schedulers import ALGORITHMS

__all__ = [
    "ServiceConfigError",
    "HealthCheck",
    "RealServerSpec",
    "VirtualService",
    "CHECK_TYPES",
    "LB_KINDS",
    "derive_vmac",
    "parse_service",
    "load_service",
    "service_to_dict",
]

CHECK_TYPES = ("icmp", "tcp", "http")
LB_KINDS = ("NAT", "DR")
MAX_WEIGHT = 65535  # ipvsadm: "The valid values of weight are 0 through to 65535"

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
# printable ASCII without space, quotes, braces, '#', ';' or backslash
URL_PATH = re.compile(r"/[!$-:<-\[\]-z|~]*")

_SERVICE_KEYS = ("name", "vip", "port", "protocol", "lb_algo", "lb_kind",
                 "persistence_timeout", "inhibit_on_failure", "sh_fallback", "sh_port",
                 "vmac", "health_check", "real_servers")
_SERVER_KEYS = ("name", "ip", "port", "weight")
_CHECK_KEYS = ("type", "interval", "delay_loop", "timeout", "connect_timeout", "rise",
               "fall", "retry", "port", "path", "status", "body")
# keepalived spellings that belong in health_check, for a friendlier unknown-key error
_CHECK_ONLY = ("delay_loop", "connect_timeout", "retry", "interval", "timeout", "rise",
               "fall")


class ServiceConfigError(ValueError):
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

    def scheduler_options(self):
        """Keyword options for ``schedulers.make_scheduler(self.lb_algo, ...)``.

        ``sh`` gets ``fallback``/``port`` from ``sh_fallback``/``sh_port``; the other
        schedulers take none (``sh_*`` are ignored for them, as ipvsadm ignores
        ``-b sh-port`` with another scheduler).
        """
        if self.lb_algo == "sh":
            return {"fallback": self.sh_fallback, "port": self.sh_port}
        return {}


# ---------------------------------------------------------------------------------------
# checking values
# ---------------------------------------------------------------------------------------


def _fail(message):
    raise ServiceConfigError(message)


def _type_name(value):
    return {dict: "a mapping", list: "a list", str: "a string"}.get(type(value),
                                                                   repr(value))


def _check_keys(data, known, where):
    for key in data:
        if key not in known:
            hint = ""
            if where == "virtual_server" and key in _CHECK_ONLY:
                hint = f" ({key} belongs in health_check)"
            _fail(f"unknown setting {key!r} in {where}; known: {', '.join(known)}{hint}")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _port(value, where):
    if not _is_int(value) or not 1 <= value <= 65535:
        _fail(f"{where} must be an integer from 1 to 65535, got {value!r}")
    return value


def _int_at_least(value, where, low):
    if not _is_int(value) or value < low:
        _fail(f"{where} must be an integer >= {low}, got {value!r}")
    return value


def _seconds(value, where):
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value <= 0):
        _fail(f"{where} must be a number of seconds > 0, got {value!r}")
    return float(value)


def _bool(value, where):
    if not isinstance(value, bool):
        _fail(f"{where} must be true or false, got {value!r}")
    return value


def _name(value, where):
    if not isinstance(value, str) or not _NAME.match(value):
        _fail(f"{where} must be a non-empty name of letters, digits, _ and -, "
              f"got {value!r}")
    return value


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


def _required(data, key, where):
    if key not in data or data[key] is None:
        _fail(f"{where} is missing")
    return data[key]


def _vmac(value):
    if _is_int(value) or isinstance(value, float):
        _fail("vmac must be a MAC address string; quote it in YAML (an unquoted MAC "
              f"such as 52:54:00:12:34:56 is read as a number), got {value!r}")
    mac = value.strip().lower() if isinstance(value, str) else None
    if mac is None or not _MAC.match(mac):
        _fail(f"vmac {value!r} is not a MAC address like 02:fe:0a:00:00:64")
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
    if data is None:
        return HealthCheck()
    if not isinstance(data, dict):
        _fail(f"health_check must be a mapping of settings, got {_type_name(data)}")
    _check_keys(data, _CHECK_KEYS, "health_check")
    check = HealthCheck()
    kind = data.get("type", check.type)
    kind = kind.strip().lower() if isinstance(kind, str) else kind
    if kind not in CHECK_TYPES:
        _fail(f"health_check.type must be icmp, tcp or http, not {data.get('type')!r}")
    check.type = kind
    for canonical, alias in (("interval", "delay_loop"), ("timeout", "connect_timeout")):
        key = _alias(data, canonical, alias)
        if key in data:
            setattr(check, canonical, _seconds(data[key], f"health_check.{key}"))
    if "rise" in data:
        check.rise = _int_at_least(data["rise"], "health_check.rise", 1)
    key = _alias(data, "fall", "retry")
    if key == "retry":
        check.fall = _int_at_least(data["retry"], "health_check.retry", 0) + 1
    elif "fall" in data:
        check.fall = _int_at_least(data["fall"], "health_check.fall", 1)
    if kind in ("tcp", "http") and data.get("port") is not None:
        check.port = _port(data["port"], "health_check.port")
    if kind == "http":
        if "path" in data:
            path = data["path"]
            # it lands in keepalived's configuration (lab 05's IPVS part): whitespace,
            # quotes, braces or a comment sign could add a block of the student's own,
            # such as a MISC_CHECK running a command as root
            if not isinstance(path, str) or not URL_PATH.fullmatch(path):
                _fail(f"health_check.path must be a URL path starting with / without spaces, "
                      f"quotes, braces, '#' or ';', got {path!r}")
            check.path = path
        if "status" in data:
            status = data["status"]
            if not _is_int(status) or not 100 <= status <= 599:
                _fail("health_check.status must be an HTTP status code from 100 to 599, "
                      f"got {status!r}")
            check.status = status
        body = data.get("body")
        if body is not None and not isinstance(body, str):
            _fail("health_check.body must be the text the response must contain, "
                  f"got {body!r}")
        check.body = body
    return check


def _parse_real_server(data, index, default_port):
    where = f"real_servers[{index}]"
    if not isinstance(data, dict):
        _fail(f"{where} must be a mapping with {', '.join(_SERVER_KEYS)}, "
              f"got {data!r}")
    _check_keys(data, _SERVER_KEYS, where)
    name = _name(_required(data, "name", f"{where}.name"), f"{where}.name")
    ip = _ipv4(_required(data, "ip", f"{where}.ip"), f"{where}.ip")
    port = default_port if data.get("port") is None else _port(data["port"],
                                                                  f"{where}.port")
    weight = data.get("weight", 1)
    weight = _int_at_least(weight, f"{where}.weight", 0)
    if weight > MAX_WEIGHT:
        _fail(f"{where}.weight must be at most {MAX_WEIGHT} (the ipvsadm limit), "
              f"got {weight}")
    return RealServerSpec(name=name, ip=ip, port=port, weight=weight)


def parse_service(data):
    """Check a virtual service given as a mapping and build the :class:`VirtualService`.

    ``data`` is either ``{"virtual_server": {...}}`` or the settings themselves.
    Raises :class:`ServiceConfigError` at the first mistake.
    """
    if isinstance(data, dict) and "virtual_server" in data:
        for key in data:
            if key != "virtual_server":
                _fail(f"unknown setting {key!r} next to virtual_server; put every "
                      "setting inside virtual_server")
        data = data["virtual_server"]
        if not isinstance(data, dict):
            _fail(f"virtual_server must be a mapping of settings, got {_type_name(data)}")
    if not isinstance(data, dict):
        _fail(f"a virtual service must be a mapping of settings, got {_type_name(data)}")
    _check_keys(data, _SERVICE_KEYS, "virtual_server")

    name = _name(_required(data, "name", "name"), "name")
    vip = _ipv4(_required(data, "vip", "vip"), "vip")
    port = _port(data.get("port", 80), "port")

    protocol = data.get("protocol", "tcp")
    if not isinstance(protocol, str) or protocol.strip().lower() != "tcp":
        why = ""
        if isinstance(protocol, str) and protocol.strip().lower() == "udp":
            why = " (the connection table and health checks follow TCP states)"
        _fail(f"protocol {protocol!r} is not supported; only tcp is{why}")

    lb_algo = data.get("lb_algo", "wlc")
    algo = lb_algo.strip().lower() if isinstance(lb_algo, str) else lb_algo
    if algo not in ALGORITHMS:
        _fail(f"lb_algo {lb_algo!r} is unknown; choose one of {', '.join(ALGORITHMS)}")

    lb_kind = data.get("lb_kind", "NAT")
    kind = lb_kind.strip().upper() if isinstance(lb_kind, str) else lb_kind
    if kind not in LB_KINDS:
        _fail(f"lb_kind must be NAT or DR, not {lb_kind!r}")

    persistence = _int_at_least(data.get("persistence_timeout", 0),
                                "persistence_timeout", 0)
    flags = {key: _bool(data.get(key, False), key)
             for key in ("inhibit_on_failure", "sh_fallback", "sh_port")}
    vmac = _vmac(data["vmac"]) if data.get("vmac") is not None else derive_vmac(vip)
    check = _parse_health_check(data.get("health_check"))

    servers = data.get("real_servers")
    if servers is None:
        _fail("real_servers is missing; list at least one real server")
    if not isinstance(servers, list):
        _fail(f"real_servers must be a list of real servers, got {_type_name(servers)}")
    if not servers:
        _fail("real_servers must list at least one real server")
    specs = [_parse_real_server(item, i, port) for i, item in enumerate(servers)]

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
        name=name, vip=vip, port=port, protocol="tcp", lb_algo=algo, lb_kind=kind,
        persistence_timeout=persistence, health_check=check, real_servers=specs,
        vmac=vmac, **flags)


# ---------------------------------------------------------------------------------------
# YAML in, plain dict out
# ---------------------------------------------------------------------------------------


def _strict_loader():
    """A PyYAML SafeLoader that refuses a key written twice in one mapping.

    Plain PyYAML keeps the last value silently, so a second ``weight:`` or a second
    ``real_servers:`` block would quietly replace the first.
    """
    import yaml

    class StrictLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = loader.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # unhashable key: SafeLoader reports it
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice (first on line {first + 1})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                 construct_mapping)
    return yaml, StrictLoader


def load_service(path):
    """Read a virtual service from a YAML file; every error names the file."""
    yaml, loader = _strict_loader()
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ServiceConfigError(f"service file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ServiceConfigError(f"cannot read service file {path}: {reason}") from None
    try:
        data = yaml.load(text, Loader=loader)  # noqa: S506 -- a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ServiceConfigError(
            f"service file {path} is not valid YAML: {problem}{where}") from None
    if data is None:
        raise ServiceConfigError(f"service file {path} is empty")
    try:
        return parse_service(data)
    except ServiceConfigError as exc:
        raise ServiceConfigError(f"service file {path}: {exc}") from None


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
        "vmac": svc.vmac,
        "health_check": check_data,
        "real_servers": [{"name": s.name, "ip": s.ip, "port": s.port, "weight": s.weight}
                         for s in svc.real_servers],
    }
