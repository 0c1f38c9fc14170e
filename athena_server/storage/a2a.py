"""Agent-to-agent messages and their dead-letter queue.

Every decision is a conditional write, so it holds across processes sharing the store: an attempt is
claimed by moving a message from `pending` (with the attempt count the claimer read) to `delivering`; an
attempt is settled only by a write that still finds it `delivering` with that attempt's run id; a dead
letter moves out of `pending` once. On PostgreSQL a second writer waits for the first's row lock and then
finds the condition false, so it does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update

from athena_client.vocab import A2aDlqStatus, A2aMessageStatus
from athena_server.storage.rows import row_of
from athena_server.storage.tables import a2a_dlq, a2a_messages

# A message's and a dead letter's statuses, as the contract spells them.
PENDING = A2aMessageStatus.PENDING
DELIVERING = A2aMessageStatus.DELIVERING
DELIVERED = A2aMessageStatus.DELIVERED
DEAD_LETTERED = A2aMessageStatus.DEAD_LETTERED
DISCARDED = A2aMessageStatus.DISCARDED

DLQ_PENDING = A2aDlqStatus.PENDING
DLQ_REQUEUED = A2aDlqStatus.REQUEUED
DLQ_DISCARDED = A2aDlqStatus.DISCARDED


@dataclass(frozen=True)
class MessageRow:
    seq: int
    id: str
    from_session_id: str
    to_session_id: str
    input: str
    metadata: dict[str, str] | None
    provider: str
    model: str
    status: str
    attempts: int
    max_attempts: int
    requeues: int
    next_attempt_at_ms: int | None
    owner_id: str | None
    run_id: str | None
    last_error_code: str | None
    last_error_message: str | None
    trace_id: str
    created_at_ms: int
    updated_at_ms: int
    delivered_at_ms: int | None


@dataclass(frozen=True)
class DlqRow:
    seq: int
    id: str
    status: str
    reason: str | None
    payload: dict[str, Any]
    audit_note: str | None
    created_at_ms: int
    updated_at_ms: int


def _message(r: Any) -> MessageRow:
    return row_of(MessageRow, r)


def _dlq(r: Any) -> DlqRow:
    return row_of(DlqRow, r, payload=r.payload or {})


# ---- messages -----------------------------------------------------------------------------------------


def insert_message(conn: Connection, row: MessageRow) -> MessageRow:
    values = {**row.__dict__}
    values.pop("seq")
    result = conn.execute(insert(a2a_messages).values(**values))
    (seq,) = result.inserted_primary_key or (0,)
    return MessageRow(**{**row.__dict__, "seq": int(seq)})


def get_message(conn: Connection, message_id: str) -> MessageRow | None:
    r = conn.execute(select(a2a_messages).where(a2a_messages.c.id == message_id)).one_or_none()
    return None if r is None else _message(r)


def page_messages(
    conn: Connection,
    limit: int,
    before_seq: int | None,
    offset: int,
    *,
    status: str | None = None,
    from_session_id: str | None = None,
    to_session_id: str | None = None,
) -> list[MessageRow]:
    """Newest first, strictly before `before_seq` (or skipping `offset` rows)."""
    q = select(a2a_messages).order_by(a2a_messages.c.seq.desc()).limit(limit).offset(offset)
    if before_seq is not None:
        q = q.where(a2a_messages.c.seq < before_seq)
    if status is not None:
        q = q.where(a2a_messages.c.status == status)
    if from_session_id is not None:
        q = q.where(a2a_messages.c.from_session_id == from_session_id)
    if to_session_id is not None:
        q = q.where(a2a_messages.c.to_session_id == to_session_id)
    return [_message(r) for r in conn.execute(q).all()]


def due(conn: Connection, at_ms: int, limit: int) -> list[MessageRow]:
    """Pending messages whose next attempt may start at `at_ms`, longest-waiting first."""
    q = (
        select(a2a_messages)
        .where(a2a_messages.c.status == PENDING, a2a_messages.c.next_attempt_at_ms <= at_ms)
        .order_by(a2a_messages.c.next_attempt_at_ms, a2a_messages.c.seq)
        .limit(limit)
        # PostgreSQL: replicas scanning at once claim disjoint rows instead of queueing on each other's
        # row locks (SQLite serialises writers and ignores the clause).
        .with_for_update(skip_locked=True)
    )
    return [_message(r) for r in conn.execute(q).all()]


def claim(conn: Connection, row: MessageRow, owner_id: str, run_id: str, at_ms: int) -> bool:
    """Start the message's next attempt in process `owner_id` with run `run_id`, if nobody did since it was
    read (same status and attempt count)."""
    q = (
        update(a2a_messages)
        .where(
            a2a_messages.c.id == row.id,
            a2a_messages.c.status == PENDING,
            a2a_messages.c.attempts == row.attempts,
        )
        .values(
            status=DELIVERING,
            attempts=row.attempts + 1,
            owner_id=owner_id,
            run_id=run_id,
            next_attempt_at_ms=None,
            updated_at_ms=at_ms,
        )
    )
    return conn.execute(q).rowcount == 1


def settle(conn: Connection, message_id: str, attempt_run_id: str, **values: Any) -> bool:
    """End the attempt that runs `attempt_run_id` (still `delivering` with that run), with `values`."""
    q = (
        update(a2a_messages)
        .where(
            a2a_messages.c.id == message_id,
            a2a_messages.c.status == DELIVERING,
            a2a_messages.c.run_id == attempt_run_id,
        )
        .values(owner_id=None, **values)
    )
    return conn.execute(q).rowcount == 1


def delivering_of(conn: Connection, owner_ids: list[str]) -> list[MessageRow]:
    """Messages whose current attempt these processes own."""
    q = select(a2a_messages).where(a2a_messages.c.status == DELIVERING, a2a_messages.c.owner_id.in_(owner_ids))
    return [_message(r) for r in conn.execute(q).all()]


def move(conn: Connection, message_id: str, from_status: str, **values: Any) -> bool:
    """Change a message that is still in `from_status`."""
    q = update(a2a_messages).where(a2a_messages.c.id == message_id, a2a_messages.c.status == from_status)
    return conn.execute(q.values(**values)).rowcount == 1


def requeue_message(conn: Connection, message_id: str, at_ms: int) -> bool:
    """Put a dead-lettered message back on the bus: due now, with a fresh round of attempts."""
    q = (
        update(a2a_messages)
        .where(a2a_messages.c.id == message_id, a2a_messages.c.status == DEAD_LETTERED)
        .values(
            status=PENDING,
            attempts=0,
            requeues=a2a_messages.c.requeues + 1,
            next_attempt_at_ms=at_ms,
            updated_at_ms=at_ms,
        )
    )
    return conn.execute(q).rowcount == 1


# ---- dead letters -------------------------------------------------------------------------------------


def get_dead_letter(conn: Connection, item_id: str) -> DlqRow | None:
    r = conn.execute(select(a2a_dlq).where(a2a_dlq.c.id == item_id)).one_or_none()
    return None if r is None else _dlq(r)


def put_dead_letter(conn: Connection, item_id: str, reason: str, payload: dict[str, Any], at_ms: int) -> None:
    """The message's dead letter becomes `pending` (a requeued message that failed again reuses its item)."""
    values = {"status": DLQ_PENDING, "reason": reason, "payload": payload, "updated_at_ms": at_ms}
    if conn.execute(update(a2a_dlq).where(a2a_dlq.c.id == item_id).values(**values)).rowcount:
        return
    conn.execute(insert(a2a_dlq).values(id=item_id, created_at_ms=at_ms, audit_note=None, **values))


def move_dead_letter(
    conn: Connection, item_id: str, from_status: str, to_status: str, at_ms: int, **values: Any
) -> bool:
    q = update(a2a_dlq).where(a2a_dlq.c.id == item_id, a2a_dlq.c.status == from_status)
    return conn.execute(q.values(status=to_status, updated_at_ms=at_ms, **values)).rowcount == 1


def page_dead_letters(
    conn: Connection, limit: int, after_seq: int | None, offset: int, status: str | None
) -> list[DlqRow]:
    """Oldest first (the original's file order), strictly after `after_seq` (or skipping `offset` rows)."""
    q = select(a2a_dlq).order_by(a2a_dlq.c.seq).limit(limit).offset(offset)
    if after_seq is not None:
        q = q.where(a2a_dlq.c.seq > after_seq)
    if status is not None:
        q = q.where(a2a_dlq.c.status == status)
    return [_dlq(r) for r in conn.execute(q).all()]
