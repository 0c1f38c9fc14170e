"""The policy gate every run passes before it may start, whatever started it (direct runs, templates,
and later schedules, drains and workflows).

Decisions are made inside the write transaction that starts the run, from counts in the store, so they
hold across processes: SQLite serialises writers, PostgreSQL takes the admission advisory lock
(storage/runs.py). A refusal is recorded (policy_rejections) and announced (`policy.concurrency.rejected`
and `policy.rejected`) in that same transaction, and handed back as an error to raise after the commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from athena_client.vocab import EventType
from athena_server.errors import AthenaError, ErrorCode
from athena_server.metrics import after_commit
from athena_server.storage import events, runs
from athena_server.storage import policy as policy_store
from athena_server.storage.policy import PolicyDoc
from athena_server.timefmt import iso

DAY_MS = 86_400_000


@dataclass(frozen=True)
class Workload:
    """Who is asking: the labels policy engines target (seed 000's policy integration contract)."""

    session_id: str
    run_id: str
    trace_id: str
    metadata: Mapping[str, str]
    directive_id: str | None = None
    harness_profile_id: str | None = None

    def labels(self) -> dict[str, str]:
        return {
            "athena.dev/agent-role": self.metadata.get("agentRole", "unspecified"),
            "athena.dev/run-id": self.run_id,
            "athena.dev/session-id": self.session_id,
            "athena.dev/control-plane": "v1",
        }


def policy_block(workload: Workload, rule_type: str, policy_name: str) -> dict[str, Any]:
    return {
        "schemaVersion": 1,
        "decision": "rejected",
        "workload": {"schemaVersion": 1, "labels": workload.labels()},
        "origin": {
            "schemaVersion": 1,
            "engine": "athena",
            "ruleType": rule_type,
            "policyName": policy_name,
            "failureAction": "enforce",
        },
    }


def _reject(
    conn: Connection,
    workload: Workload,
    at_ms: int,
    *,
    reason: str,
    rule_type: str,
    policy_name: str,
    active_runs: int,
    limit: int,
    event_extra: dict[str, Any],
    concurrency_event: bool,
) -> dict[str, Any]:
    block = policy_block(workload, rule_type, policy_name)
    event = {
        "schemaVersion": 1,
        "timestamp": iso(at_ms),
        "policyType": rule_type.upper(),
        "limit": limit,
        "rejectedRunDetails": {
            "sessionId": workload.session_id,
            **({"agentName": workload.metadata["agentName"]} if "agentName" in workload.metadata else {}),
        },
        "reason": reason,
        "activeRuns": active_runs,
        **event_extra,
    }
    seq = policy_store.insert_rejection(
        conn,
        created_at_ms=at_ms,
        session_id=workload.session_id,
        run_id=workload.run_id,
        active_runs=active_runs,
        max_concurrent_runs=limit if rule_type == "concurrency" else 0,
        reason=reason,
        policy_meta=block,
        event=event,
    )
    rejection = {
        "id": f"{policy_store.REJECTION_ID_PREFIX}{seq}",
        "createdAt": iso(at_ms),
        "sessionId": workload.session_id,
        "runId": workload.run_id,
        "activeRuns": active_runs,
        "reason": reason,
    }
    if rule_type == "concurrency":
        rejection["maxConcurrentRuns"] = limit
    refs = {
        k: v
        for k, v in (
            ("directiveId", workload.directive_id),
            ("harnessProfileId", workload.harness_profile_id),
            ("agentName", workload.metadata.get("agentName")),
        )
        if v
    }
    common = dict(trace_id=workload.trace_id, session_id=workload.session_id, run_id=workload.run_id, policy=block)
    if concurrency_event:
        events.append(
            conn,
            EventType.POLICY_CONCURRENCY_REJECTED,
            payload={
                "rejection": rejection,
                "activeRuns": active_runs,
                "maxConcurrentRuns": limit,
                "reason": reason,
                **refs,
            },
            **common,  # type: ignore[arg-type]
        )
    events.append(
        conn,
        EventType.POLICY_REJECTED,
        payload={"rejection": rejection, "reason": reason, **event_extra, **refs},
        **common,  # type: ignore[arg-type]
    )
    after_commit(conn, lambda m: m.admission_refusals(reason).inc())
    return rejection


def check_cost(conn: Connection, policy: PolicyDoc | None, workload: Workload, at_ms: int) -> AthenaError | None:
    """`costBudgetDailyUsd`: refuse new runs once the UTC day's recorded cost has reached the budget."""
    if policy is None or policy.cost_budget_daily_usd is None:
        return None
    day_start = at_ms - at_ms % DAY_MS
    spent = runs.cost_since(conn, day_start)
    budget = policy.cost_budget_daily_usd
    if spent < budget:
        return None
    extra = {"costTodayUsd": round(spent, 6), "costBudgetDailyUsd": budget}
    _reject(
        conn,
        workload,
        at_ms,
        reason="cost-budget-exceeded",
        rule_type="cost-budget",
        policy_name="policy.costBudgetDailyUsd",
        active_runs=runs.running_count(conn),
        limit=0,
        event_extra=extra,
        concurrency_event=False,
    )
    retry_after = max(1, (day_start + DAY_MS - at_ms + 999) // 1000)
    return AthenaError(
        ErrorCode.ERROR_CODE_POLICY_COST_BUDGET_EXCEEDED,
        f"policy.costBudgetDailyUsd exceeded: {spent:.6f} USD recorded today (UTC) >= budget {budget} USD.",
        retryable=True,
        metadata={"retryAfterSeconds": str(retry_after)},
    )


def check_concurrency(conn: Connection, policy: PolicyDoc | None, workload: Workload, at_ms: int) -> AthenaError | None:
    """`maxConcurrentRuns`: counted over every process's running runs in the store."""
    if policy is None or policy.max_concurrent_runs is None:
        return None
    limit = policy.max_concurrent_runs
    active = runs.running_count(conn)
    if active < limit:
        return None
    _reject(
        conn,
        workload,
        at_ms,
        reason="max-concurrent-runs-exceeded",
        rule_type="concurrency",
        policy_name="policy.maxConcurrentRuns",
        active_runs=active,
        limit=limit,
        event_extra={},
        concurrency_event=True,
    )
    return AthenaError(
        ErrorCode.ERROR_CODE_POLICY_CONCURRENCY_LIMIT_EXCEEDED,
        f"policy.maxConcurrentRuns exceeded: {active} active run(s) >= configured limit {limit}.",
        retryable=True,
        metadata={"retryAfterSeconds": "1"},
    )
