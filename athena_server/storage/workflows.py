"""Workflows, their runs and the state of each step of a run.

A workflow run is executed by one server process at a time: `owner_id` is claimed by a conditional write
and cleared when the run ends, when its process stops, or by the reaper when its process died, so the
next start or resume can take it over.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update

from athena_client.vocab import WorkflowRunStatus
from athena_server.storage import keyset
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


# Each row class's columns, selected by name: a row's mapping then holds exactly its class's fields.
_WORKFLOW = [workflows.c[f.name] for f in fields(WorkflowRow)]
_RUN = [workflow_runs.c[f.name] for f in fields(RunRow)]
_STEP = [workflow_steps.c[f.name] for f in fields(StepRow)]


def insert_workflow(conn: Connection, workflow_id: str, definition: dict[str, Any], at_ms: int) -> WorkflowRow:
    result = conn.execute(insert(workflows).values(id=workflow_id, definition=definition, created_at_ms=at_ms))
    (seq,) = result.inserted_primary_key or (0,)
    return WorkflowRow(seq=int(seq), id=workflow_id, definition=definition, created_at_ms=at_ms)


def get_workflow(conn: Connection, workflow_id: str) -> WorkflowRow | None:
    r = conn.execute(select(*_WORKFLOW).where(workflows.c.id == workflow_id)).one_or_none()
    return None if r is None else WorkflowRow(**r._mapping)


def page(conn: Connection, limit: int, before_seq: int | None, offset: int) -> list[WorkflowRow]:
    """Newest first, strictly before `before_seq` (or skipping `offset` rows: the original's cursors)."""
    before = None if before_seq is None else (before_seq,)
    q = keyset.newest_first(select(*_WORKFLOW), [workflows.c.seq], before, limit, offset)
    return [WorkflowRow(**r._mapping) for r in conn.execute(q).all()]


def insert_run(conn: Connection, row: RunRow, step_ids: list[str]) -> None:
    conn.execute(insert(workflow_runs).values(**row.__dict__))
    for position, step_id in enumerate(step_ids):
        conn.execute(
            insert(workflow_steps).values(
                workflow_run_id=row.id,
                step_id=step_id,
                position=position,
                status=WorkflowRunStatus.PENDING,
                attempt=0,
                updated_at_ms=row.created_at_ms,
            )
        )


def latest_run(conn: Connection, workflow_id: str) -> RunRow | None:
    q = select(*_RUN).where(workflow_runs.c.workflow_id == workflow_id).order_by(workflow_runs.c.seq.desc())
    r = conn.execute(q.limit(1)).first()
    return None if r is None else RunRow(**r._mapping)


def get_run(conn: Connection, run_id: str) -> RunRow | None:
    r = conn.execute(select(*_RUN).where(workflow_runs.c.id == run_id)).one_or_none()
    return None if r is None else RunRow(**r._mapping)


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
    q = select(*_RUN).where(
        workflow_runs.c.status == WorkflowRunStatus.RUNNING, or_(workflow_runs.c.owner_id.is_(None), ~live)
    )
    return [RunRow(**r._mapping) for r in conn.execute(q).all()]


def release_owned(conn: Connection, owner_ids: list[str], at_ms: int) -> None:
    conn.execute(
        update(workflow_runs).where(workflow_runs.c.owner_id.in_(owner_ids)).values(owner_id=None, updated_at_ms=at_ms)
    )


def steps(conn: Connection, run_id: str) -> list[StepRow]:
    q = select(*_STEP).where(workflow_steps.c.workflow_run_id == run_id).order_by(workflow_steps.c.position)
    return [StepRow(**r._mapping) for r in conn.execute(q).all()]


def update_step(conn: Connection, workflow_run_id: str, step_id: str, /, **values: Any) -> None:
    """Set columns of one step (`run_id` among them: hence the positional-only parameters)."""
    conn.execute(
        update(workflow_steps)
        .where(workflow_steps.c.workflow_run_id == workflow_run_id, workflow_steps.c.step_id == step_id)
        .values(**values)
    )
