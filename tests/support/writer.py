"""Running units as one SQLite write group, for tests of what units of a group share."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Connection

from athena_server.storage.store import Store


async def one_group(store: Store, units: list[Callable[[Connection], Any]]) -> list[Any]:
    """Run `units` as one group of the SQLite writer: it is held in a unit of its own until all are queued
    behind it. Each unit's result, or the exception it raised."""
    queued = threading.Event()

    def hold(_conn: Connection) -> None:
        queued.wait(10)

    held = store.write(hold)
    futures: list[Awaitable[Any]] = [store.write(u) for u in units]
    queued.set()
    await held
    return await asyncio.gather(*futures, return_exceptions=True)
