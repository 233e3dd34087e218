"""The load balancer's service state and decisions, without OpenFlow (no root needed).

:mod:`controllers.lb` is a thin os-ken shell around :class:`Service`: it turns the
decisions made here into flows and groups, feeds in what the switch reports (packets,
MACs, conntrack dumps) and answers the control socket with :meth:`Service.command`.
Everything that can be decided without a switch is decided here, and unit-tested with a
fake switch (``tests/unit/test_lbcore.py``).

**Where each new connection is scheduled** (:meth:`Service.mode`):

``slots``
    The switch picks.  A select group of :data:`SLOTS` buckets hashes each new
    connection's 5-tuple to a slot; :meth:`Service.slots` fills the slots with the
    scheduler's own picks, simulated from the current counts.  No packet of any
    connection waits for the controller.
``per_client``
    The first SYN of each client address comes to the controller, which picks with the
    kernel's rule and installs a flow for that client; the client's later connections
    stay in the switch.  For the schedulers whose pick depends on the client address only
    (sh, mh without their ``port`` flag) this is exact; it is also how persistence
    (``persistence_timeout``) is kept on the fast path.
``controller``
    Every new connection's SYN comes to the controller, which picks with the kernel's rule
    from the counts of that moment and sends the SYN on through the server's stage in the
    switch (one packet-in and one packet-out per connection, no flow-mod).  This is the
    exact mode (``fast_path: false``): lab 06's predictions and the conformance tests.

How exact the fast path is, per scheduler, is :data:`FAST_PATH_EXACTNESS`; ``redlab lb
status`` prints it.

**Counting** as IPVS counts (ActiveConn / InActConn) comes from the switch's connection
tracker (:mod:`controllers.ctdump`): :meth:`Service.sync` replaces the table with a dump,
except for what changed after the dump was asked for.  The picks made since are kept as
SYN_RECV connections until a dump shows them (the SYN is on its way), so a burst is
counted as the kernel counts it.  In the exact mode a scheduler that reads the counts
(:meth:`Service.reads_counts`) also gets the switch's copies of each connection's
transitions (:mod:`controllers.copies`, :meth:`Service.transition`): the handshake's end
makes it ActiveConn, the first FIN or RST InActConn, as they happen.  A dump costs about
20 us per connection in the zone, closing ones included, so the shell dumps before each
pick only while the zone is small (:mod:`controllers.lb`); under a flood the copies keep
the counts and dumps only find the entries the tracker expired.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from controllers import copies
from controllers.conntrack import CLOSING, ESTABLISHED, SYN_RECV, ConnectionTable
from controllers.schedulers import RealServer, make_scheduler
from controllers.service import RealServerSpec, ServiceConfigError, parse_service, service_to_dict

SLOTS = 256     # the select group's buckets: OVS's dp_hash maps hash value k to bucket k
PENDING_GRACE = 2.0     # s: a pick not yet seen in a conntrack dump is kept this long

# schedulers whose pick depends on the counts: their slots are refilled from fresh counts
COUNT_DEPENDENT = ("lc", "wlc", "sed", "nq", "lblc", "lblcr", "ovf", "twos")

FAST_PATH_EXACTNESS = {
    "rr": "slots: each server's share of new connections exact to 1/256; the order of picks "
          "follows the hash of each connection, not the kernel's turn",
    "wrr": "slots: shares in proportion to the weights, exact to 1/256; the order within a "
           "round follows the hash, not the kernel's cw",
    "lc": "slots refilled from the conntrack counts every refill period: a burst shorter "
          "than the period is spread by the counts at its start",
    "wlc": "slots refilled from the conntrack counts every refill period: a burst shorter "
           "than the period is spread by the counts at its start",
    "sed": "slots refilled from the conntrack counts every refill period",
    "nq": "slots refilled from the conntrack counts every refill period",
    "sh": "exact: the kernel's pick per client address, one flow per client",
    "sh-port": "exact mode: the pick depends on the source port, so every SYN goes to the "
               "controller",
    "mh": "exact: the kernel's Maglev pick per client address, one flow per client",
    "mh-port": "exact mode: the pick depends on the source port, so every SYN goes to the "
               "controller",
    "dh": "exact: one destination (the VIP), so every slot holds the kernel's one pick",
    "lblc": "slots refilled every refill period: one VIP, so the cached server, re-checked "
            "for overload at each refill instead of at each connection",
    "lblcr": "slots refilled every refill period from the set's least loaded members",
    "fo": "exact: every slot holds the highest-weight available server",
    "ovf": "slots refilled every refill period: the highest-weight server until its "
           "ActiveConn reaches its weight, as counted at the refill",
    "twos": "slots refilled every refill period with the kernel's weighted random choice "
            "of two, from the counts at the refill",
    "persistence": "per client: the first SYN of a client is scheduled by the controller and "
                   "a flow keeps the client there until it has been idle for the persistence "
                   "timeout (the kernel's template lives as long as a connection of the "
                   "client does)",
    "exact": "exact: every SYN is scheduled by the controller with the kernel's rule and the "
             "counts of that moment (while the zone holds more than dump_each_pick_max "
             "connections, an entry the tracker expired is counted until the next dump)",
}


class CommandError(ValueError):
    """A control command the service refuses; its message is the reply's ``error``."""


