"""VRRP failover: crash the keepalived master, watch the VIP move to the backup.

The demo runs it twice:

- **default** keepalived: the VIP moves to web2's own MAC; web2's gratuitous ARP
  updates the client's ARP cache (the entry for the VIP changes MAC);
- **use_vmac**: the VIP keeps the VRRP virtual MAC 00:00:5e:00:01:33, which now sits
  behind another switch port.  The client's ARP entry does not change; only the
  controller, which sees the gratuitous ARP arrive on the new port and replaces the
  flows that pointed at web1, gets the packets to web2.  (``garp_reaction=False``
  shows what happens without that.)
"""

from dataclasses import dataclass, field

from redlab import addressing
from redlab.faults import host_crash
from redlab.net import Network
from redlab.probe import Probe, analyse
from redlab.wait import wait_until
from redlab.errors import WaitTimeout


@dataclass
class FailoverResult:
    mode: str
    timeline: object
    arp_before: str
    arp_after: str
    vip_holder_before: str
    vip_holder_after: str
    controller_events: list = field(default_factory=list)
    run_folder: str = ""

    def as_dict(self):
        return dict(mode=self.mode, timeline=self.timeline.as_dict(), arp_before=self.arp_before,
                    arp_after=self.arp_after, vip_holder_before=self.vip_holder_before,
                    vip_holder_after=self.vip_holder_after,
                    controller_events=self.controller_events, run_folder=self.run_folder)

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
        return "\n".join(lines)


def vip_holder(net, vip, hosts):
    for name in hosts:
        if net[name].holds(vip):
            return name
    return None


def arp_entry(host, ip):
    return host.cmd("ip neigh show %s" % ip).strip()


def run(use_vmac=False, garp_reaction=True, run_folder=None, recover_timeout=15.0,
        interval=0.05, name=None):
    """Build the VRRP pair, crash the master under a probe, return a FailoverResult."""
    from topologies.vrrp_pair import VRRPPairTopo
    mode = ("use_vmac" if use_vmac else "default (physical MAC + GARP)") + \
        ("" if garp_reaction else ", controller without GARP reaction")
    vip = addressing.vip(1)
    topo = VRRPPairTopo(use_vmac=use_vmac)
    with Network(topo, name=name or ("vrrp-vmac" if use_vmac else "vrrp-default"),
                 run_folder=run_folder,
                 controller_config={"garp_reaction": garp_reaction}) as net:
        web1, web2, client = net["web1"], net["web2"], net["client1"]
        wait_until(lambda: (web1.daemons["keepalived"].current_state() == "MASTER",
                            web1.daemons["keepalived"].transitions()),
                   10, "web1 to become VRRP master")
        probe = Probe(client, "http://%s/" % vip, interval=interval,
                      max_seconds=recover_timeout + 15)
        with probe:
            probe.wait_good(5, timeout=10)
            arp_before = arp_entry(client, vip)
            holder_before = vip_holder(net, vip, ("web1", "web2"))
            fault = host_crash(net, web1)
            try:
                probe.wait_good(10, timeout=recover_timeout, since=fault.at)
            except WaitTimeout:
                pass                      # not recovered: the timeline says so
        samples = probe.samples()
        promoted = [t for t, state in web2.daemons["keepalived"].transitions()
                    if state == "MASTER" and t >= fault.at]
        timeline = analyse(samples, fault.at, detected_at=promoted[0] if promoted else None)
        return FailoverResult(
            mode=mode, timeline=timeline, arp_before=arp_before,
            arp_after=arp_entry(client, vip), vip_holder_before=holder_before,
            vip_holder_after=vip_holder(net, vip, ("web2",)) or "nobody",
            controller_events=[e for e in net.controller.events() if e["t"] >= fault.at],
            run_folder=str(net.run.path))


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


