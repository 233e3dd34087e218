"""The fourteen Linux 6.x IPVS schedulers, re-implemented with the kernel's exact rules.

Pure Python, standard library only: the controller calls ``pick()`` to choose a real
server for a new connection and gets the same answer the kernel would give for the same
destination list, weights, counters and flags.  Each class names the kernel file it
follows (``net/netfilter/ipvs/ip_vs_<name>.c``; the helpers are in
``include/net/ip_vs.h``, ``include/linux/hash.h`` and ``lib/siphash.c``).

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
fo       the first server (list order) with the highest weight; load is not looked at
ovf      the first server (list order) with the highest weight among those with
         ``active <= weight`` (so a server takes weight + 1 active connections)
mh       Maglev: a 4093-slot table (prime; ``CONFIG_IP_VS_MH_TAB_INDEX``) where every
         server claims slots along its own permutation (offset/skip from hsiphash of its
         address and port), ``last weight / gcd`` slots per round; slot =
         ``hsiphash(client_port + client_ip) % 4093``; options ``fallback``/``port``
twos     two servers drawn at random in proportion to weight (the first listed server
         gets one extra chance); the second replaces the first only when its
         ``(active*256 + inactive) / weight`` is lower
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
  would call the hook once per ``ipvsadm`` command); ``update()`` reports one command at a
  time without scheduling, which the kernel replay (tests/data/ipvs-kernel/) needs for wrr.  ``active_conns``,
  ``inactive_conns`` and ``overloaded`` are read live and never trigger a hook, as in the
  kernel.  A real server is identified by ``(ip, port)``, like a kernel ``ip_vs_dest``.
* Randomness and build options are parameters: twos draws from an injectable source of
  32-bit numbers (the kernel's ``get_random_u32()``), mh's table size is the build option
  ``CONFIG_IP_VS_MH_TAB_INDEX`` (``tab_index``, 12 on Debian and by default) and its hash
  depends on the kernel's word size (``bits_per_long``).
* lblc/lblcr take time from the ``now`` argument (seconds, any epoch, must not go
  backwards) instead of ``jiffies``.  Their garbage-collection timer starts at the first
  ``pick()`` and fires every 60 s; timer runs due at or before ``now`` happen before the
  scheduling decision.
"""

from __future__ import annotations

import inspect
import ipaddress
import math
import random
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
    "WeightedFailover",
    "WeightedOverflow",
    "MaglevHashing",
    "PowerOfTwoChoices",
    "make_scheduler",
    "conn_overhead",
    "hash_32",
    "siphash",
    "halfsiphash",
    "hsiphash",
    "mh_hashkey",
    "get_random_u32_below",
]

