"""Runs: the service composing a run's stages, each in its own module.

A run is created `pending` and becomes `running` when it holds its session's turn and the policy admits
it; both usually happen in the transaction that creates it. It ends `succeeded`, `failed`, `cancelled`
or `timed-out`. Every move commits with its event (`run.created`, `run.started`, `run.completed`,
`run.failed`, `run.cancelled`) and its transcript entry, so the event log, the transcript and the run
record never disagree, whatever the moment a process dies. Waiting and cancelling go through the store,
so they work the same from any server process sharing it.

The stages: run_specs (request -> spec), run_admission (the admitting transaction), run_turns (a pending
run's wait for its session), run_execution (the provider call), run_endings (recording how it ended),
run_results (the answer), run_control (cancelling), run_templates (template runs).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from athena.v1 import run_templates_pb2, runs_pb2
from athena_server.config import Settings
from athena_server.control import run_control, run_templates
from athena_server.control.memory import MemoryService
from athena_server.control.outcomes import Outcome, accepted, done
from athena_server.control.run_admission import admit
from athena_server.control.run_context import RunContext
from athena_server.control.run_endings import INTERRUPT_REASON, abandon, stopped
from athena_server.control.run_execution import drive, settle
from athena_server.control.run_results import accepted_result, queued_result, run_message
from athena_server.control.run_specs import RunOptions, RunSpecs, TemplateInfo, with_options
from athena_server.control.run_states import Queued
from athena_server.engine.cancels import CancelWatcher
from athena_server.engine.context import check_input
from athena_server.engine.pricing import Pricing
from athena_server.engine.providers import ProviderRegistry
from athena_server.errors import AthenaError, config_error, not_found
from athena_server.storage import runs
from athena_server.storage.store import Store
from athena_server.tracing import trace_id

__all__ = ["RunOptions", "RunService"]

log = logging.getLogger(__name__)


class RunService:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        providers: ProviderRegistry,
        watcher: CancelWatcher,
        owner_id: str,
        memory: MemoryService | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.providers = providers
        self.specs = RunSpecs(settings, providers)
        self.pricing = Pricing.from_settings(settings)
        self.ctx = RunContext(store, settings, providers, watcher, owner_id, self.pricing, memory)
        self._background: set[asyncio.Task[Any]] = set()

    async def create(
        self,
        req: runs_pb2.CreateRunRequest,
        *,
        context: str = "runs.create",
        template: TemplateInfo | None = None,
        options: RunOptions | None = None,
    ) -> Outcome[runs_pb2.RunResult]:
        """Start a run: done when it finished before the answer (`wait`), accepted when it goes on in the
        background or its input was queued as a work item."""
        partial, directive_id, profile_id = self.specs.parse(req, context, template=template)
        refs = None
        if directive_id or profile_id:
            refs = await self.store.read(lambda conn: self.specs.load_refs(conn, directive_id, profile_id))
        spec = with_options(self.specs.complete(partial, refs, context), options or RunOptions())
        # Before anything is stored: an input that can never fit leaves no run, entry or shadow directive.
        check_input(spec.input)
        run_id = (options.run_id if options else None) or str(uuid.uuid4())
        trace = trace_id()
        try:
            outcome = await self.store.write(lambda conn: admit(self.ctx, conn, spec, run_id, trace))
        except asyncio.CancelledError:
            # The caller went away while the admitting transaction was in flight: it may still commit, and a
            # run nobody drives would hold its session for good. End it, if it exists, after that write.
            await asyncio.shield(abandon(self.ctx, run_id, stopped(self.ctx.closing)))
            raise
        if isinstance(outcome, AthenaError):
            raise outcome
        if isinstance(outcome, Queued):
            return accepted(queued_result(spec, outcome))
        if outcome.interrupted is not None:
            # Stop it now if this process runs it; another process sees the request on its next poll.
            self.ctx.watcher.deliver(outcome.interrupted, INTERRUPT_REASON)
        if not spec.wait:
            task = asyncio.create_task(drive(self.ctx, outcome), name=f"athena-run-{run_id}")
            self._background.add(task)
            task.add_done_callback(self._background_done)
            return accepted(accepted_result(outcome))
        return done(await drive(self.ctx, outcome))

    async def run_template(self, req: run_templates_pb2.RunRunTemplateRequest) -> Outcome[runs_pb2.RunResult]:
        """`POST /api/v1/templates/{id}/run` (control/run_templates.py), its run started here."""

        async def start(
            create: runs_pb2.CreateRunRequest, context: str, template: TemplateInfo
        ) -> Outcome[runs_pb2.RunResult]:
            return await self.create(create, context=context, template=template)

        return await run_templates.run_template(self.store, start, req)

    async def get(self, run_id: str) -> runs_pb2.Run:
        run_id = run_id.strip()
        if not run_id:
            raise config_error("runs.get.runId must be a non-empty string.")
        row = await self.store.read(lambda conn: runs.get(conn, run_id))
        if row is None:
            raise not_found(f"Run '{run_id}' not found.")
        return run_message(row)

    async def cancel_by_run(self, run_id: str, reason: str | None) -> runs_pb2.CancelRunByRunIdResponse:
        return await run_control.cancel_run(self.store, self.ctx.watcher, run_id, reason)

    async def cancel_by_session(self, session_id: str, reason: str | None) -> runs_pb2.CancelRunBySessionIdResponse:
        return await run_control.cancel_session_run(self.store, self.ctx.watcher, session_id, reason)

    # ---- runs this process drives in the background -------------------------------------------------

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            err = task.exception()
            if not isinstance(err, AthenaError):
                log.error("background run task failed", exc_info=err)

    def in_flight(self) -> list[asyncio.Task[Any]]:
        """Runs this process executes for callers that did not wait (`wait: false`)."""
        return list(self._background)

    async def close(self) -> None:
        """Stop runs this process still executes in the background; each is recorded as cancelled."""
        self.ctx.closing = True
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            await settle(task)
