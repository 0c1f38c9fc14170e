"""Schedules: interval or cron schedules that start runs, fired by ticks.

A tick at `at` fires every enabled schedule due at `at` once and moves it to its first slot after `at`
(see `schedule_slots`); the background ticker and `POST /schedules/tick` share that code, and the slot
is claimed by a conditional write, so any number of server processes fire each slot exactly once. A due
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

from athena.v1 import runs_pb2, schedules_pb2
from athena_client.contract import enum_by_json
from athena_server import cursors, validation
from athena_server.config import Settings
from athena_server.control import pages
from athena_server.control.background import stop_background
from athena_server.control.run_specs import clean_metadata
from athena_server.control.runs import RunOptions, RunService
from athena_server.control.schedule_slots import Cadence, parse_cron
from athena_server.engine.context import check_input
from athena_server.errors import AthenaError, ErrorCode, config_error, not_found
from athena_server.storage import events
from athena_server.storage import runs as run_store
from athena_server.storage import schedules as store_
from athena_server.storage.schedules import LogRow, ScheduleRow
from athena_server.storage.store import Store
from athena_server.timefmt import iso, now_ms
from athena_server.tracing import trace_id

log = logging.getLogger(__name__)

_STATUS = enum_by_json(schedules_pb2.ScheduleRunStatus.DESCRIPTOR)
_KIND = "schedules"
ALREADY_RUNNING = "The previous run of this schedule is still running; this slot was skipped."
ABANDONED = "The server process running this schedule stopped; the run was abandoned."


def schedule_message(row: ScheduleRow) -> schedules_pb2.ScheduledTask:
    task = schedules_pb2.ScheduledTask(
        schema_version=1,
        id=row.id,
        session_id=row.session_id,
        input=row.input,
        every_minutes=row.every_minutes or 0,
        enabled=row.enabled,
        running=row.running,
        created_at=iso(row.created_at_ms),
        updated_at=iso(row.updated_at_ms),
        next_run_at=iso(row.next_run_at_ms),
        metadata=row.metadata or {},
    )
    if row.last_run_at_ms is not None:
        task.last_run_at = iso(row.last_run_at_ms)
    if row.cron is not None:
        task.cron = row.cron
    return task


def _optional(message: schedules_pb2.ScheduleRunResult | schedules_pb2.ScheduleRunLog, row: LogRow) -> None:
    if row.error is not None:
        message.error = row.error
    if row.error_code is not None:
        message.error_code = row.error_code
    if row.run_id is not None:
        message.run_id = row.run_id
    if row.slot_ms is not None:
        message.slot_at = iso(row.slot_ms)


def result_message(row: LogRow) -> schedules_pb2.ScheduleRunResult:
    result = schedules_pb2.ScheduleRunResult(
        id=row.schedule_id,
        session_id=row.session_id,
        status=schedules_pb2.ScheduleRunStatus.ValueType(_STATUS[row.status]),
        started_at=iso(row.started_at_ms),
        finished_at=iso(row.finished_at_ms),
    )
    _optional(result, row)
    return result


def log_message(row: LogRow) -> schedules_pb2.ScheduleRunLog:
    entry = schedules_pb2.ScheduleRunLog(
        id=row.id,
        schedule_id=row.schedule_id,
        session_id=row.session_id,
        status=schedules_pb2.ScheduleRunStatus.ValueType(_STATUS[row.status]),
        started_at=iso(row.started_at_ms),
        finished_at=iso(row.finished_at_ms),
    )
    _optional(entry, row)
    return entry


def cadence_of(row: ScheduleRow) -> Cadence:
    return Cadence(every_minutes=row.every_minutes) if row.cron is None else Cadence(cron=row.cron)


def schedule_id(value: str, context: str) -> str:
    value = value.strip()
    if not value:
        raise config_error(f"{context}.id must be a non-empty string.")
    if not validation.SESSION_ID_PATTERN.match(value):
        raise config_error(f"{context}.id must match {validation.SESSION_ID_PATTERN.pattern}. Received: {value}.")
    return value


def _log_row(
    row: ScheduleRow,
    status: str,
    started: int,
    finished: int,
    *,
    slot: int | None,
    error: AthenaError | None = None,
    message: str | None = None,
    run_id: str | None = None,
) -> LogRow:
    return LogRow(
        0,
        store_.new_log_id(),
        row.id,
        row.session_id,
        slot,
        started,
        finished,
        status,
        error.message if error is not None else message,
        error.code_name if error is not None else None,
        run_id,
    )


class ScheduleService:
    def __init__(self, store: Store, settings: Settings, runs: RunService, owner_id: str) -> None:
        self.store = store
        self.settings = settings
        self.runs = runs
        self.owner_id = owner_id
        self._parallel = asyncio.Semaphore(max(1, settings.schedule_parallelism))
        self._tasks: set[asyncio.Task[LogRow]] = set()
        self._ticker: asyncio.Task[None] | None = None

    # ---- definitions --------------------------------------------------------------------------------

    async def upsert(
        self, req: schedules_pb2.CreateScheduleRequest | schedules_pb2.UpdateScheduleRequest, context: str
    ) -> schedules_pb2.ScheduledTask:
        sid = schedule_id(req.id, context)
        session_id = validation.session_id(req.session_id, context)
        text = req.input.strip()
        if not text:
            raise config_error(f"{context}.input must be a non-empty string.")
        check_input(text)  # a schedule whose every run would be refused is not stored
        cron = req.cron if req.HasField("cron") else None
        every = req.every_minutes if req.HasField("every_minutes") else None
        if cron is not None and every is not None:
            raise config_error(f"{context} takes either everyMinutes or cron, not both.")
        if cron is not None:
            cadence = Cadence(cron=parse_cron(cron, context))
        elif every is None or every <= 0:
            raise config_error(f"{context}.everyMinutes must be a positive integer.")
        else:
            cadence = Cadence(every_minutes=every)
        metadata = clean_metadata(req.metadata, context) or None
        start_now = req.start_now if req.HasField("start_now") else False
        trace = trace_id()

        def unit(conn: Connection) -> ScheduleRow:
            at = now_ms()
            existing = store_.get(conn, sid)
            enabled = req.enabled if req.HasField("enabled") else (existing.enabled if existing else True)
            row = ScheduleRow(
                id=sid,
                session_id=session_id,
                input=text,
                every_minutes=cadence.every_minutes,
                cron=cadence.cron,
                metadata=metadata,
                enabled=enabled,
                running=existing.running if existing else False,
                created_at_ms=existing.created_at_ms if existing else at,
                updated_at_ms=at,
                next_run_at_ms=at if start_now else cadence.first_after(at),
                last_run_at_ms=existing.last_run_at_ms if existing else None,
            )
            store_.upsert(conn, row)
            events.append(
                conn,
                "schedule.upserted",
                trace_id=trace,
                session_id=session_id,
                payload={"id": sid, "enabled": enabled},
            )
            return row

        return schedule_message(await self.store.write(unit))

    async def get(self, raw_id: str) -> schedules_pb2.ScheduledTask:
        sid = schedule_id(raw_id, "schedules.get")
        row = await self.store.read(lambda conn: store_.get(conn, sid))
        if row is None:
            raise not_found(f"Schedule '{sid}' not found.")
        return schedule_message(row)

    async def page(self, req: schedules_pb2.ListSchedulesRequest) -> schedules_pb2.ListSchedulesResponse:
        """Oldest first, keyset on (createdAt, id): an upsert keeps a schedule's place, as the original's
        file kept its order."""
        context = "schedules.list"
        limit = validation.page_limit(req.limit if req.HasField("limit") else None)
        after: tuple[int, str] | None = None
        if req.cursor:
            position = cursors.decode_keyset(req.cursor, _KIND, context, {"c": "number", "id": "text"})
            if isinstance(position, int):
                raise cursors.invalid(context)  # schedules never had offset cursors
            after = (int(position["c"]), str(position["id"]))
        rows = await self.store.read(lambda conn: store_.page(conn, limit + 1, after))
        page = pages.fill(rows, limit, schedule_message)
        resp = schedules_pb2.ListSchedulesResponse(items=page.items)
        last = page.last
        if last is not None:
            resp.next_cursor = cursors.encode({"kind": _KIND, "c": last.created_at_ms, "id": last.id})
        return resp

    async def delete(self, raw_id: str) -> schedules_pb2.DeleteScheduleResponse:
        sid = schedule_id(raw_id, "schedules.delete")
        trace = trace_id()

        def unit(conn: Connection) -> bool:
            existing = store_.get(conn, sid)
            if existing is None or not store_.remove(conn, sid):
                return False
            events.append(conn, "schedule.removed", trace_id=trace, session_id=existing.session_id, payload={"id": sid})
            return True

        return schedules_pb2.DeleteScheduleResponse(id=sid, removed=await self.store.write(unit))

    async def set_enabled(self, raw_id: str, enabled: bool) -> tuple[str, ScheduleRow | None]:
        """Enable or disable; like the original, `nextRunAt` moves to the first slot after now."""
        context = "schedules.enable" if enabled else "schedules.disable"
        sid = schedule_id(raw_id, context)
        trace = trace_id()

        def unit(conn: Connection) -> ScheduleRow | None:
            row = store_.get(conn, sid)
            if row is None:
                return None
            at = now_ms()
            store_.set_enabled(conn, sid, enabled, cadence_of(row).first_after(at), at)
            kind = "schedule.enabled" if enabled else "schedule.disabled"
            events.append(conn, kind, trace_id=trace, session_id=row.session_id, payload={"id": sid})
            return store_.get(conn, sid)

        return sid, await self.store.write(unit)

    async def logs(self, req: schedules_pb2.ListScheduleLogsRequest) -> schedules_pb2.ListScheduleLogsResponse:
        context = "schedules.logs"
        sid = schedule_id(req.id, context)
        limit = validation.page_limit(req.limit if req.HasField("limit") else None, validation.DEFAULT_TAIL_LIMIT)
        after = req.after.strip()

        def unit(conn: Connection) -> list[LogRow]:
            if store_.get(conn, sid) is None:
                raise not_found(f"Schedule '{sid}' not found.")
            before = None
            if after:
                before = store_.log_seq(conn, sid, after)
                if before is None:
                    raise config_error(f"{context}.after must be a log id of schedule '{sid}'. Received: {after}.")
            return store_.logs(conn, sid, limit, before)

        rows = await self.store.read(unit)
        logs = pages.fill(rows, limit, log_message).items
        return schedules_pb2.ListScheduleLogsResponse(logs=logs)

    # ---- firing -------------------------------------------------------------------------------------

    async def run_now(self, req: schedules_pb2.RunScheduleRequest) -> schedules_pb2.ScheduleRunResult:
        """`POST /schedules/{id}/run`: enabled or not, unless a run of it is in progress."""
        sid = schedule_id(req.id, "schedules.run")
        provider, model = self._provider(req.provider, req.model)
        trace = trace_id()

        def claim(conn: Connection) -> tuple[ScheduleRow, LogRow | None]:
            row = store_.get(conn, sid)
            if row is None:
                raise not_found(f"Schedule '{sid}' not found.")
            at = now_ms()
            if store_.start_manual(conn, sid, self.owner_id, at):
                return row, None
            skipped = store_.add_log(conn, _log_row(row, "already-running", at, at, slot=None, message=ALREADY_RUNNING))
            self._triggered(conn, row, skipped, trace)
            return row, skipped

        row, skipped = await self.store.write(claim)
        if skipped is not None:
            return result_message(skipped)
        return result_message(await asyncio.shield(self._spawn(row, None, provider, model, trace)))

    async def tick(self, raw_at: str, provider: str, model: str) -> schedules_pb2.TickSchedulesResponse:
        """`POST /schedules/tick`: fire what is due at `at` and wait for those runs."""
        at = validation.optional_instant(raw_at, "schedules.tick", "at")
        at = now_ms() if at is None else at
        provider, model = self._provider(provider, model)
        trace = trace_id()
        total, fired = await self._fire_due(at, provider, model, trace)
        rows = list(await asyncio.shield(asyncio.gather(*fired))) if fired else []
        resp = schedules_pb2.TickSchedulesResponse(
            at=iso(at), run=[result_message(r) for r in rows], skipped=total - len(rows)
        )
        await self._tick_event(trace, {"at": resp.at, "run": len(rows), "skipped": resp.skipped})
        return resp

    async def _tick_event(self, trace: str, payload: dict[str, object]) -> None:
        await self.store.write(
            lambda conn: events.append(conn, "schedule.tick.executed", trace_id=trace, payload=payload)
        )

    async def _fire_due(
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
                        skipped = _log_row(
                            row, "already-running", started, started, slot=row.next_run_at_ms, message=ALREADY_RUNNING
                        )
                        skipped = store_.add_log(conn, skipped)
                        self._triggered(conn, row, skipped, trace)
                        claimed.append(skipped)
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
            else:
                fired.append(self._spawn(item, item.next_run_at_ms, provider, model, trace))
        return total, fired

    def _spawn(self, row: ScheduleRow, slot: int | None, provider: str, model: str, trace: str) -> asyncio.Task[LogRow]:
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

        def record(conn: Connection) -> LogRow:
            values: dict[str, int] = {}
            if error is None:
                values["last_run_at_ms"] = finished
                if slot is None:
                    # A manual run that succeeded restarts the cadence from its end, as the original.
                    values["next_run_at_ms"] = cadence_of(row).first_after(finished)
            store_.finish(conn, row.id, **values)
            ran = run_store.get(conn, run_id) is not None
            entry = _log_row(
                row,
                "ok" if error is None else "failed",
                started,
                finished,
                slot=slot,
                error=error,
                run_id=run_id if ran else None,
            )
            entry = store_.add_log(conn, entry)
            self._triggered(conn, row, entry, trace)
            return entry

        entry = await asyncio.shield(self.store.write(record))
        if stopping:
            raise asyncio.CancelledError
        return entry

    @staticmethod
    def _triggered(conn: Connection, row: ScheduleRow, entry: LogRow, trace: str) -> None:
        payload: dict[str, object] = {"id": row.id, "status": entry.status}
        if entry.slot_ms is not None:
            payload["slotAt"] = iso(entry.slot_ms)
        if entry.error_code is not None:
            payload["errorCode"] = entry.error_code
        events.append(
            conn,
            "schedule.run.triggered",
            trace_id=trace,
            session_id=row.session_id,
            run_id=entry.run_id,
            payload=payload,
        )

    def _provider(self, provider: str, model: str) -> tuple[str, str]:
        """Check the provider before any slot is claimed: an unknown one fails the request, not each run."""
        name = provider.strip() or self.settings.default_provider
        self.runs.providers.get(name)
        return name, model.strip() or self.settings.default_model

    # ---- background ticker and crash recovery -------------------------------------------------------

    def start_ticker(self) -> None:
        if self.settings.schedule_tick_seconds > 0 and self._ticker is None:
            self._ticker = asyncio.create_task(self._tick_forever(), name="athena-schedule-ticker")

    async def _tick_forever(self) -> None:
        provider, model = self.settings.default_provider, self.settings.default_model
        while True:
            await asyncio.sleep(self.settings.schedule_tick_seconds)
            try:
                trace = trace_id()
                at = now_ms()
                total, fired = await self._fire_due(at, provider, model, trace)
                if fired:
                    payload = {"at": iso(at), "run": len(fired), "skipped": total - len(fired), "background": True}
                    await self._tick_event(trace, payload)
            except Exception:
                log.exception("background schedule tick failed")

    def release_owned(self, conn: Connection, dead_owner_ids: list[str], at_ms: int) -> None:
        """The reaper's hook: a run of a dead process is logged as failed and its schedule freed. The slot
        stays consumed (its run may have had effects); the next slot fires as usual."""
        for row, slot, since in store_.running_of(conn, dead_owner_ids):
            store_.finish(conn, row.id)
            lost = AthenaError(ErrorCode.ERROR_CODE_UNAVAILABLE, ABANDONED)
            entry = store_.add_log(conn, _log_row(row, "failed", since or at_ms, at_ms, slot=slot, error=lost))
            self._triggered(conn, row, entry, "reaper")

    def in_flight(self) -> list[asyncio.Task[LogRow]]:
        """Schedule runs this process fired and has not finished."""
        return list(self._tasks)

    async def close(self) -> None:
        """Stop ticking and end the schedule runs in flight (recorded as cancelled)."""
        await stop_background(self._ticker, self._tasks)
