"""How a run's ending is recorded: success with its output, usage, evidence and assistant entry, or an error
with the status and event its code calls for. Each ending is one transaction with its event and transcript
entry; the status write is conditional (storage/run_transitions.py), so a run that already ended (the reaper
got there first, say) keeps its first ending and nothing of the second is written."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection

from athena_client.vocab import EventType, RunStatus, TranscriptRole
from athena_server.control.run_context import RunContext
from athena_server.control.run_states import Admitted, Finished
from athena_server.engine.context import CompiledContext
from athena_server.errors import AthenaError, ErrorCode
from athena_server.metrics import after_commit
from athena_server.storage import cancels, events, evidence, runs, sessions, transcripts
from athena_server.storage import run_endings as ending_store
from athena_server.storage.run_transitions import ACTIVE
from athena_server.storage.transcripts import EntryRow
from athena_server.timefmt import now_ms

log = logging.getLogger(__name__)

INTERRUPT_REASON = "interrupted by a new run in the session"
# Final status and event of a run that ended with an error, by error code; any other code is a failure.
FAILURE: Mapping[ErrorCode.ValueType, tuple[RunStatus, EventType]] = {
    ErrorCode.ERROR_CODE_RUN_CANCELLED: (RunStatus.CANCELLED, EventType.RUN_CANCELLED),
    ErrorCode.ERROR_CODE_RUN_TIMEOUT: (RunStatus.TIMED_OUT, EventType.RUN_FAILED),
    ErrorCode.ERROR_CODE_SCHEDULE_TIMEOUT: (RunStatus.TIMED_OUT, EventType.RUN_FAILED),
}
_FAILED = (RunStatus.FAILED, EventType.RUN_FAILED)


def ending_of(err: AthenaError) -> tuple[RunStatus, EventType]:
    """The final status and event of a run that ended with `err`."""
    return FAILURE.get(err.code, _FAILED)


def stopped(closing: bool) -> AthenaError:
    """Why a run ended when the task driving it was cancelled: its caller left, or the server is stopping."""
    why = "the server is stopping" if closing else "the caller disconnected"
    return AthenaError(ErrorCode.ERROR_CODE_RUN_CANCELLED, f"Run cancelled: {why}.")


def cancelled_error(reason: str | None) -> AthenaError:
    message = f"Run cancelled: {reason}" if reason else "Run cancelled by API request."
    return AthenaError(ErrorCode.ERROR_CODE_RUN_CANCELLED, message)


def record_failure(conn: Connection, adm: Admitted, err: AthenaError, at: int, attempts: int, *, started: bool) -> bool:
    status, event_type = ending_of(err)
    spec = adm.spec
    moved = ending_store.record_failure(
        conn,
        run_id=adm.run_id,
        session_id=spec.session_id,
        trace_id=adm.trace,
        provider=spec.provider,
        model=spec.model,
        status=status,
        event_type=event_type,
        code=err.code_name,
        message=err.message,
        at=at,
        attempts=attempts,
        started=started,
        payload=dict(spec.labels),
    )
    if moved:
        began = adm.started_ms if started else None
        after_commit(conn, lambda m: m.run_ended(status, spec.provider, adm.created_ms, began, at))
    return moved


async def finish_failed(ctx: RunContext, adm: Admitted, err: AthenaError, attempts: int) -> None:
    """Record the started run's error ending; shielded, so a caller leaving cannot roll it back."""
    at = now_ms()
    await asyncio.shield(ctx.store.write(lambda conn: record_failure(conn, adm, err, at, attempts, started=True)))


async def abandon(ctx: RunContext, run_id: str, err: AthenaError) -> None:
    """End a run whose driver stopped before executing it (it may be pending, running or already gone).
    Units run in submission order, so this sees the outcome of any write still in flight for it."""

    def unit(conn: Connection) -> None:
        row = runs.get(conn, run_id)
        if row is None or row.status not in ACTIVE:
            return
        status, event_type = ending_of(err)
        ending_store.record_stored_failure(
            conn,
            row,
            status=status,
            event_type=event_type,
            code=err.code_name,
            message=err.message,
            at=now_ms(),
            payload={"provider": row.provider, "model": row.model},
        )

    await ctx.store.write(unit)


def record_success(conn: Connection, adm: Admitted, fin: Finished, compiled: CompiledContext) -> None:
    """The run succeeded: its output, usage, cost, verification and evidence, the assistant entry and
    `run.completed`. A run that ended meanwhile (reaped, say) keeps that ending: this is then an error."""
    spec, result = adm.spec, fin.result
    assert adm.started_ms is not None
    moved = runs.move(
        conn,
        adm.run_id,
        RunStatus.SUCCEEDED,
        output=result.output,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        total_tokens=result.total_tokens,
        finished_at_ms=fin.finished_ms,
        attempts=fin.attempts,
        cost_usd=fin.cost_usd,
        verification=fin.verification.to_json(),
        evidence_count=len(result.evidence),
    )
    if not moved:
        row = runs.get(conn, adm.run_id)
        state = f"{row.status}, {row.error_code}" if row is not None else "gone"
        log.warning("run %s finished after it had already ended (%s); its result is not recorded", adm.run_id, state)
        raise AthenaError(
            ErrorCode.ERROR_CODE_UNAVAILABLE, f"Run {adm.run_id} had already ended ({state}).", retryable=False
        )
    evidence.insert_all(conn, adm.run_id, list(result.evidence), fin.finished_ms)
    cancels.consume(conn, adm.run_id)
    entry_meta = {
        "contextStrategy": compiled.strategy,
        "contextChars": str(len(compiled.prompt)),
        "contextHistoryEntries": str(compiled.history_entries),
        **({"memoryCitations": json.dumps(list(compiled.memory_citations))} if compiled.memory_citations else {}),
        "providerModel": result.model,
        "providerLatencyMs": str(fin.finished_ms - adm.started_ms),
        "providerAttempts": str(fin.attempts),
    }
    entry = EntryRow(
        0,
        str(uuid.uuid4()),
        spec.session_id,
        adm.run_id,
        TranscriptRole.ASSISTANT,
        result.output,
        False,
        entry_meta,
        adm.started_ms,
    )
    transcripts.append(conn, entry)
    sessions.touch(conn, spec.session_id, spec.provider, spec.model, fin.finished_ms)
    usage = {
        "inputTokens": result.input_tokens,
        "outputTokens": result.output_tokens,
        "totalTokens": result.total_tokens,
    }
    payload: dict[str, Any] = {**spec.labels, "usage": usage, "attempts": fin.attempts}
    if fin.cost_usd is not None:
        payload["costUsd"] = fin.cost_usd
    events.append(
        conn,
        EventType.RUN_COMPLETED,
        trace_id=adm.trace,
        session_id=spec.session_id,
        run_id=adm.run_id,
        payload=payload,
        created_at_ms=fin.finished_ms,
    )
    started = adm.started_ms
    after_commit(
        conn, lambda m: m.run_ended(RunStatus.SUCCEEDED, spec.provider, adm.created_ms, started, fin.finished_ms)
    )