@dataclass
class Effects:
    """What the switch must be told after a change (the shell applies them)."""

    refill: bool = False            # recompute the slots / per-client flows
    flush: list = field(default_factory=list)   # server ids whose connections to drop
    stage: bool = False             # a server's stage (MAC, address) changed


class Service:
    """One virtual service: its real servers, their health and weights, the scheduler and
    the connection counts.  ``service`` is a :class:`controllers.service.VirtualService`."""

    def __init__(self, service, fast_path=False, syn_recv_timeout=60):
        self.service = service
        self.fast_path = fast_path
        self.servers = [RealServer(name=s.name, ip=s.ip, port=s.port, weight=s.weight)
                        for s in service.real_servers]
        self.configured_weight = {s.name: s.weight for s in service.real_servers}
        self.ids = {s.name: n + 1 for n, s in enumerate(service.real_servers)}  # ct_mark
        self.health = {s.name: "up" for s in service.real_servers}
        self.health_reason = {s.name: "not checked yet" for s in service.real_servers}
        self.checked = False           # a health checker has reported
        self.macs = {}                 # ip -> MAC, from ARP
        self.scheduler = make_scheduler(service.lb_algo, **service.scheduler_options())
        self.conns = ConnectionTable(persistence_timeout=service.persistence_timeout,
                                     syn_recv_timeout=syn_recv_timeout)
        self.pending = {}              # (client, port) -> time of a pick not yet dumped

    # -- lookups -----------------------------------------------------------------------
    def server(self, name):
        return next((s for s in self.servers if s.name == name), None)

    def by_id(self, server_id):
        return next((s for s in self.servers if self.ids[s.name] == server_id), None)

    def name_of(self, server_id):
        return next((n for n, i in self.ids.items() if i == server_id), None)

    def ready(self, server):
        """The switch can send to ``server``: its MAC is known."""
        return self.macs.get(server.ip) is not None

    # -- where new connections are scheduled -----------------------------------------
    def mode(self):
        """``slots``, ``per_client`` or ``controller`` (see the module docstring)."""
        svc = self.service
        if not self.fast_path:
            return "controller"
        if svc.lb_algo in ("sh", "mh") and svc.scheduler_options().get("port"):
            return "controller"
        if svc.lb_algo in ("sh", "mh") or svc.persistence_timeout:
            return "per_client"
        return "slots"

    def exactness(self):
        """One sentence: how exactly the current mode follows the kernel's scheduler."""
        svc = self.service
        mode = self.mode()
        if mode == "controller":
            if self.fast_path:
                return FAST_PATH_EXACTNESS["%s-port" % svc.lb_algo]
            return FAST_PATH_EXACTNESS["exact"]
        if svc.persistence_timeout and svc.lb_algo not in ("sh", "mh"):
            return FAST_PATH_EXACTNESS["persistence"]
        return FAST_PATH_EXACTNESS[svc.lb_algo]

    def candidates(self):
        """The scheduler's view: healthy servers (or all, weight 0 when inhibited), with
        the current counts.  Only servers the switch can reach are offered."""
        result = []
        for server in self.servers:
            healthy = self.health.get(server.name) == "up"
            if not healthy and not self.service.inhibit_on_failure:
                continue
            if not self.ready(server):
                continue
            server.weight = self.configured_weight[server.name] if healthy else 0
            server.active_conns, server.inactive_conns = self.conns.counts(server.name)
            result.append(server)
        return result

    def pick(self, client_ip, client_port, dest_ip, now):
        """The exact pick for one new SYN (exact and per-client modes), or None.

        A retransmitted SYN of a connection already scheduled keeps its server while that
        server is usable; a persistent client goes to its template's server.
        """
        servers = self.candidates()
        usable = {s.name: s for s in servers if s.weight > 0}
        conn = self.conns.get(client_ip, client_port)
        if conn is not None and conn.state == SYN_RECV and conn.server in usable:
            return usable[conn.server]
        sticky = self.conns.persistent_server(client_ip, now)
        if sticky in usable:
            chosen = usable[sticky]
        else:
            chosen = self.scheduler.pick(servers, client_ip=client_ip, dest_ip=dest_ip,
                                         client_port=client_port, now=now)
        if chosen is not None:
            self.record_pick(client_ip, client_port, chosen.name, now)
        return chosen

    def record_pick(self, client_ip, client_port, name, now):
        """Count a pick at once (SYN_RECV) until a dump shows its connection."""
        old = self.conns.get(client_ip, client_port)
        if old is not None:
            self.conns.remove(client_ip, client_port, now)
        self.conns.add(client_ip, client_port, name, now)
        self.pending[(client_ip, client_port)] = now

    def slots(self, now):
        """The select group's :data:`SLOTS` buckets: a server id each (empty: nobody).

        The scheduler is asked :data:`SLOTS` times on copies of itself and of the servers,
        each pick counted as a new (inactive) connection, as a burst of new connections
        would be scheduled from the current counts.  The real scheduler's state is
        untouched, so a refill with nothing changed gives the same slots.
        """
        servers = copy.deepcopy(self.candidates())
        if not any(s.weight > 0 for s in servers):
            return ()
        scheduler = copy.deepcopy(self.scheduler)
        vip = self.service.vip
        out = []
        for _ in range(SLOTS):
            chosen = scheduler.pick(servers, client_ip=vip, dest_ip=vip, client_port=0,
                                    now=now)
            if chosen is None:
                return ()
            chosen.inactive_conns += 1
            out.append(self.ids[chosen.name])
        return tuple(out)

    def count_dependent(self):
        return self.service.lb_algo in COUNT_DEPENDENT

    def reads_counts(self):
        """An exact pick needs the counts of this moment: the scheduler reads them, or a
        persistence template lives as long as its client's connections."""
        return self.count_dependent() or bool(self.service.persistence_timeout)

    # -- counting ---------------------------------------------------------------------
    def sync(self, entries, now, dumped_at=None):
        """Replace the connection table with a conntrack dump (:func:`ctdump.parse`).

        ``dumped_at`` is when the dump was asked for: picks made after it (or within
        :data:`PENDING_GRACE` before it, whose SYN may still have been on its way) stay
        counted as SYN_RECV although the dump does not show them yet.  Returns the
        connections that left the table (the tracker expired or closed them).
        """
        dumped_at = now if dumped_at is None else dumped_at
        gone = []
        seen = {}
        for e in entries:
            name = self.name_of(e.server)
            if name is not None:
                seen[(e.client_ip, e.client_port)] = (name, e.state)
        for conn in list(self.conns):
            key = conn.key
            if key in seen:
                continue
            picked = self.pending.get(key)
            if picked is not None and picked > dumped_at - PENDING_GRACE:
                continue
            gone.append(self.conns.remove(*key, now))
            self.pending.pop(key, None)
        for (client, port), (name, state) in seen.items():
            self.pending.pop((client, port), None)
            conn = self.conns.get(client, port)
            if conn is not None and conn.updated >= dumped_at:
                continue    # picked or changed by a copy while the dump was read: newer
            if conn is None or conn.server != name:
                if conn is not None:
                    self.conns.remove(client, port, now)
                conn = self.conns.add(client, port, name, now)
            self.conns.set_state(conn, state, now)
        return gone

    def transition(self, copy, now):
        """A copy from the switch (:mod:`controllers.copies`): the connection's handshake
        completed (ESTABLISHED) or it began to close (CLOSING), as of ``now``.

        True for the connection's first copy of the kind; a second one (the client's ACK
        and its first data in one batch of the datapath, a FIN from each side) changes
        nothing.  A connection the table does not hold yet (scheduled before the copies
        were on) is added in its new state; a dump may have moved it already, and a
        connection never goes back (an ACK copied after the FIN).
        """
        name = self.name_of(copy.server)
        if name is None:
            return False
        state = ESTABLISHED if copy.kind == copies.OPENED else CLOSING
        conn = self.conns.get(copy.client_ip, copy.client_port)
        if conn is None or conn.server != name:
            if conn is not None:
                self.conns.remove(copy.client_ip, copy.client_port, now)
            conn = self.conns.add(copy.client_ip, copy.client_port, name, now)
            self.conns.set_state(conn, state, now)
        elif state in conn.copied:
            return False
        elif state == ESTABLISHED:
            self.conns.established(copy.client_ip, copy.client_port, now)
        else:
            self.conns.closing(copy.client_ip, copy.client_port, now)
        conn.copied.add(state)
        return True

    # -- health and operator commands ---------------------------------------------------
    def set_health(self, name, state, reason):
        """A health checker's verdict.  A server going down loses its connections at once
        (IPVS's ``expire_nodest_conn``): the clients' next packets, a retransmitted SYN
        included, are scheduled again to a live server."""
        if self.server(name) is None:
            raise CommandError("no real server named %r" % name)
        self.checked = True
        old = self.health.get(name)
        self.health[name] = state
        self.health_reason[name] = reason
        effects = Effects()
        if old != state:
            effects.refill = True
            if state == "down":
                effects.flush.append(self.ids[name])
        return effects

    def set_weight(self, name, weight):
        if self.server(name) is None:
            raise CommandError("no real server named %r" % name)
        if not isinstance(weight, int) or isinstance(weight, bool) or weight < 0:
            raise CommandError("weight must be an integer >= 0, got %r" % (weight,))
        self.configured_weight[name] = weight
        return Effects(refill=True)

    def set_scheduler(self, algo):
        options = self.service.scheduler_options(algo)
        try:
            scheduler = make_scheduler(algo, **options)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.service.lb_algo = algo
        self.scheduler = scheduler
        return Effects(refill=True)

    def add_server(self, name, ip, port=None, weight=1):
        svc = self.service
        try:
            spec = RealServerSpec(name=name, ip=ip, port=int(svc.port if port is None else port),
                                  weight=int(weight))
        except (TypeError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        svc.real_servers.append(spec)
        try:
            parse_service(service_to_dict(svc))        # the same checks as the file
        except (ValueError, ServiceConfigError) as exc:
            svc.real_servers.pop()
            raise CommandError(str(exc)) from None
        self.servers.append(RealServer(name=spec.name, ip=spec.ip, port=spec.port,
                                       weight=spec.weight))
        self.configured_weight[spec.name] = spec.weight
        self.ids[spec.name] = max(self.ids.values(), default=0) + 1
        # with a health checker (keepalived's alpha): out until its first checks pass;
        # without one, in at once (ipvsadm -a)
        self.health[spec.name] = "down" if self.checked else "up"
        self.health_reason[spec.name] = ("added: waiting for its first health checks"
                                         if self.checked else "added (no health checker)")
        return Effects(refill=True, stage=True)

    def remove_server(self, name):
        server = self.server(name)
        if server is None:
            raise CommandError("no real server named %r" % name)
        # established connections keep going until they end, as in IPVS: the server's
        # stage in the switch stays; only new connections stop going there
        self.servers.remove(server)
        self.service.real_servers = [s for s in self.service.real_servers if s.name != name]
        self.conns.forget_server(name)
        return Effects(refill=True)

    def status(self):
        svc = self.service
        servers = []
        for s in self.servers:
            active, inactive = self.conns.counts(s.name)
            up = self.health[s.name] == "up"
            servers.append(dict(name=s.name, ip=s.ip, port=s.port, mac=self.macs.get(s.ip),
                                weight=self.configured_weight[s.name],
                                effective_weight=self.configured_weight[s.name] if up else 0,
                                active=active, inactive=inactive, health=self.health[s.name],
                                reason=self.health_reason[s.name]))
        path = dict(mode=self.mode(), fast_path=self.fast_path, exactness=self.exactness())
        flags = ["%s-%s" % (svc.lb_algo, name) for name, on in
                 sorted(svc.scheduler_options().items()) if on]
        return {"ok": True, "service": dict(name=svc.name, vip=svc.vip, port=svc.port,
                                            protocol=svc.protocol, lb_algo=svc.lb_algo,
                                            lb_kind=svc.lb_kind,
                                            persistence_timeout=svc.persistence_timeout,
                                            flags=flags, path=path),
                "servers": servers}

    def command(self, request):
        """One control request -> ``(reply, effects)``; a refusal is ``ok: false``."""
        cmd = request.get("cmd")
        try:
            if cmd == "status":
                return self.status(), Effects()
            if cmd == "health":
                effects = self.set_health(request["server"], request["state"],
                                          request.get("reason", ""))
                return {"ok": True, "cleared": 0}, effects
            if cmd == "servers":            # the health checker follows this list
                self.checked = True
                return {"ok": True, "servers": [dict(name=s.name, ip=s.ip, port=s.port)
                                                for s in self.servers]}, Effects()
            if cmd == "connections":
                return {"ok": True, "connections": [
                    dict(client=c.client_ip, port=c.client_port, server=c.server, state=c.state)
                    for s in self.servers for c in self.conns.of_server(s.name)]}, Effects()
            if cmd == "set_weight":
                return {"ok": True}, self.set_weight(request["server"], request["weight"])
            if cmd == "set_scheduler":      # ipvsadm -E -s ALGO
                return {"ok": True}, self.set_scheduler(request.get("lb_algo"))
            if cmd == "set_fast_path":      # switch between the fast path and the exact mode
                value = request["fast_path"]
                if not isinstance(value, bool):
                    raise CommandError("fast_path must be true or false, got %r" % (value,))
                self.fast_path = value
                return {"ok": True}, Effects(refill=True)
            if cmd == "add_server":
                return {"ok": True}, self.add_server(request["name"], request["ip"],
                                                     request.get("port"),
                                                     request.get("weight", 1))
            if cmd == "remove_server":
                return {"ok": True}, self.remove_server(request["server"])
        except KeyError as exc:
            return {"ok": False, "error": "%s needs %s" % (cmd, exc)}, Effects()
        except CommandError as exc:
            return {"ok": False, "error": str(exc)}, Effects()
        return {"ok": False, "error": "unknown command %r" % (cmd,)}, Effects()
