"""Statistics of repeated drill runs, and whether two variants differ.

A drill repeated N times gives N run records (``redlab.drill``); each carries its
``measures`` (``time_to_detect``, ``time_to_recover``, ``requests_lost``, ...; ``None``
when the run never got there) and its ``expectations`` (passed or not).

- :func:`summarize` gives, per measure, n, median, p95, min and max of the runs that
  reached it, the number that did not (reported, never dropped silently), and a 95 %
  confidence interval of the median: the order-statistic interval
  (``scipy.stats.quantile_test``: distribution-free, exact from the binomial law, no
  random resampling, so a report never changes between two renders).  It needs at least
  6 runs; with fewer it is reported as missing, with that reason.  Per expectation it
  gives the share of runs that met it; one met in some runs but not all is **flaky**.
- :func:`compare` tells, per measure, whether two variants differ: Mann-Whitney U,
  two-sided (``scipy.stats.mannwhitneyu``; rank-based, so it assumes no distribution,
  which suits failover times with their few discrete values).  A run that never reached
  a measure ranks above every run that did (it never recovered: later than any
  recovery), so the medians a comparison gives count those runs too and can differ from
  the table's medians of the runs that reached the measure.  It says so in one plain
  sentence with the effect (difference of medians).
"""

import math
from dataclasses import asdict, dataclass, field

import numpy
from scipy import stats as scipy_stats


CI_LEVEL = 0.95
CI_MIN_RUNS = 6         # the smallest n whose [min, max] covers the median with >= 95 %
CI_METHOD = ("order-statistic 95 % confidence interval of the median (distribution-free, "
             "exact binomial; scipy.stats.quantile_test)")
P95_METHOD = "95th percentile, linear interpolation between order statistics (numpy)"
TEST_NAME = "Mann-Whitney U"
TEST_METHOD = ("Mann-Whitney U, two-sided (scipy.stats.mannwhitneyu); a run that did not "
               "reach a measure ranks above every run that did")
ALPHA = 0.05


@dataclass(frozen=True)
class Wording:
    """How a measure reads in a sentence: "use_vmac *recovers* 0.20 s *later*",
    "use_vmac *loses* 3 *more* requests" (``pattern`` puts the words in order)."""
    label: str
    unit: str
    verb: str
    more: str
    less: str
    pattern: str = "{verb} {amount} {direction}"


MEASURES = {
    "time_to_detect": Wording("time to detect", "s", "detects", "later", "sooner"),
    "time_to_recover": Wording("time to recover", "s", "recovers", "later", "sooner"),
    "requests_lost": Wording("requests lost", "requests", "loses", "more", "fewer",
                             "{verb} {number} {direction} {unit}"),
    "loss_convergence": Wording("loss-derived convergence time (RFC 6413)", "s",
                                "converges", "later", "sooner"),
}


def wording(measure):
    """The wording of a known measure, or a plain one made from its name."""
    if measure in MEASURES:
        return MEASURES[measure]
    label = measure.replace("_", " ")
    unit = "s" if measure.startswith("time") or measure.endswith("_s") else ""
    return Wording(label, unit, "has %s" % label, "higher", "lower")


def format_value(measure, value):
    """A measure's value for people: "3.45 s", "7 requests", "never" (not reached)."""
    if value is None or (isinstance(value, float) and math.isinf(value)):
        return "never"
    unit = wording(measure).unit
    if unit == "s":
        return "%.2f s" % value
    text = "%.4g" % value
    return "%s %s" % (text, _plural(unit, value)) if unit else text


def _plural(unit, value):
    """"requests", or "request" for exactly one."""
    return unit[:-1] if value == 1 and unit.endswith("s") and len(unit) > 1 else unit


def format_p(p_value):
    if p_value is None:
        return "p = n/a"
    if p_value < 0.001:
        return "p < 0.001"
    return "p = %.3f" % p_value if p_value < 0.01 else "p = %.2f" % p_value


# -- one variant: N runs -------------------------------------------------------------

@dataclass
class MeasureStats:
    """One measure over N runs; ``values`` keeps every run's value (None: not reached)."""
    measure: str
    runs: int
    n: int                      # runs that reached it
    not_reached: int
    median: float | None
    p95: float | None
    min: float | None
    max: float | None
    ci_low: float | None
    ci_high: float | None
    ci_note: str                # why there is no interval, or ""
    values: list = field(default_factory=list)


