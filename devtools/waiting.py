"""Waiting on a condition, never on the clock.

A test or scenario that needs some state (a port open, a version AVAILABLE, a log line) polls for it. The
deadline is a hang guard only: generous, and reaching it is a failure that names what never happened - it
never decides a pass on a busy machine. Durations are recorded by bench/ and reliability/, not asserted.

    poll_until(check, timeout)          -> bool   (the caller decides what a timeout means)
    wait_until(check, what, timeout)    -> None   (raises ``WaitTimeout``, an AssertionError, for tests)
    await async_wait_until(check, what) -> None   (the same on an asyncio event loop)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["HANG_GUARD_S", "WaitTimeout", "async_wait_until", "poll_until", "wait_until"]

# Default deadline: long enough for a loaded 2-core machine, short enough that a hang fails the run.
HANG_GUARD_S = 60.0


class WaitTimeout(AssertionError):
    """A condition never became true before the hang guard: the message says which."""


def poll_until(check: Callable[[], object], timeout: float = HANG_GUARD_S, interval: float = 0.05) -> bool:
    """Call ``check()`` until it returns something truthy (True) or ``timeout`` seconds pass (False).
    An exception from ``check`` counts as "not yet" (a server still starting refuses connections)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return True
        except Exception:
            pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def wait_until(
    check: Callable[[], object], what: str, timeout: float = HANG_GUARD_S, interval: float = 0.05
) -> None:
    """Block until ``check()`` is truthy; ``WaitTimeout`` naming ``what`` after ``timeout`` seconds."""
    if not poll_until(check, timeout, interval):
        raise WaitTimeout(f"gave up after {timeout:.0f} s waiting for {what}")


async def async_wait_until(
    check: Callable[[], object],
    what: str,
    timeout: float = HANG_GUARD_S,  # noqa: ASYNC109 - a hang guard that names what never happened
    interval: float = 0.005,
) -> None:
    """``wait_until`` for code on an event loop: yields to the loop between checks (exceptions propagate)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"gave up after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(interval)
