"""How a run that did not succeed is recorded, whoever ends it: its executor (cancel, timeout, provider
error, refusal at its turn) or the reaper (its process died). One transaction writes the final status and
error on the run, consumes its cancel request, adds the `isError` assistant entry when the run had started,
and appends the event (`run.cancelled` or `run.failed`).

The status write is the conditional move of storage/runs.py: when the run has already ended (the reaper
and the executor both ending it, say), nothing else is written either, so a run has one ending event."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection

from athena_client.vocab import EventType, RunStatus, TranscriptRole
from athena_server.metrics import after_commit
from athena_server.storage import cancels, events, runs, sessions, transcripts
from athena_server.storage.runs import RunRow
from athena_server.storage.transcripts import EntryRow


def record_failure(
    conn: Connection,
    *,
    run_id: str,
    session_id: str,
    trace_id: str,
    provider: str,
    model: str,
    status: RunStatus,
    event_type: EventType,
    code: str,
    message: str,
    at: int,
    attempts: int,
    started: bool,
    payload: dict[str, Any],
) -> bool:
    """False, with nothing written, when the run may not move to `status` (it already ended, or is gone)."""
    moved = runs.move(
        conn, run_id, status, error_code=code, error_message=message, finished_at_ms=at, attempts=attempts
    )
    if not moved:
        return False
    cancels.consume(conn, run_id)
    if started:
        entry = EntryRow(
            0, str(uuid.uuid4()), session_id, run_id, TranscriptRole.ASSISTANT, message, True, {"errorCode": code}, at
        )
        transcripts.append(conn, entry)
        sessions.touch(conn, session_id, provider, model, at)
    events.append(
        conn,
        event_type,
        trace_id=trace_id,
        session_id=session_id,
        run_id=run_id,
        payload={**payload, "status": status, "attempts": attempts, "error": {"code": code, "message": message}},
        created_at_ms=at,
    )
    return True


def record_stored_failure(
    conn: Connection,
    row: RunRow,
    *,
    status: RunStatus,
    event_type: EventType,
    code: str,
    message: str,
    at: int,
    payload: dict[str, Any],
) -> bool:
    """`record_failure` of a run known only by its stored row (abandoned by its driver, or reaped): the
    row says who it belongs to, how far it got and how many attempts it made."""
    moved = record_failure(
        conn,
        run_id=row.id,
        session_id=row.session_id,
        trace_id=row.trace_id,
        provider=row.provider,
        model=row.model,
        status=status,
        event_type=event_type,
        code=code,
        message=message,
        at=at,
        attempts=row.attempts,
        started=row.status == RunStatus.RUNNING,
        payload=payload,
    )
    if moved:
        began = row.started_at_ms if row.status == RunStatus.RUNNING else None
        after_commit(conn, lambda m: m.run_ended(status, row.provider, row.created_at_ms, began, at))
    return moved
