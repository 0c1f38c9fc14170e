"""Sessions: created on first run, touched by every run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from athena_server.storage import keyset
from athena_server.storage.prepared import Prepared
from athena_server.storage.rows import row_of
from athena_server.storage.tables import sessions


def _upsert(dialect: Any) -> Prepared:
    """One statement that creates the session or records its latest run's provider, model and time: one
    write fewer than an UPDATE and then an INSERT, and no race between two first runs of one session."""
    stmt = dialect.insert(sessions)
    changed = ("provider", "model", "updated_at_ms")
    return Prepared(
        stmt.on_conflict_do_update(index_elements=[sessions.c.id], set_={c: stmt.excluded[c] for c in changed})
    )


_TOUCH = {"sqlite": _upsert(sqlite), "postgresql": _upsert(postgresql)}


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
    _TOUCH[conn.dialect.name].run(
        conn,
        {"id": session_id, "provider": provider, "model": model, "created_at_ms": at_ms, "updated_at_ms": at_ms},
    )


def page(conn: Connection, limit: int, before: tuple[int, str] | None, offset: int) -> list[SessionRow]:
    """Sessions by (updated_at, id) descending, strictly after the `before` key, or skipping `offset` rows
    (a legacy offset cursor)."""
    q = keyset.newest_first(select(sessions), [sessions.c.updated_at_ms, sessions.c.id], before, limit, offset)
    return [_row(r) for r in conn.execute(q).all()]
