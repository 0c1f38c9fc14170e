"""Run control: cancelling runs, and the queries over what is running and what was asked to stop (the runs
executing now and the cancel requests not yet consumed, newest first, with the original's keyset cursors
`{"kind":"active",...}` / `{"kind":"cancel",...}` and legacy offsets).

A cancel is a request, recorded in the store with `run.cancel.requested`: the process executing the run
stops it (at once when it is this one, through the watcher; otherwise on its next poll of the store) and
records the `cancelled` ending itself. A pending run sees the request when it would take its turn."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from athena.v1 import runs_pb2
from athena_client.vocab import CancelStatus, EventType
from athena_server import cursors, validation
from athena_server.control import pages
from athena_server.control.message_fields import set_present
from athena_server.engine.cancels import CancelWatcher
from athena_server.errors import config_error
from athena_server.storage import cancels, events, runs
from athena_server.storage.cancels import CancelRow
from athena_server.storage.run_transitions import ACTIVE
from athena_server.storage.runs import RunRow
from athena_server.storage.store import Store
from athena_server.timefmt import iso, now_ms
from athena_server.tracing import trace_id


def _position(cursor: str, kind: str, time_field: str, context: str) -> tuple[tuple[int, str, str] | None, int]:
    """(the keyset to continue after, an offset) from a `{"kind", <time>, sessionId, runId}` cursor or a
    legacy offset cursor."""
    if not cursor:
        return None, 0
    fields: dict[str, cursors.KeyField] = {time_field: "instant", "sessionId": "text", "runId": "text"}
    position = cursors.decode_keyset(cursor, kind, context, fields)
    if isinstance(position, int):
        return None, position
    return (int(position[time_field]), str(position["sessionId"]), str(position["runId"])), 0


def active_message(row: RunRow) -> runs_pb2.ActiveRun:
    return runs_pb2.ActiveRun(
        session_id=row.session_id,
        pid=row.pid or 0,
        started_at=iso(row.started_at_ms or row.created_at_ms),
        run_id=row.id,
        trace_id=row.trace_id,
    )


def cancel_message(row: CancelRow) -> runs_pb2.CancelRequest:
    msg = runs_pb2.CancelRequest(
        session_id=row.session_id, requested_at=iso(row.requested_at_ms), run_id=row.run_id, trace_id=row.trace_id
    )
    set_present(msg, reason=row.reason, started_at=iso(row.started_at_ms) if row.started_at_ms is not None else None)
    return msg


def _cancel_payload(status: CancelStatus, reason: str | None, **refs: str) -> dict[str, Any]:
    return {**refs, "status": status, **({"reason": reason} if reason else {})}


def request_cancel(conn: Connection, run_id: str, reason: str | None, trace: str, at: int) -> RunRow | None:
    """Record a cancel request for an active run (once); returns the run, or None when it is not active."""
    row = runs.get(conn, run_id)
    if row is None or row.status not in ACTIVE:
        return None
    if cancels.get(conn, run_id) is None:
        cancels.insert_request(conn, CancelRow(run_id, row.session_id, at, reason, row.trace_id, row.started_at_ms))
    payload = _cancel_payload(CancelStatus.CANCELLED, reason, runId=run_id)
    events.append(
        conn, EventType.RUN_CANCEL_REQUESTED, trace_id=trace, session_id=row.session_id, run_id=run_id, payload=payload
    )
    return row


async def cancel_run(
    store: Store, watcher: CancelWatcher, run_id: str, reason: str | None
) -> runs_pb2.CancelRunByRunIdResponse:
    """CancelRunByRunId: `cancelled` when the run was active, else `not-running` (with the
    session of a request still on record, if any). Either way the request is announced."""
    run_id = run_id.strip()
    if not run_id:
        raise config_error("runs.cancel.runId must be a non-empty string.")
    trace = trace_id()

    def unit(conn: Connection) -> tuple[RunRow | None, CancelRow | None]:
        row = request_cancel(conn, run_id, reason, trace, now_ms())
        if row is not None:
            return row, None
        leftover = cancels.get(conn, run_id)
        events.append(
            conn,
            EventType.RUN_CANCEL_REQUESTED,
            trace_id=trace,
            session_id=leftover.session_id if leftover else None,
            run_id=run_id,
            payload=_cancel_payload(CancelStatus.NOT_RUNNING, reason, runId=run_id),
        )
        return None, leftover

    row, leftover = await store.write(unit)
    resp = runs_pb2.CancelRunByRunIdResponse(run_id=run_id)
    if row is None:
        resp.status = runs_pb2.CANCEL_STATUS_NOT_RUNNING
        if leftover is not None:
            resp.session_id = leftover.session_id
        return resp
    watcher.deliver(run_id, reason)
    resp.status = runs_pb2.CANCEL_STATUS_CANCELLED
    resp.session_id = row.session_id
    return resp


async def cancel_session_run(
    store: Store, watcher: CancelWatcher, session_id: str, reason: str | None
) -> runs_pb2.CancelRunBySessionIdResponse:
    """CancelRunBySessionId (deprecated): cancel the session's running run, else its oldest pending one."""
    session_id = validation.session_id(session_id, "runs.cancel")
    trace = trace_id()

    def unit(conn: Connection) -> RunRow | None:
        active = runs.active_in_session(conn, session_id)
        if active is None:
            payload = _cancel_payload(CancelStatus.NOT_RUNNING, reason)
            events.append(conn, EventType.RUN_CANCEL_REQUESTED, trace_id=trace, session_id=session_id, payload=payload)
            return None
        return request_cancel(conn, active.id, reason, trace, now_ms())

    row = await store.write(unit)
    resp = runs_pb2.CancelRunBySessionIdResponse(session_id=session_id)
    if row is None:
        resp.status = runs_pb2.CANCEL_STATUS_NOT_RUNNING
        return resp
    watcher.deliver(row.id, reason)
    resp.status = runs_pb2.CANCEL_STATUS_CANCELLED
    return resp