@dataclass
class ExpectationShare:
    """One expectation over N runs: met in all ("met"), none ("failed") or some ("flaky")."""
    name: str
    runs: int
    evaluated: int              # runs that evaluated it (a run that stopped early may not)
    passed: int
    share: float
    status: str
    failures: list = field(default_factory=list)     # [{"run": 3, "reason": "..."}]


@dataclass
class Summary:
    drill: str
    variant: str
    runs: int
    measures: list
    expectations: list
    methods: dict = field(default_factory=lambda: dict(ci=CI_METHOD, p95=P95_METHOD))

    def measure(self, name):
        return next(m for m in self.measures if m.measure == name)

    def expectation(self, name):
        return next(e for e in self.expectations if e.name == name)

    def to_dict(self):
        return asdict(self)


def summarize(runs):
    """Statistics of one variant's runs (a list of run records)."""
    if not runs:
        raise ValueError("no runs to summarize: pass the list of run records of one variant")
    names = _ordered_keys(run.get("measures") or {} for run in runs)
    return Summary(
        drill=runs[0].get("drill", ""), variant=runs[0].get("variant", ""), runs=len(runs),
        measures=[measure_stats(name, [(run.get("measures") or {}).get(name) for run in runs])
                  for name in names],
        expectations=_expectation_shares(runs))


def measure_stats(measure, values):
    """n, median, p95, min, max and the median's CI of the runs that reached the measure."""
    reached = numpy.array([v for v in values if v is not None], dtype=float)
    n = len(reached)
    if n == 0:
        return MeasureStats(measure, len(values), 0, len(values), None, None, None, None,
                            None, None, "not reached in any run", list(values))
    low, high, note = median_ci(reached)
    return MeasureStats(
        measure, len(values), n, len(values) - n, float(numpy.median(reached)),
        float(numpy.percentile(reached, 95)), float(reached.min()), float(reached.max()),
        low, high, note, list(values))


def median_ci(values, level=CI_LEVEL):
    """The order-statistic CI of the median: ``(low, high, "")``, or ``(None, None, why)``."""
    if len(values) < CI_MIN_RUNS:
        return None, None, "needs at least %d runs that reached it (has %d)" % (
            CI_MIN_RUNS, len(values))
    ci = scipy_stats.quantile_test(values, q=float(numpy.median(values)), p=0.5) \
        .confidence_interval(level)
    return float(ci.low), float(ci.high), ""


def _expectation_shares(runs):
    names = _ordered_keys({e["name"]: e for e in run.get("expectations") or []} for run in runs)
    shares = []
    for name in names:
        results = [(run.get("run", i + 1), _find(run, name)) for i, run in enumerate(runs)]
        passed = sum(1 for _, e in results if e is not None and e.get("passed"))
        evaluated = sum(1 for _, e in results if e is not None)
        failures = [dict(run=number, reason=e.get("reason", "failed") if e else
                         "not evaluated (the run ended before this expectation was checked)")
                    for number, e in results if e is None or not e.get("passed")]
        status = "met" if passed == len(runs) else "failed" if passed == 0 else "flaky"
        shares.append(ExpectationShare(name, len(runs), evaluated, passed,
                                       passed / len(runs), status, failures))
    return shares


def _find(run, name):
    return next((e for e in run.get("expectations") or [] if e.get("name") == name), None)


def _ordered_keys(dicts):
    """Keys of several dicts in order of first appearance (measures keep the engine's order)."""
    seen = {}
    for d in dicts:
        for key in d:
            seen.setdefault(key, None)
    return list(seen)


# -- two variants --------------------------------------------------------------------

@dataclass
class MeasureComparison:
    measure: str
    a: str
    b: str
    n_a: int
    n_b: int
    not_reached_a: int
    not_reached_b: int
    median_a: float | None      # None: more than half of the runs never reached it
    median_b: float | None
    effect: float | None        # median_b - median_a (None when a median is "never")
    p_value: float | None
    differ: bool
    test: str
    sentence: str


@dataclass
class Comparison:
    a: str
    b: str
    alpha: float
    method: str
    measures: list

    def measure(self, name):
        return next(m for m in self.measures if m.measure == name)

    def to_dict(self):
        return asdict(self)


