"""DAG workflows: definitions, their runs, and the executor that drives a run's steps.

`POST /workflows/run/{id}/resume` starts a run of a workflow, or continues its latest run if that did not
succeed: failed steps and the steps behind them run again, succeeded steps are kept. Steps whose upstream
steps all succeeded run, independent ones in parallel up to the policy's `maxConcurrentRuns`; a failed
step blocks only what depends on it. Each step is an ordinary run (same admission, run record, events).

The executor belongs to the server, not the request: a caller leaving does not stop it. State lives in the
store step by step (a step is marked `running` with its run id before the run starts), so a run left by a
stopped or dead process is continued by the next start-up or resume, and a step whose run had already
succeeded is not run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from functools import partial
from typing import Any

from sqlalchemy import Connection

from athena.v1 import runs_pb2, workflows_pb2
from athena_client.contract import enum_by_json, json_to_message
from athena_server import validation
from athena_server.config import Settings
from athena_server.control import catalog_pages, pages
from athena_server.control.background import stop_background
from athena_server.control.runs import RunOptions, RunService
from athena_server.control.workflow_graph import Definition, Step, parse, render_input
from athena_server.errors import AthenaError, ErrorCode, config_error, not_found
from athena_server.storage import directives, events, harness_profiles
from athena_server.storage import policy as policy_store
from athena_server.storage import runs as run_store
from athena_server.storage import workflows as store_
from athena_server.storage.store import Store
from athena_server.storage.workflows import RunRow, StepRow, WorkflowRow
from athena_server.timefmt import iso, now_ms
from athena_server.tracing import trace_id

log = logging.getLogger(__name__)

_STATUS = enum_by_json(workflows_pb2.WorkflowRunStatus.DESCRIPTOR)
_KIND = "workflows"
STALE_STEP = "Recovered stale running step after restart."
# A step refused for concurrency waits this long before it is tried again (not a failure).
REFUSED_BACKOFF_SECONDS = 0.2
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def workflow_message(row: WorkflowRow) -> workflows_pb2.Workflow:
    wf = workflows_pb2.Workflow(id=row.id, created_at=iso(row.created_at_ms))
    json_to_message(row.definition, wf.definition)
    return wf


def progress_message(steps: list[StepRow]) -> workflows_pb2.WorkflowProgress:
    total = len(steps)
    counts = {status: sum(1 for s in steps if s.status == status) for status in ("ok", "running", "failed", "pending")}
    return workflows_pb2.WorkflowProgress(
        total_steps=total,
        completed_steps=counts["ok"],
        running_steps=counts["running"],
        failed_steps=counts["failed"],
        pending_steps=counts["pending"],
        percent_complete=round(100 * counts["ok"] / total, 2) if total else 0.0,
    )


def run_message(run: RunRow, steps: list[StepRow], definition: Definition) -> workflows_pb2.WorkflowRun:
    ok = {s.step_id for s in steps if s.status == "ok"}
    message = workflows_pb2.WorkflowRun(
        schema_version=1,
        id=run.id,
        workflow_id=run.workflow_id,
        status=workflows_pb2.WorkflowRunStatus.ValueType(_STATUS[run.status]),
        created_at=iso(run.created_at_ms),
        updated_at=iso(run.updated_at_ms),
        progress=progress_message(steps),
    )
    for s in steps:
        state = workflows_pb2.WorkflowStepState(
            step_id=s.step_id,
            status=workflows_pb2.WorkflowRunStatus.ValueType(_STATUS[s.status]),
            attempt=s.attempt,
            updated_at=iso(s.updated_at_ms),
            blocking_step_ids=definition.blocking(s.step_id, ok) if s.status == "pending" else [],
        )
        if s.run_id is not None:
            state.run_id = s.run_id
        if s.error is not None:
            state.error = s.error
        if s.error_code is not None:
            state.error_code = s.error_code
        if s.started_at_ms is not None:
            state.started_at = iso(s.started_at_ms)
        if s.finished_at_ms is not None:
            state.finished_at = iso(s.finished_at_ms)
        message.steps.append(state)
    if run.resumed_from_run_id is not None:
        message.resumed_from_run_id = run.resumed_from_run_id
    if run.started_at_ms is not None:
        message.started_at = iso(run.started_at_ms)
    if run.finished_at_ms is not None:
        message.finished_at = iso(run.finished_at_ms)
    return message


def session_for(workflow_id: str, run_id: str, step_id: str) -> str:
    """The session a step's run gets (the original's naming): readable, valid and unique per attempt."""
    base = _UNSAFE.sub("-", f"{workflow_id}-{run_id}-{step_id}")[:48]
    return f"wf-{base}-{uuid.uuid4().hex[:8]}"


def _reconcile(conn: Connection, run: RunRow, definition: Definition, at: int) -> None:
    """Prepare an unfinished run to continue: steps left running by a stopped process are settled by
    their run's outcome, and failed steps with everything behind them that did not succeed are reset."""
    rows = store_.steps(conn, run.id)
    for s in rows:
        if s.status != "running":
            continue
        ran = run_store.get(conn, s.run_id) if s.run_id else None
        if ran is not None and ran.status == "succeeded":
            store_.update_step(
                conn, run.id, s.step_id, status="ok", finished_at_ms=ran.finished_at_ms, updated_at_ms=at
            )
        else:
            store_.update_step(conn, run.id, s.step_id, status="pending", error=STALE_STEP, updated_at_ms=at)
    rows = store_.steps(conn, run.id)
    failed = [s.step_id for s in rows if s.status == "failed"]
    behind = definition.descendants(failed)
    for s in rows:
        if s.step_id in failed or (s.step_id in behind and s.status != "ok"):
            store_.update_step(
                conn,
                run.id,
                s.step_id,
                status="pending",
                error=None,
                error_code=None,
                finished_at_ms=None,
                updated_at_ms=at,
            )