class RunControlService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def list_active(self, req: runs_pb2.ListActiveRunsRequest) -> runs_pb2.ListActiveRunsResponse:
        ctx = "runs.active"
        limit = validation.page_limit(req.limit if req.HasField("limit") else None)
        session_id = validation.optional_session_id(req.session_id, ctx)
        run_id = req.run_id.strip() or None
        before, offset = _position(req.cursor, "active", "startedAt", ctx)
        rows = await self.store.read(
            lambda conn: runs.active_page(
                conn, limit + 1, session_id=session_id, run_id=run_id, before=before, offset=offset
            )
        )
        page = pages.fill(rows, limit, active_message)
        resp = runs_pb2.ListActiveRunsResponse(items=page.items)
        last = page.last
        if last is not None:
            resp.next_cursor = cursors.encode(
                {
                    "kind": "active",
                    "startedAt": iso(last.started_at_ms or last.created_at_ms),
                    "sessionId": last.session_id,
                    "runId": last.id,
                    "pid": last.pid or 0,
                }
            )
        return resp

    async def list_cancel_requests(
        self, req: runs_pb2.ListCancelRequestsRequest
    ) -> runs_pb2.ListCancelRequestsResponse:
        ctx = "runs.cancelRequests"
        limit = validation.page_limit(req.limit if req.HasField("limit") else None)
        session_id = validation.optional_session_id(req.session_id, ctx)
        run_id = req.run_id.strip() or None
        before, offset = _position(req.cursor, "cancel", "requestedAt", ctx)
        rows = await self.store.read(
            lambda conn: cancels.page(
                conn, limit + 1, session_id=session_id, run_id=run_id, before=before, offset=offset
            )
        )
        page = pages.fill(rows, limit, cancel_message)
        resp = runs_pb2.ListCancelRequestsResponse(items=page.items)
        last = page.last
        if last is not None:
            resp.next_cursor = cursors.encode(
                {
                    "kind": "cancel",
                    "requestedAt": iso(last.requested_at_ms),
                    "sessionId": last.session_id,
                    "runId": last.run_id,
                }
            )
        return resp
