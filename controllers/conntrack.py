"""The connection table of one TCP virtual service, like IPVS keeps it.

IPVS remembers every connection it has scheduled (``struct ip_vs_conn``, looked up by
the client's address and port) so that later packets of the connection go to the same
real server, and it counts them per real server: ``ActiveConn`` and ``InActConn`` in
``ipvsadm -L -n``, ``activeconns``/``inactconns`` in ``struct ip_vs_dest``.  Those two
counters are what the lc/wlc/sed/nq/lblc/lblcr schedulers read
(``controllers.schedulers``).

How the kernel counts (``ip_vs_proto_tcp.c``, ``set_tcp_state()``): a connection is
*active* only while its TCP state is ESTABLISHED.  Every other state -- SYN_RECV before
the handshake completes, FIN_WAIT/TIME_WAIT/CLOSE_WAIT/CLOSE after a FIN or RST -- has
the ``IP_VS_CONN_F_INACTIVE`` flag and counts as *inactive*.  A new connection starts
inactive, moves to active on ESTABLISHED, and back to inactive when it starts closing;
it leaves both counters when its entry expires.

Persistence (``ipvsadm -p SECONDS``): for the first connection of a client IP the
kernel also creates a *template* connection (client IP, port 0 -> real server) and
sends every later connection of that client to the template's server.  The template
cannot expire while connections it controls still exist (``n_control`` > 0), and it
lives on for the persistence timeout after the last one.

How the load balancer uses it (:mod:`controllers.lbcore`): the switch's connection
tracker holds every connection (:mod:`controllers.lb`), and this table is IPVS's view of
it, rebuilt from each dump of the tracker (``Service.sync``, with the states of
:func:`controllers.ctdump.ipvs_state`) plus the controller's own picks not yet in a
dump.  So the counts the schedulers read are the kernel's, and persistence templates
follow the connections as the kernel's do.

* One table per virtual service, so a connection is keyed by ``(client_ip,
  client_port)`` alone; the VIP and port are the service's.  ``add()`` is a new SYN
  (SYN_RECV, InActConn), ``established()`` the client's ACK that completes the handshake,
  ``closing()`` a FIN or RST, ``remove()`` the end of the entry.  The server's SYN-ACK
  alone changes nothing (``ip_vs_proto_tcp.c``, ``tcp_states``: a SYN|ACK in SYN_RECV
  stays SYN_RECV), so a spoofed or lost client never counts as ActiveConn.
* Half-open entries expire as IPVS's do: ``expire_half_open()`` removes and returns the
  connections that have been in SYN_RECV for ``syn_recv_timeout`` seconds
  (:data:`SYN_RECV_TIMEOUT`, the kernel's value).  (The load balancer's tracker zone has
  the same timeout, so its dumps drop them at the same time.)
* The kernel's dozen TCP states are folded into three: SYN_RECV, ESTABLISHED and
  CLOSING (every state after the first FIN or RST).  ``closing_since()`` lists entries
  that have been closing for a while.
* A new SYN from a ``(client_ip, client_port)`` whose entry is CLOSING replaces that
  entry (the kernel's ``conn_reuse_mode``: a reused port after TIME_WAIT is scheduled
  anew); ``add()`` refuses a key whose connection is still opening or established.
* Templates: a template per client IP binds it to a server.  It is alive while the
  client has connections to that server in the table, or when its last connection to it
  was added or removed less than ``persistence_timeout`` seconds ago.  (The kernel's
  template timer is re-armed for a full timeout whenever it fires with controlled
  connections, so it expires between 0 and ``persistence_timeout`` later than this.)
  ``add()`` with another server re-binds the template, as the kernel makes a new
  template when the old one's server is gone or quiesced.  The kernel's persistence
  granularity (``-M`` netmask) is always /32 here.
Times (``now``) are seconds from any clock, as long as it does not go backwards.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["SYN_RECV", "ESTABLISHED", "CLOSING", "STATES", "SYN_RECV_TIMEOUT", "Connection",
           "ConnectionTable"]

SYN_RECV, ESTABLISHED, CLOSING = "SYN_RECV", "ESTABLISHED", "CLOSING"
STATES = (SYN_RECV, ESTABLISHED, CLOSING)

# net/netfilter/ipvs/ip_vs_proto_tcp.c, tcp_timeouts[]:
#     [IP_VS_TCP_S_SYN_RECV]		=	1*60*HZ,
SYN_RECV_TIMEOUT = 60


def _check_seconds(name, value, minimum):
    """``value`` is a finite number of seconds, >= ``minimum`` (> 0 when it is None)."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or (value <= 0 if minimum is None else value < minimum)):
        bound = "> 0" if minimum is None else ">= %s" % minimum
        raise ValueError(f"{name} must be a number of seconds {bound}, got {value!r}")


