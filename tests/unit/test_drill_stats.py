"""Statistics of repeated drill runs on known samples, and comparing two variants."""

import math

import pytest
from scipy.stats import binom

from redlab.drill.stats import compare, compare_measure, format_value, smallest_p, summarize


def runs_with(measures, expectations=None, variant="default"):
    """Run records carrying only what the statistics read: one per element of the lists
    in ``measures`` ({name: [value per run]}) and ``expectations`` ({name: [passed per
    run]}, None: the run did not evaluate it)."""
    n = len(next(iter(measures.values())))
    runs = []
    for i in range(n):
        checks = [dict(name=name, passed=passed[i], reason="%s: %s in run %d" % (
                       name, "met" if passed[i] else "missed", i + 1))
                  for name, passed in (expectations or {}).items() if passed[i] is not None]
        runs.append(dict(drill="vrrp-crash", variant=variant, run=i + 1,
                         measures={name: values[i] for name, values in measures.items()},
                         expectations=checks))
    return runs


def order_statistic_coverage(n, low_rank, high_rank):
    """P(x_(low) <= true median <= x_(high)) for n samples: P(low <= B < high), B ~ Bin(n, 1/2)."""
    return binom.cdf(high_rank - 1, n, 0.5) - binom.cdf(low_rank - 1, n, 0.5)


def test_median_p95_min_max_of_1_to_20():
    stats = summarize(runs_with({"time_to_recover": list(range(1, 21))})) \
        .measure("time_to_recover")
    assert (stats.n, stats.not_reached, stats.runs) == (20, 0, 20)
    assert stats.median == 10.5
    assert stats.p95 == pytest.approx(19.05)      # 1 + 0.95 * 19, linear interpolation
    assert (stats.min, stats.max) == (1, 20)


def test_median_ci_is_the_shortest_order_statistic_interval_with_95_percent():
    stats = summarize(runs_with({"t": list(range(20, 0, -1))})).measure("t")
    assert stats.ci_low <= stats.median <= stats.ci_high
    low, high = int(stats.ci_low), int(stats.ci_high)   # values 1..20 are their own ranks
    assert order_statistic_coverage(20, low, high) >= 0.95
    assert order_statistic_coverage(20, low + 1, high - 1) < 0.95
    assert (low, high) == (6, 15)


def test_ci_needs_six_runs_and_says_so():
    few = summarize(runs_with({"t": [3.1, 3.2, 3.3, 3.4, 3.5]})).measure("t")
    assert few.ci_low is None and few.ci_high is None
    assert "at least 6" in few.ci_note
    six = summarize(runs_with({"t": [3.1, 3.2, 3.3, 3.4, 3.5, 3.6]})).measure("t")
    assert (six.ci_low, six.ci_high, six.ci_note) == (3.1, 3.6, "")


def test_none_is_counted_as_not_reached_and_kept():
    values = [3.4, None, 3.6, None, 3.5, 3.3, 3.7, 3.8]
    stats = summarize(runs_with({"time_to_recover": values})).measure("time_to_recover")
    assert (stats.runs, stats.n, stats.not_reached) == (8, 6, 2)
    assert stats.median == pytest.approx(3.55)
    assert (stats.min, stats.max) == (3.3, 3.8)
    assert stats.values == values


def test_a_measure_never_reached_has_no_numbers():
    stats = summarize(runs_with({"time_to_recover": [None, None, None]})) \
        .measure("time_to_recover")
    assert (stats.n, stats.not_reached, stats.median, stats.ci_low) == (0, 3, None, None)
    assert stats.ci_note == "not reached in any run"


def test_measures_keep_the_engines_order():
    runs = runs_with({"time_to_detect": [1, 2], "time_to_recover": [2, 3],
                      "requests_lost": [5, 6]})
    assert [m.measure for m in summarize(runs).measures] == \
        ["time_to_detect", "time_to_recover", "requests_lost"]


def test_expectation_shares_and_flaky():
    summary = summarize(runs_with({"t": [1, 2, 3, 4]}, expectations={
        "back within 5 s": [True, True, True, True],
        "at most 8 lost": [True, False, True, True],
        "no split brain": [False, False, False, False],
        "arp moved": [True, None, True, True]}))
    assert summary.expectation("back within 5 s").status == "met"
    assert summary.expectation("back within 5 s").share == 1.0
    flaky = summary.expectation("at most 8 lost")
    assert (flaky.status, flaky.passed, flaky.runs, flaky.share) == ("flaky", 3, 4, 0.75)
    assert flaky.failures == [dict(run=2, reason="at most 8 lost: missed in run 2")]
    assert summary.expectation("no split brain").status == "failed"
    assert summary.expectation("no split brain").share == 0.0
    unevaluated = summary.expectation("arp moved")       # not checked is not met
    assert (unevaluated.status, unevaluated.evaluated, unevaluated.passed) == ("flaky", 3, 3)
    assert "not evaluated" in unevaluated.failures[0]["reason"]


