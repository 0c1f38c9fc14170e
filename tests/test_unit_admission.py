"""Admission as plain logic against a real SQLite store: when the policy's concurrency limit and daily cost
budget refuse a run, exactly what the refusal says, and what it records (the `policy_rejections` row and
the `policy.concurrency.rejected` / `policy.rejected` events) in the admitting transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, insert, select

from athena_server.control.admission import DAY_MS, Workload, check_concurrency, check_cost, policy_block
from athena_server.errors import ErrorCode
from athena_server.storage.policy import PolicyDoc
from athena_server.storage.store import Store
from athena_server.storage.tables import events, policy_rejections, runs
from athena_server.timefmt import iso

# A UTC midnight, and a moment of that day.
MIDNIGHT = 1_780_000_000_000 - 1_780_000_000_000 % DAY_MS
NOON = MIDNIGHT + DAY_MS // 2


@pytest.fixture
def conn(store: Store) -> Iterator[Connection]:
    with store.engine.connect() as c, c.begin():
        yield c


def add_run(conn: Connection, status: str, *, cost: float | None = None, finished: int | None = None) -> str:
    run_id = f"run-{uuid.uuid4().hex}"
    conn.execute(
        insert(runs).values(
            id=run_id,
            session_id=f"s-{uuid.uuid4().hex[:8]}",
            status=status,
            provider="mock",
            model="m",
            input="x",
            trace_id="t",
            created_at_ms=MIDNIGHT,
            cost_usd=cost,
            finished_at_ms=finished,
        )
    )
    return run_id


def workload(**metadata: str) -> Workload:
    return Workload(session_id="sess-1", run_id="run-new", trace_id="trace-1", metadata=metadata)


def rejections(conn: Connection) -> list[Any]:
    return list(conn.execute(select(policy_rejections).order_by(policy_rejections.c.seq)).all())


def logged(conn: Connection) -> list[tuple[str, str | None, str | None, str, dict[str, Any], Any]]:
    rows = conn.execute(select(events).order_by(events.c.seq)).all()
    return [(r.type, r.session_id, r.run_id, r.trace_id, r.payload, r.policy) for r in rows]


def doc(**fields: Any) -> PolicyDoc:
    return PolicyDoc(schema_version=1, updated_at_ms=0, **fields)


# ---- the workload and the policy block ----------------------------------------------------------------


def test_workload_labels_name_the_role_run_and_session() -> None:
    assert workload(agentRole="planner").labels() == {
        "athena.dev/agent-role": "planner",
        "athena.dev/run-id": "run-new",
        "athena.dev/session-id": "sess-1",
        "athena.dev/control-plane": "v1",
    }
    assert workload().labels()["athena.dev/agent-role"] == "unspecified"


def test_policy_block_says_who_was_refused_by_which_rule() -> None:
    assert policy_block(workload(), "concurrency", "policy.maxConcurrentRuns") == {
        "schemaVersion": 1,
        "decision": "rejected",
        "workload": {"schemaVersion": 1, "labels": workload().labels()},
        "origin": {
            "schemaVersion": 1,
            "engine": "athena",
            "ruleType": "concurrency",
            "policyName": "policy.maxConcurrentRuns",
            "failureAction": "enforce",
        },
    }


# ---- concurrency ----------------------------------------------------------------------------------------


def test_no_policy_or_no_limit_admits_anything(conn: Connection) -> None:
    for _ in range(3):
        add_run(conn, "running")
    assert check_concurrency(conn, None, workload(), NOON) is None
    assert check_concurrency(conn, doc(cost_budget_daily_usd=5.0), workload(), NOON) is None
    assert rejections(conn) == [] and logged(conn) == []


def test_concurrency_admits_below_the_limit_counting_only_running_runs(conn: Connection) -> None:
    add_run(conn, "running")
    for status in ("pending", "succeeded", "failed", "cancelled"):
        add_run(conn, status)
    assert check_concurrency(conn, doc(max_concurrent_runs=2), workload(), NOON) is None
    assert rejections(conn) == [] and logged(conn) == []


def test_concurrency_refuses_at_the_limit_and_records_it(conn: Connection) -> None:
    add_run(conn, "running")
    add_run(conn, "running")
    work = Workload(
        session_id="sess-1",
        run_id="run-new",
        trace_id="trace-1",
        metadata={"agentName": "scout", "agentRole": "worker"},
        directive_id="dir-1",
        harness_profile_id="hp-1",
    )
    err = check_concurrency(conn, doc(max_concurrent_runs=2), work, NOON)
    assert err is not None
    assert err.code == ErrorCode.ERROR_CODE_POLICY_CONCURRENCY_LIMIT_EXCEEDED
    assert err.message == "policy.maxConcurrentRuns exceeded: 2 active run(s) >= configured limit 2."
    assert err.retryable is True
    assert err.metadata == {"retryAfterSeconds": "1"}

    block = policy_block(work, "concurrency", "policy.maxConcurrentRuns")
    event = {
        "schemaVersion": 1,
        "timestamp": iso(NOON),
        "policyType": "CONCURRENCY",
        "limit": 2,
        "rejectedRunDetails": {"sessionId": "sess-1", "agentName": "scout"},
        "reason": "max-concurrent-runs-exceeded",
        "activeRuns": 2,
    }
    (row,) = rejections(conn)
    assert (row.created_at_ms, row.session_id, row.run_id, row.active_runs, row.max_concurrent_runs) == (
        NOON,
        "sess-1",
        "run-new",
        2,
        2,
    )
    assert (row.reason, row.policy, row.event) == ("max-concurrent-runs-exceeded", block, event)

    rejection = {
        "id": f"rej_{row.seq}",
        "createdAt": iso(NOON),
        "sessionId": "sess-1",
        "runId": "run-new",
        "activeRuns": 2,
        "reason": "max-concurrent-runs-exceeded",
        "maxConcurrentRuns": 2,
    }
    refs = {"directiveId": "dir-1", "harnessProfileId": "hp-1", "agentName": "scout"}
    assert logged(conn) == [
        (
            "policy.concurrency.rejected",
            "sess-1",
            "run-new",
            "trace-1",
            {
                "rejection": rejection,
                "activeRuns": 2,
                "maxConcurrentRuns": 2,
                "reason": "max-concurrent-runs-exceeded",
                **refs,
            },
            block,
        ),
        (
            "policy.rejected",
            "sess-1",
            "run-new",
            "trace-1",
            {"rejection": rejection, "reason": "max-concurrent-runs-exceeded", **refs},
            block,
        ),
    ]


def test_concurrency_refusal_over_the_limit_leaves_out_absent_references(conn: Connection) -> None:
    for _ in range(3):
        add_run(conn, "running")
    err = check_concurrency(conn, doc(max_concurrent_runs=1), workload(), NOON)
    assert err is not None
    assert err.message == "policy.maxConcurrentRuns exceeded: 3 active run(s) >= configured limit 1."
    (row,) = rejections(conn)
    assert row.event["rejectedRunDetails"] == {"sessionId": "sess-1"}
    types_and_payloads = [(t, p) for t, _, _, _, p, _ in logged(conn)]
    assert [t for t, _ in types_and_payloads] == ["policy.concurrency.rejected", "policy.rejected"]
    for _, payload in types_and_payloads:
        assert not {"directiveId", "harnessProfileId", "agentName"} & payload.keys()
    # A second refusal is a new record with the next id.
    err2 = check_concurrency(conn, doc(max_concurrent_runs=1), workload(), NOON + 1)
    assert err2 is not None
    assert [r.seq for r in rejections(conn)] == [row.seq, row.seq + 1]


# ---- daily cost budget ----------------------------------------------------------------------------------


def test_no_policy_or_no_budget_admits_anything(conn: Connection) -> None:
    add_run(conn, "succeeded", cost=100.0, finished=NOON - 1)
    assert check_cost(conn, None, workload(), NOON) is None
    assert check_cost(conn, doc(max_concurrent_runs=1), workload(), NOON) is None
    assert rejections(conn) == [] and logged(conn) == []


def test_cost_counts_only_runs_finished_since_utc_midnight(conn: Connection) -> None:
    add_run(conn, "succeeded", cost=50.0, finished=MIDNIGHT - 1)  # yesterday
    add_run(conn, "succeeded", cost=0.75, finished=MIDNIGHT)
    add_run(conn, "failed", cost=0.2, finished=NOON - 1)
    assert check_cost(conn, doc(cost_budget_daily_usd=1.0), workload(), NOON) is None
    assert rejections(conn) == [] and logged(conn) == []


def test_cost_refuses_once_the_budget_is_reached_and_records_it(conn: Connection) -> None:
    add_run(conn, "succeeded", cost=0.75, finished=MIDNIGHT)
    add_run(conn, "failed", cost=0.25, finished=NOON - 1)
    add_run(conn, "running")
    at = MIDNIGHT + DAY_MS - 1500  # 1.5 s before the next UTC midnight: retry in 2 s
    err = check_cost(conn, doc(cost_budget_daily_usd=1.0), workload(agentName="scout"), at)
    assert err is not None
    assert err.code == ErrorCode.ERROR_CODE_POLICY_COST_BUDGET_EXCEEDED
    assert err.message == "policy.costBudgetDailyUsd exceeded: 1.000000 USD recorded today (UTC) >= budget 1.0 USD."
    assert err.retryable is True
    assert err.metadata == {"retryAfterSeconds": "2"}

    block = policy_block(workload(agentName="scout"), "cost-budget", "policy.costBudgetDailyUsd")
    extra = {"costTodayUsd": 1.0, "costBudgetDailyUsd": 1.0}
    (row,) = rejections(conn)
    assert (row.created_at_ms, row.session_id, row.run_id, row.active_runs, row.max_concurrent_runs) == (
        at,
        "sess-1",
        "run-new",
        1,
        0,
    )
    assert row.reason == "cost-budget-exceeded" and row.policy == block
    assert row.event == {
        "schemaVersion": 1,
        "timestamp": iso(at),
        "policyType": "COST-BUDGET",
        "limit": 0,
        "rejectedRunDetails": {"sessionId": "sess-1", "agentName": "scout"},
        "reason": "cost-budget-exceeded",
        "activeRuns": 1,
        **extra,
    }
    rejection = {
        "id": f"rej_{row.seq}",
        "createdAt": iso(at),
        "sessionId": "sess-1",
        "runId": "run-new",
        "activeRuns": 1,
        "reason": "cost-budget-exceeded",
    }
    # No concurrency event for a budget refusal.
    assert logged(conn) == [
        (
            "policy.rejected",
            "sess-1",
            "run-new",
            "trace-1",
            {"rejection": rejection, "reason": "cost-budget-exceeded", **extra, "agentName": "scout"},
            block,
        )
    ]


@pytest.mark.parametrize(
    ("at", "retry_after"),
    [(MIDNIGHT, "86400"), (MIDNIGHT + DAY_MS - 1000, "1"), (MIDNIGHT + DAY_MS - 1, "1"), (NOON + 1, "43200")],
)
def test_cost_refusal_retries_at_the_next_utc_midnight(conn: Connection, at: int, retry_after: str) -> None:
    add_run(conn, "succeeded", cost=0.0, finished=MIDNIGHT)
    err = check_cost(conn, doc(cost_budget_daily_usd=0.0), workload(), at)
    assert err is not None
    assert err.metadata == {"retryAfterSeconds": retry_after}
    assert err.message == "policy.costBudgetDailyUsd exceeded: 0.000000 USD recorded today (UTC) >= budget 0.0 USD."


def test_cost_just_under_the_budget_is_admitted_and_rounded_when_over(conn: Connection) -> None:
    add_run(conn, "succeeded", cost=0.1234564, finished=MIDNIGHT + 5)
    assert check_cost(conn, doc(cost_budget_daily_usd=0.1234565), workload(), NOON) is None
    err = check_cost(conn, doc(cost_budget_daily_usd=0.1), workload(), NOON)
    assert err is not None
    (row,) = rejections(conn)
    assert (row.event["costTodayUsd"], row.event["costBudgetDailyUsd"]) == (0.123456, 0.1)
