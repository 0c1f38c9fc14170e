"""The executor that drives a workflow run's steps, one asyncio task per run this process owns.

Steps whose upstream steps all succeeded run, independent ones in parallel up to the policy's
`maxConcurrentRuns` (or the configured parallelism); a failed step blocks only what depends on it. Each
step is an ordinary run (same admission, run record, events). A step refused for concurrency is not a
failed attempt: it waits and is tried again.

The executor belongs to the server, not to the request that started the run: a caller leaving does not stop
it. When the server stops, the steps' runs end as cancelled and the run stays `running` without an owner,
for the next start-up to continue (the transitions are in workflow_steps).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from functools import partial

from sqlalchemy import Connection

from athena.v1 import runs_pb2
from athena_client.vocab import WorkflowRunStatus
from athena_server.config import Settings
from athena_server.control import workflow_steps
from athena_server.control.background import stop_background
from athena_server.control.runs import RunOptions, RunService
from athena_server.control.workflow_graph import Definition, Step
from athena_server.errors import AthenaError, ErrorCode
from athena_server.storage import policy as policy_store
from athena_server.storage import workflows as store_
from athena_server.storage.store import Store
from athena_server.storage.workflows import WorkflowRow
from athena_server.timefmt import now_ms

log = logging.getLogger(__name__)

# A step refused for concurrency waits this long before it is tried again (not a failure).
REFUSED_BACKOFF_SECONDS = 0.2


class WorkflowExecutor:
    def __init__(self, store: Store, settings: Settings, runs: RunService) -> None:
        self.store = store
        self.settings = settings
        self.runs = runs
        # Workflow run id -> the task executing it in this process.
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def executing(self, run_id: str) -> bool:
        """Whether this process executes the run now."""
        return run_id in self._tasks

    def start(self, wf: WorkflowRow, run_id: str, trace: str) -> None:
        """Execute a run this process has claimed (once: a second start of the same run does nothing)."""
        if run_id in self._tasks:
            return
        task = asyncio.create_task(self._drive(wf, run_id, trace), name=f"athena-workflow-{run_id}")
        self._tasks[run_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(run_id, None))

    async def wait(self, run_id: str) -> None:
        """Until the run ends here, or, executed by another process, until it ends or is left ownerless.
        The caller leaving does not stop the run."""
        task = self._tasks.get(run_id)
        if task is not None:
            await asyncio.shield(task)
            return
        while True:
            run = await self.store.read(lambda conn: store_.get_run(conn, run_id))
            if run is None or run.status != WorkflowRunStatus.RUNNING or run.owner_id is None:
                return
            await asyncio.sleep(self.settings.cancel_poll_seconds)

    def in_flight(self) -> list[asyncio.Task[None]]:
        """Workflow runs this process is executing."""
        return list(self._tasks.values())

    async def close(self) -> None:
        """Stop executing; the runs stay `running` without an owner for the next start to continue."""
        await stop_background(None, self._tasks.values())

    async def _drive(self, wf: WorkflowRow, run_id: str, trace: str) -> None:
        definition = Definition.from_json(wf.definition)
        active: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                steps, limit = await self.store.read(lambda conn: (store_.steps(conn, run_id), self._limit(conn)))
                ok = {s.step_id for s in steps if s.status == WorkflowRunStatus.OK}
                ready = [
                    s.step_id
                    for s in steps
                    if s.status == WorkflowRunStatus.PENDING
                    and s.step_id not in active
                    and not definition.blocking(s.step_id, ok)
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
            await self.store.write(lambda conn: workflow_steps.finalise(conn, wf.id, run_id, trace))
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
        """One pass of a step: up to its `maxAttempts` attempts, each a run, until one succeeds."""
        for attempt_in_pass in range(1, step.max_attempts + 1):
            athena_run = str(uuid.uuid4())
            begin = partial(
                workflow_steps.begin,
                workflow_id=workflow_id,
                run_id=run_id,
                step=step,
                definition=definition,
                athena_run=athena_run,
                trace=trace,
            )
            mapped = await self.store.write(begin)
            create = runs_pb2.CreateRunRequest(
                session_id=workflow_steps.session_for(workflow_id, run_id, step.id),
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
                    await self.store.write(lambda conn: workflow_steps.requeue(conn, run_id, step.id))
                    await asyncio.sleep(REFUSED_BACKOFF_SECONDS)
                    return
                if attempt_in_pass < step.max_attempts:
                    continue
                failed = partial(
                    workflow_steps.failed, workflow_id=workflow_id, run_id=run_id, step=step, err=err, trace=trace
                )
                await self.store.write(failed)
                return
            done = partial(
                workflow_steps.succeeded,
                workflow_id=workflow_id,
                run_id=run_id,
                step=step,
                athena_run=athena_run,
                trace=trace,
            )
            await self.store.write(done)
            return
