"""What a drill run saw, as plain data, and the judgement on it: each expectation judged
only inside the window of the timeline entry it follows, and only if that entry happened
(no expectation passes because it ran before its fault); the run's measures.

An expectation is a check of the labs' model (:mod:`redlab.checks`): its judge returns
``ok``/``fail`` with one name (:func:`expectation_name`), and the verdicts that recur
are the labs' reusable checks -- a duration within its bound (``within``), a count at most
its bound (``at_most``), a VIP held by exactly one host (``held_by_one``), a client's ARP
entry moved (``arp_moved``).  The record keeps each as ``CheckResult.record()``.

Nothing here touches a network: :class:`Observations` is built by the engine from its
recorders, and the unit tests build it by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from redlab import checks
from redlab.checks import at_most, fail, ok, within
from redlab.probe import Sample, analyse

NOT_HAPPENED = "its fault never happened"


def expectation_kind(item):
    from redlab.drill.schema import EXPECTATIONS
    return next(key for key in EXPECTATIONS if key in item)



@dataclass
class Observations:
    """Everything expectations and measures are judged on.

    ``marks``: timeline id -> when it happened (None: it never did); ``undone``: fault id
    -> when it was undone; ``entries``: timeline id -> its entry; ``samples``: probe ->
    record samples (``t``, ``ok``, ``served_by``, ``error``...); ``holders``: VIP ->
    ``[(t, frozenset of hosts)]``, the VIP's holders from t on; ``arp``: ``(client, vip)``
    -> ``[(t, mac or None)]``; ``macs``: host -> MAC; ``masters``: ``[(t, host)]`` of
    VRRP MASTER transitions; ``began``: step id -> when its undo began (its mark is when
    the undo returned; its effect can be seen from when it began); ``health``:
    ``[(t, server, "up"|"down")]`` of the load balancer's health checks; ``ips``: host ->
    IPv4 address; ``end``: when recording stopped.
    """
    marks: dict
    entries: dict
    samples: dict
    probe_interval: dict
    end: float
    undone: dict = field(default_factory=dict)
    began: dict = field(default_factory=dict)
    holders: dict = field(default_factory=dict)
    arp: dict = field(default_factory=dict)
    macs: dict = field(default_factory=dict)
    masters: list = field(default_factory=list)
    health: list = field(default_factory=list)
    ips: dict = field(default_factory=dict)

    def window(self, entry_id):
        """From an entry to its undo (a fault) or to the end of the recording."""
        start = self.marks.get(entry_id)
        undone = self.undone.get(entry_id)
        return start, undone if undone is not None else self.end

    def first_fault(self):
        """The id of the first fault that happened (the one the measures are about)."""
        faults = [(t, i) for i, t in self.marks.items()
                  if t is not None and "fault" in self.entries.get(i, {})]
        return min(faults)[1] if faults else None


def as_samples(records):
    return [Sample(seq=n, t=s["t"], end=s["t"] + (s.get("latency") or 0.0), ok=s["ok"],
                   server=s.get("served_by"), error=s.get("error"))
            for n, s in enumerate(records)]


def _between(samples, start, end):
    return [s for s in samples if start <= s["t"] < end]


def _secs(value):
    return "%.2f s" % value


def _bound(value):
    return "%g s" % value


def _failed(reason, bound=None):
    """A failed expectation with nothing measured."""
    return fail(reason, value=None, bound=bound)


def _within(took, item, key, what, never=None):
    """The expectation's time against its bound ``item[key]``: the labs' ``within``."""
    return within(None if took is None else round(took, 3), item[key], what,
                  "the drill's %s" % key, never=never)


def expectation_name(item):
    """A name that reads as a sentence and is the same in every variant and run."""
    after = "after %s" % item["after"] if "after" in item else \
        "between %s and %s" % tuple(item["during"])
    if "recover_within" in item:
        return "service back within %s %s (probe %s)" % (_bound(item["recover_within"]), after,
                                                          item["probe"])
    if "max_lost" in item:
        return "at most %d requests lost %s (probe %s)" % (item["max_lost"], after,
                                                           item["probe"])
    if "vip_held_by_one" in item:
        v = item["vip_held_by_one"]
        return "VIP %s held by exactly one of %s within %s %s" % (
            v["vip"], ", ".join(v["hosts"]), _bound(item["within"]), after)
    if "arp_moved" in item:
        a = item["arp_moved"]
        return "%s's ARP entry for %s moved to %s within %s %s" % (
            a["client"], a["vip"], a["to"], _bound(item["within"]), after)
    if "never_failed" in item:
        return "probe %s never failed %s" % (item["never_failed"], after)
    if "served_by" in item:
        return "probe %s served by %s within %s %s" % (item["probe"], item["served_by"],
                                                     _bound(item["within"]), after)
    if "not_served_by" in item:
        return "probe %s no longer served by %s within %s %s" % (
            item["probe"], item["not_served_by"], _bound(item["within"]), after)
    if "fails_within" in item:
        return "probe %s noticed within %s %s" % (item["probe"], _bound(item["fails_within"]),
                                                  after)
    return "%s %s" % (expectation_kind(item), after)


def evaluate(expectations, obs):
    """Each expectation judged in its window; one whose entry never happened fails."""
    return [evaluate_one(item, obs) for item in expectations]


def evaluate_one(item, obs):
    """One expectation's result, as the record keeps it (``CheckResult.record()``)."""
    result = _judge(item, obs)
    result.name = expectation_name(item)
    return result.record()


