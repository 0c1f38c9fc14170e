"""Idempotency-Key records. The primary key (scope, key) decides which of two concurrent first requests
runs: the other finds the row and waits for, or replays, the first one's answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from athena_server.storage.rows import row_of
from athena_server.storage.tables import idempotency_keys as ik


@dataclass(frozen=True)
class KeyRow:
    scope: str
    key: str
    request_hash: str
    owner_id: str
    state: str
    response: bytes | None
    http_status: int | None
    error: dict[str, Any] | None
    created_at_ms: int


def get(conn: Connection, scope: str, key: str) -> KeyRow | None:
    r = conn.execute(select(ik).where(ik.c.scope == scope, ik.c.key == key)).one_or_none()
    if r is None:
        return None
    return row_of(KeyRow, r)


def claim(conn: Connection, scope: str, key: str, request_hash: str, owner_id: str, at_ms: int) -> bool:
    """Insert the pending record; False when another request holds the key."""
    try:
        with conn.begin_nested():
            conn.execute(
                insert(ik).values(
                    scope=scope,
                    key=key,
                    request_hash=request_hash,
                    owner_id=owner_id,
                    state="pending",
                    created_at_ms=at_ms,
                )
            )
    except IntegrityError:
        return False
    return True


def finish(
    conn: Connection,
    scope: str,
    key: str,
    *,
    response: bytes | None,
    http_status: int | None,
    error: dict[str, Any] | None,
) -> None:
    conn.execute(
        update(ik)
        .where(ik.c.scope == scope, ik.c.key == key)
        .values(state="done", response=response, http_status=http_status, error=error)
    )


def release(conn: Connection, scope: str, key: str) -> None:
    conn.execute(delete(ik).where(ik.c.scope == scope, ik.c.key == key))


def expire(conn: Connection, before_ms: int) -> int:
    return conn.execute(delete(ik).where(ik.c.created_at_ms < before_ms)).rowcount


def release_owned(conn: Connection, owner_ids: list[str]) -> None:
    """Pending keys of processes that died: their request will never answer, so a retry may run again."""
    conn.execute(delete(ik).where(ik.c.owner_id.in_(owner_ids), ik.c.state == "pending"))
