"""Reading the switch's connection tracker as IPVS counts connections.

The load balancer keeps no per-connection state of its own: each connection it
schedules is committed to Open vSwitch's connection tracker in the service's zone,
with ``ct_mark`` = the real server's id (:mod:`controllers.lb`).  This module turns a
dump of that zone, ``ovs-appctl dpctl/dump-conntrack -m zone=Z``, into IPVS's view:
one :class:`Entry` per connection with the state IPVS would give it.

IPVS (``ip_vs_proto_tcp.c``) counts a connection *active* (``ActiveConn``) only once
the client's ACK has completed the handshake; before that (SYN_RECV) and from the first
FIN or RST on it is *inactive* (``InActConn``).  The tracker keeps one TCP state per
direction (``state_orig`` for the client, ``state_reply`` for the server, printed with
``-m``; without it only the higher of the two is printed, which says ESTABLISHED as soon
as the server's SYN-ACK has passed).  Its state machine (``lib/conntrack-tcp.c``):

* the client's SYN: ``state_orig`` SYN_SENT;
* the server's SYN-ACK: ``state_reply`` SYN_SENT, and its ACK moves ``state_orig`` to
  ESTABLISHED;
* the client's ACK: ``state_reply`` ESTABLISHED -- the handshake is complete;
* a FIN moves its sender to CLOSING and beyond; an RST moves both to TIME_WAIT.

So: both directions ESTABLISHED is IPVS's ESTABLISHED; either one below ESTABLISHED is
SYN_RECV; anything past ESTABLISHED is a closing connection.  All three are the states
of :mod:`controllers.conntrack`.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from controllers.conntrack import CLOSING, ESTABLISHED, SYN_RECV

__all__ = ["Entry", "parse", "ipvs_state", "flush_tuple", "MARK_SERVER", "MARK_OPEN",
           "MARK_CLOSING"]

# ct_mark: the real server's id in the low 16 bits; the two bits above say which of the
# connection's transitions the switch has already copied to the controller
# (:mod:`controllers.copies`): the client's ACK that completed the handshake, the first
# FIN or RST of either side
MARK_SERVER = 0xFFFF
MARK_OPEN = 0x10000
MARK_CLOSING = 0x20000

# tcp,orig=(src=C,dst=V,sport=P,dport=80),reply=(src=S,dst=C,sport=80,dport=P),id=0,
# zone=7,status=..,mark=3,protoinfo=(state_orig=ESTABLISHED,state_reply=ESTABLISHED,...)
_LINE = re.compile(
    r"^tcp,orig=\(src=(?P<src>[\d.]+),dst=(?P<dst>[\d.]+),sport=(?P<sport>\d+),"
    r"dport=(?P<dport>\d+)\),reply=\(src=(?P<rsrc>[\d.]+),dst=[\d.]+,sport=(?P<rsport>\d+),"
    r"dport=\d+\).*?(?:,mark=(?P<mark>\d+))?,protoinfo=\(state_orig=(?P<orig>\w+),"
    r"state_reply=(?P<reply>\w+)", re.M)

# the tracker's TCP states in order (lib/ct-dpif.h, CT_DPIF_TCP_STATES)
_ORDER = ("CLOSED", "LISTEN", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "CLOSE_WAIT",
          "FIN_WAIT_1", "CLOSING", "LAST_ACK", "FIN_WAIT_2", "TIME_WAIT")
_RANK = {name: n for n, name in enumerate(_ORDER)}


class Entry(NamedTuple):
    """One tracked connection: the client's address and port, where it was sent
    (``server`` is the real server's id from the ct_mark; 0 when unmarked), its destination
    as the client sent it (the VIP) and the server's reply source, and IPVS's state."""

    client_ip: str
    client_port: int
    dest_ip: str
    dest_port: int
    server_ip: str
    server_port: int
    server: int
    state: str

    @property
    def active(self):
        return self.state == ESTABLISHED


def ipvs_state(state_orig, state_reply):
    """IPVS's state for the tracker's two per-direction TCP states."""
    orig, reply = _RANK.get(state_orig, 0), _RANK.get(state_reply, 0)
    established = _RANK["ESTABLISHED"]
    if orig > established or reply > established:
        return CLOSING
    if orig == reply == established:
        return ESTABLISHED
    return SYN_RECV


def parse(text, dest=None):
    """The TCP entries of a ``dpctl/dump-conntrack -m`` dump, as :class:`Entry`.

    ``dest`` = ``(ip, port)`` keeps only connections the client sent there (the VIP):
    a zone holds the service's connections only, but a dump of all zones does not.
    """
    entries = []
    for m in _LINE.finditer(text):
        dport = int(m["dport"])
        if dest is not None and (m["dst"], dport) != (dest[0], dest[1]):
            continue
        entries.append(Entry(m["src"], int(m["sport"]), m["dst"], dport, m["rsrc"],
                             int(m["rsport"]), int(m["mark"] or 0) & MARK_SERVER,
                             ipvs_state(m["orig"], m["reply"])))
    return entries


def flush_tuple(entry):
    """The ``dpctl/flush-conntrack`` argument naming ``entry``'s original direction."""
    return ("ct_nw_src=%s,ct_nw_dst=%s,ct_nw_proto=6,ct_tp_src=%d,ct_tp_dst=%d"
            % (entry.client_ip, entry.dest_ip, entry.client_port, entry.dest_port))
