"""The retention sweep: every `ATHENA_RETENTION_SWEEP_SECONDS` (0: never), delete what is older than the
configured ages (storage/retention.py says exactly what) in batches of at most `ATHENA_RETENTION_BATCH_ROWS`
rows, one transaction each.

Why batches: a SQLite store has one writer, so one large DELETE would hold every run's writes behind it.
A batch is awaited before the next is queued, and the sweep then rests as long as the batch took, so the
writes that arrived meanwhile commit in between and the sweep takes at most half the writer's time: a run
waits for at most one batch. Nothing is added to the run path.

Across replicas: the sweep takes a lease in the store (`retention_state`), renewed by every batch; a
process that finds it held skips its turn, and when a sweep ends the lease is kept until the next sweep is
due, so a fleet sweeps once per interval. The deletes are idempotent besides, so a lease lost to a long
pause costs nothing but repeated work.

A sweep that deleted anything appends `events.pruned` with the counts per table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from sqlalchemy import Connection

from athena_server.config import Settings
from athena_server.storage import retention
from athena_server.storage.retention import Batch
from athena_server.storage.store import Store
from athena_server.timefmt import now_ms
from athena_server.tracing import new_trace_id, set_trace_id

log = logging.getLogger(__name__)

_DAY_MS = 86_400_000
# How long a sweeper holds the lease without renewing it (every batch renews it).
LEASE_MS = 60_000
# The longest rest between two batches (a rest is as long as the batch before it took).
MAX_REST_S = 1.0


@dataclass(frozen=True)
class Cutoffs:
    """Records older than these instants (ms) are deleted."""

    history_ms: int
    events_ms: int
    # Runs: never one that finished today (UTC), which the policy's daily cost budget still counts.
    runs_ms: int

    @classmethod
    def at(cls, now: int, history_days: float, event_days: float | None) -> Cutoffs:
        history = now - int(history_days * _DAY_MS)
        events = now - int((history_days if event_days is None else event_days) * _DAY_MS)
        today = int(
            datetime.fromtimestamp(now / 1000, UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
            * 1000
        )
        return cls(history_ms=history, events_ms=events, runs_ms=min(history, today))


@dataclass
class SweepReport:
    """What one sweep deleted, per table (storage/retention.TABLES), in how many batches."""

    deleted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(retention.TABLES, 0))
    batches: int = 0
    # The `events.pruned` event's id, when the sweep deleted anything.
    event_seq: int | None = None

    def add(self, batch: Batch) -> None:
        self.batches += 1
        for table, n in batch.deleted.items():
            self.deleted[table] += n


class RetentionSweep:
    def __init__(self, store: Store, settings: Settings, owner_id: str, clock: Callable[[], int] = now_ms) -> None:
        self.store = store
        self.settings = settings
        self.owner_id = owner_id
        # Milliseconds since the epoch: the ages, the lease and the event's time all read this clock.
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Sweep now and then every interval, in the background (not when the interval is 0)."""
        if self.settings.retention_sweep_seconds > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="athena-retention")

    async def _loop(self) -> None:
        while True:
            try:
                report = await self.sweep()
                if report is not None and report.event_seq is not None:
                    log.info("retention sweep deleted %s in %d batch(es)", _counts(report), report.batches)
            except Exception:
                log.exception("retention sweep failed")
            await asyncio.sleep(self.settings.retention_sweep_seconds)

    async def sweep(self) -> SweepReport | None:
        """One sweep, batches until nothing old is left; None when another process holds the lease (or took
        it over during the sweep)."""
        at = self.clock()
        trace = new_trace_id()
        set_trace_id(trace)
        if not await self.store.write(partial(retention.claim, owner=self.owner_id, now_ms=at, until_ms=at + LEASE_MS)):
            return None
        s = self.settings
        cut = Cutoffs.at(at, s.run_history_retention_days, s.event_retention_days)
        budget = max(1, s.retention_batch_rows)
        report = SweepReport()
        steps: list[Callable[[Connection], Batch]] = [
            partial(retention.prune_runs, before_ms=cut.runs_ms, budget=budget),
            partial(retention.prune_sessions, before_ms=cut.history_ms, budget=budget),
            partial(retention.prune_schedule_logs, before_ms=cut.history_ms, budget=budget),
            partial(retention.prune_rejections, before_ms=cut.history_ms, budget=budget),
            partial(retention.prune_workflow_runs, before_ms=cut.history_ms, budget=budget),
        ]
        for step in steps:
            while True:
                batch = await self._batch(step)
                if batch is None:
                    return None
                report.add(batch)
                if not batch.more or not batch.rows:  # nothing deleted: more would find the same rows
                    break
        after = 0
        while True:
            event_batch = await self._batch(
                partial(retention.prune_events, before_ms=cut.events_ms, budget=budget, after=after)
            )
            if event_batch is None:
                return None
            assert isinstance(event_batch, retention.EventBatch)
            report.add(event_batch)
            after = event_batch.after
            if not event_batch.more:
                break
        end = self.clock()
        next_at = end + int(s.retention_sweep_seconds * 1000)
        report.event_seq = await self.store.write(
            partial(
                retention.finish,
                owner=self.owner_id,
                now_ms=end,
                next_at_ms=next_at,
                deleted=report.deleted,
                trace_id=trace,
            )
        )
        return report

    async def _batch(self, step: Callable[[Connection], Batch]) -> Batch | None:
        """One batch in its own transaction, under the renewed lease (None: the lease is lost)."""
        owner, clock = self.owner_id, self.clock

        def unit(conn: Connection) -> Batch | None:
            if not retention.renew(conn, owner, clock() + LEASE_MS):
                return None
            return step(conn)

        started = time.perf_counter()
        batch = await self.store.write(unit)
        # Rest as long as the batch took: the sweep holds the writer at most half the time, so the writes
        # that queued behind a batch commit before the next one instead of after it.
        await asyncio.sleep(min(time.perf_counter() - started, MAX_REST_S))
        return batch

    async def close(self) -> None:
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _counts(report: SweepReport) -> str:
    return ", ".join(f"{n} {table}" for table, n in report.deleted.items() if n) or "nothing"
