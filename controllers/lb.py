"""The load balancer: one VIP in front of real servers, IPVS-style, as an os-ken app.

A thin shell: the service's state and every decision (health, weights, who is scheduled
where, how exactly) live in :mod:`controllers.lbcore`; this app turns them into flows and
groups, and feeds in what the switch reports.  It is the learning switch of
:mod:`controllers.l2switch` with the service's tables between learning and forwarding::

    table 0  learning; ARP claiming the VIP goes to the controller only; nothing enters
             from the counting port
    table 1  service   TCP to VIP:port            -> tracker (zone Z), table 2
                       TCP from real server i     -> (NAT) reg3 = i, source rewritten to
                                                     VIP:port; tracker (zone Z), table 3
                       anything else              -> table 5
    table 2  to the VIP, tracked:
                       (exact mode, counts read) server i's connection: the client's ACK
                       completing the handshake, its first FIN or RST
                                                  -> commit the "copied" bit, a copy to
                                                     the counting port, then as below
                       ct_mark = server i         -> its MAC (NAT: its address and port),
                                                     table 5 (a known connection, a
                                                     retransmitted SYN included)
                       SYN of a new connection    -> the scheduler stage (below)
                       anything else              -> dropped (invalid, or no connection)
    table 3  from a real server, tracked: (exact mode, counts read) its first FIN or RST
                                                  -> commit the bit, a copy, then as below
                       a reply                    -> source MAC = the VIP's, table 5;
                       (NAT) anything else        -> source put back (reg3), table 5
    table 4  server stage: reg2 = i  -> commit (zone Z, ct_mark = i), then its MAC (NAT:
                                        its address and port), table 5
    table 5  forwarding by destination MAC (flood when unknown)

Per-connection state is the switch's connection tracker (zone
:data:`controllers.ovsctl.ZONE`), never a flow: nothing is installed per connection, and
a controller restart loses nothing.  The scheduler stage depends on the mode
(:meth:`controllers.lbcore.Service.mode`):

- ``slots``: a select group of 256 buckets, bucket k -> ``reg2 = slot[k]`` and table 4.
  OVS's ``dp_hash`` method maps hash value k of the 5-tuple to bucket k when a group has
  exactly 256 buckets of weight 1 (``ofproto-dpif.c``, ``group_setup_dp_hash_table``), so
  the datapath needs one megaflow per hash value, not one per connection: new
  connections never wait for the controller (a group needing more than 256 hash values
  would silently fall back to an upcall per connection).  The controller fills the slots
  from the scheduler and refills them when the servers, weights or counts change.
- ``per_client``: a client's first SYN comes to the controller, which installs a flow for
  that client address (``reg2 = i``, table 4) and sends the SYN on.
- ``controller`` (the exact mode): every SYN comes to the controller, which picks with
  the kernel's rule and sends it on through table 4 (one packet-in, one packet-out).

Counts (ActiveConn/InActConn) come from dumps of the zone (:mod:`controllers.ctdump`),
read over ovs-vswitchd's unixctl socket (:class:`controllers.ovsctl.UnixCtl`): for
``status``, and every refill period for the schedulers that read counts.  In the exact
mode they also follow the switch's copies of each transition (:mod:`controllers.copies`),
read before every pick; a dump before a pick too while the zone holds at most
``dump_each_pick_max`` connections (:data:`DUMP_EACH_PICK_MAX`; the dump is then cheap
and the expiries it finds exact), when no copies are counted, or after one was lost.
The zone's timeouts (set by the harness, :func:`controllers.ovsctl.set_zone_timeouts`)
are IPVS's SYN_RECV timeout for half-open connections and the configured established and
closing timeouts.  A real server failing its health check loses its connections at once
(their entries are flushed: IPVS's ``expire_nodest_conn``), so a client's retransmitted
SYN is scheduled again to a live server.  Junk -- a segment that is not a SYN for no
connection, a bad checksum, a fragment -- is dropped by the tracker's ``+inv`` or by
table 2, never reaching the controller.

Forwarding methods, as keepalived's ``lb_kind``: **NAT** (destination address and port
rewritten by the switch after the tracker, replies rewritten back before it: the tracker
itself never NATs, see :meth:`LoadBalancer.ct`) and **DR** (direct routing: only
the destination MAC is rewritten; the real servers hold the VIP on ``lo``).

Health state arrives from the checker on the director host over a Unix socket (the same
socket answers ``redlab lb status`` and runtime changes: weight, drain, add, remove).
"""

import collections
import json
import os
import socket
import threading
import time

from os_ken.controller import ofp_event
from os_ken.controller.handler import MAIN_DISPATCHER, set_ev_cls
from os_ken.lib import hub
from os_ken.lib.packet import arp, ether_types, ethernet, in_proto, packet