@dataclass
class Connection:
    """One client connection to the virtual service (``struct ip_vs_conn``).

    ``created`` is when it was scheduled, ``updated`` when it entered its current state;
    ``copied``, the states the switch has reported it entering (:mod:`controllers.copies`).
    """

    client_ip: str
    client_port: int
    server: str
    state: str
    created: float
    updated: float
    copied: set = field(default_factory=set)

    @property
    def active(self):
        """IPVS: only ESTABLISHED counts in ActiveConn; every other state is InActConn."""
        return self.state == ESTABLISHED

    @property
    def key(self):
        return (self.client_ip, self.client_port)


@dataclass
class _Template:
    server: str
    last: float  # last time a connection of the client to `server` was added or removed


class ConnectionTable:
    """Connections of one virtual service, counted per real server like IPVS."""

    def __init__(self, persistence_timeout=0, syn_recv_timeout=SYN_RECV_TIMEOUT):
        _check_seconds("persistence_timeout", persistence_timeout, 0)
        _check_seconds("syn_recv_timeout", syn_recv_timeout, None)
        self.persistence_timeout = persistence_timeout
        self.syn_recv_timeout = syn_recv_timeout
        self._conns = {}        # (client_ip, client_port) -> Connection, insertion order
        self._by_server = {}    # server -> {key: Connection}
        self._active = {}       # server -> number of its ESTABLISHED connections
        self._controlled = {}   # (client_ip, server) -> number of connections in table
        self._templates = {}    # client_ip -> _Template

    # connections ------------------------------------------------------------------

    def add(self, client_ip, client_port, server, now):
        """A new SYN was scheduled to ``server``: a SYN_RECV (inactive) connection.

        A CLOSING entry with the same client address and port is replaced (port reuse);
        an opening or established one raises ValueError (look it up with ``get()``).
        """
        key = (client_ip, client_port)
        old = self._conns.get(key)
        if old is not None:
            if old.state != CLOSING:
                raise ValueError(
                    f"connection {client_ip}:{client_port} is already in the table "
                    f"({old.state} to {old.server}); look it up with get()")
            self.remove(client_ip, client_port, now)
        conn = Connection(client_ip, client_port, server, SYN_RECV, now, now)
        self._conns[key] = conn
        self._by_server.setdefault(server, {})[key] = conn
        pair = (client_ip, server)
        self._controlled[pair] = self._controlled.get(pair, 0) + 1
        if self.persistence_timeout:
            self._templates[client_ip] = _Template(server, now)
        return conn

    def get(self, client_ip, client_port):
        return self._conns.get((client_ip, client_port))

    def established(self, client_ip, client_port, now):
        """The handshake completed: SYN_RECV -> ESTABLISHED.  True if the state changed."""
        return self._move(client_ip, client_port, (SYN_RECV,), ESTABLISHED, now)

    def closing(self, client_ip, client_port, now):
        """A FIN or RST was seen: -> CLOSING (inactive until removed).  True if changed."""
        return self._move(client_ip, client_port, (SYN_RECV, ESTABLISHED), CLOSING, now)

    def _move(self, client_ip, client_port, sources, target, now):
        conn = self._conns.get((client_ip, client_port))
        if conn is None or conn.state not in sources:
            return False
        self.set_state(conn, target, now)
        return True

    def set_state(self, conn, state, now):
        """Put ``conn`` (in the table) in ``state`` as of ``now``, whatever it was."""
        if conn.state == state:
            return
        if conn.active:
            self._active[conn.server] -= 1
        conn.state, conn.updated = state, now
        if conn.active:
            self._active[conn.server] = self._active.get(conn.server, 0) + 1

    def remove(self, client_ip, client_port, now=None):
        """The connection's flows expired or were cleared; returns it (None if unknown).

        ``now`` is when it ended, for persistence; without it, the time the connection
        entered its last state (``updated``) is used.
        """
        key = (client_ip, client_port)
        conn = self._conns.pop(key, None)
        if conn is None:
            return None
        members = self._by_server[conn.server]
        del members[key]
        if not members:
            del self._by_server[conn.server]
        if conn.active:
            self._active[conn.server] -= 1
        pair = (client_ip, conn.server)
        self._controlled[pair] -= 1
        if not self._controlled[pair]:
            del self._controlled[pair]
        template = self._templates.get(client_ip)
        if template is not None and template.server == conn.server:
            ended = conn.updated if now is None else now
            template.last = max(template.last, ended)
        return conn

    # counting ---------------------------------------------------------------------

    def counts(self, server):
        """``(active, inactive)`` for ``server``, as ipvsadm's ActiveConn / InActConn."""
        active = self._active.get(server, 0)
        return active, len(self._by_server.get(server, {})) - active

    def all_counts(self):
        """``{server: (active, inactive)}`` for every server with a connection."""
        return {server: self.counts(server) for server in self._by_server}

    def of_server(self, server):
        """Connections to ``server``, oldest first."""
        return list(self._by_server.get(server, {}).values())

    def expire_half_open(self, now):
        """Remove and return the connections in SYN_RECV for ``syn_recv_timeout`` seconds.

        IPVS drops a SYN_RECV entry when its timer runs out; the client that sent the SYN
        (or whoever spoofed it) never completed the handshake.
        """
        expired = [c for c in self._conns.values()
                   if c.state == SYN_RECV and now - c.updated >= self.syn_recv_timeout]
        for conn in expired:
            self.remove(conn.client_ip, conn.client_port, now)
        return expired

    def closing_since(self, age, now):
        """Connections that have been CLOSING for at least ``age`` seconds."""
        return [c for c in self._conns.values()
                if c.state == CLOSING and now - c.updated >= age]

    def __len__(self):
        return len(self._conns)

    def __iter__(self):
        return iter(list(self._conns.values()))

    # persistence ------------------------------------------------------------------

    def persistent_server(self, client_ip, now):
        """The server ``client_ip`` is bound to (``ipvsadm -p``), or None.

        None when persistence is off, the client has no template, or the template is
        dead: no connection of the client to that server is in the table and the last
        one was added or removed ``persistence_timeout`` seconds ago or more.  A dead
        template is dropped.  The caller still has to check that the server is usable.
        """
        if not self.persistence_timeout:
            return None
        template = self._templates.get(client_ip)
        if template is None:
            return None
        if self._controlled.get((client_ip, template.server)):
            return template.server
        if now - template.last < self.persistence_timeout:
            return template.server
        del self._templates[client_ip]
        return None

    def forget_server(self, server):
        """Drop every template bound to ``server`` (it was removed from the service)."""
        for client_ip in [ip for ip, t in self._templates.items() if t.server == server]:
            del self._templates[client_ip]

    def templates(self):
        """``{client_ip: server}`` of the templates currently stored (alive or not)."""
        return {ip: t.server for ip, t in self._templates.items()}
