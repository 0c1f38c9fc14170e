"""Retention: deleting records older than the configured ages, in bounded batches (the sweep is in
athena_server/engine/retention.py).

What each age covers (`ATHENA_RUN_HISTORY_RETENTION_DAYS`, the history age; `ATHENA_EVENT_RETENTION_DAYS`,
the event age, defaulting to the history age):

- runs that ended (never `pending`/`running`) and finished before the history age, with their evidence and
  any leftover cancel requests. Never a run that finished today (UTC): the policy's daily cost budget sums
  today's finished runs, so pruning one would hand its cost back;
- sessions not updated within the history age that have no active run and no queued work: their transcript
  entries (oldest first), then the session row once its transcript is empty. A session keeps its whole
  transcript while it is in use (it is the context of its next run); transcripts age with their session;
- events created before the event age, except those of an active run. Events are taken from the start of
  the log up to the first younger event, so what remains is the log's tail (plus an active run's events);
  `retention_state.events_pruned_through` records the highest id deleted, and a resume point below it is
  refused (control/events.py) instead of silently skipping the deleted events;
- schedule logs that finished before the history age, and policy rejections created before it;
- workflow runs that ended (`ok`/`failed`) before the history age, with their steps, unless the run is its
  workflow's latest: the status route shows the latest run and a resume continues a failed one.

Not here: idempotency keys already expire after `ATHENA_IDEMPOTENCY_TTL_HOURS` (24 h, control/idempotency.py
`expire`, with every heartbeat); a work item leaves its queue (is deleted) once its run succeeded; workflows,
directives, harness profiles, run templates, schedules and the policy are configuration, not history.

Every batch function deletes at most `budget` rows (a single run with more evidence than the budget is
the one exception: it goes whole) in the caller's transaction, finds them through an index (never a scan of
the table), and is idempotent: two processes running the same batch at once delete each row once, and the
counts they return add up to the rows deleted. The sweep still takes a lease (`claim`/`renew`) so a fleet
sweeps once per interval instead of once per replica. The schema declares no foreign keys; the order
below (dependents first) is what one would need if it did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from sqlalchemy import Connection, and_, case, delete, exists, func, or_, select, update
from sqlalchemy.sql import ColumnElement

from athena_client.vocab import EventType, WorkflowRunStatus
from athena_server.storage import events as event_log
from athena_server.storage.prepared import Prepared
from athena_server.storage.run_transitions import ACTIVE, FINAL
from athena_server.storage.tables import (
    cancel_requests,
    events,
    evidence,
    policy_rejections,
    retention_state,
    runs,
    schedule_logs,
    sessions,
    transcript_entries,
    work_items,
    workflow_runs,
    workflow_steps,
)

_STATE = 1
_ENDED_WORKFLOW = (WorkflowRunStatus.OK, WorkflowRunStatus.FAILED)
# The keys of `events.pruned`'s `deleted` counts, in deletion order.
TABLES = (
    "evidence",
    "cancelRequests",
    "runs",
    "transcriptEntries",
    "sessions",
    "events",
    "scheduleLogs",
    "policyRejections",
    "workflowSteps",
    "workflowRuns",
)


@dataclass
class Batch:
    """What one batch deleted, per table (TABLES' keys), and whether the table may hold more to delete."""

    deleted: dict[str, int] = field(default_factory=dict)
    more: bool = False

    @property
    def rows(self) -> int:
        return sum(self.deleted.values())


# ---- the state row: lease and event watermark ---------------------------------------------------------


def claim(conn: Connection, owner: str, now_ms: int, until_ms: int) -> bool:
    """Take the sweep lease when it is free (expired, or already ours); returns whether we hold it."""
    free = or_(retention_state.c.lease_until_ms <= now_ms, retention_state.c.lease_owner == owner)
    stmt = (
        update(retention_state)
        .where(retention_state.c.id == _STATE, free)
        .values(lease_owner=owner, lease_until_ms=until_ms)
    )
    return conn.execute(stmt).rowcount == 1


def renew(conn: Connection, owner: str, until_ms: int) -> bool:
    """Extend our lease (the first statement of every batch: on PostgreSQL it also locks the state row, so
    batches of two processes never interleave); False when another process took it over."""
    stmt = (
        update(retention_state)
        .where(retention_state.c.id == _STATE, retention_state.c.lease_owner == owner)
        .values(lease_until_ms=until_ms)
    )
    return conn.execute(stmt).rowcount == 1


def finish(
    conn: Connection, owner: str, now_ms: int, next_at_ms: int, deleted: dict[str, int], trace_id: str
) -> int | None:
    """End a sweep: hold the lease until the next sweep is due (other processes skip until then) and, when
    anything was deleted, append `events.pruned` with the counts. Returns that event's id."""
    conn.execute(
        update(retention_state)
        .where(retention_state.c.id == _STATE, retention_state.c.lease_owner == owner)
        .values(lease_until_ms=next_at_ms, swept_at_ms=now_ms)
    )
    if not any(deleted.values()):
        return None
    payload: dict[str, Any] = {"deleted": {k: deleted.get(k, 0) for k in TABLES}}
    through = events_pruned_through(conn)
    if through:
        payload["eventsPrunedThrough"] = f"{event_log.EVENT_ID_PREFIX}{through}"
    return event_log.append(conn, EventType.EVENTS_PRUNED, trace_id=trace_id, payload=payload, created_at_ms=now_ms)


# Read by every events list with a cursor and every stream backlog page: compiled once, run on the driver.
_PRUNED_THROUGH = Prepared(select(retention_state.c.events_pruned_through).where(retention_state.c.id == _STATE))


def events_pruned_through(conn: Connection) -> int:
    """The highest event id the sweep deleted (0: none): a resume point below it may miss events."""
    rows = _PRUNED_THROUGH.rows(conn, {})
    return int(rows[0][0]) if rows else 0


def _active_runs(conn: Connection, column: Any) -> list[Any]:
    """`column` (id or session_id) of the pending and running runs (ix_runs_status: a few rows)."""
    return list(conn.execute(select(column).where(runs.c.status.in_(ACTIVE))).scalars())


# ---- runs -----------------------------------------------------------------------------------------------


def prune_runs(conn: Connection, before_ms: int, budget: int) -> Batch:
    """Ended runs that finished before `before_ms`, oldest first (ix_runs_finished), with their evidence and
    cancel requests; as many whole runs as fit in `budget` rows (at least one). Only an ended run has a
    finish time; the status is checked on the rows found, not in the query, which would lead SQLite to
    ix_runs_status (every ended run, then a sort) instead of the finish-time range."""
    q = (
        select(runs.c.id, runs.c.status, runs.c.evidence_count)
        .where(runs.c.finished_at_ms < before_ms)
        .order_by(runs.c.finished_at_ms)
        .limit(budget)
    )
    found = conn.execute(q).all()
    ended = [r for r in found if r.status in FINAL]
    if not ended:
        return Batch()
    sizes = accumulate(1 + (r.evidence_count or 0) for r in ended)
    ids = [r.id for r, total in zip(ended, sizes, strict=True) if total <= budget] or [ended[0].id]
    out = Batch(more=len(found) == budget or len(ids) < len(ended))
    out.deleted["evidence"] = conn.execute(delete(evidence).where(evidence.c.run_id.in_(ids))).rowcount
    out.deleted["cancelRequests"] = conn.execute(
        delete(cancel_requests).where(cancel_requests.c.run_id.in_(ids))
    ).rowcount
    out.deleted["runs"] = conn.execute(delete(runs).where(runs.c.id.in_(ids), runs.c.status.in_(FINAL))).rowcount
    return out


# ---- sessions and their transcripts -------------------------------------------------------------------


def prune_sessions(conn: Connection, before_ms: int, budget: int) -> Batch:
    """Sessions not updated before `before_ms` (ix_sessions_updated) with no active run and no queued work:
    their transcript entries oldest first, then the session row once its transcript is empty. Each batch
    checks the conditions again, so a session that a run touched between batches is left alone."""
    busy: ColumnElement[bool] = exists().where(work_items.c.session_id == sessions.c.id)
    q = select(sessions.c.id).where(sessions.c.updated_at_ms < before_ms, ~busy)
    active = _active_runs(conn, runs.c.session_id)
    if active:
        q = q.where(sessions.c.id.not_in(active))
    found = list(conn.execute(q.order_by(sessions.c.updated_at_ms, sessions.c.id).limit(budget)).scalars())
    out = Batch(more=len(found) == budget)
    entries = gone = 0
    for session_id in found:
        left = budget - entries - gone
        if left <= 0:
            out.more = True
            break
        doomed = (
            select(transcript_entries.c.seq)
            .where(transcript_entries.c.session_id == session_id)
            .order_by(transcript_entries.c.seq)
            .limit(left)
        )
        n = conn.execute(delete(transcript_entries).where(transcript_entries.c.seq.in_(doomed))).rowcount
        entries += n
        if n < left:
            gone += conn.execute(delete(sessions).where(sessions.c.id == session_id)).rowcount
        else:
            out.more = True  # its transcript may go on; the session row goes with a later batch
    out.deleted["transcriptEntries"] = entries
    out.deleted["sessions"] = gone
    return out


# ---- events -------------------------------------------------------------------------------------------


@dataclass
class EventBatch(Batch):
    """An events batch also says where the next one starts (events of active runs stay behind it)."""

    after: int = 0


def prune_events(conn: Connection, before_ms: int, budget: int, after: int) -> EventBatch:
    """Events after id `after` created before `before_ms`, from the start of the log (primary key order) up
    to the first younger event, except those of active runs; raises the watermark to the highest id deleted."""
    q = (
        select(events.c.seq, events.c.created_at_ms, events.c.run_id)
        .where(events.c.seq > after)
        .order_by(events.c.seq)
        .limit(budget)
    )
    found = conn.execute(q).all()
    old = []
    for r in found:
        if r.created_at_ms >= before_ms:
            break
        old.append(r)
    if not old:
        return EventBatch(after=after)
    top = old[-1].seq
    active = set(_active_runs(conn, runs.c.id)) if any(r.run_id for r in old) else set()
    doomed = [r.seq for r in old if r.run_id not in active]
    out = EventBatch(after=top, more=len(old) == budget)
    if not doomed:
        return out
    stmt = delete(events).where(events.c.seq > after, events.c.seq <= top)
    if active:
        stmt = stmt.where(or_(events.c.run_id.is_(None), events.c.run_id.not_in(active)))
    out.deleted["events"] = conn.execute(stmt).rowcount
    highest = max(doomed)
    conn.execute(
        update(retention_state)
        .where(retention_state.c.id == _STATE)
        .values(
            events_pruned_through=case(
                (retention_state.c.events_pruned_through < highest, highest),
                else_=retention_state.c.events_pruned_through,
            )
        )
    )
    return out


# ---- schedule logs, rejections, workflow runs -----------------------------------------------------------


def prune_schedule_logs(conn: Connection, before_ms: int, budget: int) -> Batch:
    """Schedule logs that finished before `before_ms` (ix_schedule_logs_finished)."""
    doomed = (
        select(schedule_logs.c.seq)
        .where(schedule_logs.c.finished_at_ms < before_ms)
        .order_by(schedule_logs.c.finished_at_ms)
        .limit(budget)
    )
    n = conn.execute(delete(schedule_logs).where(schedule_logs.c.seq.in_(doomed))).rowcount
    return Batch({"scheduleLogs": n}, more=n == budget)


def prune_rejections(conn: Connection, before_ms: int, budget: int) -> Batch:
    """Policy rejections recorded before `before_ms` (ix_rejections_created)."""
    doomed = (
        select(policy_rejections.c.seq)
        .where(policy_rejections.c.created_at_ms < before_ms)
        .order_by(policy_rejections.c.created_at_ms)
        .limit(budget)
    )
    n = conn.execute(delete(policy_rejections).where(policy_rejections.c.seq.in_(doomed))).rowcount
    return Batch({"policyRejections": n}, more=n == budget)


def prune_workflow_runs(conn: Connection, before_ms: int, budget: int) -> Batch:
    """Workflow runs that ended before `before_ms` (ix_workflow_runs_finished) and are not their workflow's
    latest run, with their steps; as many whole runs as fit in `budget` rows (at least one)."""
    newer = workflow_runs.alias("newer")
    superseded = exists().where(
        and_(newer.c.workflow_id == workflow_runs.c.workflow_id, newer.c.seq > workflow_runs.c.seq)
    )
    q = (
        select(workflow_runs.c.id)
        .where(workflow_runs.c.finished_at_ms < before_ms, workflow_runs.c.status.in_(_ENDED_WORKFLOW), superseded)
        .order_by(workflow_runs.c.finished_at_ms)
        .limit(budget)
    )
    found = list(conn.execute(q).scalars())
    if not found:
        return Batch()
    per_run = (
        select(workflow_steps.c.workflow_run_id, func.count())
        .where(workflow_steps.c.workflow_run_id.in_(found))
        .group_by(workflow_steps.c.workflow_run_id)
    )
    counts: dict[str, int] = {run_id: int(n) for run_id, n in conn.execute(per_run).all()}
    sizes = accumulate(1 + counts.get(i, 0) for i in found)
    ids = [i for i, total in zip(found, sizes, strict=True) if total <= budget] or found[:1]
    out = Batch(more=len(found) == budget or len(ids) < len(found))
    out.deleted["workflowSteps"] = conn.execute(
        delete(workflow_steps).where(workflow_steps.c.workflow_run_id.in_(ids))
    ).rowcount
    out.deleted["workflowRuns"] = conn.execute(
        delete(workflow_runs).where(workflow_runs.c.id.in_(ids), workflow_runs.c.status.in_(_ENDED_WORKFLOW))
    ).rowcount
    return out
