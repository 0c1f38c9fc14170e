"""What each change of a workflow run's steps writes: one store unit per transition, with its event.

The executor (workflow_executor) decides *when* a step starts, succeeds, fails or goes back to waiting;
these functions are the transactions that record it, so a run's state in the store is always one a later
process can continue from: a step is marked `running` with its run id before that run starts, and a run
ends (`ok` or `failed`) only when nothing runs and nothing more can start.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from athena_client.vocab import EventType, RunStatus, WorkflowRunStatus
from athena_server.control.workflow_graph import Definition, Step, render_input
from athena_server.control.workflow_messages import progress_message
from athena_server.errors import AthenaError, config_error
from athena_server.metrics import after_commit
from athena_server.storage import directives, events
from athena_server.storage import runs as run_store
from athena_server.storage import workflows as store_
from athena_server.storage.workflows import RunRow, StepRow
from athena_server.timefmt import now_ms

if TYPE_CHECKING:
    from athena_server.metrics import Metrics

STALE_STEP = "Recovered stale running step after restart."
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def session_for(workflow_id: str, run_id: str, step_id: str) -> str:
    """The session a step's run gets (the original's naming): readable, valid and unique per attempt."""
    base = _UNSAFE.sub("-", f"{workflow_id}-{run_id}-{step_id}")[:48]
    return f"wf-{base}-{uuid.uuid4().hex[:8]}"


def reconcile(conn: Connection, run: RunRow, definition: Definition, at: int) -> None:
    """Prepare an unfinished run to continue: steps left running by a stopped process are settled by
    their run's outcome, and failed steps with everything behind them that did not succeed are reset."""
    for s in store_.steps(conn, run.id):
        if s.status != WorkflowRunStatus.RUNNING:
            continue
        ran = run_store.get(conn, s.run_id) if s.run_id else None
        if ran is not None and ran.status == RunStatus.SUCCEEDED:
            store_.update_step(
                conn,
                run.id,
                s.step_id,
                status=WorkflowRunStatus.OK,
                finished_at_ms=ran.finished_at_ms,
                updated_at_ms=at,
            )
            after_commit(conn, _step_entered(WorkflowRunStatus.OK))
        else:
            store_.update_step(
                conn, run.id, s.step_id, status=WorkflowRunStatus.PENDING, error=STALE_STEP, updated_at_ms=at
            )
            after_commit(conn, _step_entered(WorkflowRunStatus.PENDING))
    rows = store_.steps(conn, run.id)
    failed = [s.step_id for s in rows if s.status == WorkflowRunStatus.FAILED]
    behind = definition.descendants(failed)
    for s in rows:
        if s.step_id in failed or (s.step_id in behind and s.status != WorkflowRunStatus.OK):
            store_.update_step(
                conn,
                run.id,
                s.step_id,
                status=WorkflowRunStatus.PENDING,
                error=None,
                error_code=None,
                finished_at_ms=None,
                updated_at_ms=at,
            )
            after_commit(conn, _step_entered(WorkflowRunStatus.PENDING))


def begin(
    conn: Connection, workflow_id: str, run_id: str, step: Step, definition: Definition, athena_run: str, trace: str
) -> str | None:
    """Mark the step running as a new attempt with the run `athena_run` it is about to start; returns the
    step's input (see `mapped_input`)."""
    at = now_ms()
    current = {s.step_id: s for s in store_.steps(conn, run_id)}
    attempt = current[step.id].attempt + 1
    store_.update_step(
        conn,
        run_id,
        step.id,
        status=WorkflowRunStatus.RUNNING,
        attempt=attempt,
        run_id=athena_run,
        error=None,
        error_code=None,
        started_at_ms=at,
        finished_at_ms=None,
        updated_at_ms=at,
    )
    after_commit(conn, _step_entered(WorkflowRunStatus.RUNNING))
    events.append(
        conn,
        EventType.WORKFLOW_STEP_STARTED,
        trace_id=trace,
        run_id=athena_run,
        payload={"workflowId": workflow_id, "workflowRunId": run_id, "stepId": step.id, "attempt": attempt},
    )
    return mapped_input(conn, step, definition, current)


