"""Probe: what a client saw, turned into a failover timeline.

:class:`Probe` runs :mod:`redlab.probe_agent` inside a client host.  :func:`analyse`
turns its samples and the moment a fault was injected into a :class:`Timeline`:

- **time to detect**: fault -> the system noticed (an event: keepalived's backup
  entering MASTER, a health check marking a server down), when an event is given;
- **time to recover**: fault -> the first request of the run of good answers that
  lasts to the end of the probe (resolution: the probe interval);
- **requests lost**: requests sent at or after the fault that failed;
- **served before / after**: who answered before the fault and after recovery.
"""

import collections
from dataclasses import dataclass, field

from redlab.agent import HostAgent
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


def failure_kind(status, error):
    """What a user got instead of the page: ``HTTP 500``, or the error's type
    (``TimeoutError``, ``ConnectionRefusedError``)."""
    if status is not None:
        return "HTTP %s" % status
    return (error or "error").split(":")[0]


def _kind(sample):
    return failure_kind(sample.status, sample.error)


class Probe(HostAgent):
    """A bounded request loop from inside ``host`` to ``url``; samples in the run folder."""

    module = "redlab.probe_agent"
    what = "probe"

    def __init__(self, host, url, name="probe", interval=0.05, timeout=0.5, max_seconds=60.0,
                 max_requests=None):
        super().__init__(host, host.run.file(host.name, "%s.jsonl" % name))
        self.url = url
        self.interval = interval
        self.timeout = timeout
        self.max_seconds = max_seconds
        self.max_requests = max_requests or int(max_seconds / interval) + 10

    def start(self):
        if self.out.exists():
            self.out.unlink()
        return self.spawn(["--url", self.url, "--out", self.out, "--interval", self.interval,
                           "--timeout", self.timeout, "--max-requests", self.max_requests,
                           "--max-seconds", self.max_seconds])

    def samples(self):
        return [Sample.from_json(record) for record in self.lines()]

    def wait_good(self, count=5, timeout=15.0, since=0.0):
        """Wait until ``count`` consecutive good answers were seen after ``since``."""
        def probe():
            self.check_alive(failed_only=True)
            recent = [s for s in self.samples() if s.t >= since]
            streak = 0
            for s in recent:
                streak = streak + 1 if s.ok else 0
            last = recent[-1] if recent else None
            return streak >= count, "streak %d, last %s" % (streak, last)
        return wait_until(probe, timeout, "%d good answers in a row from %s" % (count, self.url))

    def stop(self):
        super().stop(self.timeout + 2)
        return self.samples()
