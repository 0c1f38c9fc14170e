"""Schedules and their run logs.

Who fires a slot is decided here, by conditional writes: a tick moves a due schedule's `next_run_at_ms`
only if it still holds the value the tick read, and marks it running only if it was not. Two processes
ticking the same instant therefore fire each slot once, and the unique (schedule, slot) index on the log
makes a second record of one slot impossible.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from athena_server.storage import keyset
from athena_server.storage.tables import schedule_logs, schedules


@dataclass(frozen=True)
class ScheduleRow:
    id: str
    session_id: str
    input: str
    every_minutes: int | None
    cron: str | None
    metadata: dict[str, str] | None
    enabled: bool
    running: bool
    created_at_ms: int
    updated_at_ms: int
    next_run_at_ms: int
    last_run_at_ms: int | None


@dataclass(frozen=True)
class LogRow:
    seq: int
    id: str
    schedule_id: str
    session_id: str
    slot_ms: int | None
    started_at_ms: int
    finished_at_ms: int
    status: str
    error: str | None
    error_code: str | None
    run_id: str | None


# Each row class's columns, selected by name: a row's mapping then holds exactly its class's fields.
_SCHEDULE = [schedules.c[f.name] for f in fields(ScheduleRow)]
_LOG = [schedule_logs.c[f.name] for f in fields(LogRow)]


def get(conn: Connection, schedule_id: str) -> ScheduleRow | None:
    r = conn.execute(select(*_SCHEDULE).where(schedules.c.id == schedule_id)).one_or_none()
    return None if r is None else ScheduleRow(**r._mapping)


def upsert(conn: Connection, row: ScheduleRow) -> None:
    """Insert, or replace the definition of, a schedule; `running` and `createdAt` of an existing one stay."""
    values = {
        "session_id": row.session_id,
        "input": row.input,
        "every_minutes": row.every_minutes,
        "cron": row.cron,
        "metadata": row.metadata,
        "enabled": row.enabled,
        "updated_at_ms": row.updated_at_ms,
        "next_run_at_ms": row.next_run_at_ms,
    }
    if conn.execute(update(schedules).where(schedules.c.id == row.id).values(**values)).rowcount:
        return
    conn.execute(
        insert(schedules).values(
            id=row.id, running=False, created_at_ms=row.created_at_ms, last_run_at_ms=None, **values
        )
    )


def set_enabled(conn: Connection, schedule_id: str, enabled: bool, next_run_at_ms: int, at_ms: int) -> None:
    conn.execute(
        update(schedules)
        .where(schedules.c.id == schedule_id)
        .values(enabled=enabled, next_run_at_ms=next_run_at_ms, updated_at_ms=at_ms)
    )


def remove(conn: Connection, schedule_id: str) -> bool:
    return conn.execute(delete(schedules).where(schedules.c.id == schedule_id)).rowcount > 0


def page(conn: Connection, limit: int, after: tuple[int, str] | None) -> list[ScheduleRow]:
    """Oldest first by (createdAt, id), strictly after the key `after`."""
    q = keyset.oldest_first(select(*_SCHEDULE), [schedules.c.created_at_ms, schedules.c.id], after, limit)
    return [ScheduleRow(**r._mapping) for r in conn.execute(q).all()]


def count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(schedules)).scalar_one())


def due(conn: Connection, at_ms: int) -> list[ScheduleRow]:
    q = (
        select(*_SCHEDULE)
        .where(schedules.c.enabled.is_(True), schedules.c.next_run_at_ms <= at_ms)
        .order_by(schedules.c.next_run_at_ms, schedules.c.id)
    )
    return [ScheduleRow(**r._mapping) for r in conn.execute(q).all()]


def advance(conn: Connection, row: ScheduleRow, next_ms: int, owner_id: str | None, at_ms: int) -> bool:
    """Move a due schedule past its slot, if nobody did since it was read. With `owner_id` it is also
    marked running (the caller fires the slot), which needs it not to be running already."""
    q = update(schedules).where(
        schedules.c.id == row.id,
        schedules.c.next_run_at_ms == row.next_run_at_ms,
        schedules.c.enabled.is_(True),
    )
    if owner_id is None:
        return conn.execute(q.values(next_run_at_ms=next_ms)).rowcount == 1
    q = q.where(schedules.c.running.is_(False)).values(
        next_run_at_ms=next_ms,
        running=True,
        running_owner=owner_id,
        running_slot_ms=row.next_run_at_ms,
        running_since_ms=at_ms,
    )
    return conn.execute(q).rowcount == 1


def start_manual(conn: Connection, schedule_id: str, owner_id: str, at_ms: int) -> bool:
    """Mark a schedule running for a manual run; False when a run of it is in progress."""
    q = (
        update(schedules)
        .where(schedules.c.id == schedule_id, schedules.c.running.is_(False))
        .values(running=True, running_owner=owner_id, running_slot_ms=None, running_since_ms=at_ms)
    )
    return conn.execute(q).rowcount == 1


def finish(conn: Connection, schedule_id: str, **values: Any) -> None:
    """End the schedule's run: not running any more, plus `values` (lastRunAt, nextRunAt)."""
    conn.execute(
        update(schedules)
        .where(schedules.c.id == schedule_id)
        .values(running=False, running_owner=None, running_slot_ms=None, running_since_ms=None, **values)
    )


def running_of(conn: Connection, owner_ids: list[str]) -> list[tuple[ScheduleRow, int | None, int]]:
    """Schedules marked running by these processes, with the slot and start of their run."""
    running = [schedules.c.running_slot_ms, schedules.c.running_since_ms]
    q = select(*_SCHEDULE, *running).where(schedules.c.running.is_(True), schedules.c.running_owner.in_(owner_ids))
    found: list[tuple[ScheduleRow, int | None, int]] = []
    for r in conn.execute(q).all():
        values = dict(r._mapping)
        slot, since = values.pop("running_slot_ms"), values.pop("running_since_ms")
        found.append((ScheduleRow(**values), slot, since or 0))
    return found


def add_log(conn: Connection, row: LogRow) -> LogRow:
    """Record a run. A slot already recorded for the schedule (only possible if an upsert put the schedule
    back on a slot it had fired) keeps its first record; this one is kept without the slot."""
    slot = row.slot_ms
    if slot is not None:
        taken = conn.execute(
            select(schedule_logs.c.seq).where(
                schedule_logs.c.schedule_id == row.schedule_id, schedule_logs.c.slot_ms == slot
            )
        ).first()
        if taken is not None:
            slot = None
    values = {**row.__dict__, "slot_ms": slot}
    values.pop("seq")
    result = conn.execute(insert(schedule_logs).values(**values))
    (seq,) = result.inserted_primary_key or (0,)
    return LogRow(**{**values, "seq": int(seq)})


def new_log_id() -> str:
    return str(uuid.uuid4())


def log_seq(conn: Connection, schedule_id: str, log_id: str) -> int | None:
    q = select(schedule_logs.c.seq).where(schedule_logs.c.schedule_id == schedule_id, schedule_logs.c.id == log_id)
    r = conn.execute(q).first()
    return None if r is None else int(r.seq)


def logs(conn: Connection, schedule_id: str, limit: int, before_seq: int | None) -> list[LogRow]:
    """Newest first, strictly older than `before_seq`."""
    q = select(*_LOG).where(schedule_logs.c.schedule_id == schedule_id)
    before = None if before_seq is None else (before_seq,)
    q = keyset.newest_first(q, [schedule_logs.c.seq], before, limit, 0)
    return [LogRow(**r._mapping) for r in conn.execute(q).all()]
