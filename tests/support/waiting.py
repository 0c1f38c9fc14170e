"""The one way a test waits: poll a condition until it holds, under a deadline that only bounds a hang.

Tests never assert how long something took (durations are measured in `bench/`), and never sleep to let
something happen: they wait for the event, status or file that says it happened."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Long enough that a slow, loaded 2-core machine never trips it; short enough that a hang fails the test.
DEADLINE_S = 60.0


def wait_until(check: Callable[[], T | None], what: str, timeout: float = DEADLINE_S, interval: float = 0.05) -> T:
    """Call `check` until it returns something truthy, and return that. `what` names the condition in the
    failure message; an exception from `check` is not swallowed (a broken probe should fail loudly)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
