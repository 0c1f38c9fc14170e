"""Directives: stored run inputs, and the shadow directives raw inputs are recorded as."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy import insert as sql_insert

from athena_server.storage.tables import directives

_INSERT = sql_insert(directives)


@dataclass(frozen=True)
class DirectiveRow:
    seq: int
    id: str
    input: str
    context_refs: list[str] | None
    metadata: dict[str, str] | None
    created_at_ms: int


def _row(r: Any) -> DirectiveRow:
    return DirectiveRow(r.seq, r.id, r.input, r.context_refs, r.metadata, r.created_at_ms)


def insert(
    conn: Connection,
    *,
    id: str,
    input: str,
    context_refs: list[str] | None,
    metadata: dict[str, str] | None,
    created_at_ms: int,
) -> None:
    conn.execute(
        _INSERT,
        {"id": id, "input": input, "context_refs": context_refs, "metadata": metadata, "created_at_ms": created_at_ms},
    )


def get(conn: Connection, directive_id: str) -> DirectiveRow | None:
    r = conn.execute(select(directives).where(directives.c.id == directive_id)).one_or_none()
    return _row(r) if r is not None else None


def page(conn: Connection, limit: int, before_seq: int | None, offset: int = 0) -> list[DirectiveRow]:
    """Newest first, strictly before `before_seq`."""
    q = select(directives).order_by(directives.c.seq.desc()).limit(limit).offset(offset)
    if before_seq is not None:
        q = q.where(directives.c.seq < before_seq)
    return [_row(r) for r in conn.execute(q).all()]
