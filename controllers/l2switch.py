"""An OpenFlow 1.3 learning switch that follows a VIP at once (os-ken app).

Two tables, the way Faucet splits learning from forwarding:

    table 0  (who sent it?)   in_port+eth_src known   -> goto 1
                              ARP (priority 20)       -> copy to controller, goto 1
                              miss                    -> copy to controller, goto 1
    table 1  (where to?)      eth_dst known           -> output port
                              miss                    -> flood

Every packet is forwarded by the switch itself; the controller only sees the first
packet of an unknown (port, MAC) pair and every ARP.  When a MAC appears behind a new
port, or an ARP shows an IP now behind another MAC or port (a gratuitous ARP after a
VRRP takeover), the flows that point to the old port are deleted at once and the new
ones installed, so traffic follows within one round trip.

With ``garp_reaction: false`` in the config the switch behaves like Ryu's classic
``simple_switch_13``: it re-learns its table but leaves installed forwarding flows
alone, which is what makes a moved virtual MAC unreachable.
"""

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib.packet import arp, ether_types, ethernet, packet
from os_ken.ofproto import ofproto_v1_3

from controllers.events import EventLog, load_config, survives
from controllers.learning import MOVED, NEW, MacTable, is_gratuitous, is_multicast

PRIO_MISS, PRIO_LEARNED, PRIO_ARP = 0, 10, 20
COOKIE = 0x7ED1AB


