"""Schedules: the service behind the schedule RPCs (definitions, logs, manual runs and ticks).

Interval or cron schedules start runs when a tick fires them. This module validates and stores schedule
definitions and answers the RPCs; claiming due slots, running them and the background ticker are in
schedule_firing, the slot arithmetic in schedule_slots, what a run leaves behind in schedule_records and
the answers' messages in schedule_messages.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import Connection

from athena.v1 import schedules_pb2
from athena_client.vocab import EventType
from athena_server import cursors, validation
from athena_server.config import Settings
from athena_server.control import pages
from athena_server.control.run_specs import clean_metadata
from athena_server.control.runs import RunService
from athena_server.control.schedule_firing import ScheduleFiring
from athena_server.control.schedule_messages import log_message, result_message, schedule_message
from athena_server.control.schedule_records import cadence_of, skipped
from athena_server.control.schedule_slots import Cadence, parse_cron
from athena_server.engine.context import check_input
from athena_server.errors import config_error, not_found
from athena_server.storage import events
from athena_server.storage import schedules as store_
from athena_server.storage.schedules import LogRow, ScheduleRow
from athena_server.storage.store import Store
from athena_server.timefmt import iso, now_ms
from athena_server.tracing import trace_id

_KIND = "schedules"


def schedule_id(value: str, context: str) -> str:
    value = value.strip()
    if not value:
        raise config_error(f"{context}.id must be a non-empty string.")
    if not validation.SESSION_ID_PATTERN.match(value):
        raise config_error(f"{context}.id must match {validation.SESSION_ID_PATTERN.pattern}. Received: {value}.")
    return value


def cadence(req: schedules_pb2.CreateScheduleRequest | schedules_pb2.UpdateScheduleRequest, context: str) -> Cadence:
    """The request's `everyMinutes` or `cron`: exactly one of them, valid."""
    cron = req.cron if req.HasField("cron") else None
    every = req.every_minutes if req.HasField("every_minutes") else None
    if cron is not None and every is not None:
        raise config_error(f"{context} takes either everyMinutes or cron, not both.")
    if cron is not None:
        return Cadence(cron=parse_cron(cron, context))
    if every is None or every <= 0:
        raise config_error(f"{context}.everyMinutes must be a positive integer.")
    return Cadence(every_minutes=every)


class ScheduleService:
    def __init__(self, store: Store, settings: Settings, runs: RunService, owner_id: str) -> None:
        self.store = store
        self.owner_id = owner_id
        self.firing = ScheduleFiring(store, settings, runs, owner_id)

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
        when = cadence(req, context)
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
                every_minutes=when.every_minutes,
                cron=when.cron,
                metadata=metadata,
                enabled=enabled,
                running=existing.running if existing else False,
                created_at_ms=existing.created_at_ms if existing else at,
                updated_at_ms=at,
                next_run_at_ms=at if start_now else when.first_after(at),
                last_run_at_ms=existing.last_run_at_ms if existing else None,
            )
            store_.upsert(conn, row)
            payload = {"id": sid, "enabled": enabled}
            events.append(conn, EventType.SCHEDULE_UPSERTED, trace_id=trace, session_id=session_id, payload=payload)
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
            events.append(
                conn, EventType.SCHEDULE_REMOVED, trace_id=trace, session_id=existing.session_id, payload={"id": sid}
            )
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
            kind = EventType.SCHEDULE_ENABLED if enabled else EventType.SCHEDULE_DISABLED
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
        provider, model = self.firing.provider(req.provider, req.model)
        trace = trace_id()

        def claim(conn: Connection) -> tuple[ScheduleRow, LogRow | None]:
            row = store_.get(conn, sid)
            if row is None:
                raise not_found(f"Schedule '{sid}' not found.")
            at = now_ms()
            if store_.start_manual(conn, sid, self.owner_id, at):
                return row, None
            return row, skipped(conn, row, at, None, trace)

        row, skip = await self.store.write(claim)
        if skip is not None:
            return result_message(skip)
        return result_message(await asyncio.shield(self.firing.spawn(row, None, provider, model, trace)))

    async def tick(self, raw_at: str, provider: str, model: str) -> schedules_pb2.TickSchedulesResponse:
        """`POST /schedules/tick`: fire what is due at `at` and wait for those runs."""
        at = validation.optional_instant(raw_at, "schedules.tick", "at")
        at = now_ms() if at is None else at
        provider, model = self.firing.provider(provider, model)
        trace = trace_id()
        total, fired = await self.firing.fire_due(at, provider, model, trace)
        rows = list(await asyncio.shield(asyncio.gather(*fired))) if fired else []
        resp = schedules_pb2.TickSchedulesResponse(
            at=iso(at), run=[result_message(r) for r in rows], skipped=total - len(rows)
        )
        await self.firing.tick_event(trace, {"at": resp.at, "run": len(rows), "skipped": resp.skipped})
        return resp

    # ---- process lifecycle (see schedule_firing) ----------------------------------------------------

    def start_ticker(self) -> None:
        self.firing.start_ticker()

    def release_owned(self, conn: Connection, dead_owner_ids: list[str], at_ms: int) -> None:
        """The reaper's hook: runs of dead processes are logged as failed and their schedules freed."""
        self.firing.release_owned(conn, dead_owner_ids, at_ms)

    def in_flight(self) -> list[asyncio.Task[LogRow]]:
        """Schedule runs this process fired and has not finished."""
        return self.firing.in_flight()

    async def close(self) -> None:
        """Stop ticking and end the schedule runs in flight (recorded as cancelled)."""
        await self.firing.close()
