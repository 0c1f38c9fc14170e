"""Directives: stored run inputs, and the shadow directives raw run inputs are recorded as.

Pages are keyset on the insertion sequence (`seq`), newest first, so a directive created while a client
pages never shifts the rest of the listing (no duplicates, no gaps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy import insert as sql_insert

from athena_server.storage import keyset
from athena_server.storage.prepared import Prepared
from athena_server.storage.rows import row_of
from athena_server.storage.tables import directives

# Built once: the run path inserts a shadow directive per raw-input run.
_INSERT = Prepared(sql_insert(directives))
_LATEST_CREATED = select(directives.c.created_at_ms).order_by(directives.c.seq.desc()).limit(1)


@dataclass(frozen=True)
class DirectiveRow:
    seq: int  # 0 until stored; only pages read it
    id: str
    input: str
    context_refs: list[str] | None
    metadata: dict[str, str] | None
    created_at_ms: int


def _row(r: Any) -> DirectiveRow:
    return row_of(
        DirectiveRow,
        r,
        context_refs=list(r.context_refs) if r.context_refs else None,
        metadata=dict(r.metadata) if r.metadata else None,
    )


def insert(
    conn: Connection,
    *,
    id: str,
    input: str,
    context_refs: list[str] | None,
    metadata: dict[str, str] | None,
    created_at_ms: int,
) -> None:
    _INSERT.run(
        conn,
        {"id": id, "input": input, "context_refs": context_refs, "metadata": metadata, "created_at_ms": created_at_ms},
    )


def latest_created_ms(conn: Connection) -> int | None:
    """createdAt of the newest directive, so a new one never reads as older (the original's monotonic clock)."""
    value = conn.execute(_LATEST_CREATED).scalar_one_or_none()
    return int(value) if value is not None else None


def get(conn: Connection, directive_id: str) -> DirectiveRow | None:
    r = conn.execute(select(directives).where(directives.c.id == directive_id)).one_or_none()
    return _row(r) if r is not None else None


def page(conn: Connection, limit: int, before_seq: int | None, offset: int = 0) -> list[DirectiveRow]:
    """Newest first, strictly before `before_seq` (a keyset cursor), or skipping `offset` rows (a legacy one)."""
    before = None if before_seq is None else (before_seq,)
    q = keyset.newest_first(select(directives), [directives.c.seq], before, limit, offset)
    return [_row(r) for r in conn.execute(q).all()]
