"""Wakes this process's streams when a transaction that appended events commits.

Streams still poll (for commits made by other processes on the same database), so a missed wake-up
only delays delivery, never loses an event: the database is the source of truth, the bus a hint.
A reader takes a ticket *before* it queries, so a commit that lands between its query and its wait
still wakes it.
"""

from __future__ import annotations

import asyncio
import contextlib


class CommitBus:
    def __init__(self) -> None:
        self._waiter: asyncio.Future[None] | None = None

    def ticket(self) -> asyncio.Future[None]:
        if self._waiter is None or self._waiter.done():
            self._waiter = asyncio.get_running_loop().create_future()
        return self._waiter

    def notify(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @staticmethod
    async def wait(ticket: asyncio.Future[None], seconds: float) -> None:
        """Return once the ticket's commit happened, or after `seconds`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(ticket), seconds)
