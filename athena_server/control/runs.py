"""Runs: admission, the session turn, execution, and the record of how each run ended.

A run is created `pending` and becomes `running` when it holds its session's turn and the policy admits
it; both usually happen in the transaction that creates it. It ends `succeeded`, `failed`, `cancelled`
or `timed-out`. Every move commits with its event (`run.created`, `run.started`, `run.completed`,
`run.failed`, `run.cancelled`) and its transcript entry, so the event log, the transcript and the run
record never disagree, whatever the moment a process dies. Waiting and cancelling go through the store,
so they work the same from any server process sharing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from athena.v1 import harness_profiles_pb2, run_templates_pb2, runs_pb2, work_pb2
from athena_client.contract import enum_by_json, json_to_message
from athena_server import validation
from athena_server.config import Settings
from athena_server.control import admission
from athena_server.control.admission import Workload
from athena_server.control.memory import MemoryService
from athena_server.control.run_specs import RunSpec, RunSpecs, TemplateInfo
from athena_server.control.run_templates import clean_params, render
from athena_server.engine.cancels import CancelWatcher
from athena_server.engine.context import MAX_HISTORY_ENTRIES, check_input, compile_context
from athena_server.engine.execution import Attempts, Verification, call_with_retries, verify
from athena_server.engine.pricing import Pricing
from athena_server.engine.providers import ProviderRegistry, ProviderRequest, ProviderResult
from athena_server.errors import AthenaError, ErrorCode, config_error, not_found
from athena_server.storage import (
    cancels,
    directives,
    events,
    evidence,
    run_endings,
    run_templates,
    runs,
    sessions,
    transcripts,
    work,
)
from athena_server.storage import policy as policy_store
from athena_server.storage.cancels import CancelRow
from athena_server.storage.runs import RunRow
from athena_server.storage.store import Store
from athena_server.storage.transcripts import EntryRow
from athena_server.timefmt import iso, now_ms
from athena_server.tracing import trace_id

log = logging.getLogger(__name__)

# The status column holds the contract's JSON spelling of RunStatus ("pending", "timed-out", ...).
_STATUS = enum_by_json(runs_pb2.RunStatus.DESCRIPTOR)
_VERIFICATION = enum_by_json(runs_pb2.VerificationStatus.DESCRIPTOR)
# Final status and event of a run that ended with an error, by error code.
_FAILURE = {
    ErrorCode.ERROR_CODE_RUN_CANCELLED: ("cancelled", "run.cancelled"),
    ErrorCode.ERROR_CODE_RUN_TIMEOUT: ("timed-out", "run.failed"),
    ErrorCode.ERROR_CODE_SCHEDULE_TIMEOUT: ("timed-out", "run.failed"),
}


INTERRUPT_REASON = "interrupted by a new run in the session"


def _stopped(closing: bool) -> AthenaError:
    """Why a run ended when the task driving it was cancelled: its caller left, or the server is stopping."""
    why = "the server is stopping" if closing else "the caller disconnected"
    return AthenaError(ErrorCode.ERROR_CODE_RUN_CANCELLED, f"Run cancelled: {why}.")


def cancelled_error(reason: str | None) -> AthenaError:
    message = f"Run cancelled: {reason}" if reason else "Run cancelled by API request."
    return AthenaError(ErrorCode.ERROR_CODE_RUN_CANCELLED, message)


@dataclass(frozen=True)
class RunOptions:
    """What internal callers (drains, schedules, workflow steps) set beyond the public request. They go
    through the same admission as `POST /runs`; only these knobs differ."""

    # The run's id, chosen by the caller so it can record the run before it exists (a drain's items).
    run_id: str | None = None
    # A fixed timeout (a workflow step's `execution.timeoutMs`) instead of the policy's run timeout.
    timeout_ms: int | None = None
    # The schedule rule: `defaultScheduleTimeoutMs` (else ATHENA_SCHEDULE_RUN_TIMEOUT_MS), SCHEDULE_TIMEOUT.
    schedule: bool = False
    # Replaces the directive's text while keeping the directive on the run (workflow output mappings).
    input: str | None = None


@dataclass(frozen=True)
class Admitted:
    """A run that exists: started (it holds the session's turn) or pending (waiting for it)."""

    run_id: str
    trace: str
    spec: RunSpec
    created_ms: int
    timeout_ms: int
    retry_budget: int
    started_ms: int | None = None
    history: tuple[tuple[str, str], ...] = ()
    # The session's run this one asked to cancel (`runningRunBehavior: "interrupt"`).
    interrupted: str | None = None


@dataclass(frozen=True)
class Queued:
    item: work.WorkItemRow
    depth: int


@dataclass(frozen=True)
class Finished:
    output: str
    result: ProviderResult
    attempts: int
    cost_usd: float | None
    verification: Verification
    finished_ms: int


def _usage(input_tokens: int | None, output_tokens: int | None, total: int | None) -> runs_pb2.Usage | None:
    if total is None:
        return None
    return runs_pb2.Usage(input_tokens=input_tokens or 0, output_tokens=output_tokens or 0, total_tokens=total)


def _failures(items: list[dict[str, Any]]) -> list[runs_pb2.VerificationFailure]:
    return [json_to_message(item, runs_pb2.VerificationFailure()) for item in items]


def run_message(row: RunRow) -> runs_pb2.Run:
    run = runs_pb2.Run(
        run_id=row.id,
        session_id=row.session_id,
        status=runs_pb2.RunStatus.ValueType(_STATUS[row.status]),
        provider=row.provider,
        model=row.model,
        input=row.input,
        created_at=iso(row.created_at_ms),
        trace_id=row.trace_id,
        attempts=row.attempts,
        evidence_count=row.evidence_count,
        metadata=row.metadata or {},
        timeout_ms=row.timeout_ms,
    )
    if row.output is not None:
        run.output = row.output
    if row.started_at_ms is not None:
        run.started_at = iso(row.started_at_ms)
    if row.finished_at_ms is not None:
        run.finished_at = iso(row.finished_at_ms)
    usage = _usage(row.input_tokens, row.output_tokens, row.total_tokens)
    if usage is not None:
        run.usage.CopyFrom(usage)
    if row.error_code is not None:
        run.error.CopyFrom(runs_pb2.RunError(code=row.error_code, message=row.error_message or ""))
    if row.cost_usd is not None:
        run.cost_usd = row.cost_usd
    if row.directive_id is not None:
        run.directive_id = row.directive_id
    if row.harness_profile_id is not None:
        run.harness_profile_id = row.harness_profile_id
    if row.verification is not None:
        run.verification_status = runs_pb2.VerificationStatus.ValueType(_VERIFICATION[row.verification["status"]])
        run.verification_failures.extend(_failures(row.verification.get("failures", [])))
    return run


def _snapshot_message(spec: RunSpec) -> harness_profiles_pb2.HarnessProfile:
    """The run's profile as a message. The shadow profile is built directly: parsing its JSON costs more
    than the rest of a mock run's result."""
    snap = spec.harness_snapshot
    if spec.harness_profile_id is not None:
        return json_to_message(snap, harness_profiles_pb2.HarnessProfile())
    config, policies = snap["config"], snap["policies"]
    return harness_profiles_pb2.HarnessProfile(
        id=snap["id"],
        display_name=snap["displayName"],
        version=snap["version"],
        config=harness_profiles_pb2.HarnessConfig(
            provider=config["provider"], model=config["model"], tools=config["tools"]
        ),
        policies=harness_profiles_pb2.HarnessPolicies(
            timeout_ms=policies["timeoutMs"], retry_limit=policies["retryLimit"], budget_usd=policies["budgetUsd"]
        ),
        created_at=snap["createdAt"],
    )


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
        self.memory = memory
        self.settings = settings
        self.providers = providers
        self.specs = RunSpecs(settings, providers)
        self.pricing = Pricing.from_settings(settings)
        self.watcher = watcher
        self.owner_id = owner_id
        self._background: set[asyncio.Task[Any]] = set()
        self._closing = False

    # ---- entry points -------------------------------------------------------------------------------

    async def create(
        self,
        req: runs_pb2.CreateRunRequest,
        *,
        context: str = "runs.create",
        template: TemplateInfo | None = None,
        options: RunOptions | None = None,
    ) -> tuple[runs_pb2.RunResult, int]:
        """Start a run; returns the result and the REST status (200 finished, 202 accepted or queued)."""
        partial, directive_id, profile_id = self.specs.parse(req, context, template=template)
        refs = None
        if directive_id or profile_id:
            refs = await self.store.read(lambda conn: self.specs.load_refs(conn, directive_id, profile_id))
        spec = self.specs.complete(partial, refs, context)
        opts = options or RunOptions()
        if opts.timeout_ms is not None or opts.schedule or opts.input is not None:
            spec = RunSpec(
                **{
                    **spec.__dict__,
                    "timeout_ms": opts.timeout_ms,
                    "schedule": opts.schedule,
                    "input": opts.input if opts.input is not None else spec.input,
                }
            )
        # Before anything is stored: an input that can never fit leaves no run, entry or shadow directive.
        check_input(spec.input)
        run_id = opts.run_id or str(uuid.uuid4())
        trace = trace_id()
        try:
            outcome = await self.store.write(lambda conn: self._admit(conn, spec, run_id, trace))
        except asyncio.CancelledError:
            # The caller went away while the admitting transaction was in flight: it may still commit, and a
            # run nobody drives would hold its session for good. End it, if it exists, after that write.
            await asyncio.shield(self._abandon(run_id, _stopped(self._closing)))
            raise
        if isinstance(outcome, AthenaError):
            raise outcome
        if isinstance(outcome, Queued):
            return self._queued_result(spec, outcome), 202
        if outcome.interrupted is not None:
            # Stop it now if this process runs it; another process sees the request on its next poll.
            self.watcher.deliver(outcome.interrupted, INTERRUPT_REASON)
        if not spec.wait:
            task = asyncio.create_task(self._drive(outcome), name=f"athena-run-{run_id}")
            self._background.add(task)
            task.add_done_callback(self._background_done)
            status = "running" if outcome.started_ms is not None else "pending"
            return self._accepted_result(outcome, status), 202
        return await self._drive(outcome), 200

    async def run_template(self, req: run_templates_pb2.RunRunTemplateRequest) -> tuple[runs_pb2.RunResult, int]:
        """`POST /api/v1/templates/{id}/run`: render the template (defaults overridden by `params`) and run
        it with the template's harness profile, as the original's template runner."""
        ctx = "runTemplates.run"
        template_id = req.id.strip()
        if not template_id:
            raise config_error(f"{ctx}.id must be a non-empty string.")
        template = await self.store.read(lambda conn: run_templates.get(conn, template_id))
        if template is None:
            raise config_error(f"{ctx}.id must reference an existing run template. Received: {template_id}.")
        params = {**template.default_params, **clean_params(req.params, f"{ctx}.params")}
        rendered = render(template.directive_template, params, f"{ctx}.params")
        session_id = req.session_id.strip() or f"template-{template_id}-{uuid.uuid4().hex[:12]}"
        metadata = {
            "templateRun": "true",
            "templateId": template_id,
            "templateHarnessProfileId": template.harness_profile_id,
            "templateEffectiveParams": json.dumps(params, sort_keys=True, separators=(",", ":")),
        }
        info = TemplateInfo(template_id, template.harness_profile_id, params)
        create = runs_pb2.CreateRunRequest(
            session_id=session_id,
            input=rendered,
            harness_profile_id=template.harness_profile_id,
            metadata=metadata,
        )
        if req.HasField("wait"):
            create.wait = req.wait
        result, status = await self.create(create, context=ctx, template=info)
        trace = trace_id()
        await self.store.write(
            lambda conn: events.append(
                conn,
                "run-template.run",
                trace_id=trace,
                session_id=session_id,
                run_id=result.run_id or None,
                payload={
                    "templateId": template_id,
                    "harnessProfileId": template.harness_profile_id,
                    "runId": result.run_id,
                },
            )
        )
        return result, status

    async def get(self, run_id: str) -> runs_pb2.Run:
        run_id = run_id.strip()
        if not run_id:
            raise config_error("runs.get.runId must be a non-empty string.")
        row = await self.store.read(lambda conn: runs.get(conn, run_id))
        if row is None:
            raise not_found(f"Run '{run_id}' not found.")
        return run_message(row)

    # ---- admission ----------------------------------------------------------------------------------

    def _admit(self, conn: Connection, spec: RunSpec, run_id: str, trace: str) -> Admitted | Queued | AthenaError:
        """One transaction: queue, refuse, or create the run (and start it when the session is free)."""
        at = now_ms()
        runs.admission_lock(conn)
        policy = policy_store.get(conn)
        running, pending = runs.session_head(conn, spec.session_id)
        busy = running is not None or pending is not None
        if busy and spec.behavior == "enqueue":
            item, _ = work.enqueue(conn, str(uuid.uuid4()), spec.session_id, spec.input, "followup", at)
            depth = work.depth(conn, spec.session_id)
            events.append(
                conn,
                "work.enqueued",
                trace_id=trace,
                session_id=spec.session_id,
                payload={"queueDepth": depth, "itemId": item.id, "source": "runs.create"},
            )
            return Queued(item, depth)
        interrupted = None
        if running is not None and spec.behavior == "interrupt":
            self._request_cancel(conn, running, INTERRUPT_REASON, trace, at)
            interrupted = running
        workload = self._workload(spec, run_id, trace)
        rejected = admission.check_cost(conn, policy, workload, at)
        if rejected is None and not busy:
            rejected = admission.check_concurrency(conn, policy, workload, at)
        if rejected is not None:
            return rejected
        if spec.timeout_ms is not None:
            timeout_ms = spec.timeout_ms
        elif spec.schedule:
            configured = policy.default_schedule_timeout_ms if policy else None
            timeout_ms = configured or self.settings.schedule_run_timeout_ms
        else:
            timeout_ms = (policy.default_run_timeout_ms if policy else None) or self.settings.run_timeout_ms
        retry_budget = policy.retry_budget_per_run if policy and policy.retry_budget_per_run is not None else None
        if retry_budget is None:
            retry_budget = self.settings.retry_budget_per_run
        snapshot = spec.harness_snapshot
        if spec.harness_profile_id is None:
            snapshot = {**snapshot, "policies": {**snapshot["policies"], "timeoutMs": timeout_ms}}
        directive_id = spec.directive_id
        if directive_id is None:
            directive_id = str(uuid.uuid4())
            directives.insert(
                conn,
                id=directive_id,
                input=spec.input,
                context_refs=None,
                metadata={"source": "run-service", "shadow": "true"},
                created_at_ms=at,
            )
        sessions.touch(conn, spec.session_id, spec.provider, spec.model, at)
        runs.insert_run(
            conn,
            id=run_id,
            session_id=spec.session_id,
            # A free session's run starts in this transaction: written running at once (one write fewer);
            # `run.created` and `run.started` still both commit, in that order.
            status="pending" if busy else "running",
            started_at_ms=None if busy else at,
            pid=None if busy else os.getpid(),
            provider=spec.provider,
            model=spec.model,
            input=spec.input,
            metadata=dict(spec.metadata) or None,
            trace_id=trace,
            created_at_ms=at,
            directive_id=directive_id,
            harness_profile_id=spec.harness_profile_id,
            harness_snapshot=snapshot,
            timeout_ms=timeout_ms,
            owner_id=self.owner_id,
            attempts=0,
            evidence_count=0,
        )
        labels = {**spec.labels, "directiveId": directive_id}
        events.append(
            conn,
            "run.created",
            trace_id=trace,
            session_id=spec.session_id,
            run_id=run_id,
            payload=labels,
            created_at_ms=at,
        )
        admitted = Admitted(
            run_id,
            trace,
            RunSpec(**{**spec.__dict__, "directive_id": directive_id, "harness_snapshot": snapshot, "labels": labels}),
            at,
            timeout_ms,
            retry_budget,
            interrupted=interrupted,
        )
        if busy:
            return admitted
        return self._start(conn, admitted, at, row_started=True)

    def _start(self, conn: Connection, adm: Admitted, at: int, *, row_started: bool = False) -> Admitted:
        spec = adm.spec
        history = transcripts.history(conn, spec.session_id, MAX_HISTORY_ENTRIES)
        if not row_started:
            runs.update_run(
                conn, adm.run_id, status="running", started_at_ms=at, owner_id=self.owner_id, pid=os.getpid()
            )
        transcripts.append(
            conn, EntryRow(0, str(uuid.uuid4()), spec.session_id, adm.run_id, "user", spec.input, False, None, at)
        )
        events.append(
            conn,
            "run.started",
            trace_id=adm.trace,
            session_id=spec.session_id,
            run_id=adm.run_id,
            payload={**spec.labels, "status": "running"},
            created_at_ms=at,
        )
        return Admitted(
            adm.run_id,
            adm.trace,
            spec,
            adm.created_ms,
            adm.timeout_ms,
            adm.retry_budget,
            started_ms=at,
            history=tuple(history),
            interrupted=adm.interrupted,
        )

    def _try_start(self, conn: Connection, adm: Admitted, give_up: bool) -> Admitted | AthenaError | None:
        """A pending run's turn: start it, end it (cancelled, refused, lock timeout), or None to keep waiting."""
        at = now_ms()
        runs.admission_lock(conn)
        row = runs.get(conn, adm.run_id)
        if row is None or row.status != "pending":
            state = f"{row.status}, {row.error_code}" if row is not None else "gone"
            return AthenaError(
                ErrorCode.ERROR_CODE_UNAVAILABLE, f"Run {adm.run_id} is no longer pending ({state}).", retryable=True
            )
        request = cancels.get(conn, adm.run_id)
        if request is not None:
            err = cancelled_error(request.reason)
            self._record_failure(conn, adm, err, at, attempts=0, started=False)
            return err
        running, first_pending = runs.session_head(conn, adm.spec.session_id)
        if running is None and first_pending == adm.run_id:
            policy = policy_store.get(conn)
            refused = admission.check_concurrency(conn, policy, self._workload(adm.spec, adm.run_id, adm.trace), at)
            if refused is not None:
                self._record_failure(conn, adm, refused, at, attempts=0, started=False)
                return refused
            return self._start(conn, adm, at)
        if give_up:
            err = AthenaError(
                ErrorCode.ERROR_CODE_SESSION_LOCK_TIMEOUT,
                f"Timed out waiting for session '{adm.spec.session_id}': run {running or first_pending} still holds it "
                f"after {self.settings.session_lock_timeout_ms} ms.",
                retryable=True,
            )
            self._record_failure(conn, adm, err, at, attempts=0, started=False)
            return err
        return None

    async def _await_turn(self, adm: Admitted) -> Admitted:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.session_lock_timeout_ms / 1000
        while True:
            ticket = self.store.bus.ticket()
            give_up = loop.time() >= deadline

            def attempt(conn: Connection, give_up: bool = give_up) -> Admitted | AthenaError | None:
                return self._try_start(conn, adm, give_up)

            outcome = await self.store.write(attempt)
            if isinstance(outcome, AthenaError):
                raise outcome
            if outcome is not None:
                return outcome
            remaining = max(0.0, deadline - loop.time())
            await self.store.bus.wait(ticket, min(self.settings.cancel_poll_seconds, remaining) or 0.001)

    # ---- execution ----------------------------------------------------------------------------------

    async def _drive(self, adm: Admitted) -> runs_pb2.RunResult:
        if adm.started_ms is None:
            try:
                adm = await self._await_turn(adm)
            except asyncio.CancelledError:
                await asyncio.shield(self._abandon(adm.run_id, _stopped(self._closing)))
                raise
        return await self._execute(adm)

    async def _execute(self, adm: Admitted) -> runs_pb2.RunResult:
        spec = adm.spec
        assert adm.started_ms is not None
        try:
            recalled = await self._recall(spec.input)
        except asyncio.CancelledError:
            await asyncio.shield(self._finish_failed(adm, _stopped(self._closing), 0))
            raise
        try:
            compiled = compile_context(list(adm.history), spec.input, recalled)
        except AthenaError as err:
            await self._finish_failed(adm, err, 0)
            raise
        request = ProviderRequest(
            run_id=adm.run_id,
            session_id=spec.session_id,
            model=spec.model,
            prompt=compiled.prompt,
            input=spec.input,
            history=adm.history,
            metadata=spec.metadata,
            command=spec.command,
            on_process=lambda pid: self._record_pid(adm.run_id, pid),
        )
        provider = self.providers.get(spec.provider)
        attempts = Attempts()
        inner = asyncio.create_task(call_with_retries(provider, request, adm.retry_budget, attempts))
        handle = self.watcher.register(adm.run_id, inner)
        try:
            try:
                done, _ = await asyncio.wait({inner}, timeout=adm.timeout_ms / 1000)
            except asyncio.CancelledError:
                # The caller went away (or the server is stopping): stop the provider and record the run
                # as cancelled rather than leaving it "running".
                inner.cancel()
                await asyncio.shield(self._settle(inner))
                await asyncio.shield(self._finish_failed(adm, _stopped(self._closing), attempts.made))
                raise
            if not done:
                inner.cancel()
                await self._settle(inner)
                if not handle.requested:
                    timeout = (
                        AthenaError(
                            ErrorCode.ERROR_CODE_SCHEDULE_TIMEOUT, f"Schedule run timed out after {adm.timeout_ms}ms"
                        )
                        if spec.schedule
                        else AthenaError(ErrorCode.ERROR_CODE_RUN_TIMEOUT, f"Run timed out after {adm.timeout_ms}ms")
                    )
                    await self._finish_failed(adm, timeout, attempts.made)
                    raise timeout
            if inner.cancelled() or handle.requested:
                stopped = cancelled_error(handle.reason)
                await self._finish_failed(adm, stopped, attempts.made)
                raise stopped
            try:
                result = inner.result()
            except AthenaError as err:
                await self._finish_failed(adm, err, attempts.made)
                raise
        finally:
            self.watcher.unregister(adm.run_id)
        finished = self._finished(adm, result, attempts.made)
        # Shielded: a caller leaving now must not roll back (PostgreSQL) the record of a finished run.
        await asyncio.shield(self.store.write(lambda conn: self._record_success(conn, adm, finished, compiled)))
        return self._success_result(adm, finished)

    async def _recall(self, text: str) -> list[tuple[str, str]]:
        """(citation, snippet) of the memory for the run's input, when `ATHENA_MEMORY_IN_CONTEXT` is on."""
        if self.memory is None or not self.settings.memory_in_context:
            return []
        return await self.memory.recall(text, self.settings.memory_context_max_chars)

    @staticmethod
    async def _settle(task: asyncio.Task[Any]) -> None:
        with contextlib.suppress(BaseException):
            await task

    async def _record_pid(self, run_id: str, pid: int) -> None:
        await self.store.write(lambda conn: runs.update_run(conn, run_id, pid=pid))

    def _finished(self, adm: Admitted, result: ProviderResult, attempts: int) -> Finished:
        cost = result.cost_usd
        if cost is None:
            cost = self.pricing.cost_usd(adm.spec.provider, adm.spec.model, result.input_tokens, result.output_tokens)
        return Finished(
            output=result.output,
            result=result,
            attempts=attempts,
            cost_usd=cost,
            verification=verify(adm.spec.verification_policies, result.evidence),
            finished_ms=now_ms(),
        )

    def _record_success(self, conn: Connection, adm: Admitted, fin: Finished, compiled: Any) -> None:
        spec, result = adm.spec, fin.result
        assert adm.started_ms is not None
        evidence.insert_all(conn, adm.run_id, list(result.evidence), fin.finished_ms)
        runs.update_run(
            conn,
            adm.run_id,
            status="succeeded",
            output=result.output,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            total_tokens=result.total_tokens,
            finished_at_ms=fin.finished_ms,
            attempts=fin.attempts,
            cost_usd=fin.cost_usd,
            verification=fin.verification.to_json(),
            evidence_count=len(result.evidence),
        )
        cancels.consume(conn, adm.run_id)
        entry_meta = {
            "contextStrategy": compiled.strategy,
            "contextChars": str(len(compiled.prompt)),
            "contextHistoryEntries": str(compiled.history_entries),
            **({"memoryCitations": json.dumps(list(compiled.memory_citations))} if compiled.memory_citations else {}),
            "providerModel": result.model,
            "providerLatencyMs": str(fin.finished_ms - adm.started_ms),
            "providerAttempts": str(fin.attempts),
        }
        transcripts.append(
            conn,
            EntryRow(
                0,
                str(uuid.uuid4()),
                spec.session_id,
                adm.run_id,
                "assistant",
                result.output,
                False,
                entry_meta,
                adm.started_ms,
            ),
        )
        sessions.touch(conn, spec.session_id, spec.provider, spec.model, fin.finished_ms)
        usage = {
            "inputTokens": result.input_tokens,
            "outputTokens": result.output_tokens,
            "totalTokens": result.total_tokens,
        }
        payload: dict[str, Any] = {**spec.labels, "usage": usage, "attempts": fin.attempts}
        if fin.cost_usd is not None:
            payload["costUsd"] = fin.cost_usd
        events.append(
            conn,
            "run.completed",
            trace_id=adm.trace,
            session_id=spec.session_id,
            run_id=adm.run_id,
            payload=payload,
            created_at_ms=fin.finished_ms,
        )

    async def _finish_failed(self, adm: Admitted, err: AthenaError, attempts: int) -> None:
        at = now_ms()
        write = self.store.write(lambda conn: self._record_failure(conn, adm, err, at, attempts, started=True))
        await asyncio.shield(write)

    async def _abandon(self, run_id: str, err: AthenaError) -> None:
        """End a run whose driver stopped before executing it (it may be pending, running or already gone).
        Units run in submission order, so this sees the outcome of any write still in flight for it."""

        def unit(conn: Connection) -> None:
            row = runs.get(conn, run_id)
            if row is None or row.status not in runs.ACTIVE:
                return
            status, event_type = _FAILURE.get(err.code, ("failed", "run.failed"))
            run_endings.record_failure(
                conn,
                run_id=row.id,
                session_id=row.session_id,
                trace_id=row.trace_id,
                provider=row.provider,
                model=row.model,
                status=status,
                event_type=event_type,
                code=err.code_name,
                message=err.message,
                at=now_ms(),
                attempts=row.attempts,
                started=row.status == "running",
                payload={"provider": row.provider, "model": row.model},
            )

        await self.store.write(unit)

    def _record_failure(
        self, conn: Connection, adm: Admitted, err: AthenaError, at: int, attempts: int, *, started: bool
    ) -> None:
        status, event_type = _FAILURE.get(err.code, ("failed", "run.failed"))
        spec = adm.spec
        run_endings.record_failure(
            conn,
            run_id=adm.run_id,
            session_id=spec.session_id,
            trace_id=adm.trace,
            provider=spec.provider,
            model=spec.model,
            status=status,
            event_type=event_type,
            code=err.code_name,
            message=err.message,
            at=at,
            attempts=attempts,
            started=started,
            payload=dict(spec.labels),
        )

    # ---- cancellation -------------------------------------------------------------------------------

    def _request_cancel(self, conn: Connection, run_id: str, reason: str | None, trace: str, at: int) -> RunRow | None:
        """Record a cancel request for an active run (once); returns the run, or None when it is not active."""
        row = runs.get(conn, run_id)
        if row is None or row.status not in runs.ACTIVE:
            return None
        if cancels.get(conn, run_id) is None:
            cancels.insert_request(conn, CancelRow(run_id, row.session_id, at, reason, row.trace_id, row.started_at_ms))
        payload: dict[str, Any] = {"runId": run_id, "status": "cancelled"}
        if reason:
            payload["reason"] = reason
        events.append(
            conn, "run.cancel.requested", trace_id=trace, session_id=row.session_id, run_id=run_id, payload=payload
        )
        return row

    async def cancel_by_run(self, run_id: str, reason: str | None) -> runs_pb2.CancelRunByRunIdResponse:
        run_id = run_id.strip()
        if not run_id:
            raise config_error("runs.cancel.runId must be a non-empty string.")
        trace = trace_id()

        def unit(conn: Connection) -> tuple[RunRow | None, CancelRow | None]:
            at = now_ms()
            row = self._request_cancel(conn, run_id, reason, trace, at)
            if row is not None:
                return row, None
            leftover = cancels.get(conn, run_id)
            payload: dict[str, Any] = {"runId": run_id, "status": "not-running"}
            if reason:
                payload["reason"] = reason
            events.append(
                conn,
                "run.cancel.requested",
                trace_id=trace,
                session_id=leftover.session_id if leftover else None,
                run_id=run_id,
                payload=payload,
            )
            return None, leftover

        row, leftover = await self.store.write(unit)
        resp = runs_pb2.CancelRunByRunIdResponse(run_id=run_id)
        if row is None:
            resp.status = runs_pb2.CANCEL_STATUS_NOT_RUNNING
            if leftover is not None:
                resp.session_id = leftover.session_id
            return resp
        self.watcher.deliver(run_id, reason)
        resp.status = runs_pb2.CANCEL_STATUS_CANCELLED
        resp.session_id = row.session_id
        return resp

    async def cancel_by_session(self, session_id: str, reason: str | None) -> runs_pb2.CancelRunBySessionIdResponse:
        session_id = validation.session_id(session_id, "runs.cancel")
        trace = trace_id()

        def unit(conn: Connection) -> RunRow | None:
            active = runs.active_in_session(conn, session_id)
            if active is None:
                payload: dict[str, Any] = {"status": "not-running"}
                if reason:
                    payload["reason"] = reason
                events.append(conn, "run.cancel.requested", trace_id=trace, session_id=session_id, payload=payload)
                return None
            return self._request_cancel(conn, active.id, reason, trace, now_ms())

        row = await self.store.write(unit)
        resp = runs_pb2.CancelRunBySessionIdResponse(session_id=session_id)
        if row is None:
            resp.status = runs_pb2.CANCEL_STATUS_NOT_RUNNING
            return resp
        self.watcher.deliver(row.id, reason)
        resp.status = runs_pb2.CANCEL_STATUS_CANCELLED
        return resp

    # ---- results ------------------------------------------------------------------------------------

    def _workload(self, spec: RunSpec, run_id: str, trace: str) -> Workload:
        return Workload(
            session_id=spec.session_id,
            run_id=run_id,
            trace_id=trace,
            metadata=spec.metadata,
            directive_id=spec.directive_id,
            harness_profile_id=spec.harness_profile_id,
        )

    def _base_result(self, adm: Admitted) -> runs_pb2.RunResult:
        spec = adm.spec
        result = runs_pb2.RunResult(
            session_id=spec.session_id,
            provider=spec.provider,
            model=spec.model,
            created_at=iso(adm.started_ms if adm.started_ms is not None else adm.created_ms),
            run_id=adm.run_id,
            trace_id=adm.trace,
        )
        if spec.directive_id is not None:
            result.directive_id = spec.directive_id
        result.harness_profile_id = str(spec.harness_snapshot.get("id", spec.harness_profile_id or ""))
        result.harness_profile_snapshot.CopyFrom(_snapshot_message(spec))
        if spec.template is not None:
            result.template.CopyFrom(
                runs_pb2.TemplateRunInfo(
                    id=spec.template.id,
                    harness_profile_id=spec.template.harness_profile_id,
                    effective_params=spec.template.effective_params,
                )
            )
        return result

    def _success_result(self, adm: Admitted, fin: Finished) -> runs_pb2.RunResult:
        result = self._base_result(adm)
        r = fin.result
        result.output = r.output
        result.status = runs_pb2.RUN_STATUS_SUCCEEDED
        result.usage.CopyFrom(
            runs_pb2.Usage(input_tokens=r.input_tokens, output_tokens=r.output_tokens, total_tokens=r.total_tokens)
        )
        result.verification_status = runs_pb2.VerificationStatus.ValueType(_VERIFICATION[fin.verification.status])
        result.verification_failures.extend(_failures(fin.verification.failures))
        result.evidence_count = len(r.evidence)
        if fin.cost_usd is not None:
            result.cost_usd = fin.cost_usd
        result.attempts = fin.attempts
        result.finished_at = iso(fin.finished_ms)
        return result

    def _accepted_result(self, adm: Admitted, status: str) -> runs_pb2.RunResult:
        result = self._base_result(adm)
        result.status = runs_pb2.RunStatus.ValueType(_STATUS[status])
        return result

    @staticmethod
    def _queued_result(spec: RunSpec, queued: Queued) -> runs_pb2.RunResult:
        item = queued.item
        return runs_pb2.RunResult(
            session_id=spec.session_id,
            provider=spec.provider,
            model=spec.model,
            created_at=iso(item.created_at_ms),
            queued_item=work_pb2.WorkItem(
                id=item.id,
                session_id=item.session_id,
                payload=item.payload,
                mode=work_pb2.WORK_MODE_FOLLOWUP,
                created_at=iso(item.created_at_ms),
            ),
            queue_depth=queued.depth,
        )

    # ---- lifecycle ----------------------------------------------------------------------------------

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
        self._closing = True
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            await self._settle(task)
