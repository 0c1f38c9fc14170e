"""Session work queues: items in arrival order, and each queue's draining flag."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, func, insert, select, update

from athena_server.storage.tables import work_items, work_queues


@dataclass(frozen=True)
class WorkItemRow:
    seq: int
    id: str
    session_id: str
    payload: str
    mode: str
    created_at_ms: int


@dataclass(frozen=True)
class QueueRow:
    session_id: str
    draining: bool
    updated_at_ms: int
    items: list[WorkItemRow]


def items(conn: Connection, session_id: str) -> list[WorkItemRow]:
    q = select(work_items).where(work_items.c.session_id == session_id).order_by(work_items.c.seq)
    return [WorkItemRow(r.seq, r.id, r.session_id, r.payload, r.mode, r.created_at_ms) for r in conn.execute(q).all()]


def queue(conn: Connection, session_id: str) -> QueueRow | None:
    r = conn.execute(select(work_queues).where(work_queues.c.session_id == session_id)).one_or_none()
    if r is None:
        return None
    return QueueRow(r.session_id, bool(r.draining), r.updated_at_ms, items(conn, session_id))


def enqueue(
    conn: Connection, item_id: str, session_id: str, payload: str, mode: str, at_ms: int
) -> tuple[WorkItemRow, bool]:
    """Append an item unless one with the same payload and mode is queued (then that one, and False)."""
    existing = conn.execute(
        select(work_items).where(
            work_items.c.session_id == session_id, work_items.c.payload == payload, work_items.c.mode == mode
        )
    ).first()
    if existing is not None:
        r = existing
        return WorkItemRow(r.seq, r.id, r.session_id, r.payload, r.mode, r.created_at_ms), False
    result = conn.execute(
        insert(work_items).values(id=item_id, session_id=session_id, payload=payload, mode=mode, created_at_ms=at_ms)
    )
    (seq,) = result.inserted_primary_key or (0,)
    touched = conn.execute(
        update(work_queues).where(work_queues.c.session_id == session_id).values(updated_at_ms=at_ms)
    ).rowcount
    if not touched:
        conn.execute(insert(work_queues).values(session_id=session_id, draining=False, updated_at_ms=at_ms))
    return WorkItemRow(int(seq), item_id, session_id, payload, mode, at_ms), True


def depth(conn: Connection, session_id: str) -> int:
    q = select(func.count()).select_from(work_items).where(work_items.c.session_id == session_id)
    return int(conn.execute(q).scalar_one())
