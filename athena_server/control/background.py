"""Ending a service's background work on close: its loop first (so it starts nothing new), then every task
it started, each awaited to its end. Schedules, workflows and the A2A dispatcher all stop this way."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any


async def stop_background(loop: asyncio.Task[Any] | None, tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel `loop` and wait for it, then cancel `tasks` (a snapshot is taken) and wait for each; what a
    task raises while it stops is its own business (it records its outcome), never the closer's."""
    if loop is not None:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    stopping = list(tasks)
    for task in stopping:
        task.cancel()
    for task in stopping:
        with contextlib.suppress(BaseException):
            await task
