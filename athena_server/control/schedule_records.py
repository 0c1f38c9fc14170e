"""What a schedule run leaves behind: its log row and the `schedule.run.triggered` event, committed together.

Every end of a schedule run is recorded this way, whoever observed it: the run itself (ok or failed), a
tick or a manual run that found the previous run still going (`already-running`), and the reaper for a
run whose process died (failed, abandoned).
"""

from __future__ import annotations

from sqlalchemy import Connection

from athena_client.vocab import EventType, ScheduleRunStatus
from athena_server.control.schedule_slots import Cadence
from athena_server.errors import AthenaError
from athena_server.storage import events
from athena_server.storage import schedules as store_
from athena_server.storage.schedules import LogRow, ScheduleRow
from athena_server.timefmt import iso

ALREADY_RUNNING = "The previous run of this schedule is still running; this slot was skipped."
ABANDONED = "The server process running this schedule stopped; the run was abandoned."


def cadence_of(row: ScheduleRow) -> Cadence:
    return Cadence(every_minutes=row.every_minutes) if row.cron is None else Cadence(cron=row.cron)


def log_row(
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
    """The log entry of one run of `row` (its `seq` is the store's to give: see `record`)."""
    return LogRow(
        seq=0,
        id=store_.new_log_id(),
        schedule_id=row.id,
        session_id=row.session_id,
        slot_ms=slot,
        started_at_ms=started,
        finished_at_ms=finished,
        status=status,
        error=error.message if error is not None else message,
        error_code=error.code_name if error is not None else None,
        run_id=run_id,
    )


def record(conn: Connection, row: ScheduleRow, entry: LogRow, trace: str) -> LogRow:
    """Store the log entry and its event; returns the entry as stored."""
    entry = store_.add_log(conn, entry)
    payload: dict[str, object] = {"id": row.id, "status": entry.status}
    if entry.slot_ms is not None:
        payload["slotAt"] = iso(entry.slot_ms)
    if entry.error_code is not None:
        payload["errorCode"] = entry.error_code
    events.append(
        conn,
        EventType.SCHEDULE_RUN_TRIGGERED,
        trace_id=trace,
        session_id=row.session_id,
        run_id=entry.run_id,
        payload=payload,
    )
    return entry


def skipped(conn: Connection, row: ScheduleRow, at: int, slot: int | None, trace: str) -> LogRow:
    """Record a slot (or a manual run, `slot` None) skipped because the previous run is still going."""
    return record(
        conn, row, log_row(row, ScheduleRunStatus.ALREADY_RUNNING, at, at, slot=slot, message=ALREADY_RUNNING), trace
    )
