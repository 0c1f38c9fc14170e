"""The contract messages of workflows and their runs, built from stored rows.

Kept apart from the service and the executor: every answer that shows a workflow or a run (create, list,
status, resume) builds it here, so the shape of a run's progress and of each step's state is decided once.
"""

from __future__ import annotations

from collections import Counter

from athena.v1 import workflows_pb2
from athena_client.contract import enum_by_json, json_to_message
from athena_client.vocab import WorkflowRunStatus
from athena_server.control.workflow_graph import Definition
from athena_server.storage.workflows import RunRow, StepRow, WorkflowRow
from athena_server.timefmt import iso

_STATUS = enum_by_json(workflows_pb2.WorkflowRunStatus.DESCRIPTOR)


def workflow_message(row: WorkflowRow) -> workflows_pb2.Workflow:
    wf = workflows_pb2.Workflow(id=row.id, created_at=iso(row.created_at_ms))
    json_to_message(row.definition, wf.definition)
    return wf


def progress_message(steps: list[StepRow]) -> workflows_pb2.WorkflowProgress:
    total = len(steps)
    counts = Counter(s.status for s in steps)
    return workflows_pb2.WorkflowProgress(
        total_steps=total,
        completed_steps=counts[WorkflowRunStatus.OK],
        running_steps=counts[WorkflowRunStatus.RUNNING],
        failed_steps=counts[WorkflowRunStatus.FAILED],
        pending_steps=counts[WorkflowRunStatus.PENDING],
        percent_complete=round(100 * counts[WorkflowRunStatus.OK] / total, 2) if total else 0.0,
    )


def step_message(step: StepRow, definition: Definition, ok: set[str]) -> workflows_pb2.WorkflowStepState:
    """A step's state; a pending step names the upstream steps it still waits for (`ok`: those that
    succeeded)."""
    state = workflows_pb2.WorkflowStepState(
        step_id=step.step_id,
        status=workflows_pb2.WorkflowRunStatus.ValueType(_STATUS[step.status]),
        attempt=step.attempt,
        updated_at=iso(step.updated_at_ms),
        blocking_step_ids=definition.blocking(step.step_id, ok) if step.status == WorkflowRunStatus.PENDING else [],
    )
    if step.run_id is not None:
        state.run_id = step.run_id
    if step.error is not None:
        state.error = step.error
    if step.error_code is not None:
        state.error_code = step.error_code
    if step.started_at_ms is not None:
        state.started_at = iso(step.started_at_ms)
    if step.finished_at_ms is not None:
        state.finished_at = iso(step.finished_at_ms)
    return state


def run_message(run: RunRow, steps: list[StepRow], definition: Definition) -> workflows_pb2.WorkflowRun:
    ok = {s.step_id for s in steps if s.status == WorkflowRunStatus.OK}
    message = workflows_pb2.WorkflowRun(
        schema_version=1,
        id=run.id,
        workflow_id=run.workflow_id,
        status=workflows_pb2.WorkflowRunStatus.ValueType(_STATUS[run.status]),
        created_at=iso(run.created_at_ms),
        updated_at=iso(run.updated_at_ms),
        progress=progress_message(steps),
    )
    message.steps.extend(step_message(s, definition, ok) for s in steps)
    if run.resumed_from_run_id is not None:
        message.resumed_from_run_id = run.resumed_from_run_id
    if run.started_at_ms is not None:
        message.started_at = iso(run.started_at_ms)
    if run.finished_at_ms is not None:
        message.finished_at = iso(run.finished_at_ms)
    return message
