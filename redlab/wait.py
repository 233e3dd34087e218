"""Waiting for a condition with a deadline, never a fixed sleep.

``wait_until`` polls a probe that returns ``(ok, seen)``; when the deadline passes
it raises :class:`WaitTimeout` saying what was expected and what was last seen
(Mininet ``waitConnected``, Faucet ``wait_until_matching_flow``, netlab ``validate``).
"""

import os
import time

from redlab.errors import WaitTimeout


def startup(seconds):
    """A start-up deadline (a daemon ready, a switch connected), times
    ``REDLAB_STARTUP_SCALE`` (default 1): on an emulated machine (the stock-kernel guest of
    ``scripts/ipvs-vm`` runs under qemu's TCG, about ten times slower) things start
    slower, and the condition is still waited for, never assumed.  Only start-up waits
    scale: a bound a lab or a test measures against does not."""
    try:
        scale = float(os.environ.get("REDLAB_STARTUP_SCALE", "1"))
    except ValueError:
        scale = 1.0
    return seconds * max(1.0, scale)


def wait_until(probe, timeout, expected, interval=0.05, clock=time.monotonic, sleep=time.sleep):
    """Call ``probe()`` until it returns a true ``ok``; return its ``seen`` value.

    probe: callable returning ``(ok, seen)`` or a plain truthy/falsy value.
    timeout: seconds before giving up.
    expected: words for the error message ("web2 to hold the VIP").
    """
    deadline = clock() + timeout
    seen = None
    while True:
        result = probe()
        ok, seen = result if isinstance(result, tuple) else (result, result)
        if ok:
            return seen
        if clock() >= deadline:
            raise WaitTimeout(
                "waited %.1fs for %s; last saw: %s" % (timeout, expected, _short(seen)))
        sleep(interval)


def _short(value, limit=400):
    text = repr(value) if not isinstance(value, str) else value
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + "..."
