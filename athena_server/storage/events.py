"""The event log (an outbox): appended inside the transaction of the change it reports.

Ids must become visible in increasing order, or a reader resuming after id N could skip a lower id that
committed later. SQLite serialises writers, so commit order is id order. On PostgreSQL concurrent
transactions take sequence values out of order, so appenders hold a transaction-scoped advisory lock
from their first event to commit, which makes commit order follow id order there too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select, text

from athena_server.access.caller import actor as request_actor
from athena_server.storage.notify import CHANNEL, NOTIFY_FROM
from athena_server.storage.prepared import Prepared
from athena_server.storage.store import EVENTS_WRITTEN
from athena_server.storage.tables import events
from athena_server.timefmt import now_ms

_EVENT_LOCK_KEY = 0x45564E54
_ORDER_AND_NOTIFY = text("SELECT pg_advisory_xact_lock(:k), pg_notify(:channel, :source)")
# Statements on the run path are built once: building a Core statement per call costs ~5x executing it.
_INSERT = Prepared(insert(events))
EVENT_ID_PREFIX = "evt_"


@dataclass(frozen=True)
class EventRow:
    seq: int
    type: str
    trace_id: str
    session_id: str | None
    run_id: str | None
    payload: dict[str, Any]
    created_at_ms: int
    policy: dict[str, Any] | None = None
    actor: str | None = None

    @property
    def id(self) -> str:
        return f"{EVENT_ID_PREFIX}{self.seq}"


@dataclass(frozen=True)
class EventFilter:
    session_id: str | None = None
    run_id: str | None = None
    trace_id: str | None = None
    types: tuple[str, ...] = ()
    created_after_ms: int | None = None
    created_before_ms: int | None = None


def append(
    conn: Connection,
    type: str,
    *,
    trace_id: str,
    payload: dict[str, Any],
    session_id: str | None = None,
    run_id: str | None = None,
    created_at_ms: int | None = None,
    policy: dict[str, Any] | None = None,
) -> int:
    """Append one event in the caller's transaction. Its actor is the request's authenticated caller: the
    store runs a request's units in the request's context (see Store.write)."""
    hold_log_order(conn)
    outcome = _INSERT.run(
        conn,
        {
            "type": type,
            "trace_id": trace_id,
            "session_id": session_id,
            "run_id": run_id,
            "payload": payload,
            "created_at_ms": created_at_ms if created_at_ms is not None else now_ms(),
            "policy": policy,
            "actor": request_actor(),
        },
    )
    return int(outcome.lastrowid or 0)


@dataclass(frozen=True)
class NewEvent:
    """An event to append with others in one statement (append_all)."""

    type: str
    trace_id: str
    payload: dict[str, Any]
    session_id: str | None = None
    run_id: str | None = None
    created_at_ms: int | None = None


_COLUMNS = ("type", "trace_id", "session_id", "run_id", "payload", "created_at_ms", "policy", "actor")
# One multi-row INSERT per number of rows, built on first use (a run appends two events at once).
_INSERT_ROWS: dict[int, Prepared] = {}


def _insert_rows(count: int) -> Prepared:
    prepared = _INSERT_ROWS.get(count)
    if prepared is None:
        rows = [{c: bindparam(f"{c}_{i}", type_=events.c[c].type) for c in _COLUMNS} for i in range(count)]
        prepared = _INSERT_ROWS[count] = Prepared(insert(events).values(rows))
    return prepared


def append_all(conn: Connection, news: Sequence[NewEvent]) -> None:
    """Append `news` in the caller's transaction, in that order, as `append` would one by one. On SQLite as
    one multi-row INSERT: a statement the SQLite writer steps is a hand-over of the GIL, the cost that
    bounds the run path (storage/sqlite_writer.py)."""
    if len(news) < 2 or conn.dialect.name != "sqlite":
        for new in news:
            append(
                conn,
                new.type,
                trace_id=new.trace_id,
                payload=new.payload,
                session_id=new.session_id,
                run_id=new.run_id,
                created_at_ms=new.created_at_ms,
            )
        return
    hold_log_order(conn)
    actor = request_actor()
    params: dict[str, Any] = {}
    for i, new in enumerate(news):
        params[f"type_{i}"] = new.type
        params[f"trace_id_{i}"] = new.trace_id
        params[f"session_id_{i}"] = new.session_id
        params[f"run_id_{i}"] = new.run_id
        params[f"payload_{i}"] = new.payload
        params[f"created_at_ms_{i}"] = new.created_at_ms if new.created_at_ms is not None else now_ms()
        params[f"policy_{i}"] = None
        params[f"actor_{i}"] = actor
    _insert_rows(len(news)).run(conn, params)


def hold_log_order(conn: Connection) -> None:
    """Call before appending to a followed table (events, transcript entries) in this transaction: on
    PostgreSQL, take the log's advisory lock (held to commit, so ids become visible in id order) and queue
    the commit notification, once per transaction; everywhere, mark the transaction so the store wakes this
    process's streams when it commits."""
    if conn.info.get(EVENTS_WRITTEN):
        return
    if conn.dialect.name == "postgresql":
        source = conn.info.get(NOTIFY_FROM, "")
        conn.execute(_ORDER_AND_NOTIFY, {"k": _EVENT_LOCK_KEY, "channel": CHANNEL, "source": source})
    conn.info[EVENTS_WRITTEN] = True


def _row(r: Any) -> EventRow:
    return EventRow(
        r.seq, r.type, r.trace_id, r.session_id, r.run_id, r.payload or {}, r.created_at_ms, r.policy, r.actor
    )


def list_after(
    conn: Connection, after_seq: int, limit: int, flt: EventFilter, up_to_seq: int | None = None
) -> list[EventRow]:
    """Events with seq > after_seq (and <= up_to_seq), oldest first."""
    q = select(events).where(events.c.seq > after_seq).order_by(events.c.seq).limit(limit)
    if up_to_seq is not None:
        q = q.where(events.c.seq <= up_to_seq)
    if flt.session_id is not None:
        q = q.where(events.c.session_id == flt.session_id)
    if flt.run_id is not None:
        q = q.where(events.c.run_id == flt.run_id)
    if flt.trace_id is not None:
        q = q.where(events.c.trace_id == flt.trace_id)
    if flt.types:
        q = q.where(events.c.type.in_(flt.types))
    if flt.created_after_ms is not None:
        q = q.where(events.c.created_at_ms >= flt.created_after_ms)
    if flt.created_before_ms is not None:
        q = q.where(events.c.created_at_ms <= flt.created_before_ms)
    return [_row(r) for r in conn.execute(q).all()]


def matches(flt: EventFilter) -> Callable[[EventRow], bool]:
    """`flt` as an in-memory predicate: exactly the rows `list_after` selects with it."""

    def test(row: EventRow) -> bool:
        return (
            (flt.session_id is None or row.session_id == flt.session_id)
            and (flt.run_id is None or row.run_id == flt.run_id)
            and (flt.trace_id is None or row.trace_id == flt.trace_id)
            and (not flt.types or row.type in flt.types)
            and (flt.created_after_ms is None or row.created_at_ms >= flt.created_after_ms)
            and (flt.created_before_ms is None or row.created_at_ms <= flt.created_before_ms)
        )

    return test


def last_seq(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(events.c.seq), 0))).scalar_one())
