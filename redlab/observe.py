"""Questions the labs ask the hosts of a running network, answered once for all of them.

Each function runs one command in a host's namespace (``host.cmd``) and returns data, so a
lab reads ``neigh(client, vip)`` instead of re-parsing ``ip neigh`` its own way.  The
parsers are separate functions of text, unit-tested on the tools' real output.

Recorders that watch over time (a neighbour table's changes, ARP on the wire, addresses
coming and going) are in :mod:`redlab.recorders`; these are snapshots.
"""

import json
import re
import shlex
from dataclasses import dataclass

from redlab.errors import RedlabError


@dataclass(frozen=True)
class Neighbour:
    """One entry of a host's neighbour (ARP) table."""
    ip: str
    mac: str            # None while INCOMPLETE or FAILED
    state: str          # REACHABLE, STALE, DELAY, PROBE, FAILED, PERMANENT, ...
    dev: str = None


def parse_neigh_json(text):
    """``ip -j neigh show`` -> [Neighbour]."""
    entries = json.loads(text or "[]")
    return [Neighbour(e["dst"], e.get("lladdr"), (e.get("state") or ["NONE"])[0], e.get("dev"))
            for e in entries]


def neigh_table(host, intf=None):
    """``host``'s IPv4 neighbour table (on ``intf`` only, if given)."""
    return parse_neigh_json(host.cmd("ip -4 -j neigh show%s" % (" dev %s" % intf if intf else "")))


def neigh(host, ip, intf=None):
    """``host``'s entry for ``ip`` (None: no entry)."""
    found = [n for n in neigh_table(host, intf) if n.ip == ip]
    return found[0] if found else None


def parse_addresses(text):
    """``ip -j -4 addr show`` -> {interface: ["10.0.0.1/24", ...]}."""
    return {link["ifname"]: ["%s/%d" % (a["local"], a["prefixlen"])
                             for a in link.get("addr_info", []) if a.get("family") == "inet"]
            for link in json.loads(text or "[]")}


def addresses(host, intf=None):
    """``host``'s IPv4 addresses with their prefix length, per interface."""
    return parse_addresses(host.cmd("ip -j -4 addr show%s" % (" dev %s" % intf if intf else "")))


def holds(host, ip):
    """Whether ``ip`` is one of ``host``'s addresses (on any interface)."""
    return any(a.split("/")[0] == ip for found in addresses(host).values() for a in found)


def holders(hosts, ip):
    """The names of the hosts that hold ``ip`` right now (one: a working VIP; two: a split)."""
    return [h.name for h in hosts if holds(h, ip)]


def sysctl(host, key):
    """A sysctl's value in ``host``'s namespace, as text (an int when it is one)."""
    return sysctls(host, [key])[key]


def sysctls(host, keys):
    """Several sysctls at once: {key: value}; an unknown key is a :class:`RedlabError`."""
    out = host.cmd("sysctl %s 2>&1" % " ".join(keys))
    values = {}
    for line in out.splitlines():
        key, sep, value = line.partition(" = ")
        if sep:
            value = value.strip()
            values[key.strip()] = int(value) if re.fullmatch(r"-?\d+", value) else value
    missing = [k for k in keys if k not in values]
    if missing:
        raise RedlabError("%s has no sysctl %s (%s)" % (host.name, ", ".join(missing),
                                                        out.strip().splitlines()[-1:]))
    return values


def set_sysctls(host, values):
    """Set sysctls in ``host``'s namespace and read them back: {key: value}."""
    host.cmd("sysctl -qw %s" % " ".join(shlex.quote("%s=%s" % kv) for kv in values.items()))
    got = sysctls(host, list(values))
    # a sysctl of several values (ip_local_port_range) reads back separated by tabs
    wrong = {k: got[k] for k in values if str(got[k]).split() != str(values[k]).split()}
    if wrong:
        raise RedlabError("%s refused sysctl %s" % (host.name, wrong))
    return got


def neigh_timers(host, intf, names):
    """``net.ipv4.neigh.INTF.NAME`` for each name: {name: int}."""
    got = sysctls(host, ["net.ipv4.neigh.%s.%s" % (intf, n) for n in names])
    return {n: got["net.ipv4.neigh.%s.%s" % (intf, n)] for n in names}


def parse_dig(text, rtype="A"):
    """``dig +noall +answer`` -> (answers in order, TTL of the last); ([], None): none."""
    answers, ttl = [], None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 5 and fields[3] == rtype:
            answers.append(fields[4])
            ttl = int(fields[1])
    return answers, ttl


