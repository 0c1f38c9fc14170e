"""Transcript entries, ordered by an insertion sequence (timestamps can tie within a turn).

Entries are followed like the event log (control/follow.py), so they obey its rule: an appending
transaction holds the log's order lock (storage/events.py), which makes sequences visible in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select

from athena_server.storage.events import hold_log_order
from athena_server.storage.prepared import Prepared
from athena_server.storage.tables import transcript_entries as te

# Statements on the run path are built once (building a Core statement per call costs more than running it).
_INSERT = Prepared(insert(te))
_TAIL = select(te).where(te.c.session_id == bindparam("session_id")).order_by(te.c.seq.desc()).limit(bindparam("limit"))


_HISTORY = Prepared(
    select(te.c.role, te.c.content)
    .where(te.c.session_id == bindparam("session_id"))
    .order_by(te.c.seq.desc())
    .limit(bindparam("limit"))
)


@dataclass(frozen=True)
class EntryRow:
    seq: int
    id: str
    session_id: str
    run_id: str | None
    role: str
    content: str
    is_error: bool
    metadata: dict[str, Any] | None
    created_at_ms: int


def _row(r: Any) -> EntryRow:
    return EntryRow(r.seq, r.id, r.session_id, r.run_id, r.role, r.content, r.is_error, r.metadata, r.created_at_ms)


def append(conn: Connection, entry: EntryRow) -> None:
    hold_log_order(conn)
    _INSERT.run(
        conn,
        {
            "id": entry.id,
            "session_id": entry.session_id,
            "run_id": entry.run_id,
            "role": entry.role,
            "content": entry.content,
            "is_error": entry.is_error,
            "metadata": entry.metadata,
            "created_at_ms": entry.created_at_ms,
        },
    )


def seq_of(conn: Connection, session_id: str, entry_id: str) -> int | None:
    q = select(te.c.seq).where(te.c.session_id == session_id, te.c.id == entry_id)
    return conn.execute(q).scalar_one_or_none()


def tail(conn: Connection, session_id: str, limit: int) -> list[EntryRow]:
    """The last `limit` entries, oldest first."""
    rows = [_row(r) for r in conn.execute(_TAIL, {"session_id": session_id, "limit": limit}).all()]
    rows.reverse()
    return rows


def after(
    conn: Connection, session_id: str, after_seq: int, limit: int, up_to_seq: int | None = None
) -> list[EntryRow]:
    """The first `limit` entries after `after_seq` (and at most `up_to_seq`), oldest first."""
    q = select(te).where(te.c.session_id == session_id, te.c.seq > after_seq).order_by(te.c.seq).limit(limit)
    if up_to_seq is not None:
        q = q.where(te.c.seq <= up_to_seq)
    return [_row(r) for r in conn.execute(q).all()]


def between(conn: Connection, after_seq: int, up_to_seq: int, limit: int) -> list[EntryRow]:
    """The first `limit` entries of any session with after_seq < seq <= up_to_seq, oldest first."""
    q = select(te).where(te.c.seq > after_seq, te.c.seq <= up_to_seq).order_by(te.c.seq).limit(limit)
    return [_row(r) for r in conn.execute(q).all()]


def last_seq(conn: Connection) -> int:
    """The highest sequence of any session's entries (0 when there are none)."""
    return int(conn.execute(select(func.coalesce(func.max(te.c.seq), 0))).scalar_one())


def history(conn: Connection, session_id: str, limit: int) -> list[tuple[str, str]]:
    """The last `limit` turns as (role, content), oldest first: what a run's context is compiled from."""
    rows = _HISTORY.rows(conn, {"session_id": session_id, "limit": limit})
    rows.reverse()
    return [(role, content) for role, content in rows]
