"""redlab.probe.analyse: samples built by hand, one request every 0.1 s, fault at t=10."""

import random

import pytest

from redlab.probe import Sample, analyse

FAULT = 10.0


def samples(pattern, start=9.0, interval=0.1, good="web1", after="web2"):
    """One sample per character: ``.`` good, ``5`` HTTP 500, ``t`` timeout, ``r`` refused.

    Good answers before the fault come from ``good``, later ones from ``after``.
    """
    result = []
    for seq, char in enumerate(pattern):
        t = round(start + seq * interval, 6)
        ok = char == "."
        result.append(Sample(
            seq=seq, t=t, end=t + 0.01, ok=ok,
            status=500 if char == "5" else (200 if ok else None),
            server=(good if t < FAULT else after) if ok or char == "5" else None,
            error={"t": "TimeoutError: timed out",
                   "r": "ConnectionRefusedError: [Errno 111] Connection refused"}.get(char)))
    return result


# 10 good before the fault (t=9.0..9.9), then from t=10.0: 5 timeouts, 2 good, 3 timeouts,
# then good to the end: the last failure is at t=10.9, recovery at t=11.0
FLAPPING = "." * 10 + "ttttt..ttt" + "." * 10


def test_recovery_is_the_first_good_request_after_the_last_failure():
    timeline = analyse(samples(FLAPPING), FAULT)
    assert timeline.recovered
    assert timeline.time_to_recover == pytest.approx(1.0)


def test_requests_lost_counts_only_failures_at_or_after_the_fault():
    timeline = analyse(samples("..tt......" + "ttttt..ttt" + "." * 10), FAULT)
    assert timeline.requests_lost == 8
    assert timeline.requests_sent == 20


def test_served_before_and_after():
    timeline = analyse(samples(FLAPPING), FAULT)
    assert timeline.served_before == "web1"
    assert timeline.served_after == "web2"


def test_outage_runs_from_first_failure_to_recovery():
    timeline = analyse(samples(FLAPPING), FAULT)
    assert timeline.first_failure_at == pytest.approx(10.0)
    assert timeline.outage == pytest.approx(1.0)


def test_no_failure_after_the_fault_means_zero_recovery_and_nothing_lost():
    timeline = analyse(samples("." * 20, after="web1"), FAULT)
    assert timeline.time_to_recover == 0
    assert timeline.requests_lost == 0
    assert timeline.outage == 0
    assert timeline.served_after == "web1"


def test_last_sample_failing_is_not_recovered():
    timeline = analyse(samples("." * 10 + "..ttt....t"), FAULT)
    assert not timeline.recovered
    assert timeline.time_to_recover is None
    assert timeline.served_after is None
    assert "not recovered" in timeline.summary()
    assert timeline.outage == pytest.approx(10.9 + 0.01 - 10.2)


def test_time_to_detect_comes_from_the_detection_event():
    timeline = analyse(samples(FLAPPING), FAULT, detected_at=13.25)
    assert timeline.time_to_detect == pytest.approx(3.25)
    assert "3.25 s" in timeline.summary()
    assert analyse(samples(FLAPPING), FAULT).time_to_detect is None


def test_errors_are_counted_by_kind():
    timeline = analyse(samples("." * 10 + "55ttr....."), FAULT)
    assert timeline.errors == {"HTTP 500": 2, "TimeoutError": 2, "ConnectionRefusedError": 1}
    assert "HTTP 500 x2" in timeline.summary()


def test_samples_out_of_order_give_the_same_timeline():
    shuffled = samples(FLAPPING)
    random.Random(4).shuffle(shuffled)
    assert analyse(shuffled, FAULT).as_dict() == analyse(samples(FLAPPING), FAULT).as_dict()


def test_summary_reports_the_measurements():
    summary = analyse(samples(FLAPPING), FAULT).summary()
    assert "time to recover         : 1.00 s" in summary
    assert "requests lost           : 8 of 20 sent after the fault" in summary
    assert "served before the fault : web1" in summary
