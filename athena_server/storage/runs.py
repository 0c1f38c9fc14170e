"""Run records: the authority on a run's status.

A run is `pending` while it waits for its session, `running` while a process executes it (the
`ux_runs_session_running` index lets a session hold at most one), then final. Its status changes only
through `move`, a conditional UPDATE that matches only when the transition table (storage/run_transitions.py)
allows the move, so a finished run never runs again and two endings never both land. Admission decisions
(concurrency, session turn) read and write here inside one transaction; on PostgreSQL they also take
a transaction-scoped advisory lock, since READ COMMITTED would let two replicas count the same free slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, or_, select, text, update

from athena_client.vocab import RunStatus
from athena_server.storage import keyset
from athena_server.storage.prepared import Prepared
from athena_server.storage.run_transitions import ACTIVE, INITIAL, predecessors
from athena_server.storage.tables import runs

_ADMISSION_LOCK_KEY = 0x41444D54
# Statements on the run path are built once (building a Core statement per call costs more than running it).
_INSERT = Prepared(insert(runs))
_UPDATE = Prepared(update(runs).where(runs.c.id == bindparam("_id")))
# One conditional UPDATE per status a run can move to: it matches only a run in an allowed predecessor status.
_MOVES = {
    status: Prepared(
        update(runs).where(runs.c.id == bindparam("_id"), or_(*(runs.c.status == old for old in predecessors(status))))
    )
    for status in RunStatus
    if predecessors(status)
}
_GET = select(runs).where(runs.c.id == bindparam("id"))
_HEAD = Prepared(
    select(runs.c.id, runs.c.status)
    .where(runs.c.session_id == bindparam("session_id"), or_(*(runs.c.status == s for s in ACTIVE)))
    .order_by(runs.c.created_at_ms, runs.c.id)
)
_RUNNING = select(func.count()).select_from(runs).where(runs.c.status == RunStatus.RUNNING)


@dataclass(frozen=True)
class RunRow:
    id: str
    session_id: str
    status: str
    provider: str
    model: str
    input: str
    output: str | None
    error_code: str | None
    error_message: str | None
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    metadata: dict[str, str] | None
    trace_id: str
    created_at_ms: int
    started_at_ms: int | None
    finished_at_ms: int | None
    attempts: int
    cost_usd: float | None
    directive_id: str | None
    harness_profile_id: str | None
    harness_snapshot: dict[str, Any] | None
    verification: dict[str, Any] | None
    evidence_count: int
    timeout_ms: int
    owner_id: str | None
    pid: int | None


def _row(r: Any) -> RunRow:
    """The row class has the table's columns, by name."""
    return RunRow(**r._mapping)


def admission_lock(conn: Connection) -> None:
    """Serialises admission decisions across processes (SQLite's BEGIN IMMEDIATE already does)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADMISSION_LOCK_KEY})


class IllegalTransition(RuntimeError):
    """A status write the transition table does not allow: a bug in the caller, never a client error."""


def insert_run(conn: Connection, **values: Any) -> None:
    if values.get("status") not in INITIAL:
        raise IllegalTransition(f"a run is created {' or '.join(sorted(INITIAL))}, not '{values.get('status')}'")
    _INSERT.run(conn, values)


def update_run(conn: Connection, run_id: str, **values: Any) -> None:
    """Set the given columns other than the status (which changes through `move`); the statement's SET
    list follows the keys passed."""
    if "status" in values:
        raise IllegalTransition("a run's status changes through runs.move, which checks the transition")
    _UPDATE.run(conn, {"_id": run_id, **values})


def move(conn: Connection, run_id: str, status: RunStatus, **values: Any) -> bool:
    """Write the run's new status (and the given columns) if its current status may move there; False, with
    nothing written, when it may not (it already ended, say, or is gone). The UPDATE's WHERE decides, so
    of two concurrent endings exactly one lands."""
    moves = _MOVES.get(status)
    if moves is None:
        raise IllegalTransition(f"no run status moves to '{status}'")
    return moves.run(conn, {"_id": run_id, "status": status, **values}).rowcount == 1


def get(conn: Connection, run_id: str) -> RunRow | None:
    r = conn.execute(_GET, {"id": run_id}).one_or_none()
    return _row(r) if r is not None else None


def running_count(conn: Connection) -> int:
    return int(conn.execute(_RUNNING).scalar_one())


def session_head(conn: Connection, session_id: str) -> tuple[str | None, str | None]:
    """(the session's running run, its oldest pending run): whoever holds or is next in line for the turn."""
    rows = _HEAD.rows(conn, {"session_id": session_id})
    running = next((run_id for run_id, status in rows if status == RunStatus.RUNNING), None)
    pending = next((run_id for run_id, status in rows if status == RunStatus.PENDING), None)
    return running, pending


def oldest_pending(conn: Connection, session_id: str) -> str | None:
    q = (
        select(runs.c.id)
        .where(runs.c.session_id == session_id, runs.c.status == RunStatus.PENDING)
        .order_by(runs.c.created_at_ms, runs.c.id)
        .limit(1)
    )
    return conn.execute(q).scalar_one_or_none()


def cost_since(conn: Connection, since_ms: int) -> float:
    """Recorded cost of runs that finished at or after `since_ms`."""
    q = select(func.coalesce(func.sum(runs.c.cost_usd), 0.0)).where(runs.c.finished_at_ms >= since_ms)
    return float(conn.execute(q).scalar_one())


def active_page(
    conn: Connection,
    limit: int,
    *,
    session_id: str | None,
    run_id: str | None,
    before: tuple[int, str, str] | None = None,
    offset: int = 0,
) -> list[RunRow]:
    """Running runs, newest first by (startedAt, sessionId, runId), strictly after the `before` key."""
    c = runs.c
    q = select(runs).where(c.status == RunStatus.RUNNING)
    if session_id is not None:
        q = q.where(c.session_id == session_id)
    if run_id is not None:
        q = q.where(c.id == run_id)
    q = keyset.newest_first(q, [c.started_at_ms, c.session_id, c.id], before, limit, offset)
    return [_row(r) for r in conn.execute(q).all()]


def active_in_session(conn: Connection, session_id: str) -> RunRow | None:
    """The session's running run, else its oldest pending run."""
    running, pending = session_head(conn, session_id)
    target = running or pending
    return get(conn, target) if target else None


def owned_active(conn: Connection, owner_ids: list[str]) -> list[RunRow]:
    q = select(runs).where(runs.c.owner_id.in_(owner_ids), runs.c.status.in_(ACTIVE))
    return [_row(r) for r in conn.execute(q).all()]
