"""Harness profiles, stored whole as their JSON resource: the document is exactly what the API returns and
what a run's `harnessProfileSnapshot` shows, so a profile never needs re-assembling from columns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy import insert as sql_insert

from athena_server.storage import keyset
from athena_server.storage.rows import row_of
from athena_server.storage.tables import harness_profiles

_INSERT = sql_insert(harness_profiles)


@dataclass(frozen=True)
class ProfileRow:
    seq: int
    id: str
    document: dict[str, Any]
    created_at_ms: int


def insert(conn: Connection, *, id: str, document: dict[str, Any], created_at_ms: int) -> None:
    conn.execute(_INSERT, {"id": id, "document": document, "created_at_ms": created_at_ms})


def get(conn: Connection, profile_id: str) -> dict[str, Any] | None:
    """The profile's JSON document, or None when no profile has this id."""
    q = select(harness_profiles.c.document).where(harness_profiles.c.id == profile_id)
    document = conn.execute(q).scalar_one_or_none()
    return dict(document) if document is not None else None


def exists(conn: Connection, profile_id: str) -> bool:
    q = select(harness_profiles.c.seq).where(harness_profiles.c.id == profile_id)
    return conn.execute(q).first() is not None


def page(conn: Connection, limit: int, before_seq: int | None, offset: int = 0) -> list[ProfileRow]:
    """Newest first, strictly before `before_seq` (a keyset cursor), or skipping `offset` rows (a legacy one)."""
    before = None if before_seq is None else (before_seq,)
    q = keyset.newest_first(select(harness_profiles), [harness_profiles.c.seq], before, limit, offset)
    return [row_of(ProfileRow, r, document=dict(r.document)) for r in conn.execute(q).all()]
