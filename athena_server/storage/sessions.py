"""Sessions: created on first run, touched by every run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from athena_server.storage import keyset
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


def page(conn: Connection, limit: int, before: tuple[int, str] | None, offset: int) -> list[SessionRow]:
    """Sessions by (updated_at, id) descending, strictly after the `before` key, or skipping `offset` rows
    (a legacy offset cursor)."""
    q = keyset.newest_first(select(sessions), [sessions.c.updated_at_ms, sessions.c.id], before, limit, offset)
    return [_row(r) for r in conn.execute(q).all()]