# the ten classic schedulers (ipvsadm's man page, the course notes, lab 06), then the
# four of Linux 6.x
CLASSIC = ("rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "dh", "lblc", "lblcr")
ALGORITHMS = CLASSIC + ("fo", "ovf", "mh", "twos")

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
        current, now = self.update(servers, now)
        return self._schedule(current, client_ip=client_ip, dest_ip=dest_ip,
                              client_port=client_port, now=now)

    def update(self, servers, now=None):
        """Take in one configuration change without scheduling anything.

        This is what the kernel does on one ``ipvsadm`` command: ``init_service`` the
        first time (``-A``), then the ``add_dest``/``del_dest``/``upd_dest`` hook when the
        list or a weight differs from the last one seen (``-a``/``-d``/``-e``).
        ``pick()`` calls it itself, which folds several commands into one hook call; the
        kernel's wrr and mh state depend on each step (e.g. wrr's ``cw`` after servers
        are added one by one to a service created empty), so to get the kernel's exact
        picks call ``update([])`` for the new service and ``update(list)`` after each
        command.  Returns the list as a new list, and ``now``.
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
        return current, now

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
# fo / ovf
# ---------------------------------------------------------------------------------------


class WeightedFailover(Scheduler):
    """Weighted failover -- net/netfilter/ipvs/ip_vs_fo.c, ``ip_vs_fo_schedule()``.

    One walk over the list: a server without the OVERLOAD flag replaces the candidate
    when its weight is *strictly* greater than the highest weight so far (``hw``,
    starting at 0).  So the first server (list order) with the highest weight gets every
    new connection, whatever its load; weight-0 servers never qualify (``0 > 0`` is
    false).  No server with weight > 0 and no flag -> NULL.

    Failover happens by weights: lower the active server's weight (or let a health
    checker set it to 0 / remove it) and the next highest takes over.  No state, no hooks.
    """

    name = "fo"

    def _schedule(self, servers, **_):
        hweight, hw = None, 0
        for dest in servers:
            if not dest.overloaded and dest.weight > hw:
                hweight, hw = dest, dest.weight
        return hweight


class WeightedOverflow(Scheduler):
    """Weighted overflow -- net/netfilter/ipvs/ip_vs_ovf.c, ``ip_vs_ovf_schedule()``.

    One walk over the list, skipping a server when it has the OVERLOAD flag, when
    ``activeconns > weight`` or when its weight is 0; among the others the first one
    (list order) with the highest weight wins (``w > hw``, strict).  Only *active*
    connections count; InActConn is ignored (the kernel's comment: "might not be suitable
    for UDP").

    Note: "overflow once the active connections reach the weight" is off by one.  The
    test is ``active > weight``, so a server with weight 3 still takes a connection at
    3 active ones and overflows to the next server only at 4: it holds weight + 1.
    """

    name = "ovf"

    def _schedule(self, servers, **_):
        h, hw = None, 0
        for dest in servers:
            w = dest.weight
            if dest.overloaded or dest.active_conns > w or w == 0:
                continue
            if h is None or w > hw:
                h, hw = dest, w
        return h


# ---------------------------------------------------------------------------------------
# SipHash (lib/siphash.c) for mh
# ---------------------------------------------------------------------------------------

_U64 = (1 << 64) - 1


def _rotl64(x, b):
    return ((x << b) | (x >> (64 - b))) & _U64


def _rotl32(x, b):
    return ((x << b) | (x >> (32 - b))) & _U32


def _sipround(v0, v1, v2, v3):
    """SIPROUND of lib/siphash.c (64-bit words)."""
    v0 = (v0 + v1) & _U64
    v1 = _rotl64(v1, 13) ^ v0
    v0 = _rotl64(v0, 32)
    v2 = (v2 + v3) & _U64
    v3 = _rotl64(v3, 16) ^ v2
    v0 = (v0 + v3) & _U64
    v3 = _rotl64(v3, 21) ^ v0
    v2 = (v2 + v1) & _U64
    v1 = _rotl64(v1, 17) ^ v2
    v2 = _rotl64(v2, 32)
    return [v0, v1, v2, v3]


def _halfsipround(v0, v1, v2, v3):
    """HSIPROUND of lib/siphash.c on 32-bit kernels (HalfSipHash, 32-bit words)."""
    v0 = (v0 + v1) & _U32
    v1 = _rotl32(v1, 5) ^ v0
    v0 = _rotl32(v0, 16)
    v2 = (v2 + v3) & _U32
    v3 = _rotl32(v3, 8) ^ v2
    v0 = (v0 + v3) & _U32
    v3 = _rotl32(v3, 7) ^ v0
    v2 = (v2 + v1) & _U32
    v1 = _rotl32(v1, 13) ^ v2
    v2 = _rotl32(v2, 16)
    return [v0, v1, v2, v3]


def _sip(data, words, word_bytes, rnd, c_rounds, d_rounds):
    """The SipHash skeleton shared by SipHash and HalfSipHash: compress ``data`` in
    little-endian words, pad the last one with the length byte, finalize."""
    v = list(words)
    data = bytes(data)
    end = len(data) - len(data) % word_bytes
    for i in range(0, end, word_bytes):
        m = int.from_bytes(data[i:i + word_bytes], "little")
        v[3] ^= m
        for _ in range(c_rounds):
            v = rnd(*v)
        v[0] ^= m
    b = ((len(data) & 0xFF) << (8 * word_bytes - 8)) | int.from_bytes(data[end:], "little")
    v[3] ^= b
    for _ in range(c_rounds):
        v = rnd(*v)
    v[0] ^= b
    v[2] ^= 0xFF
    for _ in range(d_rounds):
        v = rnd(*v)
    return v


def siphash(key, data, c_rounds=2, d_rounds=4):
    """SipHash-c-d (Aumasson and Bernstein, 2012) of ``data`` under a 16-byte ``key``: a
    64-bit int.  The default is SipHash-2-4, the paper's; ``c_rounds=1, d_rounds=3`` is
    the SipHash-1-3 that the kernel's ``hsiphash()`` is on 64-bit machines."""
    key = bytes(key)
    if len(key) != 16:
        raise ValueError(f"a SipHash key is 16 bytes, got {len(key)}")
    k0, k1 = int.from_bytes(key[:8], "little"), int.from_bytes(key[8:], "little")
    v0, v1, v2, v3 = _sip(data, (k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D,
                                 k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573),
                          8, _sipround, c_rounds, d_rounds)
    return v0 ^ v1 ^ v2 ^ v3


def halfsiphash(key, data, c_rounds=1, d_rounds=3):
    """HalfSipHash-c-d with a 32-bit result, under an 8-byte ``key``: the kernel's
    ``hsiphash()`` on 32-bit machines (``lib/siphash.c``, ``BITS_PER_LONG == 32``)."""
    key = bytes(key)
    if len(key) != 8:
        raise ValueError(f"a HalfSipHash key is 8 bytes, got {len(key)}")
    k0, k1 = int.from_bytes(key[:4], "little"), int.from_bytes(key[4:], "little")
    _v0, v1, _v2, v3 = _sip(data, (k0, k1, k0 ^ 0x6C796765, k1 ^ 0x74656462),
                            4, _halfsipround, c_rounds, d_rounds)
    return v1 ^ v3


def hsiphash(data, key, bits_per_long=64):
    """The kernel's ``hsiphash(data, len, key)``, a u32, for ``key = (key[0], key[1])``
    (``hsiphash_key_t``: two ``unsigned long``).

    64-bit kernels: SipHash-1-3 of the 128-bit key ``key[0] | key[1] << 64``, truncated
    to its low 32 bits (``HPOSTAMBLE`` returns the u64 into a u32).  32-bit kernels:
    HalfSipHash-1-3 with the 64-bit key ``key[0] | key[1] << 32``.  ``data`` is the bytes
    the kernel reads, little-endian words (x86, arm64).
    """
    k0, k1 = key
    if bits_per_long == 64:
        return siphash(k0.to_bytes(8, "little") + k1.to_bytes(8, "little"), data, 1, 3) \
            & _U32
    if bits_per_long == 32:
        return halfsiphash(k0.to_bytes(4, "little") + k1.to_bytes(4, "little"), data, 1, 3)
    raise ValueError(f"bits_per_long must be 64 or 32, got {bits_per_long!r}")


# ---------------------------------------------------------------------------------------
# mh
# ---------------------------------------------------------------------------------------

MH_PRIMES = (251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071)
MH_TAB_INDEX = 12                   # CONFIG_IP_VS_MH_TAB_INDEX (Kconfig default, Debian 12)
MH_HASH1 = (2654435761, 2654435761)  # generate_hash_secret(): the offset / lookup key
MH_HASH2 = (2654446892, 2654446892)  # generate_hash_secret(): the skip key


def mh_hashkey(ip, port=0, key=MH_HASH1, offset=0, bits_per_long=64):
    """``ip_vs_mh_hashkey()``: ``hsiphash(u32 v = offset + port + ntohl(addr_fold))``,
    the u32 ``v`` hashed as the 4 bytes it occupies in memory (little-endian)."""
    v = (offset + port + addr_fold(ip)) & _U32
    return hsiphash(v.to_bytes(4, "little"), key, bits_per_long)


def _mh_unavailable(dest):
    """``is_unavailable()`` of ip_vs_mh.c: weight <= 0 or the OVERLOAD flag."""
    return dest.weight <= 0 or dest.overloaded


def _hash_key(value, what, bits_per_long):
    limit = (1 << bits_per_long) - 1
    try:
        k0, k1 = value
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a pair of integers (hsiphash_key_t), "
                         f"got {value!r}") from None
    for k in (k0, k1):
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= limit:
            raise ValueError(f"{what} must be a pair of integers from 0 to {limit} "
                             f"(unsigned long on a {bits_per_long}-bit kernel), "
                             f"got {value!r}")
    return (k0, k1)


