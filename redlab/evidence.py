"""On failure, keep the evidence: flows, addresses, ARP tables, routes, in the run folder.

Daemon logs are already there (each daemon writes into ``<run>/<host>/<daemon>/``); in a
sandbox, its private Open vSwitch logs (on a tmpfs that ends with the sandbox) are copied.
"""

import glob
import shutil
import subprocess
import time

from redlab import sandbox


def collect_evidence(network, reason):
    folder = network.run.folder("evidence")
    (folder / "reason.txt").write_text("%s\n%s\n" % (time.strftime("%Y-%m-%d %H:%M:%S"), reason))
    for switch in network.switches:
        (folder / ("%s.flows.txt" % switch.name)).write_text(
            network.dump_flows(switch) + "\n" +
            switch.cmd("ovs-ofctl -O OpenFlow13 dump-ports-desc %s" % switch.name))
    (folder / "ovs-vsctl-show.txt").write_text(
        subprocess.run(["ovs-vsctl", "show"], capture_output=True, text=True).stdout)
    if sandbox.inside():
        for log in glob.glob(sandbox.OVS_RUN + "/*.log"):
            shutil.copy(log, folder)
    for host in network.hosts:
        parts = []
        for cmd in ("ip -4 addr", "ip -4 route", "ip neigh", "ss -tanp", "ps -o pid,args --ppid 1"):
            parts.append("$ %s\n%s" % (cmd, host.cmd(cmd)))
        (folder / ("%s.txt" % host.name)).write_text("\n".join(parts))
    return folder