def _judge(item, obs):
    if "during" in item:
        first, last = item["during"]
        if obs.marks.get(first) is None:
            return _failed(_never(obs, first))
        if obs.marks.get(last) is None:
            return _failed("timeline entry %s never happened, so the window has no end"
                           % last)
        # until TO began: an undo (undrain, a daemon started again) can take effect
        # before it returns, and what it lets happen then is not the window's
        start, end = obs.marks[first], obs.began.get(last)
        end = obs.marks[last] if end is None else end
    else:
        if obs.marks.get(item["after"]) is None:
            return _failed(_never(obs, item["after"]))
        start, end = obs.window(item["after"])
    return JUDGES[expectation_kind(item)](item, obs, start, end)


def _never(obs, entry_id):
    if "fault" in obs.entries.get(entry_id, {"fault": True}):
        return NOT_HAPPENED
    return "its step (%s) never happened" % entry_id


def _probe_window(item, bound, obs, start, end):
    """The probe's requests in the window and their timeline, or (None, a failed result)
    when the probe sent nothing there."""
    samples = _between(obs.samples.get(item["probe"], []), start, end)
    if not samples:
        return None, _failed("probe %s sent no request after the fault" % item["probe"], bound)
    return samples, analyse(as_samples(samples), start)


def recovered_within(timeline, item, key, waited, what="service back after"):
    """The service back within ``item[key]`` (``timeline``: the probe's, from the fault;
    ``waited``: how long the window lasted).  Game days score their restore with it."""
    return _within(timeline.time_to_recover, item, key, what,
                   never="the service was still down %s after the fault" % _secs(waited))


def lost_at_most(timeline, bound, sent):
    """At most ``bound`` requests lost; a service that never came back fails whatever the
    count (its loss had no end).  Game days score their losses with it."""
    if not timeline.recovered:
        return fail("the service never came back: %d of %d requests lost before the run "
                    "ended (bound %d)" % (timeline.requests_lost, sent, bound),
                    value=timeline.requests_lost, bound=bound)
    return at_most(timeline.requests_lost, bound, "requests lost", of=sent)


def _recover_within(item, obs, start, end):
    samples, timeline = _probe_window(item, item["recover_within"], obs, start, end)
    if samples is None:
        return timeline
    return recovered_within(timeline, item, "recover_within", end - start)


def _max_lost(item, obs, start, end):
    samples, timeline = _probe_window(item, item["max_lost"], obs, start, end)
    if samples is None:
        return timeline
    return lost_at_most(timeline, item["max_lost"], len(samples))


def holders_at(changes, t):
    """The holders in force at ``t`` from ``[(t, frozenset)]`` (sorted)."""
    current = frozenset()
    for when, holders in changes:
        if when > t:
            break
        current = holders
    return current