from controllers import copies, ctdump
from controllers.conntrack import SYN_RECV, SYN_RECV_TIMEOUT
from controllers.copies import CopyPort, CopyPortError
from controllers.ctdump import MARK_CLOSING, MARK_OPEN, MARK_SERVER
from controllers.events import load_config, survives
from controllers.fastpkt import parse_tcp
from controllers.l2switch import L2Switch
from controllers.lbcore import Service
from controllers.learning import is_multicast
from controllers.ovsctl import ZONE, UnixCtl, UnixCtlError
from controllers.service import load_service, parse_service

CLIENT_COOKIE = 0x7ED1AB04              # per-client flows (table 2)
COUNT_COOKIE = 0x7ED1AB05               # the flows that copy transitions (exact mode)
PRIO_COUNT = 105        # tables 2 and 3: a transition to copy, above the marked flows
PRIO_MARKED, PRIO_CLIENT, PRIO_NEW, PRIO_DROP = 100, 95, 90, 80
PRIO_COPY_PORT = 1000   # table 0: nothing enters the switch from the counting port
PRIO_SERVICE = 100
PRIO_UNTRACKED = 50     # table 3: a rewritten packet of no connection, put back
PRIO_CLAIM = 40         # above the learning switch's ARP copy (20): ARP claiming the VIP
SELECT_GROUP = 1
FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
# ct_state bits (nicira-ext.h)
CT_NEW, CT_EST, CT_RPL, CT_INV, CT_TRK = 0x01, 0x02, 0x08, 0x10, 0x20
CT_COMMIT = 0x01
NO_RECIRC = 0xFF
REFILL_PERIOD = 0.5     # s: slots of count-reading schedulers follow the counts this often
DUMP_EACH_PICK_MAX = 256    # exact mode: a dump before each pick while the zone is this small
DUMP_SHARE = 0.1        # a dump that only finds expired entries takes at most this share of time
COPY_POLL = 0.05        # s: copies are read at least this often (and before every pick)


def background(target, *args):
    """Run ``target`` on a daemon thread: the app's loops never end, and a process that made
    the app (a unit test's) must still be able to exit (os-ken's ``hub.spawn`` threads are
    not daemons: a pytest worker that had made one hung at exit until xdist killed it)."""
    thread = threading.Thread(target=target, args=args, daemon=True,
                              name=getattr(target, "__name__", "lb"))
    thread.start()
    return thread


