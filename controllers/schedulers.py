"""The ten classic Linux IPVS schedulers, re-implemented with the kernel's exact rules.

Pure Python, standard library only: the controller calls ``pick()`` to choose a real
server for a new connection and gets the same answer the kernel would give for the same
destination list, weights, counters and flags.  Each class names the kernel file it
follows (``net/netfilter/ipvs/ip_vs_<name>.c``; the helpers are in
``include/net/ip_vs.h`` and ``include/linux/hash.h``).

=======  ==================================================================================
rr       next server in list order after the previous choice; weight 0 / overloaded skipped
wrr      kernel wrr: current weight ``cw`` starts at the max weight and drops by the gcd;
         every pass picks servers with ``weight >= cw`` (4,3,2 gives A A B A B C A B C)
lc       least ``active*256 + inactive`` (weights only matter as 0 = quiesced)
wlc      least ``(active*256 + inactive) / weight``, compared as ``h1*w2 > h2*w1``
sed      least ``(active + 1) / weight`` (active connections only)
nq       the first idle server (0 active) in list order, otherwise like sed
sh       256-bucket table filled in list order, each server ``weight`` buckets in a row;
         bucket = ``hash_32(client_port + client_ip, 8)``; options ``fallback``/``port``
dh       256-bucket table, one bucket per server in turn; bucket = ``hash_32(dest_ip, 8)``
lblc     per destination IP, one cached server; re-chosen by wlc only when the cached one
         is gone / weight 0, or has ``active > weight`` while some server has
         ``active*2 < weight``; unused entries are dropped by a 60 s timer (24 h default)
lblcr    per destination IP, a *set* of servers; the set's least loaded member is used,
         a new (wlc) member is added when it is overloaded as above, and the most loaded
         member is dropped once the set has not changed for the expiration time (24 h)
=======  ==================================================================================

Shared kernel facts used below:

* ``ip_vs_dest_conn_overhead() = activeconns * 256 + inactconns`` (``<< 8``).  For TCP a
  connection is *active* only in the ESTABLISHED state; every other state (SYN_RECV,
  FIN_WAIT, TIME_WAIT, CLOSE_WAIT, ...) counts as *inactive*
  (``set_tcp_state()`` in ``ip_vs_proto_tcp.c``).
* Weight 0 means "quiesced": existing connections stay, no new ones.  A server with
  ``IP_VS_DEST_F_OVERLOAD`` (``RealServer.overloaded``; the kernel sets it when the upper
  connection threshold is reached) is skipped by every scheduler except the cached-entry
  path of lblc, which (in the real code) only checks weight and its own overload rule.
* Loads are compared without division: ``loh * dest.weight > doh * least.weight``.  The
  comparison is strict, so ties keep the server that came first in the list.

How the simulation maps onto the kernel:

* ``servers`` is ``svc->destinations`` in order.  (The kernel inserts a newly added real
  server at the *head* of that list, ``list_add_rcu()`` in ``__ip_vs_update_dest()``, so
  after ``ipvsadm -a A; ipvsadm -a B`` the kernel order is B, A.  Pass the list in the order
  you want the kernel to have.)
* A scheduler notices a change of the list or of any weight by comparing the signature
  ``((name, ip, port, weight), ...)`` with the one from its previous ``pick()``, and then
  runs what the kernel's ``add_dest``/``del_dest``/``upd_dest`` hooks would run.  Several
  changes between two picks are applied as one hook call on the final state (the kernel
  would call the hook once per ``ipvsadm`` command).  ``active_conns``,
  ``inactive_conns`` and ``overloaded`` are read live and never trigger a hook, as in the
  kernel.  A real server is identified by ``(ip, port)``, like a kernel ``ip_vs_dest``.
* lblc/lblcr take time from the ``now`` argument (seconds, any epoch, must not go
  backwards) instead of ``jiffies``.  Their garbage-collection timer starts at the first
  ``pick()`` and fires every 60 s; timer runs due at or before ``now`` happen before the
  scheduling decision.
"""

from __future__ import annotations

import inspect
import ipaddress
import math
import time
from dataclasses import dataclass

__all__ = [
    "ALGORITHMS",
    "RealServer",
    "Scheduler",
    "RoundRobin",
    "WeightedRoundRobin",
    "LeastConnection",
    "WeightedLeastConnection",
    "ShortestExpectedDelay",
    "NeverQueue",
    "SourceHashing",
    "DestinationHashing",
    "LocalityBasedLeastConnection",
    "LocalityBasedLeastConnectionReplication",
    "make_scheduler",
    "conn_overhead",
    "hash_32",
]