def _vip_held_by_one(item, obs, start, end):
    spec, bound = item["vip_held_by_one"], item["within"]
    hosts = set(spec["hosts"])
    changes = [(t, h & hosts) for t, h in obs.holders.get(spec["vip"], [])]
    # the holder sets in the window: the one in force at the fault, then each change
    states = [(start, holders_at(changes, start))] + [(t, h) for t, h in changes
                                                        if start < t <= end]
    stable = None           # since when exactly one host held it, to the window's end
    for t, holders in states:
        if len(holders) == 1:
            stable = t if stable is None else stable
        else:
            stable = None
    final = checks.held_by_one(sorted(states[-1][1]), spec["vip"])
    if stable is None:          # the labs' held_by_one says who held it at the end
        return _failed("at the end of the window: " + final.reason, bound)
    return _within(stable - start, item, "within", "%s held by %s alone from"
                   % (spec["vip"], final.measured["holders"][0]))


def mac_at(entries, t):
    mac = None
    for when, now in entries:
        if when > t:
            break
        mac = now if now is not None else mac
    return mac


def _arp_moved(item, obs, start, end):
    spec, bound = item["arp_moved"], item["within"]
    target = obs.macs.get(spec["to"])
    entries = sorted(obs.arp.get((spec["client"], spec["vip"]), []), key=lambda e: e[0])
    before = mac_at(entries, start)
    if before == target:
        return _failed("%s's entry for %s already pointed to %s (%s) before the fault: "
                       "nothing to move" % (spec["client"], spec["vip"], spec["to"], target),
                       bound)
    moved = next((t for t, mac in entries if start <= t <= end and mac == target), None)
    if moved is None:           # the labs' arp_moved says what the entry held at the end
        return _failed(checks.arp_moved(mac_at(entries, end), target, spec["client"],
                                        spec["vip"], owner=spec["to"]).reason, bound)
    return _within(moved - start, item, "within", "%s's ARP entry for %s moved from %s to "
                   "%s (%s) after" % (spec["client"], spec["vip"], before or "nothing",
                                      target, spec["to"]))


def _never_failed(item, obs, start, end):
    samples = _between(obs.samples.get(item["never_failed"], []), start, end)
    if not samples:
        return _failed("probe %s sent no request in the window" % item["never_failed"], 0)
    # a request still in flight when the window closed is judged by what closed it (seen:
    # one sent 0.1 ms before a hang began timed out because of the hang)
    failed = [s for s in samples if not s["ok"] and s["t"] + (s.get("latency") or 0.0) <= end]
    if failed:
        return fail("%d of %d requests failed, the first at t=%.2f s (%s)"
                    % (len(failed), len(samples), failed[0]["t"],
                       failed[0].get("error") or "failed"), value=len(failed), bound=0)
    return ok("all %d requests answered" % len(samples), value=0, bound=0)


def detected_at(obs, start, end):
    """When the system noticed the fault: the first VRRP backup entering MASTER or the
    first real server its health check marked down, whichever came first (None: it
    never noticed)."""
    seen = [t for t, _host in obs.masters if start <= t <= end]
    seen += [t for t, _server, state in obs.health if state == "down" and start <= t <= end]
    return min(seen) if seen else None


def names_host(sample, host, ip):
    """Whether ``host`` answered: an HTTP probe's ``X-Served-By`` names it, or a DNS
    probe's answers (addresses joined by ",") include its address."""
    server = sample.get("served_by") or ""
    return server == host or (ip is not None and ip in server.split(","))


def _good_answers(item, bound, obs, start, end):
    """The probe's good answers in the window, or ([], a failed result) when it got none."""
    good = [s for s in _between(obs.samples.get(item["probe"], []), start, end) if s["ok"]]
    if not good:
        return good, _failed("probe %s got no good answer after the entry" % item["probe"],
                             bound)
    return good, None


