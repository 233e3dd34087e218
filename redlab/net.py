"""The network lifecycle: build, start, wait, and always tear down.

    with Network(VRRPPairTopo(), name="demo") as net:
        net["client1"].cmd("curl -s", addressing.vip())

``Network`` picks the OVS kernel datapath when the kernel has it and the userspace
datapath otherwise (then turns TX checksum offload off on every host interface:
PLATFORM.md, trap 1), starts the os-ken controller, builds the Mininet network, waits
with a deadline until every switch is connected *and* has the controller's table-miss
flow, and starts each role's daemons.  Whatever happens -- an exception in the body, a
daemon that fails its dry run -- ``stop()`` removes everything; names and pids are
recorded in the run registry before they exist, so ``redlab clean`` can finish the job
after a ``kill -9``.
"""

import codecs
import contextlib
import functools
import logging
import os
import signal
import subprocess
import threading
import time

import mininet.node
from mininet.log import setLogLevel
from mininet.net import Mininet
from mininet.node import OVSSwitch, RemoteController

from redlab import addressing
from redlab.controller import L2_SWITCH, ControllerProcess
from redlab.errors import ConfigError, RedlabError
from redlab.evidence import collect_evidence
from redlab.nodes import RedlabHost, netns_of, pids_in_netns
from redlab.runs import NetworkLock, Run, owner_alive, registered_runs
from redlab.system import choose_datapath, preflight
from redlab.wait import startup, wait_until

log = logging.getLogger("redlab")

# Mininet decodes every node shell's output as strict UTF-8: one stray byte (seen once in
# the suite: 0xf0 while the controller node's shell started) raises UnicodeDecodeError in
# the middle of building a network.  Shell output is only read by people and by regular
# expressions, so an undecodable byte becomes U+FFFD instead.
mininet.node.getincrementaldecoder = functools.partial(
    codecs.getincrementaldecoder("utf-8"), errors="replace")


def init_mininet():
    """Mininet's own start-up (``Mininet.init``) without its host-wide sysctls.

    ``fixLimits`` raises the rlimits (wanted) and writes sysctls; in a sandbox's network
    namespace ``net.core.*`` do not exist (it warns on every run), and ``fs.file-max`` or
    ``kernel.pty.max`` are the whole machine's, which a sandbox must not change.
    """
    from mininet.util import rlimitTestAndSet
    from resource import RLIMIT_NOFILE, RLIMIT_NPROC
    if not Mininet.inited:
        rlimitTestAndSet(RLIMIT_NPROC, 8192)
        rlimitTestAndSet(RLIMIT_NOFILE, 16384)
        Mininet.inited = True


def orphan_shells(names):
    """Pids of this process's Mininet node shells (``bash ... mininet:NAME``) for ``names``.

    A node whose start failed half-way is not in the Mininet object, so its ``stop`` does
    not know the shell; the shell is still our child.
    """
    wanted = {("mininet:%s" % name).encode() for name in names}
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                argv = f.read().split(b"\0")
            with open("/proc/%s/stat" % entry) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"--norc" in argv and wanted & set(argv):
            found.append(int(entry))
    return found


def planned_names(topo):
    """Bridges and interface names the topology will create, known before building."""
    bridges = list(topo.switches())
    links = []
    for src, dst, info in topo.links(sort=True, withInfo=True):
        links.append("%s-eth%s" % (src, info["port1"]))
        links.append("%s-eth%s" % (dst, info["port2"]))
    return bridges, links


def validate_topology(topo):
    """Refuse a topology that cannot work: duplicate addresses, bad names."""
    assignments = []
    for name in topo.nodes():
        if len(name) > 10:
            raise ConfigError("node name %r is too long: interface names like %s-eth0 must fit "
                              "in 15 characters; use at most 10" % (name, name))
        info = topo.nodeInfo(name)
        if not topo.isSwitch(name):
            assignments.append((name, info.get("ip")))
    for src, dst, info in topo.links(sort=True, withInfo=True):
        for node, key in ((info["node1"], "params1"), (info["node2"], "params2")):
            ip = info.get(key, {}).get("ip")
            if ip and (node, ip) not in assignments:
                assignments.append((node, ip))
    addressing.check_unique(assignments)


