"""Probe: what a client saw, turned into a failover timeline.

:class:`Probe` runs :mod:`redlab.probe_agent` inside a client host: HTTP, TCP, ICMP or
DNS requests, on a sequential or a fixed schedule.  :func:`analyse` turns its samples and
the moment a fault was injected into a :class:`Timeline`:

- **time to detect**: fault -> the system noticed (an event: keepalived's backup
  entering MASTER, a health check marking a server down), when an event is given;
- **time to recover**: fault -> the first request of the run of good answers that
  lasts to the end of the probe (resolution: the probe interval);
- **requests lost**: requests sent at or after the fault that failed (on the fixed
  schedule, one request per interval whatever happens: lost x interval ~ the outage);
- **served before / after**: who answered before the fault and after recovery.
"""

import collections
from dataclasses import dataclass, field

from redlab.agent import HostAgent
from redlab.errors import ConfigError
from redlab.wait import wait_until


@dataclass
class Sample:
    seq: int
    t: float
    end: float
    ok: bool
    status: object = None
    server: object = None
    error: object = None
    body: str = ""

    @classmethod
    def from_json(cls, data):
        return cls(**{k: data.get(k) for k in
                      ("seq", "t", "end", "ok", "status", "server", "error", "body")})


@dataclass
class Timeline:
    fault_at: float
    samples: list = field(repr=False)
    served_before: object = None
    served_after: object = None
    requests_sent: int = 0          # at or after the fault
    requests_lost: int = 0
    first_failure_at: object = None
    recovered_at: object = None
    detected_at: object = None
    errors: dict = field(default_factory=dict)

    @property
    def recovered(self):
        return self.recovered_at is not None

    @property
    def time_to_recover(self):
        return None if self.recovered_at is None else max(0.0, self.recovered_at - self.fault_at)

    @property
    def time_to_detect(self):
        return None if self.detected_at is None else self.detected_at - self.fault_at

    @property
    def outage(self):
        if self.first_failure_at is None:
            return 0.0
        end = self.recovered_at if self.recovered_at is not None else self.samples[-1].end
        return end - self.first_failure_at

    def as_dict(self):
        return dict(fault_at=self.fault_at, served_before=self.served_before,
                    served_after=self.served_after, requests_sent=self.requests_sent,
                    requests_lost=self.requests_lost, recovered=self.recovered,
                    time_to_detect=self.time_to_detect, time_to_recover=self.time_to_recover,
                    outage=self.outage, errors=self.errors)

    def summary(self):
        def secs(value):
            return "%.2f s" % value if value is not None else "n/a"
        lines = [
            "served before the fault : %s" % (self.served_before or "nobody"),
            "served after recovery   : %s" % (self.served_after or "nobody (not recovered)"),
            "time to detect          : %s" % secs(self.time_to_detect),
            "time to recover         : %s" % (secs(self.time_to_recover) if self.recovered
                                             else "not recovered while probing"),
            "requests lost           : %d of %d sent after the fault" % (self.requests_lost,
                                                                         self.requests_sent),
        ]
        if self.errors:
            lines.append("client errors           : " + ", ".join(
                "%s x%d" % (k, v) for k, v in sorted(self.errors.items())))
        return "\n".join(lines)


def analyse(samples, fault_at, detected_at=None):
    """Build a :class:`Timeline` from samples (any order) and the fault time."""
    samples = sorted(samples, key=lambda s: s.t)
    before = [s for s in samples if s.t < fault_at]
    after = [s for s in samples if s.t >= fault_at]
    timeline = Timeline(fault_at=fault_at, samples=samples, detected_at=detected_at)
    good_before = [s for s in before if s.ok]
    timeline.served_before = good_before[-1].server if good_before else None
    timeline.requests_sent = len(after)
    failures = [s for s in after if not s.ok]
    timeline.requests_lost = len(failures)
    timeline.errors = dict(collections.Counter(_kind(s) for s in failures))
    if failures:
        timeline.first_failure_at = failures[0].t
    if not after or not after[-1].ok:
        return timeline            # never good again while probing (or nothing sent)
    last_failure_t = failures[-1].t if failures else None
    recovered = [s for s in after if s.ok and (last_failure_t is None or s.t > last_failure_t)]
    first = recovered[0]
    timeline.recovered_at = first.t if failures else fault_at
    servers = collections.Counter(s.server for s in recovered)
    timeline.served_after = servers.most_common(1)[0][0]
    return timeline


def streak(samples, since=0.0, ok=True):
    """How many answers in a row at the end of ``samples`` (those sent at or after
    ``since``) were good (``ok``) or failed (``ok=False``)."""
    run = 0
    for s in samples:
        if s.t >= since:
            run = run + 1 if s.ok == ok else 0
    return run


def failure_kind(status, error):
    """What a user got instead of a good answer, in a few words: ``HTTP 500`` (an HTTP
    status is an int), else the error's kind (``TimeoutError``, ``ConnectionRefusedError``,
    ``HostUnreachable``, ``NXDOMAIN``, ``NoAnswer``, ``ProbeOverload``), else a non-HTTP
    status (a DNS rcode)."""
    if isinstance(status, int) and not isinstance(status, bool):
        return "HTTP %s" % status
    if error:
        return error.split(":")[0]
    return str(status) if status is not None else "error"


