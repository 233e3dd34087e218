"""VRRP failover: crash the keepalived master, watch the VIP move to the backup.

It is the drill ``drills/vrrp-crash.yaml`` run by the drill engine (one engine for the
demo, ``redlab run vrrp-failover`` and ``redlab drill``); this module prints its run
the way the demo always has, and links the drill's report.

The demo runs it twice:

- **default** keepalived: the VIP moves to web2's own MAC; web2's gratuitous ARP
  updates the client's ARP cache (the entry for the VIP changes MAC);
- **use_vmac**: the VIP keeps the VRRP virtual MAC 00:00:5e:00:01:33, which now sits
  behind another switch port.  The client's ARP entry does not change; only the
  controller, which sees the gratuitous ARP arrive on the new port and replaces the
  flows that pointed at web1, gets the packets to web2.  (``garp_reaction=False``
  shows what happens without that.)
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

from redlab import addressing
from redlab.drill.expect import as_samples, holders_at, mac_at
from redlab.errors import ConfigError
from redlab.probe import analyse


@dataclass
class FailoverResult:
    mode: str
    timeline: object
    arp_before: str
    arp_after: str
    vip_holder_before: str
    vip_holder_after: str
    controller_events: list = field(default_factory=list)
    vip_taken_after: object = None  # s from the crash until web2 held the VIP (ip monitor)
    run_folder: str = ""
    report: str = ""

    def as_dict(self):
        return dict(mode=self.mode, timeline=self.timeline.as_dict(), arp_before=self.arp_before,
                    arp_after=self.arp_after, vip_holder_before=self.vip_holder_before,
                    vip_holder_after=self.vip_holder_after,
                    controller_events=self.controller_events,
                    vip_taken_after=self.vip_taken_after, run_folder=self.run_folder,
                    report=self.report)

    def summary(self):
        moved = [e for e in self.controller_events if e["event"] in ("mac_moved", "ip_moved")]
        lines = ["== VRRP failover, %s ==" % self.mode,
                 "VIP holder before -> after : %s -> %s" % (self.vip_holder_before,
                                                           self.vip_holder_after),
                 self.timeline.summary(),
                 "client ARP entry for VIP before: %s" % (self.arp_before or "(none)"),
                 "client ARP entry for VIP after : %s" % (self.arp_after or "(none)")]
        for e in moved:
            if e["event"] == "mac_moved":
                lines.append("controller: MAC %s moved port %s -> %s, flows %s" % (
                    e["mac"], e["old_port"], e["new_port"],
                    "replaced at once" if e["flows_replaced"] else "left stale"))
            else:
                lines.append("controller: %s moved %s/port %s -> %s/port %s%s" % (
                    e["ip"], e["old_mac"], e["old_port"], e["new_mac"], e["new_port"],
                    " (gratuitous ARP)" if e["gratuitous"] else ""))
        lines.append("run folder: %s" % self.run_folder)
        if self.report:
            lines.append("report (swimlanes of what happened): %s" % self.report)
        return "\n".join(lines)


def vip_holder(net, vip, hosts):
    for name in hosts:
        if net[name].holds(vip):
            return name
    return None


def arp_entry(host, ip):
    return host.cmd("ip neigh show %s" % ip).strip()


DRILL = Path(__file__).resolve().parents[2] / "drills" / "vrrp-crash.yaml"


def variant_name(use_vmac, garp_reaction):
    if not garp_reaction:
        if not use_vmac:
            raise ConfigError("--no-garp-reaction shows what use_vmac needs; add --vmac")
        return "no_garp_reaction"
    return "use_vmac" if use_vmac else "default"


def run(use_vmac=False, garp_reaction=True, run_folder=None, name=None):
    """Run ``drills/vrrp-crash.yaml`` (its variant for these options) once with the drill
    engine and return the :class:`FailoverResult` the demo prints, plus the drill's own
    report (swimlanes) in the run folder."""
    from redlab.drill.engine import run_drill
    from redlab.drill.report import write_report
    from redlab.drill.schema import load_drill
    from redlab.runs import run_root
    label = variant_name(use_vmac, garp_reaction)
    folder = Path(run_folder) if run_folder else run_root() / (
        "%s-%s" % (name or "vrrp-failover-%s" % label, time.strftime("%Y%m%d-%H%M%S")))
    record = run_drill(load_drill(DRILL), None if label == "default" else label,
                       run_folder=folder / "run")
    report = write_report(folder / "report", {label: [record]})
    return from_record(record, label, use_vmac, garp_reaction, str(report.html))


def from_record(record, label, use_vmac, garp_reaction, report=""):
    """The demo's summary of one drill run record."""
    mode = ("use_vmac" if use_vmac else "default (physical MAC + GARP)") + \
        ("" if garp_reaction else ", controller without GARP reaction")
    observed, vip = record["observed"], addressing.vip(1)
    fault = observed["marks"]["crash"]
    samples = as_samples(record["samples"]["web"])
    detected = record["measures"]["time_to_detect"]
    timeline = analyse(samples, fault, detected_at=None if detected is None
                       else fault + detected)
    holders = observed["holders"].get(vip, [])
    arp = observed["arp"].get("client1 %s" % vip, [])
    return FailoverResult(
        mode=mode, timeline=timeline,
        arp_before=_arp_line(vip, mac_at(arp, fault)),
        arp_after=_arp_line(vip, mac_at(arp, observed["end"])),
        vip_holder_before=_holder(holders_at(_sets(holders), fault)),
        vip_holder_after=_holder(holders_at(_sets(holders), 1e9)) or "nobody",
        controller_events=[e for e in observed["controller"] if e["t"] >= fault],
        vip_taken_after=next((round(t - fault, 3) for t, hosts in holders
                              if t >= fault and "web2" in hosts), None),
        run_folder=record["run_folder"], report=report)


def _sets(holders):
    return [(t, frozenset(hosts)) for t, hosts in holders]


def _holder(hosts):
    return ", ".join(sorted(hosts)) or None


def _arp_line(ip, mac):
    return "%s lladdr %s" % (ip, mac) if mac else ""


def demo(run_folder=None, out=print):
    """The README's first command: both modes, one after the other."""
    results = []
    for use_vmac in (False, True):
        folder = None if run_folder is None else "%s/%s" % (run_folder,
                                                          "vmac" if use_vmac else "default")
        result = run(use_vmac=use_vmac, run_folder=folder)
        out(result.summary())
        out("")
        results.append(result)
    return results
