"""Node roles: Mininet hosts that know their daemons.

Setup happens in ``config()``, undo in ``terminate()`` (Mininet ``examples/linuxrouter.py``).
A role's ``services()`` names the daemons it runs, built from the parameters the
topology gave the host; the network starts them once the emulated network is up.

Topology files import these classes, so this module stays light: no Jinja2 or os-ken
at import time.
"""

import os

from mininet.node import Host


def netns_of(pid):
    try:
        return os.readlink("/proc/%d/ns/net" % pid)
    except OSError:
        return None


def pids_in_netns(netns):
    """Every process whose network namespace is ``netns`` ("net:[inode]")."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and netns_of(int(entry)) == netns:
            pids.append(int(entry))
    return pids


class RedlabHost(Host):
    """A host with daemons, no IPv6 chatter, and a run folder (set by the network)."""

    role = "host"

    def __init__(self, name, **params):
        self.daemons = {}
        self.run = None
        super().__init__(name, **params)

    def config(self, routes=(), **params):
        result = super().config(**params)
        # keep captures and ARP/ND tables about IPv4 only
        self.cmd("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1")
        for prefix, via in routes:
            self.cmd("ip route replace %s via %s" % (prefix, via))
        return result

    @property
    def netns(self):
        return netns_of(self.pid)

    def services(self):
        """Daemons this role runs (built, not started)."""
        return []

    def add_daemon(self, daemon):
        self.daemons[daemon.name] = daemon
        return daemon

    def start_daemon(self, daemon):
        return self.add_daemon(daemon).start()

    def stop_daemons(self):
        for daemon in reversed(list(self.daemons.values())):
            daemon.stop()

    def addresses(self, intf=None):
        """The IPv4 addresses on ``intf`` (default: every interface, lo too), as
        ``a.b.c.d/prefix`` (:func:`redlab.observe.addresses`, one list)."""
        from redlab import observe
        return [a for found in observe.addresses(self, intf).values() for a in found]

    def holds(self, address, intf=None):
        """Is ``address`` on ``intf`` (or on any interface)?  ``a.b.c.d/prefix`` must match
        with its prefix; a bare ``a.b.c.d`` matches whatever the prefix."""
        held = self.addresses(intf)
        if "/" in address:
            return address in held
        return address in [a.split("/")[0] for a in held]

    def processes(self):
        """Pids running in this host's namespace, the host's own shell excluded."""
        return [pid for pid in pids_in_netns(self.netns) if pid != self.pid] if self.shell else []

    def terminate(self):
        self.stop_daemons()
        super().terminate()


class Client(RedlabHost):
    role = "client"


class Router(RedlabHost):
    """A Linux router: IP forwarding on, static routes from ``routes=[(prefix, via)]``."""

    role = "router"

    def config(self, **params):
        result = super().config(**params)
        self.cmd("sysctl -qw net.ipv4.ip_forward=1")
        return result

    def terminate(self):
        if self.shell:
            self.cmd("sysctl -qw net.ipv4.ip_forward=0")
        super().terminate()


class WebServer(RedlabHost):
    """nginx, plus keepalived when the topology gives ``vrrp={...}`` (Keepalived's options)."""

    role = "web"

    def services(self):
        from redlab.daemons import Keepalived, Nginx
        daemons = [Nginx(self, **self.params.get("nginx", {}))]
        if self.params.get("vrrp"):
            daemons.append(Keepalived(self, **self.params["vrrp"]))
        return daemons


class DNSServer(RedlabHost):
    """BIND9 with ``dns={...}`` (Bind's options: zone, records, ttl, forwarders...)."""

    role = "dns"

    def services(self):
        from redlab.daemons import Bind
        return [Bind(self, **self.params.get("dns", {}))]


class Director(RedlabHost):
    """The load balancer's side of the network: health checks run here."""

    role = "director"
