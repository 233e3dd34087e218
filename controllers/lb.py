"""The load balancer: one VIP in front of real servers, IPVS-style, as an os-ken app.

It is the learning switch of :mod:`controllers.l2switch` with a *service table*
between learning and forwarding::

    table 0  learning (+ copies to the controller of FIN and RST segments; the server's
             SYN-ACK learns a handshake flow into table 3; a client's ACK to the VIP
             looks itself up in tables 3 and 4)
    table 1  service  per connection  client:port -> VIP:port   rewrite to the real server
                      per connection  server -> client          rewrite back to VIP (NAT)
                      new connection  SYN -> VIP:port           to the controller
                      anything else   * -> VIP:port             dropped (no connection)
    table 2  forwarding by destination MAC (flood when unknown)
    table 3  handshake: one learned flow per connection whose SYN-ACK was seen, marks
             the client's ACK (reg1 = 1)
    table 4  a marked ACK: to the controller (the connection is now ESTABLISHED)

The controller answers ARP for the VIP with the service's virtual MAC.  The first SYN
of each new connection comes to the controller, which asks the scheduler
(:mod:`controllers.schedulers`, the kernel's rules) for a real server among those whose
health check passes, records the connection (:mod:`controllers.conntrack`), installs
the flows of both directions and sends the SYN on; every later packet stays in the
switch.  Forwarding methods, as keepalived's ``lb_kind``:

- **NAT**: destination IP and MAC rewritten to the real server; replies rewritten back
  to the VIP and its MAC.
- **DR** (direct routing): only the destination MAC is rewritten; the real servers hold
  the VIP on ``lo`` (``arp_ignore=1``, ``arp_announce=2``) and answer the client directly.

Connection states as IPVS counts them (``ip_vs_proto_tcp.c``, ``tcp_states``): a
connection is *inactive* (``InActConn``, SYN_RECV) from its SYN until the client's ACK
completes the handshake -- the server's SYN-ACK alone leaves it in SYN_RECV --, *active*
(``ActiveConn``) while established, and inactive again from the first FIN or RST until its
flows expire.  A half-open entry expires after IPVS's SYN_RECV timeout
(:data:`controllers.conntrack.SYN_RECV_TIMEOUT`, config ``syn_recv_timeout``) and its
flows are deleted, so a SYN flood with spoofed sources or bad checksums (the real server
never answers, or answers nobody) leaves InActConn entries that go away on their own.
Only a SYN without ACK or RST creates a connection (the kernel's ``tcp_conn_schedule``
takes a SYN without RST; a SYN|ACK is not scheduled here); any other segment for an
unknown connection is dropped in the switch and never reaches the controller.

How the client's ACK is seen, and what it costs: the copy of the server's SYN-ACK that
used to tell the controller is gone; instead the SYN-ACK's flow in table 0 runs an OVS
``learn`` that writes a one-shot flow for that client address and port into table 3
(hard timeout: the SYN_RECV timeout).  Every ACK to the VIP (no SYN, FIN or RST) is
looked up in table 3 and then table 4: only an ACK with a learned entry is copied to the
controller, which marks the connection ESTABLISHED and deletes the entry.  Per
connection that is one packet-in (the ACK) and one flow delete, in place of the SYN-ACK's
packet-in: the same number of upcalls as before (exact path: SYN and ACK; fast path: the
SYN's copy and the ACK), and no copy of later ACKs.  (Copying every client ACK would cost
a packet-in per segment; polling the flows' ``n_packets`` would cost a stats request per
half-open connection and a delay.)  A learned flow cannot send to the controller itself
(OVS's ``learn`` only outputs to real ports), hence the mark in ``reg1`` and table 4.

**Fast path** (``fast_path: true``, for rr, wrr, lc, wlc, sed and nq, whose choice does
not depend on the client): the controller pre-installs its scheduler's *next* pick as a
rule for new SYNs.  The switch itself sends the SYN to that server and creates the
connection's flows of both directions with OVS ``learn`` actions (idle and FIN
timeouts included); a copy of the SYN tells the controller, which records the
connection and installs the following pick.  No packet waits for the controller, so
new connections run at switch speed.  The price: SYNs that arrive before the rule is
updated go to the same server, so under bursts the sequence is IPVS's only on
average.  sh, dh, lblc and lblcr always use the exact path.

Health state arrives from the checker on the director host over a Unix socket (the same
socket answers ``redlab lb status`` and runtime changes: weight, drain, add, remove).
"""

import ipaddress
import json
import math
import os
import socket
import time

from os_ken.controller import ofp_event
from os_ken.controller.handler import MAIN_DISPATCHER, set_ev_cls
from os_ken.lib import hub
from os_ken.lib.packet import arp, ether_types, ethernet, packet
from os_ken.lib.packet import in_proto

