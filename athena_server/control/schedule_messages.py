"""The contract messages of schedules and of their runs' records, built from stored rows.

A schedule run's result (the answer of a manual run or a tick) and its log entry carry the same facts
under two messages; both are built here, so the optional fields are written out once.
"""

from __future__ import annotations

from athena.v1 import schedules_pb2
from athena_client.contract import enum_by_json
from athena_server.storage.schedules import LogRow, ScheduleRow
from athena_server.timefmt import iso

_STATUS = enum_by_json(schedules_pb2.ScheduleRunStatus.DESCRIPTOR)


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
