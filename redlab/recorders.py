"""Recorders: what the network did, seen from inside a host, with timestamps.

    with ArpCapture(net["client1"]) as arp, NeighbourMonitor(net["client1"]) as neigh:
        ...                                     # move a VIP
        arp.garps(vip, mac=web2.MAC())          # [times of gratuitous ARPs from web2]
        neigh.moved_to(vip, web2.MAC(), since)  # when the client's ARP entry followed

Each is a long-running program inside the host (tcpdump, ``ip monitor``) writing to a
file in the run folder, recorded in the run registry (``redlab clean`` stops it after a
crash), started only once it really listens, and stopped with SIGTERM.  A failover
rehearsal reads them afterwards: when the GARP came, when the neighbour's entry moved,
when an address appeared or left a host.
"""

import os
import re
import subprocess
import time
from datetime import datetime

from redlab.agent import end_process
from redlab.errors import RedlabError
from redlab.system import require_binary
from redlab.wait import wait_until

MAC_RE = r"(?:[0-9a-f]{2}:){5}[0-9a-f]{2}"
BROADCAST = "ff:ff:ff:ff:ff:ff"


class HostProcess:
    """A program inside a host, its output in ``<run>/<host>/<name>``, in the run registry.

    ``ready()`` returns ``(ok, seen)``; :meth:`start` waits for it (5 s), so a recorder
    never misses the first event.  Usable as a context manager.
    """

    ready_timeout = 5.0

    def __init__(self, host, name, cmd, ready_text=None):
        self.host = host
        self.name = name
        self.cmd = [str(c) for c in cmd]
        self.ready_text = ready_text
        self.out = host.run.file(host.name, name)
        self.proc = None

    def __repr__(self):
        return "<%s in %s>" % (self.name, self.host.name)

    def start(self):
        self.cmd[0] = require_binary(self.cmd[0], "%s in %s" % (self.name, self.host.name))
        with open(self.out, "wb") as out:
            self.proc = self.host.popen(self.cmd, stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        self.host.run.record_process(self.proc.pid, "%s in %s" % (self.name, self.host.name))
        try:
            wait_until(self._ready_or_died, self.ready_timeout,
                       "%s in %s to start" % (self.name, self.host.name))
        except BaseException:
            self.stop()
            raise
        return self

    def _ready_or_died(self):
        if self.proc.poll() is not None:
            raise RedlabError("%s in %s exited at once: %s" % (
                self.name, self.host.name, self.text()[-300:].strip() or "(no output)"))
        return self.ready()

    def ready(self):
        if self.ready_text:
            return self.ready_text in self.text(), self.text()[-200:]
        return self.has_socket()

    def has_socket(self):
        """``ip monitor`` listens once it holds its netlink socket."""
        try:
            fds = [os.readlink("/proc/%d/fd/%s" % (self.proc.pid, fd))
                   for fd in os.listdir("/proc/%d/fd" % self.proc.pid)]
        except OSError:
            return False, "starting"
        return any(f.startswith("socket:") for f in fds), fds

    def text(self):
        try:
            return self.out.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.proc is not None:
            end_process(self.host, self.proc, 3)
            self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def ip_monitor_time(stamp):
    """``ip -ts`` stamps are local time: ``2026-11-28T10:00:00.123456`` -> epoch seconds."""
    return datetime.fromisoformat(stamp).timestamp()


class ArpCapture(HostProcess):
    """Every ARP packet a host's interface sends or receives (tcpdump, read with scapy).

    ``packets()`` are dicts: ``t`` (capture time), ``src``/``dst`` (Ethernet), ``op``
    ("request"/"reply"), ``sender_ip``/``sender_mac``, ``target_ip``/``target_mac`` and
    ``gratuitous`` (sender IP = target IP: what keepalived and ``arping -U`` send; or a
    reply broadcast to everybody: ``arping -A``).
    """

    def __init__(self, host, intf=None, name="arp.pcap"):
        self.intf = intf or host.defaultIntf().name
        super().__init__(host, name + ".txt", [
            "tcpdump", "-i", self.intf, "-n", "--immediate-mode", "-U", "-s", "128",
            "-w", str(host.run.file(host.name, name)), "arp"], ready_text="listening on")
        self.pcap = host.run.file(host.name, name)

    def packets(self, since=0.0, until=None):
        return read_arp_pcap(self.pcap, since, until)

    def garps(self, ip, mac=None, since=0.0, until=None):
        """Times of the gratuitous ARPs announcing ``ip`` (from ``mac``, if given)."""
        return [p["t"] for p in self.packets(since, until)
                if p["gratuitous"] and p["sender_ip"] == ip
                and (mac is None or p["sender_mac"] == mac)]


def read_arp_pcap(path, since=0.0, until=None):
    """The ARP packets of a pcap file as dicts (see :class:`ArpCapture`), read with scapy.

    The file may still be written: a packet cut short at the end is left for next time.
    """
    from scapy.error import Scapy_Exception
    from scapy.layers.l2 import ARP, Ether
    from scapy.utils import PcapReader
    result = []
    try:
        reader = PcapReader(str(path))
    except (FileNotFoundError, EOFError, Scapy_Exception):
        return result                          # nothing (or only part of the header) yet
    with reader:
        while True:
            try:
                pkt = reader.read_packet()
            except (EOFError, Scapy_Exception, ValueError, OSError):
                break                          # the end, or the packet being written now
            if pkt is None:
                break
            if ARP not in pkt or Ether not in pkt:
                continue
            t = float(pkt.time)
            if t < since or (until is not None and t > until):
                continue
            arp, eth = pkt[ARP], pkt[Ether]
            request = arp.op == 1
            result.append(dict(
                t=t, src=eth.src, dst=eth.dst, op="request" if request else "reply",
                sender_ip=arp.psrc, sender_mac=arp.hwsrc, target_ip=arp.pdst,
                target_mac=arp.hwdst,
                gratuitous=arp.psrc == arp.pdst or (not request and eth.dst == BROADCAST)))
    return result


NEIGH_LINE = re.compile(r"^\[(?P<ts>[^\]]+)\]\s*(?P<deleted>Deleted\s+)?(?P<ip>[\d.]+)\s+"
                        r"(?P<rest>.*)$")
ADDR_LINE = re.compile(r"^\[(?P<ts>[^\]]+)\]\s*(?P<deleted>Deleted\s+)?\d+:\s+\S+\s+inet\s+"
                       r"(?P<ip>[\d.]+)/")


class NeighbourMonitor(HostProcess):
    """A host's ARP (neighbour) entries over time: ``ip -ts monitor neigh``.

    :meth:`mark` adds a snapshot read with ``ip neigh show`` (the monitor only sees
    changes).  :meth:`entries` is ``[(t, mac or None)]`` for one address; None = the
    entry was deleted or FAILED.
    """

    def __init__(self, host, intf=None, name="neigh.txt"):
        self.intf = intf or host.defaultIntf().name
        super().__init__(host, name, ["ip", "-ts", "monitor", "neigh", "dev", self.intf])
        self.marks = []

    def mark(self, ip):
        out = self.host.cmd("ip neigh show %s dev %s" % (ip, self.intf))
        found = re.search(r"lladdr (%s)" % MAC_RE, out)
        mac = found.group(1) if found else None
        self.marks.append((time.time(), ip, mac))
        return mac

    def entries(self, ip):
        events = [(t, mac) for t, i, mac in self.marks if i == ip]
        for line in self.text().splitlines():
            m = NEIGH_LINE.match(line)
            if not m or m.group("ip") != ip:
                continue
            found = re.search(r"lladdr (%s)" % MAC_RE, m.group("rest"))
            gone = m.group("deleted") or "FAILED" in m.group("rest")
            events.append((ip_monitor_time(m.group("ts")),
                           None if gone else (found.group(1) if found else None)))
        return sorted(events, key=lambda e: e[0])

    def mac_at(self, ip, t):
        """The MAC the host's entry for ``ip`` pointed to at time ``t`` (None: none)."""
        mac = None
        for when, now in self.entries(ip):
            if when > t:
                break
            if now is not None:
                mac = now
        return mac

    def moved_to(self, ip, mac, since):
        """When the entry for ``ip`` first pointed to ``mac`` after ``since`` (None: never)."""
        for when, now in self.entries(ip):
            if when >= since and now == mac:
                return when
        return None

    def sequence(self, ip, since, until=None):
        """The MACs the entry took after ``since``, repeats collapsed."""
        seq = []
        for when, mac in self.entries(ip):
            if when < since or (until is not None and when > until) or mac is None:
                continue
            if not seq or seq[-1] != mac:
                seq.append(mac)
        return seq


class AddressMonitor(HostProcess):
    """When IPv4 addresses appeared on and left a host's interface: ``ip -ts monitor address``."""

    def __init__(self, host, intf=None, name="addr.txt"):
        self.intf = intf or host.defaultIntf().name
        super().__init__(host, name, ["ip", "-ts", "monitor", "address", "dev", self.intf])

    def changes(self):
        """``[(t, ip, held)]`` in time order."""
        result = []
        for line in self.text().splitlines():
            m = ADDR_LINE.match(line)
            if m:
                result.append((ip_monitor_time(m.group("ts")), m.group("ip"),
                               not m.group("deleted")))
        return result
