"""Run control queries: the runs executing now and the cancel requests not yet consumed, newest first,
with the original's keyset cursors (`{"kind":"active",...}`, `{"kind":"cancel",...}`) and legacy offsets."""

from __future__ import annotations

from athena.v1 import runs_pb2
from athena_server import cursors, validation
from athena_server.control import pages
from athena_server.storage import cancels, runs
from athena_server.storage.cancels import CancelRow
from athena_server.storage.runs import RunRow
from athena_server.storage.store import Store
from athena_server.timefmt import iso


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
    if row.reason is not None:
        msg.reason = row.reason
    if row.started_at_ms is not None:
        msg.started_at = iso(row.started_at_ms)
    return msg


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
