"""Talking to ovs-vswitchd outside OpenFlow: its unixctl socket and its zone timeouts.

The load balancer reads and flushes the connection tracker of its zone through
ovs-vswitchd's unixctl socket -- the JSON-RPC that ``ovs-appctl`` speaks -- without a
fork per request (:class:`UnixCtl`).  The harness gives the zone IPVS-like timeouts
(:func:`set_zone_timeouts`) and turns the tracker's TCP window check off
(:func:`set_tcp_seq_check`) once the bridges exist, and undoes both when the network
stops or ``redlab clean`` repairs a crashed run (:func:`remove_zone_timeouts`).

Why the window check goes: IPVS tracks TCP states but never validates sequence windows;
OVS's tracker does, and under a client that reuses its ports quickly (wrk with
``tcp_tw_reuse``) it marked some handshakes invalid (``conntrack_tcp_seq_chk_failed``
in ``ovs-appctl coverage/show``), the switch dropped them and the connections stalled
until their half-open entries expired (measured while the tracker still did the NAT:
96 drops and 1356 new connections/s with the check, none and 7001/s without, same
scheduler, same machine).
"""

import json
import os
import socket
import subprocess

RUNDIR = os.environ.get("OVS_RUNDIR", "/run/openvswitch")
ZONE = 0x7ED1           # the conntrack zone of the load balancer's service

# the userspace datapath is "netdev", the kernel one "system"
DP_TYPES = {"user": "netdev", "kernel": "system"}


class UnixCtlError(RuntimeError):
    pass


def vswitchd_socket(rundir=RUNDIR):
    with open(os.path.join(rundir, "ovs-vswitchd.pid")) as f:
        pid = f.read().strip()
    return os.path.join(rundir, "ovs-vswitchd.%s.ctl" % pid)


class UnixCtl:
    """``ovs-appctl COMMAND ARGS...`` over one kept-open connection."""

    def __init__(self, path=None, timeout=5.0):
        self.path = path
        self.timeout = timeout
        self.sock = None
        self.buffer = ""
        self.next_id = 0

    def _connect(self):
        path = self.path or vswitchd_socket()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(path)
        self.sock, self.buffer = sock, ""

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def call(self, method, *params):
        """The command's output text; UnixCtlError with its error text."""
        for attempt in (1, 2):          # once more on a fresh connection (vswitchd restarted)
            try:
                if self.sock is None:
                    self._connect()
                return self._call(method, params)
            except (OSError, ValueError) as exc:
                self.close()
                if attempt == 2:
                    raise UnixCtlError("ovs-vswitchd's unixctl socket: %s" % exc) from None

    def _call(self, method, params):
        self.next_id += 1
        request = {"id": self.next_id, "method": method, "params": [str(p) for p in params]}
        self.sock.sendall(json.dumps(request).encode())
        decoder = json.JSONDecoder()
        while True:
            text = self.buffer.lstrip()
            if text:
                try:
                    reply, end = decoder.raw_decode(text)
                except ValueError:
                    reply = None
                if reply is not None:
                    self.buffer = text[end:]
                    if reply.get("id") != self.next_id:
                        continue
                    if reply.get("error") is not None:
                        raise UnixCtlError("%s: %s" % (method, str(reply["error"]).strip()))
                    return reply.get("result") or ""
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise OSError("ovs-vswitchd closed the connection")
            self.buffer += chunk.decode()


def vsctl(*args):
    """``ovs-vsctl ARGS...`` with a timeout, its output captured (a CompletedProcess)."""
    return subprocess.run(["ovs-vsctl", "--timeout=5"] + list(args), capture_output=True,
                          text=True)


def set_zone_timeouts(dp_type, zone, timeouts):
    """Give ``zone`` of datapath ``dp_type`` these TCP timeouts (``ovs-vsctl add-zone-tp``).

    Returns whether a Datapath record had to be created for it (the caller records that,
    to remove it again).  ``timeouts``: e.g. ``{"tcp_syn_sent": 60, ...}``.
    """
    created = False
    if vsctl("list-zone-tp", dp_type).returncode != 0:
        result = vsctl("--", "--id=@d", "create", "Datapath", "datapath_version=0",
                        "--", "set", "Open_vSwitch", ".", "datapaths:%s=@d" % dp_type)
        if result.returncode != 0:
            raise UnixCtlError("cannot create the OVS Datapath record for %s: %s"
                               % (dp_type, result.stderr.strip()))
        created = True
    vsctl("del-zone-tp", dp_type, "zone=%d" % zone)
    result = vsctl("add-zone-tp", dp_type, "zone=%d" % zone,
                    *["%s=%d" % (k, max(1, round(v))) for k, v in sorted(timeouts.items())])
    if result.returncode != 0:
        raise UnixCtlError("cannot set the conntrack timeouts of zone %d: %s"
                           % (zone, result.stderr.strip()))
    return created


def set_tcp_seq_check(enabled):
    """Turn the userspace tracker's TCP sequence check on or off; return whether it was on
    (None when ovs-vswitchd cannot say, e.g. the kernel datapath)."""
    got = subprocess.run(["ovs-appctl", "--timeout=5", "dpctl/ct-get-tcp-seq-chk"],
                         capture_output=True, text=True)
    if got.returncode != 0:
        return None
    was = "enabled" in got.stdout
    if was != enabled:
        subprocess.run(["ovs-appctl", "--timeout=5", "dpctl/ct-%s-tcp-seq-chk"
                        % ("enable" if enabled else "disable")], capture_output=True)
    return was


def remove_zone_timeouts(dp_type, zone, remove_datapath=False, seq_check=None):
    """Undo :func:`set_zone_timeouts` (and :func:`set_tcp_seq_check` when ``seq_check``:
    it was on before) and flush the zone's connections; what was removed."""
    removed = []
    listed = vsctl("list-zone-tp", dp_type)
    if listed.returncode == 0:
        if "Zone:%d," % zone in listed.stdout:
            vsctl("del-zone-tp", dp_type, "zone=%d" % zone)
            removed.append("conntrack timeouts of zone %d" % zone)
        if remove_datapath and not vsctl("list-zone-tp", dp_type).stdout.strip():
            vsctl("remove", "Open_vSwitch", ".", "datapaths", dp_type)
            removed.append("OVS Datapath record %s" % dp_type)
    if seq_check and set_tcp_seq_check(True) is False:
        removed.append("TCP sequence check of the tracker turned back on")
    flushed = subprocess.run(["ovs-appctl", "--timeout=5", "dpctl/flush-conntrack",
                              "zone=%d" % zone], capture_output=True, text=True)
    if flushed.returncode == 0:
        removed.append("conntrack zone %d flushed" % zone)
    return removed
