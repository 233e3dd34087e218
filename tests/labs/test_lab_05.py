"""Lab 05 load balancer: an HTTP check passes; a TCP check misses the 500 and the hang."""

from redlab import labs

LAB = labs.find("05")


def test_reference_passes(grade):
    results = grade(LAB, LAB.reference)
    assert not [r.line() for r in results.values() if not r.passed]


def test_a_tcp_check_is_graded_failing_with_the_reason(grade, run_folder):
    results = grade(LAB, LAB.folder / "broken" / "tcp-check")
    r500 = results["catches HTTP 500"]
    assert not r500.passed and "a tcp check cannot see an HTTP error" in r500.reason
    hang = results["catches a hang"]
    assert not hang.passed and "still accepts TCP" in hang.reason
    assert results["service file is valid"].passed
