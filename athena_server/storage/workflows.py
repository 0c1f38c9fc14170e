"""Workflows, their runs and the state of each step of a run.

A workflow run is executed by one server process at a time: `owner_id` is claimed by a conditional write
and cleared when the run ends, when its process stops, or by the reaper when its process died, so the
next start or resume can take it over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update

from athena_server.storage.tables import instances, workflow_runs, workflow_steps, workflows


@dataclass(frozen=True)
class WorkflowRow:
    seq: int
    id: str
    definition: dict[str, Any]
    created_at_ms: int


@dataclass(frozen=True)
class RunRow:
    id: str
    workflow_id: str
    status: str
    resumed_from_run_id: str | None
    owner_id: str | None
    created_at_ms: int
    updated_at_ms: int
    started_at_ms: int | None
    finished_at_ms: int | None


@dataclass(frozen=True)
class StepRow:
    step_id: str
    position: int
    status: str
    attempt: int
    run_id: str | None
    error: str | None
    error_code: str | None
    started_at_ms: int | None
    finished_at_ms: int | None
    updated_at_ms: int


def _run(r: Any) -> RunRow:
    return RunRow(
        r.id,
        r.workflow_id,
        r.status,
        r.resumed_from_run_id,
        r.owner_id,
        r.created_at_ms,
        r.updated_at_ms,
        r.started_at_ms,
        r.finished_at_ms,
    )


def insert_workflow(conn: Connection, workflow_id: str, definition: dict[str, Any], at_ms: int) -> WorkflowRow:
    result = conn.execute(insert(workflows).values(id=workflow_id, definition=definition, created_at_ms=at_ms))
    (seq,) = result.inserted_primary_key or (0,)
    return WorkflowRow(int(seq), workflow_id, definition, at_ms)


def get_workflow(conn: Connection, workflow_id: str) -> WorkflowRow | None:
    r = conn.execute(select(workflows).where(workflows.c.id == workflow_id)).one_or_none()
    return None if r is None else WorkflowRow(r.seq, r.id, r.definition, r.created_at_ms)


def page(conn: Connection, limit: int, before_seq: int | None, offset: int) -> list[WorkflowRow]:
    q = select(workflows).order_by(workflows.c.seq.desc()).limit(limit).offset(offset)
    if before_seq is not None:
        q = q.where(workflows.c.seq < before_seq)
    return [WorkflowRow(r.seq, r.id, r.definition, r.created_at_ms) for r in conn.execute(q).all()]


def insert_run(conn: Connection, row: RunRow, step_ids: list[str]) -> None:
    conn.execute(insert(workflow_runs).values(**row.__dict__))
    for position, step_id in enumerate(step_ids):
        conn.execute(
            insert(workflow_steps).values(
                workflow_run_id=row.id,
                step_id=step_id,
                position=position,
                status="pending",
                attempt=0,
                updated_at_ms=row.created_at_ms,
            )
        )


def latest_run(conn: Connection, workflow_id: str) -> RunRow | None:
    q = select(workflow_runs).where(workflow_runs.c.workflow_id == workflow_id).order_by(workflow_runs.c.seq.desc())
    r = conn.execute(q.limit(1)).first()
    return None if r is None else _run(r)


def get_run(conn: Connection, run_id: str) -> RunRow | None:
    r = conn.execute(select(workflow_runs).where(workflow_runs.c.id == run_id)).one_or_none()
    return None if r is None else _run(r)


def update_run(conn: Connection, run_id: str, **values: Any) -> None:
    conn.execute(update(workflow_runs).where(workflow_runs.c.id == run_id).values(**values))


def claim(conn: Connection, run_id: str, owner_id: str) -> bool:
    """Take the run unless a live process executes it (its owner is still registered)."""
    live = select(instances.c.id).where(instances.c.id == workflow_runs.c.owner_id).exists()
    q = (
        update(workflow_runs)
        .where(
            workflow_runs.c.id == run_id,
            or_(workflow_runs.c.owner_id.is_(None), workflow_runs.c.owner_id == owner_id, ~live),
        )
        .values(owner_id=owner_id)
    )
    return conn.execute(q).rowcount == 1


def ownerless_running(conn: Connection) -> list[RunRow]:
    """Runs left `running` by a process that stopped or died."""
    live = select(instances.c.id).where(instances.c.id == workflow_runs.c.owner_id).exists()
    q = select(workflow_runs).where(workflow_runs.c.status == "running", or_(workflow_runs.c.owner_id.is_(None), ~live))
    return [_run(r) for r in conn.execute(q).all()]


def release_owned(conn: Connection, owner_ids: list[str], at_ms: int) -> None:
    conn.execute(
        update(workflow_runs).where(workflow_runs.c.owner_id.in_(owner_ids)).values(owner_id=None, updated_at_ms=at_ms)
    )


def steps(conn: Connection, run_id: str) -> list[StepRow]:
    q = select(workflow_steps).where(workflow_steps.c.workflow_run_id == run_id).order_by(workflow_steps.c.position)
    return [
        StepRow(
            r.step_id,
            r.position,
            r.status,
            r.attempt,
            r.run_id,
            r.error,
            r.error_code,
            r.started_at_ms,
            r.finished_at_ms,
            r.updated_at_ms,
        )
        for r in conn.execute(q).all()
    ]


def update_step(conn: Connection, workflow_run_id: str, step_id: str, /, **values: Any) -> None:
    """Set columns of one step (`run_id` among them: hence the positional-only parameters)."""
    conn.execute(
        update(workflow_steps)
        .where(workflow_steps.c.workflow_run_id == workflow_run_id, workflow_steps.c.step_id == step_id)
        .values(**values)
    )