class MaglevHashing(Scheduler):
    """Maglev hashing -- net/netfilter/ipvs/ip_vs_mh.c (Eisenbud et al., NSDI 2016, 3.4).

    **The table** has ``M = primes[CONFIG_IP_VS_MH_TAB_INDEX - 8]`` slots: 4093 with the
    Kconfig default 12 (Debian 12's kernel has 12); ``tab_index`` 8..17 gives 251 ..
    131071.  ``ip_vs_mh_reassign()`` rebuilds it on every add, delete and edit of a
    server (``add_dest``/``del_dest``/``upd_dest`` are all ``ip_vs_mh_dest_changed()``):

    * ``ip_vs_mh_gcd_weight()``: ``gcd`` of the positive *last weights*;
      ``ip_vs_mh_shift_weight()``: ``rshift = max(0, fls(max last weight / gcd) -
      tab_index / 2)``, which cuts the largest ``last weight / gcd`` to ``tab_index / 2``
      bits (6 by default: at most 63 turns per round);
    * ``ip_vs_mh_permutate()``: per server, ``offset = hashkey(addr, port, hash1) % M``,
      ``skip = hashkey(addr, port, hash2) % (M - 1) + 1`` (the *real server's* address
      and port) and ``turns = (last_weight / gcd) >> rshift``, or 1 when that is 0 but
      the last weight is not;
    * ``ip_vs_mh_populate()``: walking the list in order, round after round, each server
      with ``turns >= 1`` claims ``turns`` slots in a row, each the next free slot of its
      permutation ``offset, offset + skip, offset + 2*skip, ... (mod M)``; a server with
      0 turns is skipped; it stops when all M slots are claimed.  So the slot counts are
      exactly proportional to the turns, give or take the last, partial round (weights
      3, 2, 1 in 4093 slots: 2047, 1364, 682), and where each server's slots lie comes
      from the hashes alone.  No positive last weight (gcd 0): every slot is empty.

    The *last weight* (``dest->last_weight``, ``__ip_vs_update_dest()`` in
    ``ip_vs_ctl.c``) is the weight a server was added with, then the latest non-zero
    weight it was given: setting a weight to 0 (quiescing it; keepalived's
    ``inhibit_on_failure``) does not move a single slot, its slots stay and just stop
    answering; a server *added* with weight 0 has no slot.

    **A lookup** (``ip_vs_mh_schedule()``): slot ``hashkey(client_ip, port, hash1) % M``,
    where ``port`` is the client's source port with the ``mh-port`` flag (``port=True``;
    TCP/UDP/SCTP) and 0 otherwise.  Its server is returned unless it has weight 0 or the
    OVERLOAD flag (``is_unavailable()``); then the result is NULL, or with
    ``mh-fallback`` (``fallback=True``, ``ip_vs_mh_get_fallback()``) the kernel rehashes
    ``hashkey(client_ip, port, hash1, roffset) % M`` for ``roffset = (ihash + offset) % M``,
    offset = 0, 1, ..., M - 1, and takes the first available server (an empty slot ends
    the search with NULL).

    **The hash**: ``hashkey(addr, port, key, offset) = hsiphash(u32 (offset + port +
    ntohl(addr)))`` (IPv6: the four 32-bit words XORed).  ``hsiphash()`` is SipHash-1-3
    truncated to 32 bits on 64-bit kernels and HalfSipHash-1-3 on 32-bit ones
    (``bits_per_long``); see :func:`hsiphash`.  Its keys are *not* random: the kernel's
    ``generate_hash_secret()`` sets ``hash1 = {2654435761, 2654435761}`` and ``hash2 =
    {2654446892, 2654446892}`` for every service on every boot (``ip_vs_mh_init_svc()``
    calls it, there is no ``get_random_bytes()`` in ip_vs_mh.c), so the same servers give
    the same table on every machine of the same word size.  ``hash1``/``hash2`` are
    parameters only to experiment with other keys.

    Notes.  Maglev's promise is *minimal disruption*: removing one of N servers moves
    (about) only that server's slots; the others keep most of theirs (the removed
    server's slots are taken over along the survivors' permutations, which can also
    shift a few of theirs).  sh instead refills its 256 buckets in list order, so a
    removal moves most clients.  As with sh, "a client keeps its server" holds only for
    the same server list and last weights, and not with ``mh-port``.  Several changes
    between two picks are applied as one rebuild on the final state (as for every
    scheduler here): a weight changed 3 -> 5 -> 0 between two picks keeps last weight 3
    here, 5 in the kernel.  More servers than slots: the kernel's ``reassign`` fails
    with ``-EINVAL``, which ``__ip_vs_update_dest()`` ignores, so the old table stays; so
    it does here.
    """

    name = "mh"

    def __init__(self, fallback=False, port=False, tab_index=MH_TAB_INDEX,
                 hash1=MH_HASH1, hash2=MH_HASH2, bits_per_long=64):
        super().__init__()
        if bits_per_long not in (32, 64):
            raise ValueError(f"bits_per_long must be 64 or 32, got {bits_per_long!r}")
        if isinstance(tab_index, bool) or tab_index not in range(8, 18):
            raise ValueError("tab_index (CONFIG_IP_VS_MH_TAB_INDEX) must be an integer "
                             f"from 8 to 17, got {tab_index!r}")
        self.fallback = bool(fallback)
        self.port = bool(port)
        self.tab_index = tab_index
        self.bits_per_long = bits_per_long
        self.hash1 = _hash_key(hash1, "hash1", bits_per_long)
        self.hash2 = _hash_key(hash2, "hash2", bits_per_long)
        self.size = MH_PRIMES[tab_index - 8]       # IP_VS_MH_TAB_SIZE
        self._tab_bits = tab_index // 2             # IP_VS_MH_TAB_BITS
        self._table = [None] * self.size            # slot -> server key (ip, port)
        self._last_weight = {}                      # server key -> dest->last_weight

    def _options(self):
        return {"fallback": self.fallback, "port": self.port, "tab_index": self.tab_index,
                "hash1": self.hash1, "hash2": self.hash2,
                "bits_per_long": self.bits_per_long}

    def _hashkey(self, ip, port, key, offset=0):
        return mh_hashkey(ip, port, key, offset, self.bits_per_long)

    # the hooks --------------------------------------------------------------------

    def _init_service(self, servers, now):
        self._last_weight = {s.key: s.weight for s in servers}
        self._reassign(servers)

    def _dests_changed(self, old, new, now):
        last = {}
        for s in new:
            previous = self._last_weight.get(s.key)
            # added: its weight, even 0; edited: the latest non-zero weight
            last[s.key] = s.weight if previous is None or s.weight != 0 else previous
        self._last_weight = last
        self._reassign(new)

    def _reassign(self, servers):
        if len(servers) > self.size:
            return                                  # -EINVAL, ignored: the old table stays
        self._table = self._populate(servers, self._dest_setup(servers))

    def _dest_setup(self, servers):
        """``ip_vs_mh_gcd_weight()`` + ``_shift_weight()`` + ``_permutate()``: a list of
        ``[offset, skip, turns]`` per server, or None when no last weight is positive."""
        weights = [self._last_weight[s.key] for s in servers]
        gcd = 0
        for w in weights:
            if w > 0:
                gcd = math.gcd(w, gcd) if gcd > 0 else w
        if gcd < 1:
            return None
        rshift = max(0, (max(weights) // gcd).bit_length() - self._tab_bits)
        setup = []
        for s, lw in zip(servers, weights):
            offset = self._hashkey(s.ip, s.port, self.hash1) % self.size
            skip = self._hashkey(s.ip, s.port, self.hash2) % (self.size - 1) + 1
            turns = ((lw // gcd) >> rshift) or int(lw != 0)
            setup.append([offset, skip, turns])
        return setup

    def _populate(self, servers, setup):
        """``ip_vs_mh_populate()``: every slot gets a server key (None: no setup)."""
        size = self.size
        table = [None] * size
        if setup is None:
            return table                            # ip_vs_mh_reset()
        perm = [offset for offset, _skip, _turns in setup]
        n, dt_count, i, count = 0, 0, 0, len(servers)
        while True:
            if i == count:
                i = 0
            while i < count:
                _offset, skip, turns = setup[i]
                if turns < 1:                       # added with weight 0: no slot
                    i += 1
                    continue
                c = perm[i]
                while table[c] is not None:         # test_bit(): taken, try the next one
                    perm[i] = c = (c + skip) % size
                table[c] = servers[i].key
                n += 1
                if n == size:
                    return table
                dt_count += 1
                if dt_count >= turns:
                    dt_count = 0
                    i += 1

    # the lookup -------------------------------------------------------------------

    def _schedule(self, servers, *, client_ip, client_port, **_):
        _need(client_ip, "client_ip", "mh")
        port = (client_port or 0) if self.port else 0
        by_key = {s.key: s for s in servers}
        ihash = self._hashkey(client_ip, port, self.hash1) % self.size
        dest = self._dest(ihash, by_key)
        if dest is None:
            return None
        if not _mh_unavailable(dest):
            return dest
        if not self.fallback:
            return None
        for offset in range(self.size):             # ip_vs_mh_get_fallback()
            roffset = (offset + ihash) % self.size
            slot = self._hashkey(client_ip, port, self.hash1, roffset) % self.size
            dest = self._dest(slot, by_key)
            if dest is None:
                break
            if not _mh_unavailable(dest):
                return dest
        return None

    def _dest(self, slot, by_key):
        key = self._table[slot]
        if key is None:
            return None
        # a server missing from the list only when the table could not be rebuilt
        return by_key.get(key) or self._seen.get(key)

    # for people and tests ---------------------------------------------------------

    @property
    def buckets(self):
        """Names of the servers in the table's slots, as of the last ``pick()``."""
        return tuple(None if key is None else self._seen[key].name for key in self._table)

    def permutations(self):
        """``{name: (offset, skip, turns)}`` of ``ip_vs_mh_permutate()`` for the server
        list of the last ``pick()`` (empty when no last weight is positive)."""
        setup = self._dest_setup(self._servers) or []
        return {s.name: tuple(row) for s, row in zip(self._servers, setup)}

    def slot(self, client_ip, client_port=0):
        """The slot ``ip_vs_mh_get()`` looks at first for this client."""
        port = (client_port or 0) if self.port else 0
        return self._hashkey(client_ip, port, self.hash1) % self.size


# ---------------------------------------------------------------------------------------
# twos
# ---------------------------------------------------------------------------------------


def _s32(value):
    """An ``int`` product as the kernel computes it (wraps; -fno-strict-overflow)."""
    value &= _U32
    return value - (1 << 32) if value & 0x80000000 else value


def get_random_u32_below(ceil, random_u32):
    """``__get_random_u32_below()`` (drivers/char/random.c): a number in ``[0, ceil)``
    from ``random_u32()`` words by Lemire's multiply-shift, drawing again while the low
    half of ``ceil * rand`` is below ``2**32 % ceil`` (so every value is equally likely).
    """
    rand = random_u32()
    if not ceil:
        return rand
    mult = ceil * rand
    if (mult & _U32) < ceil:
        bound = (1 << 32) % ceil                    # -ceil % ceil in u32
        while (mult & _U32) < bound:
            mult = ceil * random_u32()
    return mult >> 32


def _u32_source(rng):
    """A function returning random u32s from ``rng``: None (the OS's generator, like the
    kernel's), an int seed or a ``random.Random`` (``getrandbits(32)``), or a function
    that returns u32s itself (a scripted sequence in tests)."""
    if rng is None:
        system = random.SystemRandom()
        return lambda: system.getrandbits(32)
    if isinstance(rng, int) and not isinstance(rng, bool):
        seeded = random.Random(rng)
        return lambda: seeded.getrandbits(32)
    if isinstance(rng, random.Random):
        return lambda: rng.getrandbits(32)
    if callable(rng):
        def checked():
            value = rng()
            if isinstance(value, bool) or not isinstance(value, int) \
                    or not 0 <= value <= _U32:
                raise ValueError("the twos random source must return integers from 0 to "
                                 f"{_U32} (get_random_u32), got {value!r}")
            return value
        return checked
    raise TypeError("rng must be None, an int seed, a random.Random or a function "
                    f"returning 32-bit integers, got {rng!r}")


class PowerOfTwoChoices(Scheduler):
    """Weighted random of two choices ("power of twos choice") --
    net/netfilter/ipvs/ip_vs_twos.c, ``ip_vs_twos_schedule()``.

    1. ``total`` = the sum of the weights of the servers with weight > 0 and no
       OVERLOAD flag (none: NULL); ``rweight1``, ``rweight2`` = two independent
       ``get_random_u32_below(total + 1)``, i.e. each in ``0 .. total`` *inclusive*;
    2. one walk over those servers in list order subtracts each weight from both; the
       first server where ``rweight1 <= 0`` is choice 1, the first where ``rweight2 <= 0``
       choice 2 (possibly the same server).  So a server is drawn with probability
       ``weight / (total + 1)``, except the first eligible one: ``(weight + 1) /
       (total + 1)`` (a draw of 0 lands on it too);
    3. choice 2 wins only if its load per weight is strictly lower:
       ``weight2 * overhead1 > weight1 * overhead2`` with ``overhead = active*256 +
       inactive`` (``ip_vs_dest_conn_overhead()``), in C ``int`` arithmetic, which
       wraps past 2**31 (the kernel is built with -fno-strict-overflow); equal loads
       keep choice 1.

    Randomness: the kernel draws from ``get_random_u32()`` (a CSPRNG); here ``rng`` is
    the source of those 32-bit words: None (the OS's generator: picks are random, as in
    the kernel), an int seed or a ``random.Random`` (reproducible), or a function
    returning u32s (tests script the exact words).  Two words are used per pick, more
    only when ``get_random_u32_below()`` rejects a draw (probability below
    ``total / 2**32``).  twos appeared in Linux 6.1 (Debian 12's 6.1 kernel leaves
    ``CONFIG_IP_VS_TWOS`` unset); 6.1 drew with ``prandom_u32_max()``, the same
    multiply-shift without that rejection step; later kernels use
    ``get_random_u32_below()``, modelled here.  No state, no hooks.
    """

    name = "twos"

    def __init__(self, rng=None):
        super().__init__()
        self.rng = rng
        self._random_u32 = _u32_source(rng)

    def _options(self):
        return {"rng": self.rng}

    def _schedule(self, servers, **_):
        eligible = [d for d in servers if not d.overloaded and d.weight > 0]
        if not eligible:
            return None
        total = sum(d.weight for d in eligible) + 1
        rweight1 = get_random_u32_below(total, self._random_u32)
        rweight2 = get_random_u32_below(total, self._random_u32)
        choice1 = choice2 = None
        weight1 = weight2 = -1
        overhead1 = overhead2 = 0
        for dest in eligible:
            rweight1 -= dest.weight
            rweight2 -= dest.weight
            if rweight1 <= 0 and weight1 == -1:
                choice1, weight1, overhead1 = dest, dest.weight, conn_overhead(dest)
            if rweight2 <= 0 and weight2 == -1:
                choice2, weight2, overhead2 = dest, dest.weight, conn_overhead(dest)
            if weight1 != -1 and weight2 != -1:
                break
        if _s32(weight2 * overhead1) > _s32(weight1 * overhead2):
            choice1 = choice2
        return choice1


# ---------------------------------------------------------------------------------------
# factory
# ---------------------------------------------------------------------------------------

_CLASSES = {
    cls.name: cls
    for cls in (RoundRobin, WeightedRoundRobin, LeastConnection, WeightedLeastConnection,
                ShortestExpectedDelay, NeverQueue, SourceHashing, DestinationHashing,
                LocalityBasedLeastConnection, LocalityBasedLeastConnectionReplication,
                WeightedFailover, WeightedOverflow, MaglevHashing, PowerOfTwoChoices)
}
assert tuple(_CLASSES) == ALGORITHMS


def make_scheduler(name, **options):
    """A new scheduler by its ipvsadm name (``-s``), e.g. ``make_scheduler("wlc")``.

    Options: ``sh`` takes ``fallback=`` (``sh-fallback``) and ``port=`` (``sh-port``);
    ``mh`` takes ``fallback=`` (``mh-fallback``) and ``port=`` (``mh-port``), and the
    build-time ``tab_index=`` (``CONFIG_IP_VS_MH_TAB_INDEX``, default 12),
    ``bits_per_long=`` (64 or 32) and ``hash1=``/``hash2=`` keys;
    ``lblc``/``lblcr`` take ``expiration=`` seconds (the ``lblc_expiration`` /
    ``lblcr_expiration`` sysctl, default 86400); ``twos`` takes ``rng=`` (an int seed, a
    ``random.Random`` or a function returning 32-bit integers; default: random).
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