def test_summarize_refuses_no_runs():
    with pytest.raises(ValueError, match="no runs"):
        summarize([])


def test_two_identical_variants_say_no_difference():
    values = dict(time_to_detect=[3.2, 3.3, 3.1, 3.25, 3.2, 3.3, 3.15, 3.2, 3.3, 3.1],
                  time_to_recover=[3.45, 3.5, 3.4, 3.5, 3.45, 3.55, 3.4, 3.5, 3.45, 3.5],
                  requests_lost=[7, 7, 7, 8, 7, 7, 7, 8, 7, 7])
    comparison = compare(runs_with(values, variant="default"), runs_with(values, variant="copy"))
    assert [m.measure for m in comparison.measures] == list(values)
    for m in comparison.measures:
        assert not m.differ
        assert m.p_value == pytest.approx(1.0)
        assert m.effect == 0
        assert "no difference found" in m.sentence
        assert "Mann-Whitney U" in m.sentence and "Mann-Whitney U" in m.test


def test_clearly_different_variants_differ_with_the_test_named():
    a = runs_with({"time_to_recover": [3.45, 3.5, 3.4, 3.5, 3.45, 3.55, 3.4, 3.5]})
    b = runs_with({"time_to_recover": [3.7, 3.65, 3.75, 3.7, 3.6, 3.8, 3.7, 3.65]},
                  variant="use_vmac")
    m = compare(a, b).measure("time_to_recover")
    assert m.differ and m.p_value < 0.01
    assert m.effect == pytest.approx(0.225)
    assert m.sentence.startswith("use_vmac recovers 0.23 s later (median 3.70 s vs 3.48 s)")
    assert m.sentence.endswith("Mann-Whitney U: they differ")
    assert "two-sided" in m.test


def test_the_p_value_is_the_exact_two_sided_mann_whitney_u():
    """All of A below all of B: p = 2 / C(14, 7), the probability of that order or its
    mirror among every way to split 14 ranks into two groups of 7 (scipy computes it
    exactly for samples this small and without ties)."""
    m = compare_measure("requests_lost", list(range(1, 8)), list(range(8, 15)))
    assert m.p_value == pytest.approx(2 / math.comb(14, 7))
    assert "B loses 7 more requests (median 11 requests vs 4 requests)" in m.sentence


def test_fewer_and_sooner_read_the_right_way_round():
    m = compare_measure("time_to_detect", [3.2] * 6 + [3.3] * 4, [0.4] * 5 + [0.5] * 5,
                        "advert_int 1", "advert_int 0.1")
    assert m.sentence.startswith("advert_int 0.1 detects 2.75 s sooner (median 0.45 s vs 3.20 s)")


def test_too_few_runs_say_they_cannot_show_a_difference():
    m = compare_measure("time_to_recover", [3.4, 3.5, 3.45], [9.0, 9.1, 9.2], "a", "b")
    assert smallest_p(3, 3) == pytest.approx(0.1)
    assert not m.differ
    assert "no difference found" in m.sentence
    assert "smallest possible p is 0.10" in m.sentence


def test_a_run_that_never_recovered_ranks_after_every_recovery():
    a = [3.5, 3.4, 3.45, 3.5, 3.5, 3.45]
    b = [None, None, None, 3.5, None, None]
    m = compare_measure("time_to_recover", a, b, "default", "use_vmac, no GARP reaction")
    assert m.differ
    assert (m.not_reached_a, m.not_reached_b, m.median_b, m.effect) == (0, 5, None, None)
    assert m.sentence.startswith("use_vmac, no GARP reaction recovers later (median never vs")
    assert m.sentence.endswith("not reached in 5 of 6 runs of use_vmac, no GARP reaction")


def test_variants_with_one_label_are_told_apart():
    runs = runs_with({"t": [1, 2, 3]})
    comparison = compare(runs, runs)
    assert (comparison.a, comparison.b) == ("default (A)", "default (B)")


def test_values_read_as_people_write_them():
    assert format_value("time_to_recover", 3.454) == "3.45 s"
    assert format_value("requests_lost", 7) == "7 requests"
    assert format_value("requests_lost", 1) == "1 request"
    assert format_value("time_to_recover", None) == "never"
    assert format_value("time_to_recover", math.inf) == "never"
