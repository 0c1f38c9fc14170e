"""Firing schedules: claiming due slots, running them, the background ticker and the reaper's hook.

A tick at `at` fires every enabled schedule due at `at` once and moves it to its first slot after `at`
(see schedule_slots); the background ticker and `POST /schedules/tick` share `fire_due`, and each slot is
claimed by a conditional write, so any number of server processes fire each slot exactly once. A due
schedule whose previous run is still running has its slot skipped and logged as `already-running`.

Schedule runs are ordinary runs (same admission, session turn, run record and events) with the schedule
timeout rule. They belong to the server, not to the request that fired them: a caller leaving a tick or a
manual run does not stop its runs, and a process dying mid-run has its runs logged as failed by the reaper.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping

from sqlalchemy import Connection

from athena.v1 import runs_pb2
from athena_client.vocab import EventType, ScheduleRunStatus
from athena_server import otel
from athena_server.config import Settings
from athena_server.control.background import stop_background
from athena_server.control.runs import RunOptions, RunService
from athena_server.control.schedule_records import ABANDONED, cadence_of, log_row, record, skipped
from athena_server.errors import AthenaError, ErrorCode
from athena_server.storage import events
from athena_server.storage import runs as run_store
from athena_server.storage import schedules as store_
from athena_server.storage.schedules import LogRow, ScheduleRow
from athena_server.storage.store import Store
from athena_server.timefmt import iso, now_ms
from athena_server.tracing import new_trace_id, set_trace_id

log = logging.getLogger(__name__)

# athena_schedule_slots_total's outcome for a slot whose run started (a skipped one: its log status).
FIRED = "fired"
TICK_SPAN = "athena.schedule.tick"


class ScheduleFiring:
    def __init__(self, store: Store, settings: Settings, runs: RunService, owner_id: str) -> None:
        self.store = store
        self.settings = settings
        self.runs = runs
        self.owner_id = owner_id
        self._parallel = asyncio.Semaphore(max(1, settings.schedule_parallelism))
        self._tasks: set[asyncio.Task[LogRow]] = set()
        self._ticker: asyncio.Task[None] | None = None

    def provider(self, provider: str, model: str) -> tuple[str, str]:
        """Check the provider before any slot is claimed: an unknown one fails the request, not each run."""
        name = provider.strip() or self.settings.default_provider
        self.runs.providers.get(name)
        return name, model.strip() or self.settings.default_model

    async def fire_due(
        self, at: int, provider: str, model: str, trace: str
    ) -> tuple[int, list[asyncio.Future[LogRow]]]:
        """Claim every slot due at `at` in one transaction and start its run; returns the number of
        schedules and, in due order, the futures of this tick's results (a skipped slot's is resolved)."""

        def claim(conn: Connection) -> tuple[int, list[ScheduleRow | LogRow]]:
            started = now_ms()
            claimed: list[ScheduleRow | LogRow] = []
            for row in store_.due(conn, at):
                next_ms = cadence_of(row).next_slot(row.next_run_at_ms, at)
                if row.running:
                    if store_.advance(conn, row, next_ms, None, started):
                        claimed.append(skipped(conn, row, started, row.next_run_at_ms, trace))
                elif store_.advance(conn, row, next_ms, self.owner_id, started):
                    claimed.append(row)
            return store_.count(conn), claimed

        total, claimed = await self.store.write(claim)
        loop = asyncio.get_running_loop()
        fired: list[asyncio.Future[LogRow]] = []
        for item in claimed:
            if isinstance(item, LogRow):
                done: asyncio.Future[LogRow] = loop.create_future()
                done.set_result(item)
                fired.append(done)
                self.store.metrics.schedule_slots(ScheduleRunStatus.ALREADY_RUNNING).inc()
            else:
                fired.append(self.spawn(item, item.next_run_at_ms, provider, model, trace))
                self.store.metrics.schedule_slots(FIRED).inc()
        return total, fired

    async def tick_event(self, trace: str, payload: dict[str, object]) -> None:
        await self.store.write(
            lambda conn: events.append(conn, EventType.SCHEDULE_TICK_EXECUTED, trace_id=trace, payload=payload)
        )

    def spawn(self, row: ScheduleRow, slot: int | None, provider: str, model: str, trace: str) -> asyncio.Task[LogRow]:
        """Run a schedule this process has marked running, for `slot` (None: a manual run)."""
        task = asyncio.create_task(self._run(row, slot, provider, model, trace), name=f"athena-schedule-{row.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run(self, row: ScheduleRow, slot: int | None, provider: str, model: str, trace: str) -> LogRow:
        """One schedule run, recorded whatever its end: the schedule stops being running, the log row and
        `schedule.run.triggered` commit together."""
        run_id = str(uuid.uuid4())
        metadata: Mapping[str, str] = {**(row.metadata or {}), "scheduleId": row.id}
        if slot is not None:
            metadata = {**metadata, "scheduleSlot": iso(slot)}
        create = runs_pb2.CreateRunRequest(
            session_id=row.session_id, input=row.input, provider=provider, model=model, metadata=metadata
        )
        error: AthenaError | None = None
        stopping = False
        async with self._parallel:
            started = now_ms()
            try:
                await self.runs.create(
                    create, context="schedules.run", options=RunOptions(run_id=run_id, schedule=True)
                )
            except AthenaError as err:
                error = err
            except asyncio.CancelledError:
                error = AthenaError(ErrorCode.ERROR_CODE_RUN_CANCELLED, "Run cancelled: the server is stopping.")
                stopping = True
        finished = now_ms()

        def finish(conn: Connection) -> LogRow:
            values: dict[str, int] = {}
            if error is None:
                values["last_run_at_ms"] = finished
                if slot is None:
                    # A manual run that succeeded restarts the cadence from its end, as the original.
                    values["next_run_at_ms"] = cadence_of(row).first_after(finished)
            store_.finish(conn, row.id, **values)
            ran = run_store.get(conn, run_id) is not None
            status = ScheduleRunStatus.OK if error is None else ScheduleRunStatus.FAILED
            entry = log_row(row, status, started, finished, slot=slot, error=error, run_id=run_id if ran else None)
            return record(conn, row, entry, trace)

        entry = await asyncio.shield(self.store.write(finish))
        if stopping:
            raise asyncio.CancelledError
        return entry

    # ---- background ticker and crash recovery -------------------------------------------------------

    def start_ticker(self) -> None:
        if self.settings.schedule_tick_seconds > 0 and self._ticker is None:
            self._ticker = asyncio.create_task(self._tick_forever(), name="athena-schedule-ticker")

    async def _tick_forever(self) -> None:
        provider, model = self.settings.default_provider, self.settings.default_model
        while True:
            await asyncio.sleep(self.settings.schedule_tick_seconds)
            # Each tick is a trace of its own (its runs, its event, its log lines), in a span when tracing is on.
            trace = new_trace_id()
            set_trace_id(trace)
            try:
                if otel.ENABLED:
                    with otel.span(TICK_SPAN, athena_trace_id=trace):
                        await self._tick(provider, model, trace)
                else:
                    await self._tick(provider, model, trace)
            except Exception:
                log.exception("background schedule tick failed")

    async def _tick(self, provider: str, model: str, trace: str) -> None:
        at = now_ms()
        total, fired = await self.fire_due(at, provider, model, trace)
        if fired:
            payload = {"at": iso(at), "run": len(fired), "skipped": total - len(fired), "background": True}
            await self.tick_event(trace, payload)

    def release_owned(self, conn: Connection, dead_owner_ids: list[str], at_ms: int) -> None:
        """The reaper's hook: a run of a dead process is logged as failed and its schedule freed. The slot
        stays consumed (its run may have had effects); the next slot fires as usual."""
        for row, slot, since in store_.running_of(conn, dead_owner_ids):
            store_.finish(conn, row.id)
            lost = AthenaError(ErrorCode.ERROR_CODE_UNAVAILABLE, ABANDONED)
            record(
                conn,
                row,
                log_row(row, ScheduleRunStatus.FAILED, since or at_ms, at_ms, slot=slot, error=lost),
                "reaper",
            )

    def in_flight(self) -> list[asyncio.Task[LogRow]]:
        """Schedule runs this process fired and has not finished."""
        return list(self._tasks)

    async def close(self) -> None:
        """Stop ticking and end the schedule runs in flight (recorded as cancelled)."""
        await stop_background(self._ticker, self._tasks)