def mapped_input(conn: Connection, step: Step, definition: Definition, current: dict[str, StepRow]) -> str | None:
    """The step's input when upstream outputs map into it; None runs the directive as it is."""
    incoming = [d for d in definition.incoming(step.id) if d.mappings]
    if not incoming:
        return None
    directive = directives.get(conn, step.directive_id)
    if directive is None:
        raise config_error(f"Directive '{step.directive_id}' of step '{step.id}' no longer exists.")
    inputs: dict[str, str] = {}
    for dep in incoming:
        upstream = current[dep.from_step]
        ran = run_store.get(conn, upstream.run_id) if upstream.run_id else None
        output = ran.output if ran is not None and ran.output is not None else ""
        for m in dep.mappings:
            inputs[m.to_input] = output
    return render_input(directive.input, inputs)


def requeue(conn: Connection, run_id: str, step_id: str) -> None:
    """A step refused at admission waits again: the attempt `begin` counted is given back."""
    current = {s.step_id: s for s in store_.steps(conn, run_id)}
    store_.update_step(
        conn,
        run_id,
        step_id,
        status=WorkflowRunStatus.PENDING,
        attempt=max(0, current[step_id].attempt - 1),
        run_id=None,
        started_at_ms=None,
        updated_at_ms=now_ms(),
    )
    after_commit(conn, _step_entered(WorkflowRunStatus.PENDING))


def succeeded(conn: Connection, workflow_id: str, run_id: str, step: Step, athena_run: str, trace: str) -> None:
    at = now_ms()
    store_.update_step(conn, run_id, step.id, status=WorkflowRunStatus.OK, finished_at_ms=at, updated_at_ms=at)
    after_commit(conn, _step_entered(WorkflowRunStatus.OK))
    events.append(
        conn,
        EventType.WORKFLOW_STEP_COMPLETED,
        trace_id=trace,
        run_id=athena_run,
        payload={"workflowId": workflow_id, "workflowRunId": run_id, "stepId": step.id},
    )


def failed(conn: Connection, workflow_id: str, run_id: str, step: Step, err: AthenaError, trace: str) -> None:
    at = now_ms()
    store_.update_step(
        conn,
        run_id,
        step.id,
        status=WorkflowRunStatus.FAILED,
        error=err.message,
        error_code=err.code_name,
        finished_at_ms=at,
        updated_at_ms=at,
    )
    after_commit(conn, _step_entered(WorkflowRunStatus.FAILED))
    payload: dict[str, Any] = {
        "workflowId": workflow_id,
        "workflowRunId": run_id,
        "stepId": step.id,
        "error": {"code": err.code_name, "message": err.message},
    }
    events.append(conn, EventType.WORKFLOW_STEP_FAILED, trace_id=trace, payload=payload)


def _step_entered(status: WorkflowRunStatus) -> Callable[[Metrics], None]:
    """The recording of a step entering `status`, applied once its transaction committed."""
    return lambda m: m.workflow_steps(status).inc()


def finalise(conn: Connection, workflow_id: str, run_id: str, trace: str) -> None:
    """Nothing runs and nothing more can start: ok when every step succeeded, failed otherwise (a
    pending step left is behind a failed one)."""
    at = now_ms()
    steps = store_.steps(conn, run_id)
    status = WorkflowRunStatus.OK if all(s.status == WorkflowRunStatus.OK for s in steps) else WorkflowRunStatus.FAILED
    store_.update_run(conn, run_id, status=status, owner_id=None, finished_at_ms=at, updated_at_ms=at)
    progress = progress_message(steps)
    payload = {
        "workflowId": workflow_id,
        "workflowRunId": run_id,
        "status": status,
        "completedSteps": progress.completed_steps,
        "failedSteps": progress.failed_steps,
    }
    events.append(
        conn,
        EventType.WORKFLOW_COMPLETED if status == WorkflowRunStatus.OK else EventType.WORKFLOW_FAILED,
        trace_id=trace,
        payload=payload,
    )