def dig(host, server, name, rtype="A", timeout=1):
    """``(answers, ttl)`` as ``server`` answers ``host`` right now, in its order (one try)."""
    return parse_dig(host.cmd("dig +noall +answer +tries=1 +time=%d @%s %s %s"
                              % (timeout, server, name, rtype)), rtype)


def routes(host):
    """``ip -j -4 route`` as a list of dicts (dst, gateway, dev, ...)."""
    return json.loads(host.cmd("ip -j -4 route show") or "[]")


# -- lab 07 --

FLOW_NUMBERS = ("table", "n_packets", "n_bytes", "priority", "idle_timeout", "hard_timeout")


def parse_flows(text):
    """``ovs-ofctl dump-flows`` -> [dict]: the flow's fields (``table``, ``n_packets``,
    ``priority`` as ints; ``dl_dst``, ``in_port``, ... as text; a bare match word such as
    ``arp`` as True), ``actions``, and ``line``: the flow as printed, without the cookie,
    duration and n_bytes that change from one dump to the next."""
    result = []
    for line in text.splitlines():
        head, sep, actions = line.strip().partition(" actions=")
        if not sep:
            continue                        # the OFPST_FLOW reply header
        flow = dict(actions=actions)
        for field in re.split(r",\s*", head):
            key, eq, value = field.partition("=")
            value = value.strip('"')
            flow[key] = (int(value) if key in FLOW_NUMBERS and value.isdigit()
                         else value if eq else True)
        flow["line"] = re.sub(r"cookie=\S+ |duration=\S+ |n_bytes=\S+ ", "", line.strip())
        result.append(flow)
    return result


def flows(switch):
    """A Mininet OVS switch's flows (OpenFlow 1.3), as :func:`parse_flows`."""
    return parse_flows(switch.cmd("ovs-ofctl -O OpenFlow13 dump-flows %s" % switch.name))


# -- lab 01 --

@dataclass(frozen=True)
class Link:
    """One interface as ``ip -j -s link`` shows it."""
    name: str
    mac: str
    up: bool            # set up (the UP flag), whatever the cable
    rx_packets: int
    tx_packets: int


def parse_links(text):
    """``ip -j -s link show`` -> {interface: Link}."""
    found = {}
    for link in json.loads(text or "[]"):
        stats = link.get("stats64") or link.get("stats") or {}
        found[link["ifname"]] = Link(link["ifname"], link.get("address"),
                                     "UP" in link.get("flags", []),
                                     stats.get("rx", {}).get("packets", 0),
                                     stats.get("tx", {}).get("packets", 0))
    return found


def links(host, intf=None):
    """``host``'s interfaces: MAC, whether set up, packets received and sent."""
    return parse_links(host.cmd("ip -j -s link show%s" % (" dev %s" % intf if intf else "")))


# -- lab 04 --

ARPING_REPLY = re.compile(r"bytes from ((?:[0-9a-f]{2}:){5}[0-9a-f]{2}) \(([\d.]+)\)")


def parse_arping(text):
    """Thomas Habets' ``arping`` output (Debian's) -> the MACs that answered, in order
    (``42 bytes from 02:00:0a:00:00:0c (10.0.0.100): index=0 ...``), repeats kept."""
    return [mac for mac, _ip in ARPING_REPLY.findall(text)]


def arp_answers(host, ip, intf=None, anonymous=False, wait=1):
    """Who answers ARP for ``ip`` right now, asked from ``host``: ``(macs, exit code)``.

    One broadcast request (``arping -d``: exit 1 when two MACs answer one IP);
    ``anonymous``: sent from 0.0.0.0 (``arping -0``, RFC 5227's probe), so a host that
    holds ``ip`` itself does not answer its own question -- only *another* holder does."""
    out = host.cmd("arping %s -c 1 -w %s -i %s %s; echo exit=$?" % (
        "-0 -C 1" if anonymous else "-d", wait, intf or host.defaultIntf().name, ip))
    code = re.search(r"exit=(\d+)", out)
    return sorted(set(parse_arping(out))), int(code.group(1)) if code else None


# -- lab 06 --

def parse_rules(text):
    """``ip -j rule show`` -> [dict] in priority order (``priority``, ``ipproto``,
    ``dport_start``/``dport_end``, ``action`` or ``table``, ...)."""
    return json.loads(text or "[]")


def rules(host):
    """``host``'s IPv4 policy-routing rules."""
    return parse_rules(host.cmd("ip -4 -j rule show"))
