"""Sessions: created on first run, touched by every run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, insert, or_, select, update

from athena_server.storage.prepared import Prepared
from athena_server.storage.rows import row_of
from athena_server.storage.tables import sessions

_TOUCH = Prepared(update(sessions).where(sessions.c.id == bindparam("_id")))
_INSERT = Prepared(insert(sessions))


@dataclass(frozen=True)
class SessionRow:
    id: str
    provider: str
    model: str
    created_at_ms: int
    updated_at_ms: int


def _row(r: Any) -> SessionRow:
    return row_of(SessionRow, r)


def touch(conn: Connection, session_id: str, provider: str, model: str, at_ms: int) -> None:
    """Create the session, or record the provider and model of its latest run."""
    values = {"provider": provider, "model": model, "updated_at_ms": at_ms}
    if _TOUCH.run(conn, {"_id": session_id, **values}).rowcount == 0:
        _INSERT.run(conn, {"id": session_id, "created_at_ms": at_ms, **values})


def page_keyset(conn: Connection, limit: int, before: tuple[int, str] | None) -> list[SessionRow]:
    """Sessions ordered by (updated_at, id) descending, strictly after the `before` key."""
    q = select(sessions).order_by(sessions.c.updated_at_ms.desc(), sessions.c.id.desc()).limit(limit)
    if before is not None:
        updated, sid = before
        q = q.where(
            or_(
                sessions.c.updated_at_ms < updated,
                and_(sessions.c.updated_at_ms == updated, sessions.c.id < sid),
            )
        )
    return [_row(r) for r in conn.execute(q).all()]


def page_offset(conn: Connection, limit: int, offset: int) -> list[SessionRow]:
    q = select(sessions).order_by(sessions.c.updated_at_ms.desc(), sessions.c.id.desc()).limit(limit).offset(offset)
    return [_row(r) for r in conn.execute(q).all()]
