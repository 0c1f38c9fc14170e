"""Cancel requests: written by any process, consumed by the run's executor when the run ends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select

from athena_server.storage import keyset
from athena_server.storage.prepared import Prepared
from athena_server.storage.rows import row_of
from athena_server.storage.tables import cancel_requests as cr


@dataclass(frozen=True)
class CancelRow:
    run_id: str
    session_id: str
    requested_at_ms: int
    reason: str | None
    trace_id: str
    started_at_ms: int | None


def _row(r: Any) -> CancelRow:
    return row_of(CancelRow, r)


_GET = select(cr).where(cr.c.run_id == bindparam("run_id"))
_DELETE = Prepared(delete(cr).where(cr.c.run_id == bindparam("run_id")))


def get(conn: Connection, run_id: str) -> CancelRow | None:
    r = conn.execute(_GET, {"run_id": run_id}).one_or_none()
    return _row(r) if r is not None else None


def insert_request(conn: Connection, row: CancelRow) -> None:
    conn.execute(
        insert(cr).values(
            run_id=row.run_id,
            session_id=row.session_id,
            requested_at_ms=row.requested_at_ms,
            reason=row.reason,
            trace_id=row.trace_id,
            started_at_ms=row.started_at_ms,
        )
    )


def consume(conn: Connection, run_id: str) -> None:
    _DELETE.run(conn, {"run_id": run_id})


def for_runs(conn: Connection, run_ids: list[str]) -> list[CancelRow]:
    if not run_ids:
        return []
    return [_row(r) for r in conn.execute(select(cr).where(cr.c.run_id.in_(run_ids))).all()]


def page(
    conn: Connection,
    limit: int,
    *,
    session_id: str | None,
    run_id: str | None,
    before: tuple[int, str, str] | None = None,
    offset: int = 0,
) -> list[CancelRow]:
    """Newest first by (requestedAt, sessionId, runId), strictly after the `before` key."""
    c = cr.c
    q = select(cr)
    if session_id is not None:
        q = q.where(c.session_id == session_id)
    if run_id is not None:
        q = q.where(c.run_id == run_id)
    q = keyset.newest_first(q, [c.requested_at_ms, c.session_id, c.run_id], before, limit, offset)
    return [_row(r) for r in conn.execute(q).all()]
