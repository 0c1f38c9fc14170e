"""A run's turn in its session: runs of one session execute one at a time, oldest first. A run admitted into a
free session starts in the transaction that creates it; one admitted behind others waits here, polling the
store (woken early by the bus), until it is the session's oldest active run and the policy's concurrency
limit admits it, or until it is cancelled or the session lock timeout passes."""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import replace

from sqlalchemy import Connection

from athena_client.vocab import EventType, RunStatus, TranscriptRole
from athena_server.control import admission
from athena_server.control.admission import Workload
from athena_server.control.run_context import RunContext
from athena_server.control.run_endings import cancelled_error, record_failure
from athena_server.control.run_specs import RunSpec
from athena_server.control.run_states import Admitted
from athena_server.engine.context import MAX_HISTORY_ENTRIES
from athena_server.errors import AthenaError, ErrorCode
from athena_server.storage import cancels, events, runs, transcripts
from athena_server.storage import policy as policy_store
from athena_server.storage.transcripts import EntryRow
from athena_server.timefmt import now_ms


def workload(spec: RunSpec, run_id: str, trace: str) -> Workload:
    """The run as the policy sees it."""
    return Workload(
        session_id=spec.session_id,
        run_id=run_id,
        trace_id=trace,
        metadata=spec.metadata,
        directive_id=spec.directive_id,
        harness_profile_id=spec.harness_profile_id,
    )


def start(
    ctx: RunContext, conn: Connection, adm: Admitted, at: int, *, created: events.NewEvent | None = None
) -> Admitted:
    """The run takes the turn: `running`, its user entry, `run.started`; returns it with the session's
    history before it. A run admitted into a free session starts in the transaction that creates it: it was
    written running at once and its `run.created` (`created`) is appended here with `run.started`, one
    write fewer each."""
    spec = adm.spec
    history = transcripts.history(conn, spec.session_id, MAX_HISTORY_ENTRIES)
    if created is None and not runs.move(
        conn, adm.run_id, RunStatus.RUNNING, started_at_ms=at, owner_id=ctx.owner_id, pid=os.getpid()
    ):
        # Only a pending run the caller just read in this transaction gets here: a bug, not a race.
        raise runs.IllegalTransition(f"run {adm.run_id} could not start: it is no longer pending")
    transcripts.append(
        conn,
        EntryRow(0, str(uuid.uuid4()), spec.session_id, adm.run_id, TranscriptRole.USER, spec.input, False, None, at),
    )
    started = events.NewEvent(
        EventType.RUN_STARTED,
        trace_id=adm.trace,
        payload={**spec.labels, "status": RunStatus.RUNNING},
        session_id=spec.session_id,
        run_id=adm.run_id,
        created_at_ms=at,
    )
    events.append_all(conn, [started] if created is None else [created, started])
    return replace(adm, started_ms=at, history=tuple(history))


def try_start(ctx: RunContext, conn: Connection, adm: Admitted, give_up: bool) -> Admitted | AthenaError | None:
    """A pending run's turn: start it, end it (cancelled, refused, lock timeout), or None to keep waiting."""
    at = now_ms()
    runs.admission_lock(conn)
    row = runs.get(conn, adm.run_id)
    if row is None or row.status != RunStatus.PENDING:
        state = f"{row.status}, {row.error_code}" if row is not None else "gone"
        return AthenaError(
            ErrorCode.ERROR_CODE_UNAVAILABLE, f"Run {adm.run_id} is no longer pending ({state}).", retryable=True
        )
    request = cancels.get(conn, adm.run_id)
    if request is not None:
        err = cancelled_error(request.reason)
        record_failure(conn, adm, err, at, attempts=0, started=False)
        return err
    running, first_pending = runs.session_head(conn, adm.spec.session_id)
    if running is None and first_pending == adm.run_id:
        policy = policy_store.get(conn)
        refused = admission.check_concurrency(conn, policy, workload(adm.spec, adm.run_id, adm.trace), at)
        if refused is not None:
            record_failure(conn, adm, refused, at, attempts=0, started=False)
            return refused
        return start(ctx, conn, adm, at)
    if give_up:
        err = AthenaError(
            ErrorCode.ERROR_CODE_SESSION_LOCK_TIMEOUT,
            f"Timed out waiting for session '{adm.spec.session_id}': run {running or first_pending} still holds it "
            f"after {ctx.settings.session_lock_timeout_ms} ms.",
            retryable=True,
        )
        record_failure(conn, adm, err, at, attempts=0, started=False)
        return err
    return None


async def await_turn(ctx: RunContext, adm: Admitted) -> Admitted:
    """Wait for the pending run's turn; returns it started, or raises how it ended instead."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.settings.session_lock_timeout_ms / 1000
    while True:
        ticket = ctx.store.bus.ticket()
        give_up = loop.time() >= deadline

        def attempt(conn: Connection, give_up: bool = give_up) -> Admitted | AthenaError | None:
            return try_start(ctx, conn, adm, give_up)

        outcome = await ctx.store.write(attempt)
        if isinstance(outcome, AthenaError):
            raise outcome
        if outcome is not None:
            return outcome
        remaining = max(0.0, deadline - loop.time())
        await ctx.store.bus.wait(ticket, min(ctx.settings.cancel_poll_seconds, remaining) or 0.001)
