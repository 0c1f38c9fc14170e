"""`wait_until` for async tests: the same poll under a deadline that only bounds a hang, sleeping with
`asyncio.sleep` so the event loop (and what the test waits for, running on it) keeps going."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

from tests.support.waiting import DEADLINE_S

T = TypeVar("T")


async def wait_until_async(
    check: Callable[[], T | None], what: str, deadline_s: float = DEADLINE_S, interval: float = 0.05
) -> T:
    """Call `check` until it returns something truthy, and return that (see `tests.support.waiting.wait_until`)."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {deadline_s:g}s waiting for {what}")
        await asyncio.sleep(interval)


async def finishes(task: asyncio.Future[T], what: str, deadline_s: float = DEADLINE_S) -> None:
    """Wait for `task` to end (however it ends); the deadline only bounds a hang."""
    done, _ = await asyncio.wait({task}, timeout=deadline_s)
    assert task in done, f"timed out after {deadline_s:g}s waiting for {what}"