class L2Switch(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]
    LEARN_TABLE = 0
    FORWARD_TABLE = 1      # a subclass may put its own tables in between

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        config = load_config()
        self.garp_reaction = config.get("garp_reaction", True)
        self.event_log = EventLog(config.get("events_file"))
        self.table = MacTable()

    # -- helpers -------------------------------------------------------------------
    @staticmethod
    def flow_mod(dp, table, priority, match, actions=(), goto=None, idle=0, cookie=COOKIE,
                 flags=0):
        ofp, parser = dp.ofproto, dp.ofproto_parser
        inst = []
        if actions:
            inst.append(parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, list(actions)))
        if goto is not None:
            inst.append(parser.OFPInstructionGotoTable(goto))
        return parser.OFPFlowMod(
            datapath=dp, cookie=cookie, table_id=table, priority=priority, match=match,
            instructions=inst, idle_timeout=idle, flags=flags)

    def add_flow(self, dp, table, priority, match, actions=(), goto=None, idle=0, **kwargs):
        dp.send_msg(self.flow_mod(dp, table, priority, match, actions, goto, idle, **kwargs))

    @staticmethod
    def delete_flows(dp, table, match, cookie=0, cookie_mask=0, strict=False, priority=0):
        ofp, parser = dp.ofproto, dp.ofproto_parser
        dp.send_msg(parser.OFPFlowMod(
            datapath=dp, table_id=table,
            command=ofp.OFPFC_DELETE_STRICT if strict else ofp.OFPFC_DELETE,
            priority=priority, out_port=ofp.OFPP_ANY, out_group=ofp.OFPG_ANY, match=match,
            cookie=cookie, cookie_mask=cookie_mask))

    def to_controller(self, dp):
        ofp, parser = dp.ofproto, dp.ofproto_parser
        return parser.OFPActionOutput(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)

    # -- switch connects -----------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @survives
    def switch_features(self, ev):
        dp = ev.msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        # a (re)connecting switch starts from a known state: ours, rebuilt by learning
        self.table.forget_datapath(dp.id)
        self.reset_tables(dp)
        dp.send_msg(parser.OFPBarrierRequest(dp))
        self.add_flow(dp, self.LEARN_TABLE, PRIO_MISS, parser.OFPMatch(),
                      [self.to_controller(dp)], goto=self.LEARN_TABLE + 1)
        self.add_flow(dp, self.LEARN_TABLE, PRIO_ARP,
                      parser.OFPMatch(eth_type=ether_types.ETH_TYPE_ARP),
                      [self.to_controller(dp)], goto=self.LEARN_TABLE + 1)
        self.add_flow(dp, self.FORWARD_TABLE, PRIO_MISS, parser.OFPMatch(),
                      [parser.OFPActionOutput(ofp.OFPP_FLOOD)])
        self.setup_tables(dp)
        dp.send_msg(parser.OFPBarrierRequest(dp))
        self.event_log.emit("switch_connected", dpid=dp.id)
        self.logger.info("switch %016x connected: tables reset", dp.id)

    def reset_tables(self, dp):
        """Delete what this app owns before rebuilding it (all flows, by default)."""
        ofp = dp.ofproto
        self.delete_flows(dp, ofp.OFPTT_ALL, dp.ofproto_parser.OFPMatch())

    def setup_tables(self, dp):
        """Hook for subclasses: install their own tables' fixed flows."""

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    @survives
    def error_msg(self, ev):
        """A switch refused something we sent: that is a bug of ours, say it loudly."""
        msg = ev.msg
        self.logger.error("switch %s refused a message: type=0x%02x code=0x%02x data=%s",
                          msg.datapath.id, msg.type, msg.code, msg.data[:64].hex())
        self.event_log.emit("switch_error", dpid=msg.datapath.id, type=msg.type, code=msg.code)

    # -- learning ------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @survives
    def packet_in(self, ev):
        msg = ev.msg
        dp = msg.datapath
        in_port = msg.match["in_port"]
        pkt = packet.Packet(msg.data)
        eth = pkt.get_protocol(ethernet.ethernet)
        if eth is None or eth.ethertype == ether_types.ETH_TYPE_LLDP or is_multicast(eth.src):
            return
        self.learn_mac(dp, eth.src, in_port)
        if eth.ethertype == ether_types.ETH_TYPE_ARP:
            self.learn_arp(dp, pkt.get_protocol(arp.arp), in_port)

    def learn_mac(self, dp, mac, port):
        parser = dp.ofproto_parser
        change = self.table.learn(dp.id, mac, port)
        if change.status == NEW:
            self.install(dp, mac, port)
            self.logger.info("learned %s on port %s", mac, port)
        elif change.status == MOVED:
            if self.garp_reaction:
                self.delete_flows(dp, self.LEARN_TABLE, parser.OFPMatch(eth_src=mac))
                self.delete_flows(dp, self.FORWARD_TABLE, parser.OFPMatch(eth_dst=mac))
                dp.send_msg(parser.OFPBarrierRequest(dp))
                self.install(dp, mac, port)
            else:
                # like simple_switch_13: stop the packet-ins, keep the stale forwarding flow
                self.add_flow(dp, self.LEARN_TABLE, PRIO_LEARNED,
                              parser.OFPMatch(in_port=port, eth_src=mac),
                              goto=self.LEARN_TABLE + 1)
            self.event_log.emit("mac_moved", dpid=dp.id, mac=mac, old_port=change.old_port,
                             new_port=port, flows_replaced=self.garp_reaction)
            self.logger.info("%s moved from port %s to %s (flows %s)", mac, change.old_port, port,
                             "replaced" if self.garp_reaction else "left stale")

    def install(self, dp, mac, port):
        parser = dp.ofproto_parser
        self.add_flow(dp, self.LEARN_TABLE, PRIO_LEARNED, parser.OFPMatch(in_port=port, eth_src=mac),
                      goto=self.LEARN_TABLE + 1)
        self.add_flow(dp, self.FORWARD_TABLE, PRIO_LEARNED, parser.OFPMatch(eth_dst=mac),
                      [parser.OFPActionOutput(port)])

    def learn_arp(self, dp, pkt_arp, port):
        if pkt_arp is None:
            return
        change = self.table.learn_ip(dp.id, pkt_arp.src_ip, pkt_arp.src_mac, port)
        if change.status == MOVED:
            garp = is_gratuitous(pkt_arp.src_ip, pkt_arp.dst_ip)
            self.event_log.emit("ip_moved", dpid=dp.id, ip=pkt_arp.src_ip, old_mac=change.old_mac,
                             new_mac=pkt_arp.src_mac, old_port=change.old_port, new_port=port,
                             gratuitous=garp)
            self.logger.info("%s now at %s port %s (was %s port %s)%s", pkt_arp.src_ip,
                             pkt_arp.src_mac, port, change.old_mac, change.old_port,
                             " [gratuitous ARP]" if garp else "")