def _kind(sample):
    return failure_kind(sample.status, sample.error)


class Probe(HostAgent):
    """A bounded request loop from inside ``host``; samples in the run folder.

    ``Probe(host, url)`` is the HTTP probe on the sequential schedule (the next request
    leaves ``interval`` after the previous one ended), as labs and scenarios were tuned
    for.  Other kinds name their ``target`` (``tcp``: host and port, ``icmp``: host,
    ``dns``: server, query and qtype, addresses already resolved), and
    ``schedule="fixed"`` sends one request every ``interval`` whatever the earlier ones
    do (see :mod:`redlab.probe_agent`); :meth:`from_spec` builds one from a drill file's
    probe.
    """

    module = "redlab.probe_agent"
    what = "probe"
    TARGETS = {"http": ("url",), "tcp": ("host", "port"), "icmp": ("host",),
               "dns": ("server", "query", "qtype")}

    def __init__(self, host, url=None, name="probe", interval=0.05, timeout=0.5,
                 max_seconds=60.0, max_requests=None, kind="http", target=None,
                 schedule="sequential"):
        super().__init__(host, host.run.file(host.name, "%s.jsonl" % name))
        self.kind = kind
        self.target = dict(target or {})
        if url is not None:
            self.target["url"] = url
        if kind == "dns":
            self.target.setdefault("qtype", "A")
        self._check_target()
        self.url = self.target.get("url")
        self.interval = interval
        self.timeout = timeout
        self.schedule = schedule
        self.max_seconds = max_seconds
        self.max_requests = max_requests or int(max_seconds / interval) + 10

    def _check_target(self):
        if self.kind not in self.TARGETS:
            raise ConfigError("probe kind %r is unknown; use one of %s"
                              % (self.kind, ", ".join(self.TARGETS)))
        fields = self.TARGETS[self.kind]
        missing = [k for k in fields if self.target.get(k) is None]
        if missing:
            raise ConfigError("a %s probe needs %s; give target=dict(%s)"
                              % (self.kind, " and ".join(missing),
                                 ", ".join("%s=..." % k for k in fields)))

    @classmethod
    def from_spec(cls, host, spec, name, max_seconds, resolve):
        """The probe of one checked drill probe ``spec`` (``type``, its target fields,
        ``interval``, ``timeout``) from ``host``, on the fixed schedule; ``resolve(name
        or IPv4) -> IPv4`` turns a target ``host`` / ``server`` of the topology into its
        address (an ``url`` is used as written)."""
        kind = spec["type"]
        target = {key: spec[key] for key in cls.TARGETS[kind] if key in spec}
        for key in ("host", "server"):
            if key in target:
                target[key] = resolve(target[key])
        return cls(host, name=name, interval=spec["interval"], timeout=spec["timeout"],
                   max_seconds=max_seconds, kind=kind, target=target, schedule="fixed")

    def describe(self):
        """The target in words, for messages: ``tcp 10.0.0.11:80``, ``dns @10.0.0.53
        www.lab.example A``."""
        t = self.target
        return {"http": lambda: t["url"],
                "tcp": lambda: "tcp %s:%s" % (t["host"], t["port"]),
                "icmp": lambda: "icmp %s" % t["host"],
                "dns": lambda: "dns @%s %s %s" % (t["server"], t["query"], t["qtype"]),
                }[self.kind]()

    def start(self):
        if self.out.exists():
            self.out.unlink()
        args = ["--kind", self.kind]
        for key, value in sorted(self.target.items()):
            args += ["--" + key, value]
        return self.spawn(args + ["--out", self.out, "--interval", self.interval,
                                  "--timeout", self.timeout, "--schedule", self.schedule,
                                  "--max-requests", self.max_requests,
                                  "--max-seconds", self.max_seconds])

    def samples(self):
        """The requests so far, in the order they were sent.  On the fixed schedule a
        line is written when its request ends, so a request that waits for its timeout
        is written after later ones: while the agent runs, the list stops before the
        first request still in flight (a streak of good answers is then never one
        with a pending failure inside); once it has exited, every request is there."""
        samples = sorted((Sample.from_json(record) for record in self.lines()),
                         key=lambda s: s.seq)
        if self.proc is not None and self.proc.poll() is None:
            for index, sample in enumerate(samples):
                if sample.seq != index:
                    return samples[:index]
        return samples

    def wait_good(self, count=5, timeout=15.0, since=0.0):
        """Wait until ``count`` consecutive good answers were seen after ``since``."""
        def probe():
            self.check_alive(failed_only=True)
            recent = [s for s in self.samples() if s.t >= since]
            run = streak(recent)
            last = recent[-1] if recent else None
            return run >= count, "streak %d, last %s" % (run, last)
        return wait_until(probe, timeout, "%d good answers in a row from %s"
                          % (count, self.describe()))

    def stop(self):
        super().stop(self.timeout + 2)
        return self.samples()