def ovs_bridges():
    out = subprocess.run(["ovs-vsctl", "--timeout=5", "list-br"], capture_output=True, text=True)
    return set(out.stdout.split())


def root_links():
    return set(os.listdir("/sys/class/net"))


class Network:
    """An emulated network for the duration of a ``with`` block (or ``start``/``stop``)."""

    def __init__(self, topo, name="network", run_folder=None, controller=True,
                 apps=(L2_SWITCH,), controller_config=None, services=True,
                 datapath=None, connect_timeout=20):
        self.topo = topo
        self.name = name
        self.run_folder = run_folder
        self.use_controller = controller
        self.apps = apps
        self.controller_config = controller_config or {}
        self.start_services = services
        self.datapath = datapath
        self.connect_timeout = connect_timeout
        self.run = None
        self.net = None
        self.controller = None
        self.started_at = None
        self._lock = NetworkLock()

    # -- access ----------------------------------------------------------------------
    def __getitem__(self, name):
        return self.net[name]

    @property
    def hosts(self):
        return self.net.hosts

    @property
    def switches(self):
        return self.net.switches

    # -- lifecycle -------------------------------------------------------------------
    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and self.net is not None:
            self.save_evidence("exception: %s: %s" % (exc_type.__name__, exc))
        self.stop()
        return False

    def start(self):
        """Build and start the network.  A node whose shell never gives Mininet its prompt
        (seen once in a loaded CI run: the controller node's shell, the grader waiting
        300 s for it) fails the attempt after ``NODE_START_TIMEOUT`` seconds; the network
        is torn down and started once more, so a grade does not depend on that."""
        try:
            return self._start_once()
        except NodeStartTimeout as exc:
            log.warning("%s; tearing down and starting network %s again", exc, self.name)
        try:
            return self._start_once()
        except NodeStartTimeout as exc:
            raise RedlabError("%s, twice; the machine may be overloaded: run `redlab doctor` "
                              "and try again" % exc) from None

    def _start_once(self):
        preflight()
        validate_topology(self.topo)
        self.datapath = self.datapath or choose_datapath()
        self.run = Run(self.name, self.run_folder)
        self._lock.acquire(self.run)
        try:
            self._refuse_leftovers()
            self.run.open()
            bridges, links = planned_names(self.topo)
            for bridge in bridges:
                self.run.record("bridges", bridge)
                if self.datapath == "user":
                    self.run.record("links", bridge)   # the netdev bridge's own tap
            for link in links:
                self.run.record("links", link)
            self._start_controller()
            with node_start_bound(NODE_START_TIMEOUT):
                self._build()
            if "controllers.lb" in self.apps:
                self._set_conntrack_zone()
            self._wait_connected()
            if self.start_services:
                self.start_all_services()
            self.started_at = time.time()
            log.info("network %s up (datapath %s), run folder %s", self.name, self.datapath,
                     self.run.path)
            return self
        except BaseException:
            self.stop()
            raise

    def _refuse_leftovers(self):
        stale = [e for e in registered_runs() if not owner_alive(e)]
        if stale:
            raise RedlabError(
                "a crashed redlab run left its network behind (%s); run `redlab clean` first"
                % ", ".join(e["id"] for e in stale))
        clash = ovs_bridges() & set(self.topo.switches())
        if clash:
            raise RedlabError(
                "OVS bridge %s already exists and is not from a running redlab network; "
                "remove it with `ovs-vsctl del-br %s` (or `redlab clean` if a redlab run left it)"
                % (", ".join(sorted(clash)), " ".join(sorted(clash))))

    def _start_controller(self):
        if not self.use_controller:
            return
        self.controller = ControllerProcess(self.run, self.apps, self.controller_config)
        self.controller.start()

    def _set_conntrack_zone(self):
        """The load balancer keeps its connections in a conntrack zone of the switch's
        datapath: give the zone IPVS-like timeouts (recorded first, so that ``stop()`` and
        ``redlab clean`` remove them and flush the zone even after a crash).  After the
        bridges exist: ovs-vswitchd applies a zone's timeouts to a datapath that exists
        (set before the first netdev bridge, they were ignored: a closed connection stayed
        30 s, the default, instead of the closing timeout)."""
        from controllers.conntrack import SYN_RECV_TIMEOUT
        from controllers.ovsctl import DP_TYPES, ZONE, set_tcp_seq_check, set_zone_timeouts
        config = self.controller_config
        zone = config.get("ct_zone", ZONE)
        dp_type = DP_TYPES[self.datapath]
        entry = {"dp": dp_type, "zone": zone, "datapath_record": False, "seq_check": True}
        self.run.record("ct_zones", entry)     # before: a crash now still gets it undone
        syn = config.get("syn_recv_timeout", SYN_RECV_TIMEOUT)
        closing = config.get("closing_timeout", 2)
        created = set_zone_timeouts(dp_type, zone, dict(
            tcp_syn_sent=syn, tcp_syn_recv=syn,
            tcp_established=config.get("established_timeout", 300),
            tcp_fin_wait=closing, tcp_time_wait=closing, tcp_close=closing))
        was_on = set_tcp_seq_check(False)      # IPVS checks no windows (controllers/ovsctl.py)
        self.run.forget("ct_zones", entry)
        self.run.record("ct_zones", dict(entry, datapath_record=created,
                                         seq_check=bool(was_on)))

    def _build(self):
        setLogLevel(os.environ.get("REDLAB_MININET_LOG", "warning"))
        init_mininet()
        switch = functools.partial(OVSSwitch, datapath=self.datapath, protocols="OpenFlow13",
                                   reconnectms=1000)
        controller = None
        if self.controller:
            controller = functools.partial(RemoteController, ip=self.controller.host,
                                           port=self.controller.port)
        self.net = Mininet(topo=None, switch=switch, host=RedlabHost, controller=controller,
                           build=False, autoSetMacs=False, waitConnected=False)
        self.net.topo = self.topo
        # add nodes one by one so each host's namespace is recorded as soon as it exists
        if controller:
            c0 = self.net.addController("c0")
            self.run.record_process(c0.pid, "controller node shell")
        for name in self.topo.hosts():
            host = self.net.addHost(name, **self.topo.nodeInfo(name))
            host.run = self.run
            if host.inNamespace and host.netns != netns_of(1):
                self.run.record("netns", host.netns)
            self.run.record_process(host.pid, "host shell " + name)
        for name in self.topo.switches():
            self.net.addSwitch(name, **self.topo.nodeInfo(name))
        for src, dst, params in self.topo.links(sort=True, withInfo=True):
            self.net.addLink(**params)
        for host in self.net.hosts:
            self._set_mac(host)
        self.net.configHosts()
        self.net.built = True
        self.net.start()
        if self.datapath == "user":
            self.disable_tx_offload()

    @staticmethod
    def _set_mac(host):
        ip = host.params.get("ip")
        if ip and not host.params.get("mac"):
            host.params["mac"] = addressing.mac_for(ip)

    def disable_tx_offload(self):
        """Userspace datapath: veths leave TCP/UDP checksums empty unless TX offload is off."""
        for host in self.net.hosts:
            for intf in host.intfList():
                if intf.name != "lo":
                    host.cmd("ethtool -K %s tx off >/dev/null 2>&1" % intf.name)

    def _wait_connected(self):
        if not self.controller:
            return
        for switch in self.net.switches:
            wait_until(lambda s=switch: self._switch_ready(s), startup(self.connect_timeout),
                       "switch %s to connect to the controller and get its table-miss flow"
                       % switch.name)

    def _switch_ready(self, switch):
        if not self.controller.running:
            raise RedlabError("the controller died while switch %s was connecting: %s"
                              % (switch.name, self.controller.output_tail()))
        # (ovsdb's Controller.is_connected is refreshed only every few seconds: the
        # controller's own record of the handshake is both faster and stronger)
        dpid = int(switch.dpid, 16)
        hello = [e for e in self.controller.events("switch_connected")
                 if e["dpid"] == dpid and e["t"] >= self.controller.started_at]
        if not hello:
            return False, "controller has not set up %s yet" % switch.name
        flows = self.dump_flows(switch)
        return "priority=0" in flows, flows

    def dump_flows(self, switch):
        switch = switch if not isinstance(switch, str) else self.net[switch]
        return switch.cmd("ovs-ofctl -O OpenFlow13 dump-flows %s" % switch.name)

    def start_all_services(self):
        for host in self.net.hosts:
            if isinstance(host, RedlabHost):
                for daemon in host.services():
                    host.start_daemon(daemon)

    def save_evidence(self, reason):
        try:
            collect_evidence(self, reason)
        except Exception as exc:     # evidence must never hide the real error
            log.warning("could not save evidence: %s", exc)

    def stop(self):
        """Tear everything down; safe to call twice and after a failed start."""
        errors = []
        if self.net is not None:
            # ask every daemon to stop at once (keepalived takes ~1 s), then reap them
            for host in self.net.hosts:
                for daemon in getattr(host, "daemons", {}).values():
                    daemon.request_stop()
            for host in self.net.hosts:
                try:
                    host.stop_daemons()
                except Exception as exc:
                    errors.append("%s daemons: %s" % (host.name, exc))
            try:
                self.net.stop()
            except Exception as exc:
                errors.append("mininet stop: %s" % exc)
            for node in self.net.controllers:
                node.terminate()     # RemoteController.stop() is a no-op: its shell would stay
            self.net = None
        if self.topo is not None:
            orphans = orphan_shells(["c0"] + list(self.topo.nodes()))
            if orphans:
                kill_pids(orphans)
                errors.append("killed %d node shell(s) of a node that never finished starting"
                              % len(orphans))
        try:
            if self.controller is not None:
                self.controller.stop()
            if self.run is not None and self.run.registered:
                from controllers.ovsctl import remove_zone_timeouts
                for ct in list(self.run.state["ct_zones"]):
                    remove_zone_timeouts(ct["dp"], ct["zone"], ct["datapath_record"],
                                         ct.get("seq_check"))
                    self.run.forget("ct_zones", ct)
                from redlab.clean import clean_entry
                leftovers = clean_entry(self.run.state)
                if leftovers:
                    log.warning("removed what mininet left behind: %s", ", ".join(leftovers))
                self.run.close()
        finally:
            self._lock.release()
        if errors:
            log.warning("teardown problems: %s", "; ".join(errors))

    # -- helpers used by faults and scenarios -----------------------------------------
    def host_pids(self, host):
        return [p for p in pids_in_netns(host.netns) if p != host.pid]


NODE_START_TIMEOUT = 60.0      # s for every node of a network to start its shell


class NodeStartTimeout(RedlabError):
    """Mininet waited too long for a node's shell (``Node.startShell`` has no bound)."""


@contextlib.contextmanager
def node_start_bound(seconds):
    """Raise :class:`NodeStartTimeout` in the main thread if the block takes longer than
    ``seconds`` (a real-time itimer interrupts Mininet's blocking ``poll()``).  Elsewhere
    than in the main thread no signal can be used, and the block runs unbounded."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum, frame):
        raise NodeStartTimeout("a node's shell did not start within %g s" % seconds)
    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def kill_pids(pids, sig=signal.SIGKILL):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
