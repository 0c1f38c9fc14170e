"""Delivers cancel requests to the runs this process executes.

Requests live in the store (any process may write one). This watcher polls the store for the runs it
holds, only while it holds some, and a request made through this process is delivered at once. Delivery
cancels the task running the provider; the executor then records the run as cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from functools import partial

from athena_server.storage import cancels
from athena_server.storage.store import Store

log = logging.getLogger(__name__)


@dataclass
class CancelHandle:
    run_id: str
    task: asyncio.Task[object]
    # Set when a cancel request stopped the run; None while it runs or when it stopped for another reason.
    reason: str | None = None
    requested: bool = False

    def cancel(self, reason: str | None) -> None:
        if self.requested:
            return
        self.requested = True
        self.reason = reason
        self.task.cancel()


class CancelWatcher:
    def __init__(self, store: Store, poll_seconds: float) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self._handles: dict[str, CancelHandle] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None

    def register(self, run_id: str, task: asyncio.Task[object]) -> CancelHandle:
        handle = CancelHandle(run_id, task)
        self._handles[run_id] = handle
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.create_task(self._poll(), name="athena-cancel-watcher")
        self._wake.set()
        return handle

    def unregister(self, run_id: str) -> None:
        self._handles.pop(run_id, None)

    def deliver(self, run_id: str, reason: str | None) -> bool:
        """Cancel a run of this process now (the request is already in the store)."""
        handle = self._handles.get(run_id)
        if handle is None:
            return False
        handle.cancel(reason)
        return True

    def cancel_all(self, reason: str) -> list[CancelHandle]:
        handles = list(self._handles.values())
        for handle in handles:
            handle.cancel(reason)
        return handles

    async def _poll(self) -> None:
        while True:
            if not self._handles:
                self._wake.clear()
                await self._wake.wait()
                continue
            ids = list(self._handles)
            try:
                found = await self.store.read(partial(cancels.for_runs, run_ids=ids))
            except Exception:  # the store is briefly unreachable: try again next round
                log.exception("cancel watcher: reading cancel requests failed")
                found = []
            for row in found:
                self.deliver(row.run_id, row.reason)
            await asyncio.sleep(self.poll_seconds)

    async def close(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