class WorkflowService:
    def __init__(self, store: Store, settings: Settings, runs: RunService, owner_id: str) -> None:
        self.store = store
        self.settings = settings
        self.runs = runs
        self.owner_id = owner_id
        # Workflow run id -> the task executing it in this process.
        self._tasks: dict[str, asyncio.Task[None]] = {}

    # ---- definitions --------------------------------------------------------------------------------

    async def create(self, req: workflows_pb2.CreateWorkflowRequest) -> workflows_pb2.Workflow:
        definition = parse(req.definition)
        trace = trace_id()

        def unit(conn: Connection) -> WorkflowRow:
            for i, step in enumerate(definition.steps):
                if directives.get(conn, step.directive_id) is None:
                    raise config_error(
                        f"workflows.create.definition.steps[{i}].directiveId must reference an existing directive. "
                        f"Received: {step.directive_id}."
                    )
                if harness_profiles.get(conn, step.harness_profile_id) is None:
                    raise config_error(
                        f"workflows.create.definition.steps[{i}].harnessProfileId must reference an existing harness "
                        f"profile. Received: {step.harness_profile_id}."
                    )
            row = store_.insert_workflow(conn, str(uuid.uuid4()), definition.to_json(), now_ms())
            payload = {
                "workflowId": row.id,
                "stepCount": len(definition.steps),
                "dependencyCount": len(definition.dependencies),
            }
            events.append(conn, "workflow.created", trace_id=trace, payload=payload)
            return row

        return workflow_message(await self.store.write(unit))

    async def page(self, req: workflows_pb2.ListWorkflowsRequest) -> workflows_pb2.ListWorkflowsResponse:
        limit = validation.page_limit(req.limit if req.HasField("limit") else None)
        before, offset = catalog_pages.decode(req.cursor, _KIND, "workflows.list")
        rows = await self.store.read(lambda conn: store_.page(conn, limit + 1, before, offset))
        page = pages.fill(rows, limit, workflow_message)
        resp = workflows_pb2.ListWorkflowsResponse(items=page.items)
        if page.last is not None:
            resp.next_cursor = catalog_pages.encode(_KIND, page.last.seq)
        return resp

    # ---- runs ---------------------------------------------------------------------------------------

    async def get_run(self, raw_id: str) -> workflows_pb2.GetWorkflowRunResponse:
        workflow_id = raw_id.strip()
        if not workflow_id:
            raise config_error("workflows.status.id must be a non-empty string.")

        def unit(conn: Connection) -> tuple[WorkflowRow, RunRow, list[StepRow]]:
            wf = store_.get_workflow(conn, workflow_id)
            if wf is None:
                raise not_found(f"Workflow '{workflow_id}' not found.")
            run = store_.latest_run(conn, workflow_id)
            if run is None:
                raise not_found("workflows.status.id has no workflow runs.")
            return wf, run, store_.steps(conn, run.id)

        wf, run, steps = await self.store.read(unit)
        message = run_message(run, steps, Definition.from_json(wf.definition))
        return workflows_pb2.GetWorkflowRunResponse(
            workflow=workflow_message(wf), run=message, progress=message.progress
        )

    async def resume(self, req: workflows_pb2.ResumeWorkflowRunRequest) -> tuple[workflows_pb2.WorkflowRun, int]:
        """Start or continue the workflow's latest run; returns it and the REST status (200 when it ended,
        202 with `wait: false`)."""
        workflow_id = req.id.strip()
        if not workflow_id:
            raise config_error("workflows.resume.id must be a non-empty string.")
        wait = req.wait if req.HasField("wait") else True
        trace = trace_id()

        def claim(conn: Connection) -> tuple[WorkflowRow, RunRow, bool]:
            """(workflow, run, whether this process should execute it)."""
            wf = store_.get_workflow(conn, workflow_id)
            if wf is None:
                raise not_found(f"Workflow '{workflow_id}' not found.")
            definition = Definition.from_json(wf.definition)
            at = now_ms()
            run = store_.latest_run(conn, workflow_id)
            if run is not None and run.status != "ok":
                if run.id in self._tasks:
                    return wf, run, False
                if not store_.claim(conn, run.id, self.owner_id):
                    return wf, run, False  # another live process executes it
                _reconcile(conn, run, definition, at)
            else:
                previous = run.id if run is not None else None
                run = RunRow(str(uuid.uuid4()), workflow_id, "pending", previous, self.owner_id, at, at, None, None)
                store_.insert_run(conn, run, definition.step_ids)
            store_.update_run(
                conn,
                run.id,
                status="running",
                owner_id=self.owner_id,
                started_at_ms=run.started_at_ms or at,
                finished_at_ms=None,
                updated_at_ms=at,
            )
            payload = {"workflowId": workflow_id, "workflowRunId": run.id, "status": "running"}
            events.append(conn, "workflow.resumed", trace_id=trace, payload=payload)
            run = store_.get_run(conn, run.id)
            assert run is not None
            return wf, run, True

        wf, run, execute = await self.store.write(claim)
        if execute:
            self._start(wf, run.id, trace)
        if not wait:
            return await self._snapshot(wf, run.id), 202
        task = self._tasks.get(run.id)
        if task is not None:
            await asyncio.shield(task)
        else:
            await self._await_elsewhere(run.id)
        return await self._snapshot(wf, run.id), 200

    async def _snapshot(self, wf: WorkflowRow, run_id: str) -> workflows_pb2.WorkflowRun:
        def unit(conn: Connection) -> tuple[RunRow, list[StepRow]]:
            run = store_.get_run(conn, run_id)
            assert run is not None
            return run, store_.steps(conn, run_id)

        run, steps = await self.store.read(unit)
        return run_message(run, steps, Definition.from_json(wf.definition))

    async def _await_elsewhere(self, run_id: str) -> None:
        """Wait for a run another process executes (or that was left ownerless meanwhile)."""
        while True:
            run = await self.store.read(lambda conn: store_.get_run(conn, run_id))
            if run is None or run.status != "running" or run.owner_id is None:
                return
            await asyncio.sleep(self.settings.cancel_poll_seconds)

    def _start(self, wf: WorkflowRow, run_id: str, trace: str) -> None:
        if run_id in self._tasks:
            return
        task = asyncio.create_task(self._drive(wf, run_id, trace), name=f"athena-workflow-{run_id}")
        self._tasks[run_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(run_id, None))

    # ---- the executor -------------------------------------------------------------------------------

    async def _drive(self, wf: WorkflowRow, run_id: str, trace: str) -> None:
        definition = Definition.from_json(wf.definition)
        active: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                steps, limit = await self.store.read(lambda conn: (store_.steps(conn, run_id), self._limit(conn)))
                ok = {s.step_id for s in steps if s.status == "ok"}
                ready = [
                    s.step_id
                    for s in steps
                    if s.status == "pending" and s.step_id not in active and not definition.blocking(s.step_id, ok)
                ]
                for step_id in ready[: max(0, limit - len(active))]:
                    step = definition.step(step_id)
                    active[step_id] = asyncio.create_task(self._run_step(wf.id, run_id, step, definition, trace))
                if not active:
                    break
                done, _ = await asyncio.wait(active.values(), return_when=asyncio.FIRST_COMPLETED)
                for step_id, task in list(active.items()):
                    if task in done:
                        del active[step_id]
                        if not task.cancelled() and task.exception() is not None:
                            log.error(
                                "workflow step %s of run %s failed unexpectedly",
                                step_id,
                                run_id,
                                exc_info=task.exception(),
                            )
            await self.store.write(lambda conn: self._finalise(conn, wf.id, run_id, trace))
        except asyncio.CancelledError:
            # The server is stopping: the steps' runs end as cancelled; the run stays `running` without an
            # owner, for the next start-up to continue.
            for task in active.values():
                task.cancel()
            for task in active.values():
                with contextlib.suppress(BaseException):
                    await task
            with contextlib.suppress(Exception):
                await asyncio.shield(self._disown(run_id))
            raise
        except Exception:
            log.exception("workflow run %s stopped", run_id)
            await self._disown(run_id)

    async def _disown(self, run_id: str) -> None:
        await self.store.write(lambda conn: store_.update_run(conn, run_id, owner_id=None, updated_at_ms=now_ms()))

    def _limit(self, conn: Connection) -> int:
        policy = policy_store.get(conn)
        if policy is not None and policy.max_concurrent_runs:
            return int(policy.max_concurrent_runs)
        return max(1, self.settings.workflow_parallelism)

    async def _run_step(self, workflow_id: str, run_id: str, step: Step, definition: Definition, trace: str) -> None:
        for attempt_in_pass in range(1, step.max_attempts + 1):
            athena_run = str(uuid.uuid4())

            def begin(conn: Connection, athena_run: str = athena_run) -> str | None:
                at = now_ms()
                current = {s.step_id: s for s in store_.steps(conn, run_id)}
                attempt = current[step.id].attempt + 1
                store_.update_step(
                    conn,
                    run_id,
                    step.id,
                    status="running",
                    attempt=attempt,
                    run_id=athena_run,
                    error=None,
                    error_code=None,
                    started_at_ms=at,
                    finished_at_ms=None,
                    updated_at_ms=at,
                )
                events.append(
                    conn,
                    "workflow.step.started",
                    trace_id=trace,
                    run_id=athena_run,
                    payload={"workflowId": workflow_id, "workflowRunId": run_id, "stepId": step.id, "attempt": attempt},
                )
                return self._mapped_input(conn, run_id, step, definition, current)

            mapped = await self.store.write(begin)
            create = runs_pb2.CreateRunRequest(
                session_id=session_for(workflow_id, run_id, step.id),
                directive_id=step.directive_id,
                harness_profile_id=step.harness_profile_id,
                metadata={
                    **step.metadata,
                    "workflowId": workflow_id,
                    "workflowRunId": run_id,
                    "workflowStepId": step.id,
                },
            )
            options = RunOptions(run_id=athena_run, timeout_ms=step.timeout_ms, input=mapped)
            try:
                await self.runs.create(create, context="workflows.step", options=options)
            except AthenaError as err:
                if err.code == ErrorCode.ERROR_CODE_POLICY_CONCURRENCY_LIMIT_EXCEEDED:
                    # Refused at admission: not an attempt; give the slot back and try again later.
                    await self.store.write(lambda conn: self._requeue(conn, run_id, step.id))
                    await asyncio.sleep(REFUSED_BACKOFF_SECONDS)
                    return
                if attempt_in_pass < step.max_attempts:
                    continue
                failed = partial(
                    self._step_failed, workflow_id=workflow_id, run_id=run_id, step=step, err=err, trace=trace
                )
                await self.store.write(failed)
                return
            done = partial(
                self._step_ok, workflow_id=workflow_id, run_id=run_id, step=step, athena_run=athena_run, trace=trace
            )
            await self.store.write(done)
            return

    def _mapped_input(
        self, conn: Connection, run_id: str, step: Step, definition: Definition, current: dict[str, StepRow]
    ) -> str | None:
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

    @staticmethod
    def _requeue(conn: Connection, run_id: str, step_id: str) -> None:
        current = {s.step_id: s for s in store_.steps(conn, run_id)}
        store_.update_step(
            conn,
            run_id,
            step_id,
            status="pending",
            attempt=max(0, current[step_id].attempt - 1),
            run_id=None,
            started_at_ms=None,
            updated_at_ms=now_ms(),
        )

    @staticmethod
    def _step_ok(conn: Connection, workflow_id: str, run_id: str, step: Step, athena_run: str, trace: str) -> None:
        at = now_ms()
        store_.update_step(conn, run_id, step.id, status="ok", finished_at_ms=at, updated_at_ms=at)
        events.append(
            conn,
            "workflow.step.completed",
            trace_id=trace,
            run_id=athena_run,
            payload={"workflowId": workflow_id, "workflowRunId": run_id, "stepId": step.id},
        )

    @staticmethod
    def _step_failed(conn: Connection, workflow_id: str, run_id: str, step: Step, err: AthenaError, trace: str) -> None:
        at = now_ms()
        store_.update_step(
            conn,
            run_id,
            step.id,
            status="failed",
            error=err.message,
            error_code=err.code_name,
            finished_at_ms=at,
            updated_at_ms=at,
        )
        payload: dict[str, Any] = {
            "workflowId": workflow_id,
            "workflowRunId": run_id,
            "stepId": step.id,
            "error": {"code": err.code_name, "message": err.message},
        }
        events.append(conn, "workflow.step.failed", trace_id=trace, payload=payload)

    @staticmethod
    def _finalise(conn: Connection, workflow_id: str, run_id: str, trace: str) -> None:
        """Nothing runs and nothing more can start: ok when every step succeeded, failed otherwise (a
        pending step left is behind a failed one)."""
        at = now_ms()
        steps = store_.steps(conn, run_id)
        status = "ok" if all(s.status == "ok" for s in steps) else "failed"
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
            conn, "workflow.completed" if status == "ok" else "workflow.failed", trace_id=trace, payload=payload
        )

    # ---- process lifecycle --------------------------------------------------------------------------

    def release_owned(self, conn: Connection, dead_owner_ids: list[str], at_ms: int) -> None:
        """The reaper's hook: runs of dead processes lose their owner, so they can be continued."""
        store_.release_owned(conn, dead_owner_ids, at_ms)

    async def recover(self) -> None:
        """At start-up, after the reaper: continue the runs that stopped or dead processes left running."""
        trace = trace_id()

        def claim(conn: Connection) -> list[tuple[WorkflowRow, str]]:
            taken: list[tuple[WorkflowRow, str]] = []
            at = now_ms()
            for run in store_.ownerless_running(conn):
                wf = store_.get_workflow(conn, run.workflow_id)
                if wf is None or not store_.claim(conn, run.id, self.owner_id):
                    continue
                _reconcile(conn, run, Definition.from_json(wf.definition), at)
                store_.update_run(conn, run.id, updated_at_ms=at)
                payload = {"workflowId": wf.id, "workflowRunId": run.id, "status": "running", "recovered": True}
                events.append(conn, "workflow.resumed", trace_id=trace, payload=payload)
                taken.append((wf, run.id))
            return taken

        for wf, run_id in await self.store.write(claim):
            log.info("continuing workflow run %s of workflow %s", run_id, wf.id)
            self._start(wf, run_id, trace)

    def in_flight(self) -> list[asyncio.Task[None]]:
        """Workflow runs this process is executing."""
        return list(self._tasks.values())

    async def close(self) -> None:
        """Stop executing; the runs stay `running` without an owner for the next start to continue."""
        await stop_background(None, self._tasks.values())