from controllers.conntrack import SYN_RECV_TIMEOUT, ConnectionTable
from controllers.events import load_config
from controllers.fastpkt import parse_tcp
from controllers.l2switch import COOKIE, L2Switch
from controllers.learning import is_multicast
from controllers.schedulers import RealServer, make_scheduler
from controllers.service import (RealServerSpec, ServiceConfigError, load_service,
                                 parse_service, service_to_dict)

CONN_COOKIE = 0x7ED1AB01
HANDSHAKE_COOKIE = 0x7ED1AB03          # learned handshake flows (table 3) and their report
NEXT_COOKIE = 0x7ED1AB02 << 32          # + the index of the pre-installed next pick
PRIO_CONN, PRIO_NEXT, PRIO_NEW, PRIO_COPY = 200, 150, 100, 30
PRIO_NO_CONN = 90       # below new connections (SYN): a segment for no connection is dropped
PRIO_HANDSHAKE = 210    # tables 3 and 4 (its own number, to tell them apart in a flow dump)
PRIO_CLAIM = 40         # above the learning switch's ARP copy (20): ARP claiming the VIP
# schedulers whose choice does not depend on the client or destination address
FAST_PATH_ALGOS = ("rr", "wrr", "lc", "wlc", "sed", "nq")
SYN, RST, ACK, FIN = 0x02, 0x04, 0x10, 0x01