def _served_by(item, obs, start, end):
    """Every good answer from some time on (at most ``within`` after the entry) to the
    window's end came from the host; failures in between are another expectation's."""
    host, bound = item["served_by"], item["within"]
    good, failed = _good_answers(item, bound, obs, start, end)
    if failed:
        return failed
    ip = obs.ips.get(host)
    others = [s for s in good if not names_host(s, host, ip)]
    if others and others[-1] is good[-1]:
        return _failed("the last answer came from %s, not %s"
                       % (others[-1].get("served_by") or "nobody", host), bound)
    since = next(s for s in good if not others or s["t"] > others[-1]["t"])["t"]
    tail = sum(1 for s in good if s["t"] >= since)
    return _within(max(0.0, since - start), item, "within",
                   "all %d answers came from %s from" % (tail, host))


def _not_served_by(item, obs, start, end):
    """No good answer named the host from some time on (at most ``within`` after the
    entry) to the window's end."""
    host, bound = item["not_served_by"], item["within"]
    good, failed = _good_answers(item, bound, obs, start, end)
    if failed:
        return failed
    ip = obs.ips.get(host)
    named = [s for s in good if names_host(s, host, ip)]
    if named and named[-1] is good[-1]:
        return _failed("the last answer still named %s (%s)"
                       % (host, named[-1].get("served_by")), bound)
    after = [s for s in good if not named or s["t"] > named[-1]["t"]]
    took = max(0.0, after[0]["t"] - start) if named else 0.0
    return _within(took, item, "within", "none of %d answers named %s from"
                   % (len(after), host))


def _fails_within(item, obs, start, end):
    """The probe saw the fault: a request sent in the window failed, and its answer (or
    timeout) came at most ``fails_within`` seconds after the entry."""
    failed = [s for s in _between(obs.samples.get(item["probe"], []), start, end)
              if not s["ok"]]
    if not failed:
        return _within(None, item, "fails_within", "the probe's first failure",
                       never="probe %s never failed in the window (%s)"
                       % (item["probe"], _secs(end - start)))
    first = failed[0]
    return _within(first["t"] + (first.get("latency") or 0.0) - start, item, "fails_within",
                   "first failure (%s) after" % (first.get("error") or "failed"))


JUDGES = {"recover_within": _recover_within, "max_lost": _max_lost,
          "served_by": _served_by, "not_served_by": _not_served_by,
          "vip_held_by_one": _vip_held_by_one, "arp_moved": _arp_moved,
          "never_failed": _never_failed, "fails_within": _fails_within}


def measure(obs, drill):
    """The run's measures and intervals, about its first fault and first probe."""
    probe = drill["probes"][0]["name"]
    fault = obs.first_fault()
    empty = dict(time_to_detect=None, time_to_recover=None, requests_lost=None,
                 loss_convergence=None)
    if fault is None:
        return empty, []
    start, end = obs.window(fault)
    later = [t for i, t in obs.marks.items() if t is not None and t > start
             and "fault" in obs.entries.get(i, {})]
    end = min([end] + later)        # a later fault's failures are not this one's
    samples = _between(obs.samples.get(probe, []), start, end)
    detected = detected_at(obs, start, end)
    timeline = analyse(as_samples(samples), start, detected_at=detected) if samples else None
    lost = timeline.requests_lost if timeline else None
    recover = timeline.time_to_recover if timeline else None
    values = dict(
        time_to_detect=_round(detected - start) if detected is not None else None,
        time_to_recover=_round(recover),
        requests_lost=lost,
        loss_convergence=_round(lost * obs.probe_interval[probe]) if lost is not None else None)
    intervals = []
    if detected is not None:
        intervals.append(dict(name="detect", start=start, end=detected))
    if recover is not None:
        intervals.append(dict(name="recover", start=start, end=start + recover))
    return values, intervals


def _round(value):
    return None if value is None else round(value, 3)


def holder_sets(changes):
    """``[(t, host, held)]`` -> ``[(t, frozenset of holders from t on)]``, time order."""
    held = set()
    result = []
    for t, host, now in sorted(changes, key=lambda c: c[0]):
        if now:
            held.add(host)
        else:
            held.discard(host)
        if result and result[-1][0] == t:
            result[-1] = (t, frozenset(held))
        else:
            result.append((t, frozenset(held)))
    return result