def compare(a_runs, b_runs, alpha=ALPHA, labels=None):
    """Per measure, whether variant B differs from variant A (Mann-Whitney U, two-sided).

    ``labels`` defaults to the runs' ``variant`` fields ("A"/"B" are added when both
    variants carry the same label, so a sentence never compares a name with itself).
    """
    a, b = labels or (_label(a_runs, "A"), _label(b_runs, "B"))
    if a == b:
        a, b = "%s (A)" % a, "%s (B)" % b
    names = _ordered_keys(run.get("measures") or {} for run in list(a_runs) + list(b_runs))
    return Comparison(a, b, alpha, TEST_METHOD, [
        compare_measure(name, [(r.get("measures") or {}).get(name) for r in a_runs],
                        [(r.get("measures") or {}).get(name) for r in b_runs], a, b, alpha)
        for name in names])


def compare_measure(measure, a_values, b_values, a="A", b="B", alpha=ALPHA):
    """One measure of two variants; ``None`` values (not reached) rank above all others."""
    xa = numpy.array([math.inf if v is None else v for v in a_values], dtype=float)
    xb = numpy.array([math.inf if v is None else v for v in b_values], dtype=float)
    words = wording(measure)
    result = dict(measure=measure, a=a, b=b, n_a=len(xa), n_b=len(xb),
                  not_reached_a=int(numpy.isinf(xa).sum()),
                  not_reached_b=int(numpy.isinf(xb).sum()), test=TEST_METHOD)
    if len(xa) == 0 or len(xb) == 0:
        missing = a if len(xa) == 0 else b
        return MeasureComparison(
            **result, median_a=None, median_b=None, effect=None, p_value=None, differ=False,
            sentence="%s: cannot compare, %s has no runs" % (words.label, missing))
    med_a, med_b = float(numpy.median(xa)), float(numpy.median(xb))
    p_value = float(scipy_stats.mannwhitneyu(xa, xb, alternative="two-sided").pvalue)
    if math.isnan(p_value):     # every run of both never reached it: nothing to rank
        p_value = 1.0
    differ = p_value < alpha
    effect = med_b - med_a if math.isfinite(med_a) and math.isfinite(med_b) else None
    sentence = _sentence(measure, a, b, med_a, med_b, effect, p_value, differ, alpha,
                         result["not_reached_a"], result["not_reached_b"], len(xa), len(xb))
    return MeasureComparison(**result, median_a=_finite(med_a), median_b=_finite(med_b),
                             effect=effect, p_value=p_value, differ=differ, sentence=sentence)


def smallest_p(n_a, n_b):
    """The smallest two-sided p the exact Mann-Whitney U test can give for these sizes:
    with 3 and 3 runs it is 0.10, so no difference can ever be found at 0.05."""
    return min(1.0, 2.0 / math.comb(n_a + n_b, n_a))


def _sentence(measure, a, b, med_a, med_b, effect, p_value, differ, alpha,
              never_a, never_b, n_a, n_b):
    words = wording(measure)
    medians = "median %s vs %s" % (format_value(measure, med_b), format_value(measure, med_a))
    if differ and med_a == med_b:
        text = "%s and %s differ in %s though their medians are equal (%s), %s, %s: they " \
               "differ" % (b, a, words.label, format_value(measure, med_a), format_p(p_value),
                           TEST_NAME)
    elif differ:
        direction = words.more if med_b > med_a else words.less
        if effect is None:      # one median is "never": no amount to give
            phrase = "%s %s" % (words.verb, direction)
        else:
            phrase = words.pattern.format(
                verb=words.verb, direction=direction, number="%.4g" % abs(effect),
                unit=_plural(words.unit, abs(effect)), amount=format_value(measure, abs(effect)))
        text = "%s %s (%s), %s, %s: they differ" % (
            b, phrase, medians, format_p(p_value), TEST_NAME)
    else:
        text = "%s: no difference found between %s and %s (%s), %s, %s" % (
            words.label, b, a, medians, format_p(p_value), TEST_NAME)
        if smallest_p(n_a, n_b) >= alpha:
            text += "; %d and %d runs cannot show any difference at %g (the smallest " \
                    "possible p is %.2f): repeat the drill more" % (
                        n_b, n_a, alpha, smallest_p(n_a, n_b))
    never = ["%d of %d runs of %s" % (k, n, label)
             for k, n, label in ((never_b, n_b, b), (never_a, n_a, a)) if k]
    if never:
        text += "; not reached in %s" % " and ".join(never)
    return text


def _label(runs, default):
    return str(runs[0].get("variant") or default) if runs else default


def _finite(value):
    return value if math.isfinite(value) else None