class LoadBalancer(L2Switch):
    SERVICE_TABLE = 1
    VIP_TABLE = 2
    REPLY_TABLE = 3
    STAGE_TABLE = 4
    FORWARD_TABLE = 5       # the last: OpenFlow 1.3's goto_table only goes forward

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        config = load_config()
        service = (parse_service(config["service"]) if "service" in config
                   else load_service(config["service_file"]))
        self.zone = config.get("ct_zone", ZONE)
        self.log_connections = config.get("log_connections", True)
        self.core = Service(service, fast_path=config.get("fast_path", False),
                            syn_recv_timeout=config.get("syn_recv_timeout", SYN_RECV_TIMEOUT))
        self.unixctl = UnixCtl()
        # one request at a time on the unixctl connection: green threads (packets, the
        # control socket, the refill loop) would otherwise read each other's replies
        self.unixctl_lock = hub.BoundedSemaphore(1)
        # os-ken's native hub runs the packet-ins, the control socket and the loops below on
        # threads of their own: the core and the switch's state are changed under this lock
        # (never held while the tracker is read, except by commands that flush it)
        self.lock = threading.RLock()
        self.dp = None
        self.installed = None          # (mode, slots) in the switch
        self.staged = {}               # server id -> (ip, port, mac) of its table-5 flow
        self.group_installed = False
        # SYNs waiting for the counts of their moment (exact mode, count-reading schedulers)
        self.waiting = collections.deque()
        self.syns_arrived = hub.Event()
        # the counting port (controllers.copies): opened when the switch connects
        self.copies = None
        self.copies_lock = threading.Lock()     # copies are read in the order written
        self.counting = None           # the transition flows in the switch, when installed
        self.copies_lost = False       # some were: the next pick waits for a dump
        self.dump_each_pick_max = config.get("dump_each_pick_max", DUMP_EACH_PICK_MAX)
        self.last_dump = (0.0, 0.0, 0)     # (when, how long, entries)
        self.socket_path = config.get("control_socket")
        if self.socket_path:
            background(self._control_server)
        for loop in (self._refill_loop, self._probe_unknown_servers, self._schedule_waiting,
                     self._read_copies):
            background(loop)
        svc = service
        self.logger.info("service %s %s:%d %s %s, real servers %s, mode %s", svc.name, svc.vip,
                         svc.port, svc.lb_algo, svc.lb_kind,
                         ", ".join(s.name for s in svc.real_servers), self.core.mode())

    @property
    def service(self):
        return self.core.service

    # -- fixed tables ------------------------------------------------------------------
    def reset_tables(self, dp):
        parser = dp.ofproto_parser
        ofp = dp.ofproto
        self.delete_flows(dp, ofp.OFPTT_ALL, parser.OFPMatch())
        dp.send_msg(parser.OFPGroupMod(dp, ofp.OFPGC_DELETE, ofp.OFPGT_ALL, ofp.OFPG_ALL))
        with self.lock:
            self.installed = None
            self.staged = {}
            self.group_installed = False
            self.counting = None

    def setup_tables(self, dp):
        parser = dp.ofproto_parser
        svc = self.service
        self.dp = dp
        copy = [self.to_controller(dp)]
        # the VIP is the controller's: ARP that claims it (a host's gratuitous ARP, a reply
        # from the VIP) reaches the controller only, never the other hosts' caches
        self.add_flow(dp, self.LEARN_TABLE, PRIO_CLAIM,
                      parser.OFPMatch(eth_type=ether_types.ETH_TYPE_ARP, arp_spa=svc.vip), copy)
        nat = svc.lb_kind == "NAT"
        self.add_flow(dp, self.SERVICE_TABLE, PRIO_SERVICE,
                      self.tcp_match(parser, ipv4_dst=svc.vip, tcp_dst=svc.port),
                      [self.ct(parser, table=self.VIP_TABLE)])
        if not nat:      # direct routing: the servers answer from the VIP
            self.add_flow(dp, self.SERVICE_TABLE, PRIO_SERVICE,
                          self.tcp_match(parser, ipv4_src=svc.vip, tcp_src=svc.port),
                          [self.ct(parser, table=self.REPLY_TABLE)])
        self.add_flow(dp, self.SERVICE_TABLE, 0, parser.OFPMatch(), goto=self.FORWARD_TABLE)
        self.open_copies(dp)
        # table 2: invalid and unknown segments are dropped; new SYNs: see sync_switch()
        self.add_flow(dp, self.VIP_TABLE, PRIO_DROP,
                      parser.OFPMatch(ct_state=(CT_TRK | CT_INV, CT_TRK | CT_INV)))
        self.add_flow(dp, self.VIP_TABLE, 0, parser.OFPMatch())
        # table 3: replies of tracked connections leave with the VIP's MAC
        reply = parser.OFPMatch(ct_state=(CT_TRK | CT_EST | CT_RPL, CT_TRK | CT_EST | CT_RPL))
        self.add_flow(dp, self.REPLY_TABLE, PRIO_SERVICE, reply,
                      [parser.OFPActionSetField(eth_src=svc.vmac)] if nat else [],
                      goto=self.FORWARD_TABLE)
        self.add_flow(dp, self.REPLY_TABLE, 0, parser.OFPMatch(), goto=self.FORWARD_TABLE)
        self.sync_switch()
        for server in self.core.servers:
            self.arp_probe(dp, server.ip)

    @staticmethod
    def tcp_match(parser, **fields):
        return parser.OFPMatch(eth_type=ether_types.ETH_TYPE_IP, ip_proto=in_proto.IPPROTO_TCP,
                               **fields)

    def ct(self, parser, table=NO_RECIRC, commit_to=None):
        """``ct(zone=Z[,table=T])``, or the commit of server id ``commit_to``.

        The tracker never NATs: it sees every connection as the client and the VIP
        (client:port <-> VIP:port), and the switch rewrites the addresses itself, after
        the tracker on the way in and before it on the way back (NAT mode).  With the
        tracker's own NAT, OVS 3.1 remapped the client's port whenever the client reused
        one whose entry was still closing (``nat_get_unique_tuple``: 9313 of 12062
        entries after 3 rounds of wrk), and a real server still in TIME_WAIT for the
        remapped port refused the SYN: new connections fell from 7000/s to 200/s.
        """
        actions = []
        flags = 0
        if commit_to is not None:
            flags = CT_COMMIT
            actions.append(parser.OFPActionSetField(ct_mark=commit_to))
        return parser.NXActionCT(flags=flags, zone_src="", zone_ofs_nbits=self.zone,
                                 recirc_table=table, alg=0, actions=actions)

    # -- the per-server and scheduler flows -------------------------------------------
    def sync_switch(self):
        """Bring the switch in line with the core: server stages, mode, slots."""
        with self.lock:
            self._sync_switch()

    def _sync_switch(self):
        dp = self.dp
        if dp is None:
            return
        self.stage_servers(dp)
        if self.copies is not None:
            self.sync_counting(dp)
        mode = self.core.mode()
        slots = self.core.slots(time.time()) if mode == "slots" else ()
        if self.installed == (mode, slots):
            return
        parser = dp.ofproto_parser
        if slots and (self.installed is None or self.installed[1] != slots):
            self.fill_slots(dp, slots)
        if self.installed is None or self.installed[0] != mode:
            # the clients' flows of another mode go
            self.delete_flows(dp, self.VIP_TABLE, parser.OFPMatch(), cookie=CLIENT_COOKIE,
                              cookie_mask=0xFFFFFFFF)
        if self.installed is None or bool(self.installed[1]) != bool(slots):
            # new SYNs: to the select group when it has slots, else to the controller
            # (which schedules them itself, or says that no server is available)
            target = [parser.OFPActionGroup(SELECT_GROUP)] if slots else \
                [self.to_controller(dp)]
            self.add_flow(dp, self.VIP_TABLE, PRIO_NEW, self.new_syn_match(parser), target)
        self.installed = (mode, slots)

    def stage_servers(self, dp):
        """Table 4 (commit to server i) and table 2 (a marked connection goes to i) for
        every server whose MAC is known; NAT replies from it go through the tracker."""
        parser = dp.ofproto_parser
        svc = self.service
        nat = svc.lb_kind == "NAT"
        for server in self.core.servers:
            server_id = self.core.ids[server.name]
            mac = self.core.macs.get(server.ip)
            if mac is None or self.staged.get(server_id) == (server.ip, server.port, mac):
                continue
            self.staged[server_id] = (server.ip, server.port, mac)
            to_server = self.to_server(parser, server.ip, server.port, mac)
            # the commit sees the packet as the client sent it; the rewrite comes after
            self.add_flow(dp, self.STAGE_TABLE, PRIO_SERVICE,
                          self.tcp_match(parser, reg2=server_id),
                          [self.ct(parser, commit_to=server_id)] + to_server,
                          goto=self.FORWARD_TABLE)
            self.add_flow(dp, self.VIP_TABLE, PRIO_MARKED,
                          self.tcp_match(parser, ct_state=(CT_TRK, CT_TRK | CT_INV),
                                         ct_mark=(server_id, MARK_SERVER)),
                          to_server, goto=self.FORWARD_TABLE)
            if nat:
                # a reply is rewritten to come from the VIP before the tracker sees it;
                # anything else from the server (the director's health checks) is put
                # back as it was in table 3 (reg3 says which server it came from)
                self.add_flow(dp, self.SERVICE_TABLE, PRIO_SERVICE,
                              self.tcp_match(parser, ipv4_src=server.ip, tcp_src=server.port),
                              [parser.OFPActionSetField(reg3=server_id),
                               parser.OFPActionSetField(ipv4_src=svc.vip),
                               parser.OFPActionSetField(tcp_src=svc.port),
                               self.ct(parser, table=self.REPLY_TABLE)])
                self.add_flow(dp, self.REPLY_TABLE, PRIO_UNTRACKED,
                              self.tcp_match(parser, reg3=server_id),
                              [parser.OFPActionSetField(ipv4_src=server.ip),
                               parser.OFPActionSetField(tcp_src=server.port)],
                              goto=self.FORWARD_TABLE)

    def to_server(self, parser, ip, port, mac):
        """The actions that send a packet of the VIP on to a real server."""
        actions = [parser.OFPActionSetField(eth_dst=mac)]
        if self.service.lb_kind == "NAT":
            actions += [parser.OFPActionSetField(ipv4_dst=ip),
                        parser.OFPActionSetField(tcp_dst=port)]
        return actions

    # -- copies of the transitions (exact mode) -------------------------------------------
    def open_copies(self, dp):
        """Open the counting port of ``dp``'s bridge once (:mod:`controllers.copies`); nothing
        enters the switch from it.  Without it the exact mode dumps before every pick."""
        if self.copies is None:
            try:
                self.copies = CopyPort.open(dp.id)
            except (CopyPortError, OSError) as exc:
                self.logger.warning("no counting port (the exact mode dumps the tracker "
                                    "before each pick): %s", exc)
                self.event_log.emit("copies_unavailable", reason=str(exc))
                return
            self.logger.info("counting port %s (OpenFlow port %d)", self.copies.name,
                             self.copies.ofport)
        parser = dp.ofproto_parser
        self.add_flow(dp, self.LEARN_TABLE, PRIO_COPY_PORT,
                      parser.OFPMatch(in_port=self.copies.ofport))

    def counting_wanted(self):
        return (self.copies is not None and self.core.mode() == "controller"
                and self.core.reads_counts())

    def sync_counting(self, dp):
        """The flows that copy each connection's transitions to the counting port: one set
        per staged server while the exact mode reads counts, none otherwise."""
        parser = dp.ofproto_parser
        want = (tuple(sorted(self.staged.items())), self.copies.ofport) \
            if self.counting_wanted() else None
        if want == self.counting:
            return
        if self.counting is not None:
            for table in (self.VIP_TABLE, self.REPLY_TABLE):
                self.delete_flows(dp, table, parser.OFPMatch(), cookie=COUNT_COOKIE,
                                  cookie_mask=0xFFFFFFFF)
        self.counting = want
        if want is None:
            return
        for server_id, (ip, port, mac) in self.staged.items():
            self.count_transitions(dp, server_id, ip, port, mac)

    def count_transitions(self, dp, server_id, ip, port, mac):
        """Server ``server_id``'s transition flows (:mod:`controllers.copies`).

        Table 2, the client's packets: the ACK that completes the handshake (the tracker
        has seen the server's reply; no FIN, RST or SYN) and the first FIN or RST.
        Table 3, the server's: its first FIN or RST.  Each commits the connection with the
        bit that says it was copied, writes the tagged copy and sends the packet on as
        the marked flows do.
        """
        parser = dp.ofproto_parser
        out = parser.NXActionOutputTrunc(port=self.copies.ofport, max_len=copies.COPY_BYTES)
        to_server = self.to_server(parser, ip, port, mac)
        every = MARK_SERVER | MARK_OPEN | MARK_CLOSING
        opened = self.flag_match(parser, (ACK, ACK | SYN | RST | FIN),
                                 ct_state=(CT_TRK | CT_EST, CT_TRK | CT_EST | CT_INV),
                                 ct_mark=(server_id, every))
        self.add_flow(dp, self.VIP_TABLE, PRIO_COUNT, opened,
                      [self.ct(parser, commit_to=server_id | MARK_OPEN),
                       parser.OFPActionSetField(eth_dst=copies.tag(copies.OPENED, server_id)),
                       out] + to_server, goto=self.FORWARD_TABLE, cookie=COUNT_COOKIE)
        source = self.service.vmac if self.service.lb_kind == "NAT" else mac
        for flag in (FIN, RST):
            closed = self.flag_match(parser, (flag, flag), ct_state=(CT_TRK, CT_TRK | CT_INV),
                                     ct_mark=(server_id, MARK_SERVER | MARK_CLOSING))
            self.add_flow(dp, self.VIP_TABLE, PRIO_COUNT, closed,
                          [self.ct(parser, commit_to=server_id | MARK_CLOSING),
                           parser.OFPActionSetField(eth_dst=copies.tag(copies.CLOSED,
                                                                       server_id)),
                           out] + to_server, goto=self.FORWARD_TABLE, cookie=COUNT_COOKIE)
            by_server = self.flag_match(parser, (flag, flag),
                                        ct_state=(CT_TRK | CT_RPL, CT_TRK | CT_RPL | CT_INV),
                                        ct_mark=(server_id, MARK_SERVER | MARK_CLOSING))
            self.add_flow(dp, self.REPLY_TABLE, PRIO_COUNT, by_server,
                          [self.ct(parser, commit_to=server_id | MARK_CLOSING),
                           parser.OFPActionSetField(
                               eth_src=copies.tag(copies.CLOSED_BY_SERVER, server_id)),
                           out, parser.OFPActionSetField(eth_src=source)],
                          goto=self.FORWARD_TABLE, cookie=COUNT_COOKIE)

    @staticmethod
    def flag_match(parser, flags, **fields):
        """TCP over IPv4 with ``fields`` (in this order) and the TCP flags (value, mask)."""
        return parser.OFPMatch(_ordered_fields=[
            ("eth_type", ether_types.ETH_TYPE_IP), ("ip_proto", in_proto.IPPROTO_TCP)]
            + list(fields.items()) + [("tcp_flags_nxm", flags)])

    def read_copies(self):
        """Count every copy the switch has written (in order); their number."""
        with self.copies_lock:
            port = self.copies
            if port is None:
                return 0
            try:
                found = port.read_all()
            except CopyPortError as exc:     # the port is gone (its bridge was deleted)
                self.logger.warning("%s: the exact mode dumps the tracker before each pick",
                                    exc)
                self.event_log.emit("copies_unavailable", reason=str(exc))
                port.close()
                self.copies = self.counting = None
                return 0
            first = []
            if found:
                now = time.time()
                with self.lock:
                    first = [c for c in found if self.core.transition(c, now)]
            lost = port.lost()
        if self.log_connections:
            for copy in first:
                self.event_log.emit(copies.KINDS[copy.kind], client=copy.client_ip,
                                    port=copy.client_port, server=self.core.name_of(copy.server),
                                    by="server" if copy.kind == copies.CLOSED_BY_SERVER
                                    else "client")
        if lost:
            self.copies_lost = True
            self.event_log.emit("copies_lost", count=lost)
            self.logger.warning("%d copies of transitions lost: the next pick waits for a "
                                "dump of the tracker", lost)
        return len(found)

    def _read_copies(self):
        """Every pick reads the copies first; this loop keeps the counts of ``status`` and
        the socket's buffer from waiting between picks (a poll: a thread woken for every
        copy cost the controller more than reading them)."""
        while True:
            hub.sleep(COPY_POLL if self.counting is not None else REFILL_PERIOD)
            if self.counting is not None:
                self.survive(self.read_copies)

    def new_syn_match(self, parser, **fields):
        return self.flag_match(parser, (SYN, SYN | ACK | RST), **fields,
                               ct_state=(CT_TRK | CT_NEW, CT_TRK | CT_NEW | CT_INV))

    def fill_slots(self, dp, slots):
        """The select group's 256 buckets: bucket k -> reg2 = slots[k], table 4."""
        parser, ofp = dp.ofproto_parser, dp.ofproto
        resubmit = parser.NXActionResubmitTable(table_id=self.STAGE_TABLE)
        buckets = [parser.OFPBucket(weight=1, watch_port=ofp.OFPP_ANY, watch_group=ofp.OFPG_ANY,
                                    actions=[parser.OFPActionSetField(reg2=server_id), resubmit])
                   for server_id in slots]
        command = ofp.OFPGC_MODIFY if self.group_installed else ofp.OFPGC_ADD
        dp.send_msg(parser.OFPGroupMod(dp, command, ofp.OFPGT_SELECT, SELECT_GROUP, buckets))
        self.group_installed = True
        shares = {}
        for server_id in slots:
            name = self.core.name_of(server_id)
            shares[name] = shares.get(name, 0) + 1
        self.event_log.emit("slots", shares=shares)

    def install_client(self, dp, client_ip, server_id):
        parser = dp.ofproto_parser
        idle = self.service.persistence_timeout or 300
        self.add_flow(dp, self.VIP_TABLE, PRIO_CLIENT,
                      self.new_syn_match(parser, ipv4_src=client_ip),
                      [parser.OFPActionSetField(reg2=server_id),
                       parser.NXActionResubmitTable(table_id=self.STAGE_TABLE)],
                      idle=idle, cookie=CLIENT_COOKIE)

    # -- counting ----------------------------------------------------------------------
    def dump(self):
        """Read the zone and sync the core's counts; False when the switch cannot say."""
        asked = time.time()
        try:
            text = self.appctl("dpctl/dump-conntrack", "-m", "zone=%d" % self.zone)
        except UnixCtlError as exc:
            self.logger.warning("cannot read the connection tracker: %s", exc)
            return False
        entries = ctdump.parse(text, (self.service.vip, self.service.port))
        with self.lock:
            gone = self.core.sync(entries, time.time(), dumped_at=asked)
        self.last_dump = (asked, time.time() - asked, len(entries))
        self.copies_lost = False
        half_open = [c for c in gone if c.state == SYN_RECV]
        if half_open:
            # the tracker's SYN_RECV timeout (the zone's tcp_syn_sent/syn_recv) ran out
            self.event_log.emit("half_open_expired", count=len(half_open))
            self.logger.info("%d half-open connections expired", len(half_open))
        return entries

    def appctl(self, *command):
        with self.unixctl_lock:
            return self.unixctl.call(*command)

    def flush_server(self, server_id):
        """Drop every tracked connection of server ``server_id`` (``expire_nodest_conn``)."""
        entries = self.dump() or []
        flushed = 0
        for entry in entries:
            if entry.server != server_id:
                continue
            try:
                self.appctl("dpctl/flush-conntrack", "zone=%d" % self.zone,
                            ctdump.flush_tuple(entry))
                flushed += 1
            except UnixCtlError as exc:
                self.logger.warning("cannot flush %s: %s", ctdump.flush_tuple(entry), exc)
        if flushed:
            self.dump()
        return flushed

    def survive(self, step):
        """Run one step of a loop thread; an exception is logged, the loop goes on (a
        thread that ended would leave SYNs waiting or counts stale for good)."""
        try:
            step()
        except Exception as exc:  # noqa: BLE001
            self.logger.exception("%s failed", step.__name__)
            self.event_log.emit("handler_error", handler=step.__name__,
                                error="%s: %s" % (type(exc).__name__, exc))

    def _refill_loop(self):
        while True:
            hub.sleep(REFILL_PERIOD)
            self.survive(self.refill)

    def refill(self):
        if self.dp is None:
            return
        mode = self.core.mode()
        if mode == "slots" and self.core.count_dependent():
            self.dump()
            self.sync_switch()
        elif mode != "slots" and self.dump_due():
            self.dump()     # the picks' table follows what the tracker still holds

    def dump_due(self):
        """A dump for the entries the tracker expired (the copies cannot say): every refill
        period, or less often when dumps are long -- ovs-vswitchd forwards nothing while
        it writes one -- so that they take at most :data:`DUMP_SHARE` of the time."""
        when, took, _ = self.last_dump
        return self.counting is None or time.time() - when >= took / DUMP_SHARE

    def dump_before_pick(self):
        """The exact pick needs a dump too: no copies are counted (no counting port, the
        flows not installed, some lost), or the zone is small enough that a dump is cheap
        and the expiries it finds are then exact."""
        return (self.counting is None or self.copies_lost
                or self.last_dump[2] <= self.dump_each_pick_max)

    def _probe_unknown_servers(self, period=1.0):
        """Ask again, every ``period`` s, for a real server whose MAC is still unknown: the
        probes sent when the switch connected can be lost (seen in a loaded suite run: one
        of three servers never answered its single probe, and the service waited for it),
        as a kernel retries an unanswered ARP request."""
        while True:
            hub.sleep(period)
            self.survive(self.probe_unknown_servers)

    def probe_unknown_servers(self):
        if self.dp is None:
            return
        with self.lock:
            unknown = [s.ip for s in self.core.servers if self.core.macs.get(s.ip) is None]
        for ip in unknown:
            self.arp_probe(self.dp, ip)

    # -- packets -----------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @survives
    def packet_in(self, ev):
        msg = ev.msg
        dp = msg.datapath
        seg = parse_tcp(msg.data)            # the hot path: no os-ken packet objects
        if seg is None:
            pkt = packet.Packet(msg.data)
            eth = pkt.get_protocol(ethernet.ethernet)
            req = pkt.get_protocol(arp.arp) if eth is not None and \
                eth.ethertype == ether_types.ETH_TYPE_ARP else None
            if req is not None and req.src_ip == self.service.vip:
                self.vip_claimed(dp, msg.match["in_port"], req)
                return
            super().packet_in(ev)            # learning (MACs, ARP bindings)
            if req is not None:
                with self.lock:
                    self.handle_arp(dp, msg.match["in_port"], eth, req)
            return
        if not is_multicast(seg.eth_src):
            self.learn_mac(dp, seg.eth_src, msg.match["in_port"])
        svc = self.service
        if msg.table_id == self.VIP_TABLE and seg.ip_dst == svc.vip and \
                seg.dst_port == svc.port and seg.flags & SYN and not seg.flags & (ACK | RST):
            self.new_connection(dp, msg, seg)

    def new_connection(self, dp, msg, seg):
        """A SYN the switch could not schedule itself: the kernel's pick, then table 4.

        A scheduler that reads the counts waits for a dump of the tracker taken after its
        SYN arrived (:meth:`_schedule_waiting`); one dump serves every SYN that arrived
        while the previous one was read, in arrival order, each pick counted before the
        next is made -- what IPVS would decide for SYNs that close together.
        """
        if self.core.reads_counts() and (self.waiting or self.dump_before_pick()):
            self.waiting.append((dp, msg, seg))
            self.syns_arrived.set()
        else:
            if self.core.reads_counts():
                self.read_copies()      # the copies say the counts: no dump to wait for
            with self.lock:
                self.schedule(dp, msg, seg)

    def _schedule_waiting(self):
        while True:
            self.syns_arrived.wait()
            self.syns_arrived.clear()
            while self.waiting:
                self.survive(self.schedule_waiting)

    def schedule_waiting(self):
        """Schedule the SYNs waiting now, after one dump of the tracker; their number."""
        batch = []
        while self.waiting:
            batch.append(self.waiting.popleft())
        if not batch:
            return 0
        if self.core.reads_counts():
            # every transition before these SYNs has been copied, every packet tracked
            self.read_copies()
            if self.dump_before_pick():
                self.dump()
                self.read_copies()
        with self.lock:
            for dp, msg, seg in batch:
                self.schedule(dp, msg, seg)
        if len(batch) > 1 and self.log_connections:
            self.event_log.emit("scheduled_batch", size=len(batch))
        return len(batch)

    def schedule(self, dp, msg, seg):
        now = time.time()
        mode = self.core.mode()
        chosen = self.core.pick(seg.ip_src, seg.src_port, seg.ip_dst, now)
        if chosen is None:
            self.event_log.emit("no_server", client=seg.ip_src, port=seg.src_port)
            self.logger.warning("no real server available for %s:%d", seg.ip_src, seg.src_port)
            return
        server_id = self.core.ids[chosen.name]
        if mode == "per_client":
            self.install_client(dp, seg.ip_src, server_id)
        parser = dp.ofproto_parser
        self.packet_out(dp, msg.data, [parser.OFPActionSetField(reg2=server_id),
                                       parser.NXActionResubmitTable(table_id=self.STAGE_TABLE)],
                        in_port=msg.match["in_port"])
        if self.log_connections:
            self.event_log.emit("scheduled", client=seg.ip_src, port=seg.src_port,
                                server=chosen.name)

    def vip_claimed(self, dp, in_port, req):
        """A host said it is the VIP (the switch dropped it; nobody else saw it): learn
        nothing from it, say who tried."""
        self.event_log.emit("vip_claim_dropped", dpid=dp.id, port=in_port, mac=req.src_mac,
                            opcode=req.opcode)
        self.logger.warning("dropped an ARP %s from %s on port %s claiming the VIP %s",
                            "reply" if req.opcode == arp.ARP_REPLY else "request",
                            req.src_mac, in_port, req.src_ip)

    def handle_arp(self, dp, in_port, eth, req):
        if req is None:
            return
        if any(s.ip == req.src_ip for s in self.core.servers) and \
                self.core.macs.get(req.src_ip) != req.src_mac:
            self.core.macs[req.src_ip] = req.src_mac
            self.sync_switch()               # a real server can be reached now
        else:
            self.core.macs[req.src_ip] = req.src_mac
        if req.opcode != arp.ARP_REQUEST or req.dst_ip != self.service.vip:
            return
        reply = packet.Packet()
        reply.add_protocol(ethernet.ethernet(ethertype=ether_types.ETH_TYPE_ARP, dst=eth.src,
                                             src=self.service.vmac))
        reply.add_protocol(arp.arp(opcode=arp.ARP_REPLY, src_mac=self.service.vmac,
                                   src_ip=self.service.vip, dst_mac=req.src_mac,
                                   dst_ip=req.src_ip))
        self.packet_out(dp, reply, [dp.ofproto_parser.OFPActionOutput(in_port)])

    def arp_probe(self, dp, ip):
        """Ask who has ``ip`` (from the VIP), flooded; the answer is learned from its copy."""
        probe = packet.Packet()
        probe.add_protocol(ethernet.ethernet(ethertype=ether_types.ETH_TYPE_ARP,
                                             dst="ff:ff:ff:ff:ff:ff", src=self.service.vmac))
        probe.add_protocol(arp.arp(opcode=arp.ARP_REQUEST, src_mac=self.service.vmac,
                                   src_ip=self.service.vip, dst_mac="00:00:00:00:00:00",
                                   dst_ip=ip))
        self.packet_out(dp, probe, [dp.ofproto_parser.OFPActionOutput(dp.ofproto.OFPP_FLOOD)])

    def packet_out(self, dp, pkt, actions, in_port=None):
        ofp = dp.ofproto
        if isinstance(pkt, packet.Packet):
            pkt.serialize()
            pkt = pkt.data
        dp.send_msg(dp.ofproto_parser.OFPPacketOut(
            datapath=dp, buffer_id=ofp.OFP_NO_BUFFER,
            in_port=in_port if in_port is not None else ofp.OFPP_CONTROLLER,
            actions=actions, data=pkt))

    # -- commands ----------------------------------------------------------------------
    def command(self, request):
        cmd = request.get("cmd")
        if cmd in ("status", "connections"):
            self.dump()
            self.read_copies()
        with self.lock:
            reply = self._command(cmd, request)
        if cmd == "status" and reply.get("ok"):
            reply["service"]["path"]["counting"] = self.counting_text()
        return reply

    def counting_text(self):
        """How the counts the picks read are kept, for ``redlab lb status``."""
        slots = self.core.mode() == "slots"
        if not (self.core.count_dependent() if slots else self.core.reads_counts()):
            return "not read by this scheduler"
        if slots:
            return "dumps of the tracker every refill period"
        if self.counting is None:
            return "a dump of the tracker before each pick"
        return ("copies of each handshake's end and first FIN or RST from the switch; "
                "a dump before each pick while the zone holds at most %d connections, "
                "else for its expiries at most %d%% of the time"
                % (self.dump_each_pick_max, round(DUMP_SHARE * 100)))

    def _command(self, cmd, request):
        old_health = dict(self.core.health)
        reply, effects = self.core.command(request)
        if not reply.get("ok"):
            return reply
        cleared = 0
        for server_id in effects.flush:
            cleared += self.flush_server(server_id)
        if effects.refill or effects.stage:
            if self.core.mode() == "per_client" and self.dp is not None:
                # the clients' flows were chosen from the old servers: choose again
                self.delete_flows(self.dp, self.VIP_TABLE, self.dp.ofproto_parser.OFPMatch(),
                                  cookie=CLIENT_COOKIE, cookie_mask=0xFFFFFFFF)
            self.sync_switch()
        if cmd == "health":
            reply["cleared"] = cleared
            name, state = request["server"], request["state"]
            if old_health.get(name) != state:
                self.event_log.emit("health", server=name, state=state,
                                    reason=request.get("reason", ""), cleared=cleared)
                self.logger.info("real server %s is %s (%s); %d connections cleared",
                                 name, state, request.get("reason", ""), cleared)
        elif cmd == "set_weight":
            self.event_log.emit("weight", server=request["server"], weight=request["weight"])
        elif cmd == "set_scheduler":
            self.event_log.emit("scheduler", lb_algo=request["lb_algo"])
        elif cmd == "add_server":
            self.event_log.emit("server_added", server=request["name"])
            self.arp_probe(self.dp, request["ip"]) if self.dp is not None else None
        elif cmd == "remove_server":
            self.event_log.emit("server_removed", server=request["server"])
        return reply

    def _control_server(self):
        path = self.socket_path
        if os.path.exists(path):
            os.unlink(path)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen(16)
        while True:
            conn, _ = server.accept()
            background(self._serve_client, conn)

    def _serve_client(self, conn):
        reader = conn.makefile("r")
        try:
            for line in reader:
                if not line.strip():
                    continue
                try:
                    reply = self.command(json.loads(line))
                except Exception as exc:      # a bad request must not kill the controller
                    self.logger.warning("bad control request %r: %s", line[:200], exc)
                    reply = {"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}
                conn.sendall((json.dumps(reply) + "\n").encode())
        except OSError:
            pass
        finally:
            conn.close()

