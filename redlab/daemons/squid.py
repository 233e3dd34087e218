"""Squid: a forwarding HTTP proxy -- the carrier gateway (キャリアゲートウェイ) of lab 03.

It caches *names*, not pages (``cache deny all``): Squid resolves a host name through
its own DNS client (``dns_nameservers``, not ``/etc/resolv.conf``), keeps the answer in
its ipcache and connects to the addresses in the order of the answer -- so every user
behind it goes to the same server while one answer lasts.  (Squid 2.6-3.5 had
``balance_on_multiple_ip`` to rotate per request, off by default; Squid 5 removed it.)

How long it keeps the answer, measured with Debian 12's Squid 5.7 on its own cache
page (``tests/network/test_squid.py``): ``negative_dns_ttl``, *whatever the record's
TTL* -- 3 s for records with TTL 1 s and 5 s alike under ``negative_dns_ttl 3``, 60 s
for TTL 5 s records under ``negative_dns_ttl 60``.

``forward_max_tries`` is how many addresses (or retries) Squid tries for one request:
its default 25 moves on to the next A record when a server cannot be reached (the
user gets the page, late); with ``1`` the user gets Squid's error page (HTTP 503)
instead -- measured: once, after which Squid starts with another address.  Each
request is logged with the upstream address that served it (``access.log``);
``ipcache()`` reads the cache manager's ``ipcache`` page.
"""

import re
import shutil

from redlab.daemons.base import Daemon, wait_for_listen
from redlab.errors import ConfigError

USER = "proxy"            # Debian's squid user: Squid refuses to run as root


class Squid(Daemon):
    name = "squid"
    binary = "squid"
    template = "squid.conf.j2"
    config_name = "squid.conf"

    def __init__(self, node, resolvers, port=3128, allow=("0.0.0.0/0",), forward_max_tries=25,
                 connect_timeout=1, negative_dns_ttl=1, positive_dns_ttl=3600, **options):
        super().__init__(node, **options)
        self.resolvers = list(resolvers)
        self.port = port
        self.allow = list(allow)
        self.forward_max_tries = forward_max_tries
        self.connect_timeout = connect_timeout
        self.negative_dns_ttl = negative_dns_ttl
        self.positive_dns_ttl = positive_dns_ttl

    def values(self):
        if not self.resolvers:
            raise ConfigError("%s: Squid needs at least one DNS server (resolvers=[...])"
                              % self.where)
        for name in ("forward_max_tries", "connect_timeout", "negative_dns_ttl",
                     "positive_dns_ttl"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError("%s: Squid's %s must be a whole number >= 1, not %r"
                                  % (self.where, name, value))
        return dict(port=self.port, resolvers=self.resolvers, allow=self.allow,
                    forward_max_tries=self.forward_max_tries,
                    connect_timeout=self.connect_timeout,
                    negative_dns_ttl=self.negative_dns_ttl,
                    positive_dns_ttl=self.positive_dns_ttl, user=USER)

    @property
    def access_log(self):
        return self.path("access.log")

    def prepare(self):
        # Squid drops to its own user before it opens its logs
        shutil.chown(self.folder, user=USER)
        for name in ("access.log", "cache.log"):
            path = self.path(name)
            path.touch()
            shutil.chown(path, user=USER)

    def dry_run(self):
        return [self.binary_path, "-k", "parse", "-f", str(self.config_file)]

    def command(self):
        # -N: foreground, one process (no SMP kids); -d 1: level-1 messages on stderr
        return [self.binary_path, "-N", "-d", "1", "-f", str(self.config_file)]

    def ready(self):
        return wait_for_listen(self.node, self.port)

    # -- what it did ---------------------------------------------------------------------
    def requests(self, since=0.0):
        """The access log as dicts: t, client, url, status, upstream (``None``: none reached)."""
        rows = []
        try:
            text = self.access_log.read_text(errors="replace")
        except FileNotFoundError:
            return rows
        for line in text.splitlines():
            parts = line.split()
            if len(parts) < 7:
                continue
            try:
                t = float(parts[0])
            except ValueError:
                continue
            if t < since:
                continue
            upstream = parts[5] if parts[5] not in ("-", "") else None
            rows.append(dict(t=t, client=parts[1], method=parts[2], url=parts[3],
                             status=int(parts[4]) if parts[4].isdigit() else None,
                             upstream=upstream, result=parts[6]))
        return rows

    def ipcache(self, name):
        """Squid's cached answer for ``name`` (see :func:`parse_ipcache`), or ``None``.

        From the cache manager's ``ipcache`` page, asked from inside the proxy's host.
        """
        out = self.node.cmd("curl -s -m 2 http://127.0.0.1:%d/squid-internal-mgr/ipcache"
                            % self.port)
        return parse_ipcache(out, name)


IPCACHE_ENTRY = re.compile(r"^\s(?P<name>\S+)\s+(?P<flags>[HN]{0,2})\s*(?P<lstref>-?\d+)\s+"
                           r"(?P<ttl>-?\d+)\s+\d+\(\s*\d+\)\s*(?P<rest>.*)$")
IPCACHE_ADDRESS = re.compile(r"^\s*(?P<ip>[0-9a-fA-F.:]+)-(?P<state>OK|BAD)\s*$")


def parse_ipcache(text, name):
    """``{"addresses": [...], "bad": [...], "ttl": seconds left}`` for ``name``, or ``None``.

    The page lists an entry as ``" www.lab.example   0   3  3( 0)   10.0.0.12-OK"`` with its
    other addresses on the lines below, in the order Squid tries them; ``TTL`` is the
    seconds until the entry expires (whole seconds: Squid's clock ticks once a second).
    A negative-cached entry (flag ``N``) has no addresses.
    """
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = IPCACHE_ENTRY.match(line)
        if not m or m["name"] != name:
            continue
        entry = dict(addresses=[], bad=[], ttl=int(m["ttl"]), negative="N" in m["flags"])
        for text_ in [m["rest"]] + lines[i + 1:]:
            a = IPCACHE_ADDRESS.match(text_)
            if not a:
                break
            entry["addresses"].append(a["ip"])
            if a["state"] == "BAD":
                entry["bad"].append(a["ip"])
        return entry
    return None
