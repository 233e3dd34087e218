"""redlab.wait.wait_until with a fake clock: no real time passes."""

import pytest

from redlab.errors import RedlabError, WaitTimeout
from redlab.wait import wait_until


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock():
    return FakeClock()


def answers(*values):
    """A probe returning the given values one after another."""
    values = iter(values)
    return lambda: next(values)


def test_returns_the_seen_value_once_ok(clock):
    probe = answers((False, "BACKUP"), (False, "BACKUP"), (True, "MASTER"))
    seen = wait_until(probe, 5, "web2 to be master", interval=0.5, clock=clock,
                      sleep=clock.sleep)
    assert seen == "MASTER"
    assert clock.sleeps == [0.5, 0.5]


def test_returns_at_once_without_sleeping_when_already_true(clock):
    assert wait_until(answers((True, 3)), 5, "x", clock=clock, sleep=clock.sleep) == 3
    assert clock.sleeps == []


def test_accepts_plain_bool_probes(clock):
    assert wait_until(answers(False, 0, "", True), 5, "x", interval=1, clock=clock,
                      sleep=clock.sleep) is True
    assert len(clock.sleeps) == 3


def test_timeout_says_what_was_expected_and_last_seen(clock):
    seen = iter(range(100))
    with pytest.raises(WaitTimeout) as info:
        wait_until(lambda: (False, "state BACKUP #%d" % next(seen)), 2,
                   "web2 to hold the VIP", interval=0.5, clock=clock, sleep=clock.sleep)
    message = str(info.value)
    assert "web2 to hold the VIP" in message
    assert "state BACKUP #4" in message     # polled at t = 0, .5, 1, 1.5, 2
    assert "2.0s" in message
    assert clock.now == pytest.approx(1002.0)


def test_timeout_is_an_assertion_error_and_a_redlab_error(clock):
    with pytest.raises(AssertionError) as info:
        wait_until(lambda: False, 1, "never", clock=clock, sleep=clock.sleep)
    assert isinstance(info.value, WaitTimeout)
    assert isinstance(info.value, RedlabError)


def test_long_seen_values_are_shortened(clock):
    with pytest.raises(WaitTimeout) as info:
        wait_until(lambda: (False, "x" * 5000), 1, "never", clock=clock, sleep=clock.sleep)
    assert len(str(info.value)) < 500
    assert str(info.value).endswith("...")


def test_only_start_up_deadlines_scale_on_a_slow_machine(monkeypatch):
    from redlab.wait import startup
    monkeypatch.delenv("REDLAB_STARTUP_SCALE", raising=False)
    assert startup(20) == 20
    monkeypatch.setenv("REDLAB_STARTUP_SCALE", "6")
    assert startup(20) == 120
    monkeypatch.setenv("REDLAB_STARTUP_SCALE", "0.1")       # never shorter
    assert startup(20) == 20
    monkeypatch.setenv("REDLAB_STARTUP_SCALE", "fast")      # nonsense: as if unset
    assert startup(20) == 20
