"""A network declared node by node, as a drill file's ``network.nodes`` and
``network.links`` (or ``topology: declared`` with the same two as ``params``)::

    nodes:
      client1: {role: client, ip: 10.0.0.201/24}
      web1:    {role: web, ip: 10.0.0.11/24,
                vrrp: {vip: 10.0.0.100/24, vrid: 51, priority: 150}}
      web2:    {role: web, ip: 10.0.0.12/24,
                vrrp: {vip: 10.0.0.100/24, vrid: 51, priority: 100}}
      s1:      {role: switch}
    links:
      - [client1, s1]
      - [web1, s1]
      - {ends: [web2, s1], bw: 10, delay: 5ms, loss: 1}

A role is one of redlab's node classes (:mod:`redlab.nodes`): ``client``, ``web``
(nginx, and keepalived with ``vrrp``: :class:`redlab.daemons.Keepalived`'s options),
``dns`` (BIND9 with ``dns``: :class:`redlab.daemons.Bind`'s options), ``director``,
``router`` (IP forwarding on), ``host`` (nothing running), ``switch`` (an Open vSwitch
bridge under the controller).  A host's first link carries its ``ip``; ``routes`` are
``[prefix, via]`` pairs and ``default_route`` is ``via A.B.C.D``.  The fields' types are
checked by the drill schema; what only the whole network can say (a link to an unknown
node, a host without a link) is a ``ValueError`` here, one sentence.
"""

import inspect
import os
import sys

from mininet.topo import Topo

# `mn --custom` runs this file without __file__ and without redlab on its path
_HERE = os.path.abspath(inspect.getframeinfo(inspect.currentframe()).filename)
sys.path.insert(0, os.path.dirname(os.path.dirname(_HERE)))

from redlab.nodes import Client, Director, DNSServer, RedlabHost, Router, WebServer  # noqa: E402

ROLES = {"client": Client, "web": WebServer, "dns": DNSServer, "director": Director,
         "router": Router, "host": RedlabHost}
LINK_OPTIONS = ("bw", "delay", "loss")


def link_ends(link):
    """``[a, b]`` or ``{ends: [a, b], bw: ...}`` -> ``(a, b, options)``."""
    if isinstance(link, dict):
        a, b = link["ends"]
        return a, b, {k: link[k] for k in LINK_OPTIONS if k in link}
    a, b = link
    return a, b, {}


def _daemon_classes():
    from redlab.daemons import Bind, Keepalived, Nginx
    return {"vrrp": ("web", Keepalived), "nginx": ("web", Nginx), "dns": ("dns", Bind)}


def daemon_options_error(cls, options):
    """What is wrong with ``options`` for daemon class ``cls`` (its keyword arguments),
    as the end of a sentence, or None."""
    params = inspect.signature(cls.__init__).parameters
    accepted = [p for p in params if p not in ("self", "node", "options")]
    for option in options or {}:
        if option not in accepted:
            return "has no option %s; options: %s" % (option, ", ".join(accepted))
    for p in params.values():
        if p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD \
                and p.name not in ("self", "node") and p.name not in (options or {}):
            return "needs %s" % p.name
    return None


def _check_options(name, role, spec):
    """A daemon's options must be its class's keyword arguments, on the role that runs it
    (so that a typo fails here, not halfway through starting the network)."""
    for key, options in spec.items():
        daemons = _daemon_classes()
        if key not in daemons:
            raise ValueError("node %s has no field %s; use role, ip, default_route, routes, "
                             "vrrp, nginx or dns" % (name, key))
        wanted, cls = daemons[key]
        if role != wanted:
            raise ValueError("node %s has %s, which only a %s node runs; set role: %s"
                             % (name, key, wanted, wanted))
        error = daemon_options_error(cls, options)
        if error:
            raise ValueError("node %s's %s %s" % (name, key, error))


class DeclaredTopo(Topo):
    def build(self, nodes=None, links=()):
        nodes = dict(nodes or {})
        if not nodes:
            raise ValueError("a declared network needs at least one node under nodes")
        for name, spec in nodes.items():
            spec = dict(spec or {})
            role = spec.pop("role", "host")
            if role == "switch":
                self.addSwitch(name)
                continue
            if role not in ROLES:
                raise ValueError("node %s has role %r; choose one of: %s, switch"
                                 % (name, role, ", ".join(ROLES)))
            params = {}
            if "ip" in spec:
                params["ip"] = spec.pop("ip")
            if "default_route" in spec:
                params["defaultRoute"] = spec.pop("default_route")
            params["routes"] = [tuple(r) for r in spec.pop("routes", ())]
            _check_options(name, role, spec)
            params.update(spec)             # vrrp, nginx, dns: the role's own options
            self.addHost(name, cls=ROLES[role], **params)
        linked = set()
        for n, link in enumerate(links):
            a, b, options = link_ends(link)
            for end in (a, b):
                if end not in nodes:
                    raise ValueError("links[%d] names %s, which is not a node; declare it "
                                     "under nodes" % (n, end))
            if a == b:
                raise ValueError("links[%d] links %s to itself; link two nodes" % (n, a))
            if options:
                from mininet.link import TCLink
                options["cls"] = TCLink
            self.addLink(a, b, **options)
            linked.update((a, b))
        alone = sorted(h for h in self.hosts() if h not in linked)
        if alone:
            raise ValueError("host %s has no link; add one under links" % alone[0])


topos = {"declared": DeclaredTopo}
# `mn --custom` cannot pass nodes and links: a declared network is built from a drill file
MN_CUSTOM_TEST = None