class LoadBalancer(L2Switch):
    SERVICE_TABLE = 1
    FORWARD_TABLE = 2
    HANDSHAKE_TABLE = 3      # learned: client:port whose SYN-ACK was seen -> reg1 = 1
    HANDSHAKE_REPORT_TABLE = 4   # reg1 = 1: the ACK goes to the controller

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        config = load_config()
        self.service = (parse_service(config["service"]) if "service" in config
                        else load_service(config["service_file"]))
        svc = self.service
        self.established_timeout = config.get("established_timeout", 300)
        self.closing_timeout = config.get("closing_timeout", 2)
        self.syn_recv_timeout = config.get("syn_recv_timeout", SYN_RECV_TIMEOUT)
        self.log_connections = config.get("log_connections", True)
        self.fast_path = config.get("fast_path", False)
        self.next_pick = None          # fast path: the server the switch sends new SYNs to
        self.servers = [RealServer(name=s.name, ip=s.ip, port=s.port, weight=s.weight)
                        for s in svc.real_servers]
        self.configured_weight = {s.name: s.weight for s in svc.real_servers}
        self.ids = {s.name: n for n, s in enumerate(svc.real_servers)}   # stable, for cookies
        self.health = {s.name: "up" for s in svc.real_servers}
        self.health_reason = {s.name: "not checked yet" for s in svc.real_servers}
        self.checked = False        # a health checker has reported (it follows "servers")
        self.scheduler = make_scheduler(svc.lb_algo, **svc.scheduler_options())
        self.conns = ConnectionTable(persistence_timeout=svc.persistence_timeout,
                                     syn_recv_timeout=self.syn_recv_timeout)
        self.macs = {}               # real server ip -> mac, from ARP
        self.dp = None
        self.socket_path = config.get("control_socket")
        if self.socket_path:
            hub.spawn(self._control_server)
        hub.spawn(self._expire_half_open)
        hub.spawn(self._probe_unknown_servers)
        self.logger.info("service %s %s:%d %s %s, real servers %s", svc.name, svc.vip, svc.port,
                         svc.lb_algo, svc.lb_kind, ", ".join(s.name for s in svc.real_servers))

    # -- tables ----------------------------------------------------------------------
    def reset_tables(self, dp):
        """Rebuild everything except the per-connection flows (they carry live traffic
        across a controller restart and are read back by ``flow_stats``)."""
        parser = dp.ofproto_parser
        for table in (self.LEARN_TABLE, self.FORWARD_TABLE, self.HANDSHAKE_TABLE,
                      self.HANDSHAKE_REPORT_TABLE):
            self.delete_flows(dp, table, parser.OFPMatch())
        self.delete_flows(dp, self.SERVICE_TABLE, parser.OFPMatch(), cookie=COOKIE,
                          cookie_mask=0xFFFFFFFFFFFFFFFF)

    def setup_tables(self, dp):
        parser = dp.ofproto_parser
        svc = self.service
        self.dp = dp
        tcp_match = dict(eth_type=ether_types.ETH_TYPE_IP, ip_proto=in_proto.IPPROTO_TCP)
        copy = [self.to_controller(dp)]

        def flags_match(flags, *fields):
            # OVS wants a field's prerequisites before it; os-ken would put the Nicira
            # tcp_flags field first, so the order is given explicitly
            return parser.OFPMatch(_ordered_fields=[
                ("eth_type", ether_types.ETH_TYPE_IP), ("ip_proto", in_proto.IPPROTO_TCP)]
                + list(fields) + [("tcp_flags_nxm", (flags, flags))])
        # the VIP is the controller's: ARP that claims it (a host's gratuitous ARP, a reply
        # from the VIP) reaches the controller only, never the other hosts' caches
        self.add_flow(dp, self.LEARN_TABLE, PRIO_CLAIM,
                      parser.OFPMatch(eth_type=ether_types.ETH_TYPE_ARP, arp_spa=svc.vip), copy)
        # copies of the segments that close a connection
        for flags in (FIN, RST):
            self.add_flow(dp, self.LEARN_TABLE, PRIO_COPY, flags_match(flags, ("tcp_src", svc.port)),
                          copy, goto=self.SERVICE_TABLE)
            self.add_flow(dp, self.LEARN_TABLE, PRIO_COPY,
                          flags_match(flags, ("ipv4_dst", svc.vip), ("tcp_dst", svc.port)),
                          copy, goto=self.SERVICE_TABLE)
        self.setup_handshake(dp)
        # new connections: a SYN without ACK or RST; any other segment for no connection
        # is junk and stays in the switch
        self.add_flow(dp, self.SERVICE_TABLE, PRIO_NEW, parser.OFPMatch(_ordered_fields=[
            ("eth_type", ether_types.ETH_TYPE_IP), ("ip_proto", in_proto.IPPROTO_TCP),
            ("ipv4_dst", svc.vip), ("tcp_dst", svc.port),
            ("tcp_flags_nxm", (SYN, SYN | ACK | RST))]), copy)
        self.add_flow(dp, self.SERVICE_TABLE, PRIO_NO_CONN,
                      parser.OFPMatch(ipv4_dst=svc.vip, tcp_dst=svc.port, **tcp_match))
        self.add_flow(dp, self.SERVICE_TABLE, 0, parser.OFPMatch(), goto=self.FORWARD_TABLE)
        if self.fast_path_on:
            self.install_next(dp)
        # learn the real servers' MACs now rather than on the first connection
        for server in self.servers:
            self.arp_probe(dp, server.ip)
        # connections that survived a controller restart: read them back from the switch
        dp.send_msg(parser.OFPFlowStatsRequest(dp, table_id=self.SERVICE_TABLE,
                                               cookie=CONN_COOKIE, cookie_mask=0xFFFFFFFF))

    def setup_handshake(self, dp):
        """The client's ACK after the server's SYN-ACK reaches the controller, once.

        The server's SYN-ACK learns ``client:port -> VIP:port => reg1 = 1`` into the
        handshake table; every ACK to the VIP looks itself up there and, marked, is
        copied to the controller by the report table.  Then it goes on to the service
        table like any segment.
        """
        parser, ofp = dp.ofproto_parser, dp.ofproto
        svc = self.service
        L = parser.NXFlowSpecLoad
        # the SYN-ACK goes to the client: its destination is the learned flow's source
        specs = self.client_to_vip(parser, "ipv4_dst_nxm", "tcp_dst_nxm") + [
            L(src=1, dst=("reg1", 0), n_bits=1)]
        learn = parser.NXActionLearn(table_id=self.HANDSHAKE_TABLE, priority=PRIO_HANDSHAKE,
                                     cookie=HANDSHAKE_COOKIE,
                                     hard_timeout=max(1, math.ceil(self.syn_recv_timeout)),
                                     specs=specs)

        def flags_match(value, mask, *fields):
            return parser.OFPMatch(_ordered_fields=[
                ("eth_type", ether_types.ETH_TYPE_IP), ("ip_proto", in_proto.IPPROTO_TCP)]
                + list(fields) + [("tcp_flags_nxm", (value, mask))])
        self.add_flow(dp, self.LEARN_TABLE, PRIO_COPY,
                      flags_match(SYN | ACK, SYN | ACK, ("tcp_src", svc.port)),
                      [learn], goto=self.SERVICE_TABLE)
        resubmit = [parser.NXActionResubmitTable(table_id=self.HANDSHAKE_TABLE),
                    parser.NXActionResubmitTable(table_id=self.HANDSHAKE_REPORT_TABLE)]
        self.add_flow(dp, self.LEARN_TABLE, PRIO_COPY,
                      flags_match(ACK, SYN | ACK | FIN | RST, ("ipv4_dst", svc.vip),
                                  ("tcp_dst", svc.port)),
                      resubmit, goto=self.SERVICE_TABLE)
        for table in (self.HANDSHAKE_TABLE, self.HANDSHAKE_REPORT_TABLE):
            self.add_flow(dp, table, 0, parser.OFPMatch())     # unmarked: nothing to do
        self.add_flow(dp, self.HANDSHAKE_REPORT_TABLE, PRIO_HANDSHAKE, parser.OFPMatch(reg1=1),
                      [self.to_controller(dp)], cookie=HANDSHAKE_COOKIE)

    def handshake_done(self, dp, seg):
        """The client's ACK after the SYN-ACK: ESTABLISHED (ActiveConn); its one-shot
        flow is deleted so that later ACKs stay in the switch."""
        self.conns.established(seg.ip_src, seg.src_port, time.time())
        self.delete_handshake_flow(dp, seg.ip_src, seg.src_port)

    def delete_handshake_flow(self, dp, client_ip, client_port):
        parser = dp.ofproto_parser
        svc = self.service
        self.delete_flows(dp, self.HANDSHAKE_TABLE, parser.OFPMatch(
            eth_type=ether_types.ETH_TYPE_IP, ip_proto=in_proto.IPPROTO_TCP,
            ipv4_src=client_ip, tcp_src=client_port, ipv4_dst=svc.vip, tcp_dst=svc.port),
            cookie=HANDSHAKE_COOKIE, cookie_mask=0xFFFFFFFFFFFFFFFF)

    def _expire_half_open(self):
        """IPVS's SYN_RECV timeout: half-open connections leave the table and the switch."""
        period = min(1.0, self.syn_recv_timeout / 4)
        while True:
            hub.sleep(period)
            expired = self.conns.expire_half_open(time.time())
            if expired and self.dp is not None:
                for conn in expired:
                    self.forget_connection(self.dp, conn)
                    self.delete_handshake_flow(self.dp, conn.client_ip, conn.client_port)
            if expired:
                self.event_log.emit("half_open_expired", count=len(expired))
                self.logger.info("%d half-open connections expired (SYN_RECV timeout %ss)",
                                 len(expired), self.syn_recv_timeout)

    def _probe_unknown_servers(self, period=1.0):
        """Ask again, every ``period`` s, for a real server whose MAC is still unknown: the
        probes sent when the switch connected can be lost (seen in a loaded suite run: one
        of three servers never answered its single probe, and the service waited for it),
        as a kernel retries an unanswered ARP request."""
        while True:
            hub.sleep(period)
            if self.dp is None:
                continue
            for server in self.servers:
                if self.macs.get(server.ip) is None:
                    self.arp_probe(self.dp, server.ip)

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, MAIN_DISPATCHER)
    def flow_stats(self, ev):
        now = time.time()
        restored = 0
        for stat in ev.msg.body:
            m = stat.match
            if m.get("ipv4_dst") == self.service.vip and "ipv4_src" in m:
                server = self._server_for_actions(stat.instructions)
                if server and not self.conns.get(m["ipv4_src"], m["tcp_src"]):
                    conn = self.conns.add(m["ipv4_src"], m["tcp_src"], server.name, now)
                    self.conns.established(conn.client_ip, conn.client_port, now)
                    restored += 1
        if restored:
            self.event_log.emit("connections_restored", count=restored)
            self.logger.info("restored %d connections from the switch's flows", restored)

    def _server_for_actions(self, instructions):
        for inst in instructions:
            for action in getattr(inst, "actions", []):
                value = getattr(action, "value", None)
                for server in self.servers:
                    if value in (server.ip, self.macs.get(server.ip)):
                        return server
        return None

    # -- packets -----------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
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
                self.handle_arp(dp, msg.match["in_port"], eth, req)
            return
        if not is_multicast(seg.eth_src):
            self.learn_mac(dp, seg.eth_src, msg.match["in_port"])
        svc = self.service
        to_vip = seg.ip_dst == svc.vip and seg.dst_port == svc.port
        flags = seg.flags
        if to_vip and msg.cookie == HANDSHAKE_COOKIE:
            self.handshake_done(dp, seg)
        elif to_vip and flags & SYN and not flags & (ACK | RST) and \
                msg.table_id == self.SERVICE_TABLE:
            if msg.cookie & ~0xFFFFFFFF == NEXT_COOKIE:
                self.fast_connection(dp, msg.cookie & 0xFFFFFFFF, seg)
            else:
                self.new_connection(dp, msg, seg)
        elif flags & (FIN | RST):
            if to_vip:
                self.close_connection(dp, seg.ip_src, seg.src_port)
            else:
                self.close_connection(dp, seg.ip_dst, seg.dst_port)

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
        self.macs[req.src_ip] = req.src_mac
        if self.fast_path_on and self.next_pick is None and \
                any(s.ip == req.src_ip for s in self.servers):
            self.refresh_next()             # a real server's MAC and port are known now
        if req.opcode != arp.ARP_REQUEST or req.dst_ip != self.service.vip:
            return
        reply = packet.Packet()
        reply.add_protocol(ethernet.ethernet(ethertype=ether_types.ETH_TYPE_ARP, dst=eth.src,
                                             src=self.service.vmac))
        reply.add_protocol(arp.arp(opcode=arp.ARP_REPLY, src_mac=self.service.vmac,
                                   src_ip=self.service.vip, dst_mac=req.src_mac,
                                   dst_ip=req.src_ip))
        self.packet_out(dp, reply, [dp.ofproto_parser.OFPActionOutput(in_port)])

    def client_to_vip(self, parser, client_ip, client_port):
        """The match of a learned flow for one client's segments to the VIP: the client's
        address and port are copied from the packet that learns it (``client_ip`` and
        ``client_port`` name the fields that hold them there)."""
        M = parser.NXFlowSpecMatch
        svc = self.service
        return [M(src=ether_types.ETH_TYPE_IP, dst=("eth_type_nxm", 0), n_bits=16),
                M(src=in_proto.IPPROTO_TCP, dst=("ip_proto_nxm", 0), n_bits=8),
                M(src=(client_ip, 0), dst=("ipv4_src_nxm", 0), n_bits=32),
                M(src=(client_port, 0), dst=("tcp_src_nxm", 0), n_bits=16),
                M(src=int(ipaddress.ip_address(svc.vip)), dst=("ipv4_dst_nxm", 0), n_bits=32),
                M(src=svc.port, dst=("tcp_dst_nxm", 0), n_bits=16)]

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

    # -- scheduling --------------------------------------------------------------------
    def candidates(self):
        """The scheduler's view: healthy servers (or all, weight 0 when inhibited)."""
        result = []
        for server in self.servers:
            healthy = self.health.get(server.name) == "up"
            if not healthy and not self.service.inhibit_on_failure:
                continue
            server.weight = self.configured_weight[server.name] if healthy else 0
            server.active_conns, server.inactive_conns = self.conns.counts(server.name)
            result.append(server)
        return result

    def new_connection(self, dp, msg, seg):
        now = time.time()
        client, client_port = seg.ip_src, seg.src_port
        conn = self.conns.get(client, client_port)
        servers = self.candidates()
        chosen = None
        if conn is not None:                       # a retransmitted SYN: keep its server
            chosen = next((s for s in servers if s.name == conn.server and s.weight > 0), None)
            if chosen is None:
                self.forget_connection(dp, conn)
        if chosen is None:
            sticky = self.conns.persistent_server(client, now)
            chosen = next((s for s in servers if s.name == sticky and s.weight > 0), None)
        if chosen is None:
            chosen = self.scheduler.pick(servers, client_ip=client, dest_ip=seg.ip_dst,
                                         client_port=client_port, now=now)
        if chosen is None:
            self.event_log.emit("no_server", client=client, port=client_port)
            self.logger.warning("no real server available for %s:%d", client, client_port)
            return
        if not self.install_connection(dp, client, client_port, chosen,
                                       self.established_timeout):
            return          # its MAC is being asked for; the client's SYN retransmit comes back
        if self.conns.get(client, client_port) is None:
            self.conns.add(client, client_port, chosen.name, now)
        # send the SYN on through the new flow
        self.packet_out(dp, msg.data, [dp.ofproto_parser.OFPActionOutput(dp.ofproto.OFPP_TABLE)],
                        in_port=msg.match["in_port"])
        if self.log_connections:
            self.event_log.emit("scheduled", client=client, port=client_port, server=chosen.name)

    @property
    def fast_path_on(self):
        return self.fast_path and self.service.lb_algo in FAST_PATH_ALGOS

    def fast_connection(self, dp, server_id, seg):
        """The switch already sent this SYN to server ``server_id`` and learned its flows."""
        now = time.time()
        server = next((s for s in self.servers if self.ids[s.name] == server_id), None)
        if server is None:
            return
        if self.conns.get(seg.ip_src, seg.src_port) is None:
            self.conns.add(seg.ip_src, seg.src_port, server.name, now)
        if self.log_connections:
            self.event_log.emit("scheduled", client=seg.ip_src, port=seg.src_port,
                                server=server.name)
        if self.next_pick is server:       # this SYN used the current pick: choose the next one
            self.install_next(dp)

    def install_next(self, dp):
        """Pre-install the scheduler's next choice as the switch's rule for new SYNs."""
        parser, ofp = dp.ofproto_parser, dp.ofproto
        svc = self.service
        match = parser.OFPMatch(_ordered_fields=[
            ("eth_type", ether_types.ETH_TYPE_IP), ("ip_proto", in_proto.IPPROTO_TCP),
            ("ipv4_dst", svc.vip), ("tcp_dst", svc.port),
            ("tcp_flags_nxm", (SYN, SYN | ACK | RST))])
        if not self.fast_path_on:
            self.delete_flows(dp, self.SERVICE_TABLE, match, strict=True, priority=PRIO_NEXT)
            self.next_pick = None
            return
        candidates = self.candidates()
        ports = {s.name: self.table.port_of(dp.id, self.macs.get(s.ip)) for s in candidates}
        if None in ports.values():
            server = None            # not every server is located yet: no pick is spent
        else:
            # the placeholder client is never used by these schedulers
            server = self.scheduler.pick(candidates, client_ip=svc.vip, dest_ip=svc.vip)
        port = ports[server.name] if server else None
        if server is None:
            # nobody to send to (or not learned yet): SYNs go to the controller (exact path)
            self.delete_flows(dp, self.SERVICE_TABLE, match, strict=True, priority=PRIO_NEXT)
            self.next_pick = None
            return
        self.next_pick = server
        actions = [self.to_controller(dp), parser.OFPActionSetField(reg0=port)]
        actions += self.learn_actions(parser, ofp, server)
        actions += [parser.OFPActionSetField(eth_dst=self.macs[server.ip])]
        if svc.lb_kind == "NAT":
            actions += [parser.OFPActionSetField(ipv4_dst=server.ip),
                        parser.OFPActionSetField(tcp_dst=server.port)]
        actions.append(parser.OFPActionOutput(port))
        self.add_flow(dp, self.SERVICE_TABLE, PRIO_NEXT, match, actions,
                      cookie=NEXT_COOKIE | self.ids[server.name])

    def refresh_next(self):
        """The candidates changed (health, weight, servers, scheduler).

        A pick that is still eligible stays (re-picking would spend an rr/wrr turn the
        kernel would not spend); otherwise the scheduler chooses again.
        """
        if self.dp is None or not (self.fast_path_on or self.next_pick is not None):
            return
        still = self.next_pick is not None and self.fast_path_on and any(
            s is self.next_pick and s.weight > 0 for s in self.candidates())
        if not still:
            self.install_next(self.dp)

    def learn_actions(self, parser, ofp, server):
        """OVS ``learn``: the switch writes the connection's own flows as the SYN passes."""
        svc = self.service
        vip, sip = int(ipaddress.ip_address(svc.vip)), int(ipaddress.ip_address(server.ip))
        common = dict(table_id=self.SERVICE_TABLE, priority=PRIO_CONN, cookie=CONN_COOKIE,
                      idle_timeout=self.established_timeout,
                      fin_idle_timeout=self.closing_timeout, flags=ofp.OFPFF_SEND_FLOW_REM)
        M, L, O = parser.NXFlowSpecMatch, parser.NXFlowSpecLoad, parser.NXFlowSpecOutput
        forward = self.client_to_vip(parser, "ipv4_src_nxm", "tcp_src_nxm") + [
            L(src=int(self.macs[server.ip].replace(":", ""), 16), dst=("eth_dst_nxm", 0),
              n_bits=48)]
        if svc.lb_kind == "NAT":
            forward += [L(src=sip, dst=("ipv4_dst_nxm", 0), n_bits=32),
                        L(src=server.port, dst=("tcp_dst_nxm", 0), n_bits=16)]
        forward.append(O(src=("reg0", 0), n_bits=32))
        actions = [parser.NXActionLearn(specs=forward, **common)]
        if svc.lb_kind == "NAT":
            backward = [M(src=ether_types.ETH_TYPE_IP, dst=("eth_type_nxm", 0), n_bits=16),
                        M(src=in_proto.IPPROTO_TCP, dst=("ip_proto_nxm", 0), n_bits=8),
                        M(src=sip, dst=("ipv4_src_nxm", 0), n_bits=32),
                        M(src=server.port, dst=("tcp_src_nxm", 0), n_bits=16),
                        M(src=("ipv4_src_nxm", 0), dst=("ipv4_dst_nxm", 0), n_bits=32),
                        M(src=("tcp_src_nxm", 0), dst=("tcp_dst_nxm", 0), n_bits=16),
                        L(src=int(svc.vmac.replace(":", ""), 16), dst=("eth_src_nxm", 0),
                          n_bits=48),
                        L(src=vip, dst=("ipv4_src_nxm", 0), n_bits=32),
                        L(src=svc.port, dst=("tcp_src_nxm", 0), n_bits=16),
                        O(src=("in_port_nxm", 0), n_bits=16)]
            actions.append(parser.NXActionLearn(specs=backward, **common))
        return actions

    def connection_matches(self, parser, client_ip, client_port, server):
        svc = self.service
        tcp_match = dict(eth_type=ether_types.ETH_TYPE_IP, ip_proto=in_proto.IPPROTO_TCP)
        forward = parser.OFPMatch(ipv4_src=client_ip, tcp_src=client_port, ipv4_dst=svc.vip,
                                  tcp_dst=svc.port, **tcp_match)
        if self.service.lb_kind != "NAT":
            return forward, None
        backward = parser.OFPMatch(ipv4_src=server.ip, tcp_src=server.port, ipv4_dst=client_ip,
                                   tcp_dst=client_port, **tcp_match)
        return forward, backward

    def install_connection(self, dp, client_ip, client_port, server, idle):
        parser, ofp = dp.ofproto_parser, dp.ofproto
        svc = self.service
        forward, backward = self.connection_matches(parser, client_ip, client_port, server)
        mac = self.macs.get(server.ip)
        if mac is None:
            self.arp_probe(dp, server.ip)
            return False
        actions = [parser.OFPActionSetField(eth_dst=mac)]
        if svc.lb_kind == "NAT":
            actions += [parser.OFPActionSetField(ipv4_dst=server.ip),
                        parser.OFPActionSetField(tcp_dst=server.port)]
        flags = ofp.OFPFF_SEND_FLOW_REM
        dp.send_msg(self.flow_mod(dp, self.SERVICE_TABLE, PRIO_CONN, forward, actions,
                                  goto=self.FORWARD_TABLE, idle=idle, cookie=CONN_COOKIE,
                                  flags=flags))
        if backward is not None:
            back = [parser.OFPActionSetField(eth_src=svc.vmac),
                    parser.OFPActionSetField(ipv4_src=svc.vip),
                    parser.OFPActionSetField(tcp_src=svc.port)]
            dp.send_msg(self.flow_mod(dp, self.SERVICE_TABLE, PRIO_CONN, backward, back,
                                      goto=self.FORWARD_TABLE, idle=idle, cookie=CONN_COOKIE,
                                      flags=flags))
        return True

    def close_connection(self, dp, client_ip, client_port):
        now = time.time()
        conn = self.conns.get(client_ip, client_port)
        if conn is None or not self.conns.closing(client_ip, client_port, now):
            return
        server = self.server(conn.server)
        if server is not None and not self.fast_path_on:
            # the flows now expire soon after the last segment (IPVS: FIN_WAIT/TIME_WAIT);
            # flows learned by the switch carry their own fin_idle_timeout
            self.install_connection(dp, client_ip, client_port, server, self.closing_timeout)

    def forget_connection(self, dp, conn):
        server = self.server(conn.server)
        parser = dp.ofproto_parser
        if server is not None:
            for match in self.connection_matches(parser, conn.client_ip, conn.client_port, server):
                if match is not None:
                    self.delete_flows(dp, self.SERVICE_TABLE, match, strict=True,
                                      priority=PRIO_CONN)
        self.conns.remove(conn.client_ip, conn.client_port)

    @set_ev_cls(ofp_event.EventOFPFlowRemoved, MAIN_DISPATCHER)
    def flow_removed(self, ev):
        """A connection's flow expired: the connection is gone.

        Both directions carry the same timeouts and expire together, so the twin flow
        needs no delete; its own FLOW_REMOVED finds the connection already gone.
        """
        msg = ev.msg
        if msg.cookie != CONN_COOKIE:
            return
        m = msg.match
        if m.get("ipv4_dst") == self.service.vip:
            self.conns.remove(m.get("ipv4_src"), m.get("tcp_src"))
        else:
            self.conns.remove(m.get("ipv4_dst"), m.get("tcp_dst"))

    # -- health and operator commands --------------------------------------------------
    def server(self, name):
        return next((s for s in self.servers if s.name == name), None)

    def set_health(self, name, state, reason):
        if self.server(name) is None:
            return {"ok": False, "error": "no real server named %r" % name}
        old = self.health.get(name)
        self.health[name] = state
        self.health_reason[name] = reason
        cleared = 0
        if state == "down" and self.dp is not None:
            # half-open connections to a dead server: clear them, so the client's
            # retransmitted SYN is scheduled again to a live server
            for conn in self.conns.unestablished(name):
                self.forget_connection(self.dp, conn)
                cleared += 1
        if old != state:
            self.refresh_next()
            self.event_log.emit("health", server=name, state=state, reason=reason,
                                cleared=cleared)
            self.logger.info("real server %s is %s (%s); %d half-open connections cleared",
                             name, state, reason, cleared)
        return {"ok": True, "cleared": cleared}

    def status(self):
        svc = self.service
        servers = []
        for s in self.servers:
            active, inactive = self.conns.counts(s.name)
            servers.append(dict(name=s.name, ip=s.ip, port=s.port, mac=self.macs.get(s.ip),
                                weight=self.configured_weight[s.name],
                                effective_weight=(self.configured_weight[s.name]
                                                  if self.health[s.name] == "up" else 0),
                                active=active, inactive=inactive, health=self.health[s.name],
                                reason=self.health_reason[s.name]))
        return {"ok": True, "service": dict(name=svc.name, vip=svc.vip, port=svc.port,
                                            protocol=svc.protocol, lb_algo=svc.lb_algo,
                                            lb_kind=svc.lb_kind,
                                            persistence_timeout=svc.persistence_timeout),
                "servers": servers}

    def command(self, request):
        cmd = request.get("cmd")
        if cmd == "status":
            return self.status()
        if cmd == "health":
            self.checked = True
            return self.set_health(request["server"], request["state"], request.get("reason", ""))
        if cmd == "servers":                # the health checker follows this list
            self.checked = True
            return {"ok": True, "servers": [dict(name=s.name, ip=s.ip, port=s.port)
                                            for s in self.servers]}
        if cmd == "connections":
            return {"ok": True, "connections": [
                dict(client=c.client_ip, port=c.client_port, server=c.server, state=c.state)
                for s in self.servers for c in self.conns.of_server(s.name)]}
        if cmd == "set_weight":
            name, weight = request["server"], request["weight"]
            if self.server(name) is None:
                return {"ok": False, "error": "no real server named %r" % name}
            if not isinstance(weight, int) or isinstance(weight, bool) or weight < 0:
                return {"ok": False, "error": "weight must be an integer >= 0, got %r" % weight}
            self.configured_weight[name] = weight
            self.refresh_next()
            self.event_log.emit("weight", server=name, weight=weight)
            return {"ok": True}
        if cmd == "set_scheduler":          # ipvsadm -E -s ALGO
            algo = request.get("lb_algo")
            options = self.service.scheduler_options(algo)
            try:
                scheduler = make_scheduler(algo, **options)
            except ValueError as exc:
                return {"ok": False, "error": str(exc)}
            self.service.lb_algo = algo
            self.scheduler = scheduler
            self.refresh_next()
            self.event_log.emit("scheduler", lb_algo=algo)
            return {"ok": True}
        if cmd == "add_server":
            try:
                spec = RealServerSpec(name=request["name"], ip=request["ip"],
                                      port=int(request.get("port", self.service.port)),
                                      weight=int(request.get("weight", 1)))
                self.service.real_servers.append(spec)
                parse_service(service_to_dict(self.service))    # same checks as the file
            except (KeyError, ValueError, ServiceConfigError) as exc:
                if self.service.real_servers and self.service.real_servers[-1].name == request.get("name"):
                    self.service.real_servers.pop()
                return {"ok": False, "error": str(exc)}
            self.servers.append(RealServer(name=spec.name, ip=spec.ip, port=spec.port,
                                           weight=spec.weight))
            self.configured_weight[spec.name] = spec.weight
            self.ids[spec.name] = max(self.ids.values(), default=-1) + 1
            # with a health checker (keepalived's alpha): out until its first checks pass;
            # without one, in at once (ipvsadm -a)
            self.health[spec.name] = "down" if self.checked else "up"
            self.health_reason[spec.name] = ("added: waiting for its first health checks"
                                             if self.checked else "added (no health checker)")
            self.refresh_next()
            self.event_log.emit("server_added", server=spec.name)
            return {"ok": True}
        if cmd == "remove_server":
            name = request["server"]
            server = self.server(name)
            if server is None:
                return {"ok": False, "error": "no real server named %r" % name}
            # established connections keep their flows until they end, as in IPVS
            self.servers.remove(server)
            self.service.real_servers = [s for s in self.service.real_servers if s.name != name]
            self.conns.forget_server(name)
            self.refresh_next()
            self.event_log.emit("server_removed", server=name)
            return {"ok": True}
        return {"ok": False, "error": "unknown command %r" % cmd}

    def _control_server(self):
        path = self.socket_path
        if os.path.exists(path):
            os.unlink(path)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen(16)
        while True:
            conn, _ = server.accept()
            hub.spawn(self._serve_client, conn)

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
