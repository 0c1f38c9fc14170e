"""Admitting a run: the one transaction that decides what a run request becomes. On a busy session with
`runningRunBehavior: "enqueue"` it becomes a follow-up work item; with `"interrupt"` it asks the session's
running run to stop. Then the policy may refuse it (cost budget, concurrency); otherwise the run is recorded
with its timeout, retry budget, profile snapshot and directive (a shadow one for raw input), `run.created`
is appended, and a run whose session is free starts in the same transaction (run_turns.start)."""

from __future__ import annotations

import os
import uuid
from dataclasses import replace

from sqlalchemy import Connection

from athena_client.vocab import EventType, RunningRunBehavior, RunStatus, WorkMode
from athena_server.config import Settings
from athena_server.control import admission
from athena_server.control.run_context import RunContext
from athena_server.control.run_control import request_cancel
from athena_server.control.run_endings import INTERRUPT_REASON
from athena_server.control.run_specs import RunSpec
from athena_server.control.run_states import Admitted, Queued
from athena_server.control.run_turns import start, workload
from athena_server.errors import AthenaError
from athena_server.storage import directives, events, runs, sessions, work
from athena_server.storage import policy as policy_store
from athena_server.storage.policy import PolicyDoc
from athena_server.timefmt import now_ms


def timeout_ms(spec: RunSpec, policy: PolicyDoc | None, settings: Settings) -> int:
    """A caller's fixed timeout, else the schedule rule for schedule runs, else the policy's run timeout,
    else the configured default."""
    if spec.timeout_ms is not None:
        return spec.timeout_ms
    if spec.schedule:
        configured = policy.default_schedule_timeout_ms if policy else None
        return configured or settings.schedule_run_timeout_ms
    return (policy.default_run_timeout_ms if policy else None) or settings.run_timeout_ms


def retry_budget(policy: PolicyDoc | None, settings: Settings) -> int:
    if policy is not None and policy.retry_budget_per_run is not None:
        return policy.retry_budget_per_run
    return settings.retry_budget_per_run


def _enqueue(conn: Connection, spec: RunSpec, trace: str, at: int) -> Queued:
    item, _ = work.enqueue(conn, str(uuid.uuid4()), spec.session_id, spec.input, WorkMode.FOLLOWUP, at)
    depth = work.depth(conn, spec.session_id)
    events.append(
        conn,
        EventType.WORK_ENQUEUED,
        trace_id=trace,
        session_id=spec.session_id,
        payload={"queueDepth": depth, "itemId": item.id, "source": "runs.create"},
    )
    return Queued(item, depth)


def _shadow_directive(conn: Connection, spec: RunSpec, at: int) -> str:
    """The directive a raw-input run records: its input, marked as a shadow of the run service."""
    directive_id = str(uuid.uuid4())
    directives.insert(
        conn,
        id=directive_id,
        input=spec.input,
        context_refs=None,
        metadata={"source": "run-service", "shadow": "true"},
        created_at_ms=at,
    )
    return directive_id


def admit(ctx: RunContext, conn: Connection, spec: RunSpec, run_id: str, trace: str) -> Admitted | Queued | AthenaError:
    """One transaction: queue, refuse, or create the run (and start it when the session is free)."""
    at = now_ms()
    runs.admission_lock(conn)
    policy = policy_store.get(conn)
    running, pending = runs.session_head(conn, spec.session_id)
    busy = running is not None or pending is not None
    if busy and spec.behavior == RunningRunBehavior.ENQUEUE:
        return _enqueue(conn, spec, trace, at)
    interrupted = None
    if running is not None and spec.behavior == RunningRunBehavior.INTERRUPT:
        request_cancel(conn, running, INTERRUPT_REASON, trace, at)
        interrupted = running
    asking = workload(spec, run_id, trace)
    rejected = admission.check_cost(conn, policy, asking, at)
    if rejected is None and not busy:
        rejected = admission.check_concurrency(conn, policy, asking, at)
    if rejected is not None:
        return rejected
    timeout = timeout_ms(spec, policy, ctx.settings)
    snapshot = spec.harness_snapshot
    if spec.harness_profile_id is None:
        snapshot = {**snapshot, "policies": {**snapshot["policies"], "timeoutMs": timeout}}
    directive_id = spec.directive_id if spec.directive_id is not None else _shadow_directive(conn, spec, at)
    sessions.touch(conn, spec.session_id, spec.provider, spec.model, at)
    runs.insert_run(
        conn,
        id=run_id,
        session_id=spec.session_id,
        # A free session's run starts in this transaction: written running at once (one write fewer);
        # `run.created` and `run.started` still both commit, in that order, in one statement (run_turns.start).
        status=RunStatus.PENDING if busy else RunStatus.RUNNING,
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
        timeout_ms=timeout,
        owner_id=ctx.owner_id,
        attempts=0,
        evidence_count=0,
    )
    labels = {**spec.labels, "directiveId": directive_id}
    created = events.NewEvent(
        EventType.RUN_CREATED,
        trace_id=trace,
        payload=labels,
        session_id=spec.session_id,
        run_id=run_id,
        created_at_ms=at,
    )
    admitted = Admitted(
        run_id,
        trace,
        replace(spec, directive_id=directive_id, harness_snapshot=snapshot, labels=labels),
        at,
        timeout,
        retry_budget(policy, ctx.settings),
        interrupted=interrupted,
    )
    if busy:
        events.append_all(conn, [created])
        return admitted
    return start(ctx, conn, admitted, at, created=created)
