"""Session work queues: items in arrival order, and each queue's draining flag.

A drain is claimed by a conditional write (`draining` false → true, with the owning process), so two
processes never drain one session at once. An item being run carries the run's id; it leaves the queue in
the transaction after that run succeeded, and if its process dies in between, the next drain looks at the
run: succeeded means the item is done, anything else puts it back.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, insert, select, update

from athena_client.vocab import RunStatus
from athena_server.storage.rows import row_of
from athena_server.storage.tables import runs, work_items, work_queues


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
    return [row_of(WorkItemRow, r) for r in conn.execute(q).all()]


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
        return row_of(WorkItemRow, r), False
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


def claim_drain(conn: Connection, session_id: str, owner_id: str, at_ms: int) -> bool:
    """Mark the session's queue as being drained by `owner_id`; False when a drain is already under way.
    A session whose queue was never used has nothing to drain: True, with nothing marked."""
    if conn.execute(select(work_queues.c.session_id).where(work_queues.c.session_id == session_id)).first() is None:
        return True
    claimed = conn.execute(
        update(work_queues)
        .where(work_queues.c.session_id == session_id, work_queues.c.draining.is_(False))
        .values(draining=True, drain_owner=owner_id, updated_at_ms=at_ms)
    ).rowcount
    return claimed == 1


def release_drain(conn: Connection, session_id: str, at_ms: int) -> None:
    conn.execute(
        update(work_queues)
        .where(work_queues.c.session_id == session_id)
        .values(draining=False, drain_owner=None, updated_at_ms=at_ms)
    )


def release_owned(conn: Connection, dead_owner_ids: list[str], at_ms: int) -> None:
    """The reaper's hook: drains of dead processes end (their items are reconciled by the next drain)."""
    conn.execute(
        update(work_queues)
        .where(work_queues.c.drain_owner.in_(dead_owner_ids))
        .values(draining=False, drain_owner=None, updated_at_ms=at_ms)
    )


def reconcile(conn: Connection, session_id: str) -> int:
    """Items a dead drain left marked with a run: done if that run succeeded (removed; returns how many),
    queued again otherwise."""
    marked = conn.execute(
        select(work_items.c.seq, work_items.c.run_id, runs.c.status)
        .select_from(work_items.outerjoin(runs, runs.c.id == work_items.c.run_id))
        .where(work_items.c.session_id == session_id, work_items.c.run_id.is_not(None))
    ).all()
    done = [r.seq for r in marked if r.status == RunStatus.SUCCEEDED]
    again = [r.seq for r in marked if r.status != RunStatus.SUCCEEDED]
    if done:
        conn.execute(delete(work_items).where(work_items.c.seq.in_(done)))
    if again:
        conn.execute(update(work_items).where(work_items.c.seq.in_(again)).values(run_id=None))
    return len(done)


def take_batch(conn: Connection, session_id: str, run_id: str) -> list[WorkItemRow]:
    """The next run's items, marked with `run_id`: the head item if it is `followup`, otherwise the
    consecutive block of `collect` items at the head."""
    queued = items(conn, session_id)
    if not queued:
        return []
    batch = [queued[0]]
    if queued[0].mode == "collect":
        for item in queued[1:]:
            if item.mode != "collect":
                break
            batch.append(item)
    conn.execute(update(work_items).where(work_items.c.seq.in_([i.seq for i in batch])).values(run_id=run_id))
    return batch


def finish_batch(conn: Connection, session_id: str, run_id: str, succeeded: bool, at_ms: int) -> None:
    """After the batch's run: its items leave the queue (succeeded) or are queued again."""
    marked = work_items.c.run_id == run_id
    if succeeded:
        conn.execute(delete(work_items).where(marked))
    else:
        conn.execute(update(work_items).where(marked).values(run_id=None))
    conn.execute(update(work_queues).where(work_queues.c.session_id == session_id).values(updated_at_ms=at_ms))
