"""BIND9 (``named``): an authoritative server for a lab zone, or a caching forwarder.

``records`` is a list of ``(name, address)``; several A records for one name make DNS
round robin (``rrset-order cyclic``).  With ``forwarders`` the server is a caching
resolver (the "carrier gateway" of the course notes) that keeps answers for their TTL.
"""

import re
import time

from redlab.daemons.base import Daemon, render_template, wait_for_listen


class Bind(Daemon):
    name = "named"
    binary = "named"
    template = "named.conf.j2"
    config_name = "named.conf"

    def __init__(self, node, zone="lab.example", records=(), ttl=60, listen=None, port=53,
                 forwarders=(), max_cache_ttl=86400, rrset_order="cyclic", querylog=False,
                 **options):
        super().__init__(node, **options)
        self.zone = zone
        self.records = list(records)
        self.ttl = ttl
        self.listen = listen or node.IP()
        self.port = port
        self.forwarders = list(forwarders)
        self.max_cache_ttl = max_cache_ttl
        self.rrset_order = rrset_order
        self.querylog = querylog

    @property
    def authoritative(self):
        return not self.forwarders

    @property
    def zone_file(self):
        return self.path("%s.db" % self.zone)

    def values(self):
        zones = [dict(name=self.zone, file=str(self.zone_file))] if self.authoritative else []
        return dict(port=self.port, listen=self.listen, forwarders=self.forwarders,
                    max_cache_ttl=self.max_cache_ttl, rrset_order=self.rrset_order, zones=zones,
                    querylog=self.querylog)

    def prepare(self):
        if self.authoritative:
            self.zone_file.write_text(render_template("zone.db.j2", dict(
                node=self.node.name, zone=self.zone, ttl=self.ttl, serial=int(time.time()),
                ns_ip=self.listen, records=self.records), self.where))

    def dry_runs(self):
        runs = [["named-checkconf", str(self.config_file)]]
        if self.authoritative:
            runs.append(["named-checkzone", self.zone, str(self.zone_file)])
        return runs

    def command(self):
        # -g: foreground, log to stderr (our log file); -4: IPv4 only
        return [self.binary_path, "-g", "-4", "-c", str(self.config_file)]

    def ready(self):
        return wait_for_listen(self.node, self.port, proto="udp")

    def queries(self, since=0.0):
        """Queries it received (``querylog=True``), as dicts: t, client, name, type.

        ``named -g`` logs everything to stderr, our log file, whatever a ``logging``
        statement says; ``querylog yes`` adds one line per query there.
        """
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [q for q in parse_querylog(text) if q["t"] >= since]


# 28-Nov-2026 13:06:02.316 client @0x7f4a48031c98 10.0.1.1#39641 (www.lab.example): query:
#   www.lab.example IN A + (10.0.1.1)            (local time, English month names)
QUERY_LINE = re.compile(r"^(?P<day>\d\d)-(?P<mon>[A-Z][a-z]{2})-(?P<year>\d{4}) "
                        r"(?P<hms>\d\d:\d\d:\d\d)(?P<frac>\.\d+)?\s+client\s+(?:@\S+\s+)?"
                        r"(?P<client>[\d.]+)#\d+.*?: query:\s+(?P<name>\S+)\s+IN\s+(?P<type>\S+)")
MONTHS = {m: n for n, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"), 1)}


def parse_querylog(text):
    rows = []
    for line in text.splitlines():
        m = QUERY_LINE.match(line)
        if not m or m["mon"] not in MONTHS:
            continue
        h, mi, sec = (int(x) for x in m["hms"].split(":"))
        t = time.mktime((int(m["year"]), MONTHS[m["mon"]], int(m["day"]), h, mi, sec, 0, 0, -1))
        rows.append(dict(t=t + float(m["frac"] or 0), client=m["client"],
                         name=m["name"].rstrip("."), type=m["type"]))
    return rows