ALGORITHMS = ("rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "dh", "lblc", "lblcr")

_U32 = 0xFFFFFFFF
GOLDEN_RATIO_32 = 0x61C88647  # include/linux/hash.h


# ---------------------------------------------------------------------------------------
# Real servers and kernel helpers
# ---------------------------------------------------------------------------------------

_COUNT_FIELDS = ("weight", "active_conns", "inactive_conns")


@dataclass
class RealServer:
    """One real server (``struct ip_vs_dest``) as the scheduler sees it.

    ``weight``, ``active_conns`` (``activeconns``), ``inactive_conns`` (``inactconns``)
    and ``overloaded`` (``IP_VS_DEST_F_OVERLOAD``) may be changed at any time; negative
    numbers are refused at construction and on assignment, as the kernel refuses a
    negative weight (``-ERANGE`` in ``ip_vs_add_dest()``/``ip_vs_edit_dest()``).
    """

    name: str
    ip: str
    port: int = 80
    weight: int = 1
    active_conns: int = 0
    inactive_conns: int = 0
    overloaded: bool = False

    def __setattr__(self, field_name, value):
        if field_name in _COUNT_FIELDS:
            who = self.__dict__.get("name", "?")
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(
                    f"{field_name} must be an int, got {value!r} for {who}")
            if value < 0:
                raise ValueError(f"{field_name} must be >= 0, got {value} for {who}")
        object.__setattr__(self, field_name, value)

    @property
    def key(self):
        """Identity of the server inside a service, as in the kernel: (ip, port)."""
        return (self.ip, self.port)


def conn_overhead(server):
    """``ip_vs_dest_conn_overhead()``: ``(activeconns << 8) + inactconns``."""
    return (server.active_conns << 8) + server.inactive_conns


def hash_32(val, bits):
    """include/linux/hash.h ``hash_32()``: ``(u32)(val * GOLDEN_RATIO_32) >> (32-bits)``."""
    return ((val & _U32) * GOLDEN_RATIO_32 & _U32) >> (32 - bits)


def addr_fold(ip):
    """The u32 the IPVS hash functions feed to the hash, in host order.

    IPv4: ``ntohl(addr)``.  IPv6: ``ntohl(ip6[0] ^ ip6[1] ^ ip6[2] ^ ip6[3])``.
    """
    addr = ipaddress.ip_address(ip)
    value = int(addr)
    if addr.version == 4:
        return value
    return ((value >> 96) ^ (value >> 64) ^ (value >> 32) ^ value) & _U32


def _weighted_least_conn(servers, overhead=None):
    """The wlc loop (also sed's, ``__ip_vs_lblc_schedule``/``__ip_vs_lblcr_schedule``).

    First stage: the first server that is not overloaded and has weight > 0.  Second
    stage: every later non-overloaded server replaces it when
    ``loh * dest.weight > doh * least.weight`` (weight-0 servers can never satisfy this).
    ``overhead`` is the load of one server: wlc's :func:`conn_overhead` by default.
    """
    overhead = overhead or conn_overhead
    it = iter(servers)
    for dest in it:
        if not dest.overloaded and dest.weight > 0:
            least, loh = dest, overhead(dest)
            break
    else:
        return None
    for dest in it:
        if dest.overloaded:
            continue
        doh = overhead(dest)
        if loh * dest.weight > doh * least.weight:
            least, loh = dest, doh
    return least


def _lblc_is_overloaded(dest, servers):
    """``is_overloaded()`` of ip_vs_lblc.c / ip_vs_lblcr.c (not the OVERLOAD flag).

    True when ``dest.activeconns > dest.weight`` and *some* server of the service
    (any server, flagged overloaded or not, the cached one included) has
    ``activeconns * 2 < weight``.
    """
    if dest.active_conns > dest.weight:
        for d in servers:
            if d.active_conns * 2 < d.weight:
                return True
    return False


# ---------------------------------------------------------------------------------------
# Base class
# ---------------------------------------------------------------------------------------


class Scheduler:
    """Common driver: detects list/weight changes, then calls the kernel-like hooks.

    Subclasses implement ``_init_service`` (``init_service``), ``_dests_changed``
    (``add_dest``/``del_dest``/``upd_dest``) and ``_schedule`` (``schedule``).
    """

    name = ""

    def __init__(self):
        self._signature = None
        self._servers = []
        self._seen = {}  # (ip, port) -> last RealServer object seen with that identity

    def pick(self, servers, client_ip=None, dest_ip=None, client_port=None, now=None):
        """Choose a server for a new connection, or None when the kernel would refuse.

        ``client_ip``/``client_port`` are the packet's source, ``dest_ip`` its
        destination address (the VIP, or the origin server for a cache cluster).
        ``now`` is in seconds; it drives lblc/lblcr expiry (default: ``time.monotonic()``).
        """
        current = list(servers)
        seen_keys = set()
        for server in current:
            if server.key in seen_keys:
                raise ValueError(
                    f"duplicate real server {server.ip}:{server.port} ({server.name}) "
                    "in one service; the kernel refuses it (EEXIST)")
            seen_keys.add(server.key)
        if now is None:
            now = time.monotonic()
        signature = tuple((s.name, s.ip, s.port, s.weight) for s in current)
        if self._signature is None:
            self._init_service(current, now)
        elif signature != self._signature:
            self._dests_changed(self._servers, current, now)
        self._signature = signature
        self._servers = current
        for server in current:
            self._seen[server.key] = server
        return self._schedule(current, client_ip=client_ip, dest_ip=dest_ip,
                              client_port=client_port, now=now)

    def reset(self):
        """Forget all state, as ``done_service`` + ``init_service`` (``ipvsadm -E``)."""
        self.__init__(**self._options())

    # hooks ------------------------------------------------------------------------

    def _options(self):
        return {}

    def _init_service(self, servers, now):
        pass

    def _dests_changed(self, old, new, now):
        pass

    def _schedule(self, servers, *, client_ip, dest_ip, client_port, now):
        raise NotImplementedError

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"


def _need(value, what, algorithm):
    if value is None:
        raise ValueError(f"the {algorithm} scheduler needs {what}")
    return value


# ---------------------------------------------------------------------------------------
# rr
# ---------------------------------------------------------------------------------------


class RoundRobin(Scheduler):
    """Round robin -- net/netfilter/ipvs/ip_vs_rr.c.

    The kernel keeps a pointer to the last chosen server (initially the list head) and
    walks forward from the one after it, wrapping once, to the first server with
    weight > 0 and no OVERLOAD flag.  If the walk comes back to the last chosen server
    without a hit it returns NULL and the pointer stays.  rr has no ``upd_dest`` hook:
    weight changes never move the pointer, and an added server (``add_dest`` is NULL)
    does not move it either.  ``ip_vs_rr_del_dest()``: when the server the pointer is on
    is deleted, the pointer moves to the server *before* it (or to the head), so the
    rotation continues with the server that followed the deleted one.

    Note: weights are ignored except that weight 0 means "skip".
    """

    name = "rr"

    def _init_service(self, servers, now):
        self._last = None  # key of the last chosen server; None = list head

    def _dests_changed(self, old, new, now):
        new_keys = {s.key for s in new}
        working = [s.key for s in old]
        for key in [k for k in working if k not in new_keys]:
            i = working.index(key)
            if self._last == key:
                # svc->sched_data = p->next->prev: the entry before the deleted one
                self._last = working[i - 1] if i > 0 else None
            del working[i]

    def _schedule(self, servers, **_):
        n = len(servers)
        keys = [s.key for s in servers]
        start = keys.index(self._last) if self._last in keys else -1
        for step in range(n):
            dest = servers[(start + 1 + step) % n]
            if not dest.overloaded and dest.weight > 0:
                self._last = dest.key
                return dest
        return None


# ---------------------------------------------------------------------------------------
# wrr
# ---------------------------------------------------------------------------------------


class WeightedRoundRobin(Scheduler):
    """Weighted round robin -- net/netfilter/ipvs/ip_vs_wrr.c.

    State (``struct ip_vs_wrr_mark``): ``cl`` the last chosen server (or the head),
    ``di`` the gcd of the positive weights (1 if none), ``mw = max weight - (di - 1)``
    and ``cw`` the current weight, starting at ``mw``.  Each call walks on from ``cl``
    and returns the first server without the OVERLOAD flag whose ``weight >= cw``; at the
    end of the list ``cw -= di`` and the walk restarts from the head; when ``cw`` drops to
    0 or below it wraps to ``mw``.  ``mw == 0`` (all weights 0) returns NULL at once; the
    ``last_pass``/``restarted``/``stop`` bookkeeping makes a call that finds nothing
    (everything overloaded) give up after one pass with ``cw = 1`` over every server.

    Weights 4, 3, 2 give the 9-pick cycle A A B A B C A B C.

    ``ip_vs_wrr_dest_changed()`` (add, delete *and* any edit of a server) resets ``cl`` to
    the head, recomputes ``di``/``mw`` and sets ``cw = mw`` if ``cw > mw`` or ``cw == 0``,
    otherwise, when ``di > 1``, ``cw = (cw / di) * di + 1``.  So after a change the next
    pick starts again from the first server of the list, at (about) the same ``cw``.

    Note: the kernel does not send blocks (A A A A B B B C C) nor keep per-server
    credit; it interleaves by the descending ``cw`` passes shown above.
    """

    name = "wrr"

    def _init_service(self, servers, now):
        self._cl = -1
        self._di = self._gcd_weight(servers)
        self._mw = self._max_weight(servers) - (self._di - 1)
        self._cw = self._mw

    def _dests_changed(self, old, new, now):
        self._cl = -1
        self._di = self._gcd_weight(new)
        self._mw = self._max_weight(new) - (self._di - 1)
        if self._cw > self._mw or not self._cw:
            self._cw = self._mw
        elif self._di > 1:
            self._cw = (self._cw // self._di) * self._di + 1

    @staticmethod
    def _gcd_weight(servers):
        g = 0
        for s in servers:
            if s.weight > 0:
                g = math.gcd(s.weight, g) if g > 0 else s.weight
        return g if g else 1

    @staticmethod
    def _max_weight(servers):
        return max([0] + [s.weight for s in servers])

    def _schedule(self, servers, **_):
        n = len(servers)
        head = -1
        dest = self._cl
        if self._mw == 0:
            return None  # err_noavail (cl stays)
        last = dest
        stop = None
        last_pass = False
        restarted = False
        while True:
            i = dest + 1
            while i < n:  # list_for_each_entry_continue
                d = servers[i]
                if not d.overloaded and d.weight >= self._cw:
                    self._cl = i
                    return d
                if i == stop:
                    self._cl = i  # err_over
                    return None
                i += 1
            dest = head
            self._cw -= self._di
            if self._cw <= 0:
                self._cw = self._mw
                if last_pass or last == head:
                    self._cl = head  # err_over
                    return None
                restarted = True
            last_pass = self._cw <= self._di
            if last_pass and restarted and last != head:
                stop = last


# ---------------------------------------------------------------------------------------
# lc / wlc / sed / nq
# ---------------------------------------------------------------------------------------


class LeastConnection(Scheduler):
    """Least connection -- net/netfilter/ipvs/ip_vs_lc.c.

    Minimum of ``ip_vs_dest_conn_overhead() = active*256 + inactive`` over the servers
    with weight > 0 and no OVERLOAD flag; ``doh < loh`` is strict, so the first of equals
    (list order) wins.  Weights do not scale the load: lc is *not* weighted.

    Note: "fewest connections" is only roughly right: the kernel counts an active
    (ESTABLISHED) connection as 256 inactive ones, so 300 TIME_WAIT connections weigh
    more than one established connection.
    """

    name = "lc"

    def _schedule(self, servers, **_):
        least, loh = None, 0
        for dest in servers:
            if dest.overloaded or dest.weight == 0:
                continue
            doh = conn_overhead(dest)
            if least is None or doh < loh:
                least, loh = dest, doh
        return least


class WeightedLeastConnection(Scheduler):
    """Weighted least connection -- net/netfilter/ipvs/ip_vs_wlc.c.

    Minimum of ``(active*256 + inactive) / weight``, evaluated as
    ``loh * dest.weight > doh * least.weight`` (strict: the first of equals wins).  The
    first server with weight > 0 and no OVERLOAD flag is the initial candidate; weight-0
    servers can never win the comparison.

    Course notes vs kernel: the notes say "(connections+1)/weight minimum".  That "+1" is
    sed, not wlc.  wlc has no +1, and "connections" is ``active*256 + inactive``.  With
    A(weight 1, idle) and B(weight 3, 1 active) the notes' formula gives A=1, B=2/3 and
    picks B; the kernel computes A=0, B=256/3 and picks A.
    """

    name = "wlc"

    def _schedule(self, servers, **_):
        return _weighted_least_conn(servers)


def _sed_overhead(server):
    # ip_vs_sed_dest_overhead / ip_vs_nq_dest_overhead: active connections only, plus 1
    return server.active_conns + 1


class ShortestExpectedDelay(Scheduler):
    """Shortest expected delay -- net/netfilter/ipvs/ip_vs_sed.c.

    Minimum of ``(active + 1) / weight`` (active connections only, inactive ones are
    ignored), same two-stage loop and strict ``loh * dw > doh * lw`` test as wlc, so the
    first of equals wins.

    Course notes vs kernel: the notes say sed "selects the server with fewest ESTABLISHED
    connections, like wlc but wlc also counts TIME_WAIT/FIN_WAIT".  Only the second half
    is right (sed ignores inactive connections; wlc counts them, at 1/256 of an active
    one).  sed is weighted and adds 1 for the incoming connection: with A(weight 1,
    1 active) and B(weight 3, 2 active) the kernel computes A=2/1, B=3/3 and picks B,
    although B has more established connections.
    """

    name = "sed"

    def _schedule(self, servers, **_):
        return _weighted_least_conn(servers, _sed_overhead)


class NeverQueue(Scheduler):
    """Never queue -- net/netfilter/ipvs/ip_vs_nq.c.

    One loop in list order over servers with weight > 0 and no OVERLOAD flag: the first
    one with 0 active connections is returned immediately (inactive connections do not
    matter, nor does the weight); otherwise the sed minimum of ``(active + 1) / weight``
    with the strict ``loh * dw > doh * lw`` test (first of equals wins).

    Note: it is the *first* idle server in list order, not the heaviest idle one.
    """

    name = "nq"

    def _schedule(self, servers, **_):
        least, loh = None, 0
        for dest in servers:
            if dest.overloaded or not dest.weight:
                continue
            doh = _sed_overhead(dest)
            if dest.active_conns == 0:
                return dest
            if least is None or loh * dest.weight > doh * least.weight:
                least, loh = dest, doh
        return least


# ---------------------------------------------------------------------------------------
# sh / dh
# ---------------------------------------------------------------------------------------

IP_VS_SH_TAB_BITS = 8
IP_VS_SH_TAB_SIZE = 1 << IP_VS_SH_TAB_BITS
IP_VS_SH_TAB_MASK = IP_VS_SH_TAB_SIZE - 1
IP_VS_DH_TAB_BITS = 8
IP_VS_DH_TAB_SIZE = 1 << IP_VS_DH_TAB_BITS


def sh_hashkey(ip, port=0, offset=0):
    """``ip_vs_sh_hashkey()``: ``(offset + hash_32(port + addr, 8)) & 255``."""
    return (offset + hash_32((port + addr_fold(ip)) & _U32, IP_VS_SH_TAB_BITS)) \
        & IP_VS_SH_TAB_MASK


def dh_hashkey(ip):
    """``ip_vs_dh_hashkey()``: ``hash_32(addr, 8)``."""
    return hash_32(addr_fold(ip), IP_VS_DH_TAB_BITS)


class _HashTableScheduler(Scheduler):
    """Shared bucket table of sh and dh; buckets hold indexes into the server list."""

    def _init_service(self, servers, now):
        self._table = self._assign(servers)

    def _dests_changed(self, old, new, now):
        self._table = self._assign(new)

    @property
    def buckets(self):
        """Names of the servers in the 256 buckets, as of the last ``pick()``."""
        table = getattr(self, "_table", [None] * 256)
        return tuple(None if i is None else self._servers[i].name for i in table)


class SourceHashing(_HashTableScheduler):
    """Source hashing -- net/netfilter/ipvs/ip_vs_sh.c.

    ``ip_vs_sh_reassign()`` fills the 256 buckets (``IP_VS_SH_TAB_BITS = 8``) walking the
    server list in order and wrapping: each server takes ``weight`` consecutive buckets,
    a weight-0 server still takes 1 (``++d_count >= weight``).  Weights 3, 1 give
    A A A B repeated: 192 and 64 buckets.  The table is rebuilt on every add, delete or
    edit of a server.

    bucket = ``(hash_32(port + ntohl(client_ip), 8)) & 255``, where ``port`` is the
    client's source port with the ``sh-port`` flag (``port=True``; TCP/UDP/SCTP) and 0
    otherwise.  Without ``sh-fallback`` a bucket whose server has weight 0 or the
    OVERLOAD flag gives NULL (the connection is not scheduled).  With ``sh-fallback``
    (``fallback=True``) the kernel probes ``bucket (h + roffset) & 255`` for
    ``roffset = (h + offset) % 256``, offset = 0..255 -- note the original hash ``h`` is
    added twice -- and takes the first available server.

    The hash is the one of current kernels (``hash_32()``, ``GOLDEN_RATIO_32``); older
    kernels used ``(ntohl(addr) * 2654435761) & 255``, which gives other bucket numbers
    (dh, lblc and lblcr changed the same way).

    Note: "the same client always reaches the same server" holds only while the server
    list and weights do not change (any change rebuilds the whole table and can move
    most clients) and only without ``sh-port``.
    """

    name = "sh"

    def __init__(self, fallback=False, port=False):
        super().__init__()
        self.fallback = bool(fallback)
        self.port = bool(port)

    def _options(self):
        return {"fallback": self.fallback, "port": self.port}

    @staticmethod
    def _assign(servers):
        table = [None] * IP_VS_SH_TAB_SIZE
        if not servers:
            return table
        p, d_count = 0, 0
        for i in range(IP_VS_SH_TAB_SIZE):
            table[i] = p
            d_count += 1
            if d_count >= servers[p].weight:
                p = (p + 1) % len(servers)
                d_count = 0
        return table

    @staticmethod
    def _unavailable(dest):
        return dest.weight <= 0 or dest.overloaded

    def _schedule(self, servers, *, client_ip, client_port, **_):
        _need(client_ip, "client_ip", "sh")
        port = (client_port or 0) if self.port else 0
        ihash = sh_hashkey(client_ip, port, 0)
        index = self._table[ihash]
        if index is None:
            return None
        dest = servers[index]
        if not self._unavailable(dest):
            return dest
        if not self.fallback:
            return None
        for offset in range(IP_VS_SH_TAB_SIZE):
            roffset = (offset + ihash) % IP_VS_SH_TAB_SIZE
            index = self._table[sh_hashkey(client_ip, port, roffset)]
            if index is None:
                break
            if not self._unavailable(servers[index]):
                return servers[index]
        return None


class DestinationHashing(_HashTableScheduler):
    """Destination hashing -- net/netfilter/ipvs/ip_vs_dh.c.

    ``ip_vs_dh_reassign()`` fills the 256 buckets with the servers in list order, one
    bucket each, wrapping (weights are ignored for the table: 3 servers get 86/85/85).
    bucket = ``hash_32(ntohl(dest_ip), 8)``.  The bucket's server is returned unless its
    weight is 0 or it has the OVERLOAD flag, in which case the result is NULL: dh has no
    fallback.  The table is rebuilt on add/delete (dh has no ``upd_dest`` hook, but the
    table does not depend on weights, so that makes no difference).

    Note: weight only works as an on/off switch in dh.
    """

    name = "dh"

    @staticmethod
    def _assign(servers):
        if not servers:
            return [None] * IP_VS_DH_TAB_SIZE
        return [i % len(servers) for i in range(IP_VS_DH_TAB_SIZE)]

    def _schedule(self, servers, *, dest_ip, **_):
        _need(dest_ip, "dest_ip", "dh")
        index = self._table[dh_hashkey(dest_ip)]
        if index is None:
            return None
        dest = servers[index]
        if dest.weight <= 0 or dest.overloaded:
            return None
        return dest


# ---------------------------------------------------------------------------------------
# lblc / lblcr
# ---------------------------------------------------------------------------------------

CHECK_EXPIRE_INTERVAL = 60            # seconds (60*HZ)
ENTRY_TIMEOUT = 6 * 60                # seconds (6*60*HZ), only when the table is "full"
DEFAULT_EXPIRATION = 24 * 60 * 60     # seconds; sysctl lblc_expiration / lblcr_expiration
COUNT_FOR_FULL_EXPIRATION = 30        # a full expiration check every 30 timer runs
IP_VS_LBLC_TAB_BITS = 10              # CONFIG_IP_VS_LBLC_TAB_BITS / _LBLCR_TAB_BITS
IP_VS_LBLC_TAB_SIZE = 1 << IP_VS_LBLC_TAB_BITS
IP_VS_LBLC_TAB_MASK = IP_VS_LBLC_TAB_SIZE - 1


class _LocalityEntry:
    __slots__ = ("addr", "lastuse", "dest", "dest_set", "lastmod")

    def __init__(self, addr, lastuse):
        self.addr = addr
        self.lastuse = lastuse
        self.dest = None        # lblc: key of the cached server
        self.dest_set = []      # lblcr: keys, newest first (list_add_rcu)
        self.lastmod = lastuse  # lblcr: set->lastmod


class _LocalityScheduler(Scheduler):
    """Shared table + garbage-collection timer of lblc and lblcr.

    Entries are hashed into 1024 buckets by ``hash_32(ntohl(dest_ip), 10)``.  The timer
    (``ip_vs_lblc(r)_check_expire``) runs every 60 s from the first pick.  Every 30th run
    is a full check that drops every entry unused for ``expiration`` seconds
    (``now >= lastuse + expiration``); the other runs only act when the entry counter
    exceeds ``max_size = 1024*16``: then entries unused for 6 minutes are dropped bucket by
    bucket from the rover on, until ``goal = min((entries - max_size)*4/3, max_size/2)``
    entries went.
    """

    def __init__(self, expiration=DEFAULT_EXPIRATION):
        super().__init__()
        if expiration < 0:
            raise ValueError(f"expiration must be >= 0 seconds, got {expiration}")
        self.expiration = expiration
        self._buckets = [[] for _ in range(IP_VS_LBLC_TAB_SIZE)]
        self._live = 0              # entries really in the table
        self._entries = 0           # tbl->entries (see lblc _new: it can drift upwards)
        self._max_size = IP_VS_LBLC_TAB_SIZE * 16
        self._rover = 0
        self._counter = 1
        self._next_tick = None

    def _options(self):
        return {"expiration": self.expiration}

    def _init_service(self, servers, now):
        self._next_tick = now + CHECK_EXPIRE_INTERVAL

    # table ------------------------------------------------------------------------

    @staticmethod
    def _addr(ip):
        return ipaddress.ip_address(ip)

    @staticmethod
    def _hash(addr):
        return hash_32(addr_fold(str(addr)), IP_VS_LBLC_TAB_BITS)

    def _get(self, addr):
        for en in self._buckets[self._hash(addr)]:
            if en.addr == addr:
                return en
        return None

    def _hash_in(self, en):
        self._buckets[self._hash(en.addr)].insert(0, en)  # hlist_add_head_rcu
        self._live += 1
        self._entries += 1

    def _unlink(self, en):
        self._buckets[self._hash(en.addr)].remove(en)
        self._live -= 1

    def _server(self, key, servers):
        """(server object, available) for a key: servers no longer in the list are kept
        by the kernel in the trash with IP_VS_DEST_F_AVAILABLE cleared."""
        for s in servers:
            if s.key == key:
                return s, True
        return self._seen.get(key), False

    # timer ------------------------------------------------------------------------

    def _run_timers(self, now):
        while self._next_tick is not None and self._next_tick <= now:
            self._check_expire(self._next_tick)
            self._next_tick += CHECK_EXPIRE_INTERVAL

    def _check_expire(self, now):
        if self._counter % COUNT_FOR_FULL_EXPIRATION == 0:
            self._full_check(now)
            self._counter = 1
            return
        if self._entries <= self._max_size:
            self._counter += 1
            return
        goal = (self._entries - self._max_size) * 4 // 3
        goal = min(goal, self._max_size // 2)
        j = self._rover
        for _ in range(IP_VS_LBLC_TAB_SIZE):
            j = (j + 1) & IP_VS_LBLC_TAB_MASK
            for en in list(self._buckets[j]):
                if now < en.lastuse + ENTRY_TIMEOUT:
                    continue
                self._unlink(en)
                self._entries -= 1
                goal -= 1
            if goal <= 0:
                break
        self._rover = j

    def _full_check(self, now):
        # walks all 1024 buckets starting after the rover; the rover ends where it began
        if not self._live:
            return
        for bucket in self._buckets:
            for en in list(bucket):
                if now < en.lastuse + self.expiration:
                    continue
                self._unlink(en)
                self._entries -= 1

    def _schedule(self, servers, *, dest_ip, now, **_):
        addr = self._addr(_need(dest_ip, "dest_ip", self.name))
        self._run_timers(now)
        return self._locality_schedule(servers, addr, now)

    def _name_of(self, key):
        for s in self._servers:
            if s.key == key:
                return s.name
        server = self._seen.get(key)
        return server.name if server else None


class LocalityBasedLeastConnection(_LocalityScheduler):
    """Locality-based least connection -- net/netfilter/ipvs/ip_vs_lblc.c.

    One cache entry per *destination* IP (``dest_ip``, e.g. the origin web server behind a
    cache cluster; with a plain VIP every connection shares one entry).  On a hit the
    entry's ``lastuse`` is refreshed and its server is returned if it is still in the
    service, has weight > 0 and is not ``is_overloaded()``, where::

        is_overloaded(n) = n.active > n.weight  and  some server m of the service
                           (any server, even a flagged or weight-0 one) has
                           m.active * 2 < m.weight

    Otherwise (no entry, or the cached server failed that test) the server is chosen by
    the wlc loop over the whole service, ``(active*256+inactive)/weight``, skipping
    OVERLOAD-flagged ones, and the entry is (re)pointed at it.  No server -> NULL.
    The cached-server test does not look at the OVERLOAD flag: the real code keeps using
    a flagged server for its existing entries.

    Expiry: an entry is dropped by the 60 s timer's full check (every 30th run, i.e.
    every 30 minutes) once ``now >= lastuse + lblc_expiration`` (24 h by default; the
    ``expiration`` option stands for the sysctl), so an unused entry lives between
    ``expiration`` and ``expiration + 30 min``.  When more than 16384 entries exist,
    entries unused for 6 minutes are also collected.  Current kernels' ``ip_vs_lblc_new()``
    re-points an entry by deleting it and adding a new one without decrementing
    ``tbl->entries``, so that counter drifts upwards; it is reproduced here (it only
    matters for the 16384 threshold).

    Course notes vs kernel: the notes say lblc "keeps choosing the same server until its
    connection count exceeds the weight; if all exceed, keeps the last chosen".  The
    kernel counts only *active* connections for that test, and exceeding the weight is
    not enough: it leaves the cached server only if some server is below *half* of its
    weight (``active*2 < weight``).  If none is -- even when others are below their
    weight -- it stays.  When it does leave, it takes the wlc choice over all servers,
    not necessarily the half-empty one.  It also leaves when the cached server was
    removed or got weight 0.
    """

    name = "lblc"

    def _locality_schedule(self, servers, addr, now):
        en = self._get(addr)
        if en is not None:
            en.lastuse = now
            dest, available = self._server(en.dest, servers)
            if available and dest.weight > 0 and not _lblc_is_overloaded(dest, servers):
                return dest
        dest = _weighted_least_conn(servers)
        if dest is None:
            return None
        self._new(addr, dest, now)
        return dest

    def _new(self, addr, dest, now):
        en = self._get(addr)
        if en is not None:
            if en.dest == dest.key:
                return
            self._unlink(en)  # ip_vs_lblc_del(): no atomic_dec(&tbl->entries)
        en = _LocalityEntry(addr, now)
        en.dest = dest.key
        self._hash_in(en)

    def entry(self, dest_ip):
        """Name of the server cached for ``dest_ip`` (None if no entry)."""
        en = self._get(self._addr(dest_ip))
        return None if en is None else self._name_of(en.dest)


class LocalityBasedLeastConnectionReplication(_LocalityScheduler):
    """Locality-based least connection with replication -- net/netfilter/ipvs/ip_vs_lblcr.c.

    One entry per *destination* IP holding a server **set** (newest member first).
    On a hit (``lastuse`` refreshed):

    1. ``dest`` = weighted least loaded member, ``(active*256+inactive)/weight``, among
       members still in the service, weight > 0 and not OVERLOAD-flagged (first of
       equals wins, in set order);
    2. if the set has more than one member and ``now > lastmod + lblcr_expiration``
       (24 h default, the ``expiration`` option), the weighted *most* loaded member with
       weight > 0 (first of equals) is removed and ``lastmod = now``.  This happens after
       step 1, so the member just chosen can be the one removed (equal loads) and is
       still returned;
    3. if ``dest`` exists and is not ``is_overloaded()`` (same rule as lblc:
       ``active > weight`` while some server has ``active*2 < weight``) it is returned;
    4. otherwise the wlc choice over the whole service is returned and added to the set
       (if not already a member; adding sets ``lastmod = now``).

    No entry: the wlc choice over the service starts a new one-member set.  Whole entries
    expire exactly like lblc entries (timer full check every 30 minutes, ``now >= lastuse
    + expiration``; 6-minute collection only above 16384 entries).

    Course notes vs kernel: the notes say lblcr is "like lblc but when all exceed, picks
    the one with fewest connections".  The kernel instead replicates: it keeps a set of
    servers per destination, serves from the least loaded member, and when that member is
    overloaded (by the half-weight rule above, not "all exceed") it adds the wlc choice
    over the whole service to the set.  Members only leave one at a time, the most loaded
    first, after the set has not changed for the expiration time.
    """

    name = "lblcr"

    def _members(self, en, servers):
        return [self._server(key, servers) for key in en.dest_set]

    def _set_min(self, en, servers):
        it = iter(self._members(en, servers))
        for least, available in it:
            if least.overloaded:
                continue
            if least.weight > 0 and available:
                loh = conn_overhead(least)
                break
        else:
            return None
        for dest, available in it:
            if dest.overloaded:
                continue
            doh = conn_overhead(dest)
            if loh * dest.weight > doh * least.weight and available:
                least, loh = dest, doh
        return least

    def _set_max(self, en, servers):
        it = iter(self._members(en, servers))
        for most, _available in it:
            if most.weight > 0:
                moh = conn_overhead(most)
                break
        else:
            return None
        for dest, _available in it:
            doh = conn_overhead(dest)
            if moh * dest.weight < doh * most.weight and dest.weight > 0:
                most, moh = dest, doh
        return most

    def _set_insert(self, en, dest, now, check=True):
        if check and dest.key in en.dest_set:
            return
        en.dest_set.insert(0, dest.key)
        en.lastmod = now

    def _set_erase(self, en, dest, now):
        if dest.key in en.dest_set:
            en.dest_set.remove(dest.key)
            en.lastmod = now

    def _locality_schedule(self, servers, addr, now):
        en = self._get(addr)
        if en is not None:
            en.lastuse = now
            dest = self._set_min(en, servers)
            if len(en.dest_set) > 1 and now > en.lastmod + self.expiration:
                most = self._set_max(en, servers)
                if most is not None:
                    self._set_erase(en, most, now)
            if dest is not None and not _lblc_is_overloaded(dest, servers):
                return dest
            dest = _weighted_least_conn(servers)
            if dest is None:
                return None
            self._set_insert(en, dest, now, check=True)
            return dest
        dest = _weighted_least_conn(servers)
        if dest is None:
            return None
        en = _LocalityEntry(addr, now)
        self._set_insert(en, dest, now, check=False)
        self._hash_in(en)
        return dest

    def entry(self, dest_ip):
        """Names of the server set for ``dest_ip``, newest first (None if no entry)."""
        en = self._get(self._addr(dest_ip))
        return None if en is None else tuple(self._name_of(k) for k in en.dest_set)


# ---------------------------------------------------------------------------------------
# factory
# ---------------------------------------------------------------------------------------

_CLASSES = {
    cls.name: cls
    for cls in (RoundRobin, WeightedRoundRobin, LeastConnection, WeightedLeastConnection,
                ShortestExpectedDelay, NeverQueue, SourceHashing, DestinationHashing,
                LocalityBasedLeastConnection, LocalityBasedLeastConnectionReplication)
}
assert tuple(_CLASSES) == ALGORITHMS


def make_scheduler(name, **options):
    """A new scheduler by its ipvsadm name (``-s``), e.g. ``make_scheduler("wlc")``.

    Options: ``sh`` takes ``fallback=`` (``sh-fallback``) and ``port=`` (``sh-port``);
    ``lblc``/``lblcr`` take ``expiration=`` seconds (the ``lblc_expiration`` /
    ``lblcr_expiration`` sysctl, default 86400).
    """
    key = str(name).strip().lower()
    cls = _CLASSES.get(key)
    if cls is None:
        raise ValueError(
            f"unknown IPVS scheduler {name!r}; choose one of: {', '.join(ALGORITHMS)}")
    try:
        inspect.signature(cls).bind(**options)
    except TypeError:
        raise TypeError(
            f"scheduler {key!r} does not take options {sorted(options)}") from None
    return cls(**options)
