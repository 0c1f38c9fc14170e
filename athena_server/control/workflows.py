"""DAG workflows: the service behind the workflow RPCs (definitions, a workflow's latest run, resume).

`POST /workflows/run/{id}/resume` starts a run of a workflow, or continues its latest run if that did not
succeed: failed steps and the steps behind them run again, succeeded steps are kept. The run itself is
driven by the executor (workflow_executor); what each step transition writes is in workflow_steps, and
the answers' messages are built in workflow_messages.

A run is executed by one process at a time, claimed in the store. State lives in the store step by step,
so a run left by a stopped or dead process is continued by the next start-up (`recover`) or resume, and a
step whose run had already succeeded is not run again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from sqlalchemy import Connection

from athena.v1 import workflows_pb2
from athena_client.vocab import EventType, WorkflowRunStatus
from athena_server import validation
from athena_server.config import Settings
from athena_server.control import catalog_pages, pages
from athena_server.control.outcomes import Outcome, accepted, done
from athena_server.control.runs import RunService
from athena_server.control.workflow_executor import WorkflowExecutor
from athena_server.control.workflow_graph import Definition, parse
from athena_server.control.workflow_messages import run_message, workflow_message
from athena_server.control.workflow_steps import reconcile
from athena_server.errors import config_error, not_found
from athena_server.storage import directives, events, harness_profiles
from athena_server.storage import workflows as store_
from athena_server.storage.store import Store
from athena_server.storage.workflows import RunRow, StepRow, WorkflowRow
from athena_server.timefmt import now_ms
from athena_server.tracing import trace_id

log = logging.getLogger(__name__)

_KIND = "workflows"


class WorkflowService:
    def __init__(self, store: Store, settings: Settings, runs: RunService, owner_id: str) -> None:
        self.store = store
        self.owner_id = owner_id
        self.executor = WorkflowExecutor(store, settings, runs)

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
            events.append(conn, EventType.WORKFLOW_CREATED, trace_id=trace, payload=payload)
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

    async def resume(self, req: workflows_pb2.ResumeWorkflowRunRequest) -> Outcome[workflows_pb2.WorkflowRun]:
        """Start or continue the workflow's latest run: done once it ended, or accepted and still running
        with `wait: false`."""
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
            if run is not None and run.status != WorkflowRunStatus.OK:
                if self.executor.executing(run.id):
                    return wf, run, False
                if not store_.claim(conn, run.id, self.owner_id):
                    return wf, run, False  # another live process executes it
                reconcile(conn, run, definition, at)
            else:
                previous = run.id if run is not None else None
                run = RunRow(
                    id=str(uuid.uuid4()),
                    workflow_id=workflow_id,
                    status=WorkflowRunStatus.PENDING,
                    resumed_from_run_id=previous,
                    owner_id=self.owner_id,
                    created_at_ms=at,
                    updated_at_ms=at,
                    started_at_ms=None,
                    finished_at_ms=None,
                )
                store_.insert_run(conn, run, definition.step_ids)
            store_.update_run(
                conn,
                run.id,
                status=WorkflowRunStatus.RUNNING,
                owner_id=self.owner_id,
                started_at_ms=run.started_at_ms or at,
                finished_at_ms=None,
                updated_at_ms=at,
            )
            payload = {"workflowId": workflow_id, "workflowRunId": run.id, "status": WorkflowRunStatus.RUNNING}
            events.append(conn, EventType.WORKFLOW_RESUMED, trace_id=trace, payload=payload)
            run = store_.get_run(conn, run.id)
            assert run is not None
            return wf, run, True

        wf, run, execute = await self.store.write(claim)
        if execute:
            self.executor.start(wf, run.id, trace)
        if not wait:
            return accepted(await self._snapshot(wf, run.id))
        await self.executor.wait(run.id)
        return done(await self._snapshot(wf, run.id))

    async def _snapshot(self, wf: WorkflowRow, run_id: str) -> workflows_pb2.WorkflowRun:
        def unit(conn: Connection) -> tuple[RunRow, list[StepRow]]:
            run = store_.get_run(conn, run_id)
            assert run is not None
            return run, store_.steps(conn, run_id)

        run, steps = await self.store.read(unit)
        return run_message(run, steps, Definition.from_json(wf.definition))

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
                reconcile(conn, run, Definition.from_json(wf.definition), at)
                store_.update_run(conn, run.id, updated_at_ms=at)
                payload = {
                    "workflowId": wf.id,
                    "workflowRunId": run.id,
                    "status": WorkflowRunStatus.RUNNING,
                    "recovered": True,
                }
                events.append(conn, EventType.WORKFLOW_RESUMED, trace_id=trace, payload=payload)
                taken.append((wf, run.id))
            return taken

        for wf, run_id in await self.store.write(claim):
            log.info("continuing workflow run %s of workflow %s", run_id, wf.id)
            self.executor.start(wf, run_id, trace)

    def in_flight(self) -> list[asyncio.Task[None]]:
        """Workflow runs this process is executing."""
        return self.executor.in_flight()

    async def close(self) -> None:
        """Stop executing; the runs stay `running` without an owner for the next start to continue."""
        await self.executor.close()
