"""The policy document and its record of refusals, against a real SQLite store: what a PUT accepts (either
body form) and refuses, the full replace and its `policy.updated` audit event, and the rejection list's
order, filters and cursor."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import Connection, select

from athena.v1 import policy_pb2
from athena_server import cursors
from athena_server.control.policy import PolicyService, policy_json, policy_message, rejection_message
from athena_server.errors import AthenaError, ErrorCode
from athena_server.storage import policy as policy_store
from athena_server.storage.policy import PolicyDoc, RejectionRow
from athena_server.storage.store import Store
from athena_server.storage.tables import events
from athena_server.timefmt import iso, now_ms, parse_iso
from tests.support.writer import one_group

FULL = PolicyDoc(
    schema_version=2,
    updated_at_ms=1_700_000_000_123,
    max_concurrent_runs=4,
    default_run_timeout_ms=30_000,
    default_schedule_timeout_ms=60_000,
    retry_budget_per_run=0,
    cost_budget_daily_usd=12.5,
)
FULL_JSON = {
    "schemaVersion": 2,
    "maxConcurrentRuns": 4,
    "defaultRunTimeoutMs": 30_000,
    "defaultScheduleTimeoutMs": 60_000,
    "retryBudgetPerRun": 0,
    "costBudgetDailyUsd": 12.5,
}


@pytest.fixture
def service(store: Store) -> PolicyService:
    return PolicyService(store)


def updated_events(conn: Connection) -> list[tuple[str, dict[str, Any]]]:
    rows = conn.execute(select(events).order_by(events.c.seq)).all()
    return [(r.type, r.payload) for r in rows]


# ---- the stored document --------------------------------------------------------------------------------


def test_document_json_keeps_only_set_fields_and_round_trips() -> None:
    assert FULL.to_json() == FULL_JSON
    assert PolicyDoc(schema_version=1, updated_at_ms=5).to_json() == {"schemaVersion": 1}
    assert PolicyDoc.from_json(FULL_JSON, FULL.updated_at_ms) == FULL
    assert PolicyDoc.from_json({"schemaVersion": "3"}, 7) == PolicyDoc(schema_version=3, updated_at_ms=7)


async def test_store_holds_one_document_replaced_whole(any_store: Store) -> None:
    assert await any_store.read(policy_store.get) is None
    await any_store.write(lambda conn: policy_store.put(conn, FULL))
    assert await any_store.read(policy_store.get) == FULL
    small = PolicyDoc(schema_version=1, updated_at_ms=9, max_concurrent_runs=1)
    await any_store.write(lambda conn: policy_store.put(conn, small))
    assert await any_store.read(policy_store.get) == small
    assert await any_store.write(policy_store.get) == small


def test_policy_message_and_json_show_set_fields_only() -> None:
    msg = policy_message(FULL)
    assert msg == policy_pb2.Policy(
        schema_version=2,
        updated_at=iso(FULL.updated_at_ms),
        max_concurrent_runs=4,
        default_run_timeout_ms=30_000,
        default_schedule_timeout_ms=60_000,
        retry_budget_per_run=0,
        cost_budget_daily_usd=12.5,
    )
    assert msg.HasField("retry_budget_per_run")  # a zero that was set stays present
    bare = policy_message(PolicyDoc(schema_version=1, updated_at_ms=0))
    assert [f.name for f, _ in bare.ListFields()] == ["schema_version", "updated_at"]
    assert policy_json(FULL) == {**FULL_JSON, "updatedAt": "2023-11-14T22:13:20.123Z"}


# ---- PUT validation ------------------------------------------------------------------------------------


async def refused(service: PolicyService, **fields: Any) -> str:
    with pytest.raises(AthenaError) as err:
        await service.put(policy_pb2.PutPolicyRequest(**fields))
    assert err.value.code == ErrorCode.ERROR_CODE_CONFIG_ERROR
    return err.value.message


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "policy.schemaVersion must be a positive integer."),
        ({"schema_version": 0}, "policy.schemaVersion must be a positive integer."),
        ({"schema_version": -1}, "policy.schemaVersion must be a positive integer."),
        ({"schema_version": 1, "max_concurrent_runs": 0}, "policy.maxConcurrentRuns must be a positive integer."),
        (
            {"schema_version": 1, "default_run_timeout_ms": 0},
            "policy.defaultRunTimeoutMs must be a positive integer.",
        ),
        (
            {"schema_version": 1, "default_schedule_timeout_ms": -5},
            "policy.defaultScheduleTimeoutMs must be a positive integer.",
        ),
        ({"schema_version": 1, "retry_budget_per_run": -1}, "policy.retryBudgetPerRun must be an integer >= 0."),
        (
            {"schema_version": 1, "cost_budget_daily_usd": -0.01},
            "policy.costBudgetDailyUsd must be a finite number >= 0.",
        ),
        (
            {"schema_version": 1, "cost_budget_daily_usd": math.nan},
            "policy.costBudgetDailyUsd must be a finite number >= 0.",
        ),
        (
            {"schema_version": 1, "cost_budget_daily_usd": math.inf},
            "policy.costBudgetDailyUsd must be a finite number >= 0.",
        ),
        (
            {"policy": policy_pb2.Policy(schema_version=1)},
            "policy.auditComment is required when the document is sent under `policy`.",
        ),
        (
            {"policy": policy_pb2.Policy(schema_version=1), "audit_comment": "   "},
            "policy.auditComment is required when the document is sent under `policy`.",
        ),
        (
            {"policy": policy_pb2.Policy(schema_version=0), "audit_comment": "why"},
            "policy.schemaVersion must be a positive integer.",
        ),
        (
            {"policy": policy_pb2.Policy(schema_version=1), "audit_comment": "why", "max_concurrent_runs": 2},
            "policy: send the document either flat or under `policy`, not both (also sent: maxConcurrentRuns).",
        ),
        (
            {
                "policy": policy_pb2.Policy(schema_version=1),
                "audit_comment": "why",
                "schema_version": 1,
                "retry_budget_per_run": 1,
            },
            "policy: send the document either flat or under `policy`, not both "
            "(also sent: retryBudgetPerRun, schemaVersion).",
        ),
    ],
)
async def test_put_refuses_invalid_documents_and_stores_nothing(
    service: PolicyService, store: Store, fields: dict[str, Any], message: str
) -> None:
    assert await refused(service, **fields) == message
    assert await store.read(policy_store.get) is None
    assert await store.read(updated_events) == []


async def test_put_accepts_the_smallest_allowed_values(service: PolicyService) -> None:
    resp = await service.put(
        policy_pb2.PutPolicyRequest(
            schema_version=1,
            max_concurrent_runs=1,
            default_run_timeout_ms=1,
            default_schedule_timeout_ms=1,
            retry_budget_per_run=0,
            cost_budget_daily_usd=0.0,
        )
    )
    got = resp.policy
    assert (got.schema_version, got.max_concurrent_runs, got.default_run_timeout_ms) == (1, 1, 1)
    assert (got.default_schedule_timeout_ms, got.retry_budget_per_run, got.cost_budget_daily_usd) == (1, 0, 0.0)
    assert got.HasField("retry_budget_per_run") and got.HasField("cost_budget_daily_usd")


# ---- PUT: full replace and audit trail ------------------------------------------------------------------


async def test_put_replaces_the_whole_document_and_audits_before_and_after(
    service: PolicyService, store: Store
) -> None:
    assert (await service.get()).HasField("policy") is False
    start = now_ms()
    first = await service.put(
        policy_pb2.PutPolicyRequest(schema_version=1, max_concurrent_runs=3, cost_budget_daily_usd=2.5)
    )
    stamped = parse_iso(first.policy.updated_at)
    assert stamped is not None and stamped >= start
    assert first.policy == policy_pb2.Policy(
        schema_version=1, updated_at=first.policy.updated_at, max_concurrent_runs=3, cost_budget_daily_usd=2.5
    )
    assert (await service.get()).policy == first.policy

    # Under `policy`, with a comment (trimmed); the fields not sent are dropped.
    second = await service.put(
        policy_pb2.PutPolicyRequest(
            policy=policy_pb2.Policy(schema_version=2, retry_budget_per_run=2), audit_comment="  tighten  "
        )
    )
    assert [f.name for f, _ in second.policy.ListFields()] == ["schema_version", "updated_at", "retry_budget_per_run"]
    assert (await service.get()).policy == second.policy

    first_json = {
        "schemaVersion": 1,
        "maxConcurrentRuns": 3,
        "costBudgetDailyUsd": 2.5,
        "updatedAt": first.policy.updated_at,
    }
    second_json = {"schemaVersion": 2, "retryBudgetPerRun": 2, "updatedAt": second.policy.updated_at}
    assert await store.read(updated_events) == [
        ("policy.updated", {"schemaVersion": 1, "updatedAt": first.policy.updated_at, "after": first_json}),
        (
            "policy.updated",
            {
                "schemaVersion": 2,
                "updatedAt": second.policy.updated_at,
                "auditComment": "tighten",
                "before": first_json,
                "after": second_json,
            },
        ),
    ]


async def test_flat_put_keeps_a_comment_and_updated_at_never_goes_back(service: PolicyService, store: Store) -> None:
    future = now_ms() + 3_600_000
    await store.write(lambda conn: policy_store.put(conn, PolicyDoc(schema_version=1, updated_at_ms=future)))
    resp = await service.put(
        policy_pb2.PutPolicyRequest(schema_version=1, audit_comment=" flat ", updated_at="2000-01-01T00:00:00.000Z")
    )
    # The stored document's clock is ahead of ours: the new one takes its time, not an earlier one.
    assert resp.policy.updated_at == iso(future)
    (_, payload) = (await store.read(updated_events))[-1]
    assert payload["auditComment"] == "flat"
    assert payload["before"] == {"schemaVersion": 1, "updatedAt": iso(future)}
    # A blank flat comment is simply absent.
    await service.put(policy_pb2.PutPolicyRequest(schema_version=1, audit_comment="  "))
    (_, payload) = (await store.read(updated_events))[-1]
    assert "auditComment" not in payload


# ---- rejections -----------------------------------------------------------------------------------------


def row(seq: int, **over: Any) -> RejectionRow:
    values: dict[str, Any] = dict(
        seq=seq,
        created_at_ms=1_700_000_000_000,
        session_id="s1",
        run_id="r1",
        active_runs=3,
        max_concurrent_runs=2,
        reason="max-concurrent-runs-exceeded",
        policy={"decision": "rejected"},
        event={"limit": 2},
    )
    values.update(over)
    return RejectionRow(**values)


def test_rejection_message_carries_every_recorded_field() -> None:
    msg = rejection_message(row(7))
    assert (msg.id, msg.created_at, msg.session_id, msg.run_id) == ("rej_7", iso(1_700_000_000_000), "s1", "r1")
    assert (msg.active_runs, msg.max_concurrent_runs, msg.reason) == (3, 2, "max-concurrent-runs-exceeded")
    assert dict(msg.policy) == {"decision": "rejected"} and dict(msg.event) == {"limit": 2.0}
    bare = rejection_message(row(8, run_id=None, policy=None, event=None))
    assert not bare.HasField("run_id") and not bare.HasField("policy") and not bare.HasField("event")


async def add_rejections(store: Store, specs: list[tuple[str, int]]) -> list[int]:
    def unit(conn: Connection) -> list[int]:
        return [
            policy_store.insert_rejection(
                conn,
                created_at_ms=at,
                session_id=session,
                run_id=f"run-{i}",
                active_runs=i,
                max_concurrent_runs=1,
                reason="max-concurrent-runs-exceeded",
                policy_meta=None,
                event=None,
            )
            for i, (session, at) in enumerate(specs)
        ]

    return await store.write(unit)


async def listed(service: PolicyService, **fields: Any) -> tuple[list[str], str | None]:
    resp = await service.rejections(policy_pb2.ListPolicyRejectionsRequest(**fields))
    return [r.id for r in resp.items], resp.next_cursor if resp.HasField("next_cursor") else None


async def test_rejections_page_oldest_first_without_repeats(service: PolicyService, store: Store) -> None:
    base = 1_700_000_000_000
    seqs = await add_rejections(store, [("a", base), ("b", base + 10), ("a", base + 20), ("a", base + 30)])
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    ids = [f"rej_{s}" for s in seqs]
    assert await listed(service) == (ids, None)
    page1 = await listed(service, limit=2)
    assert page1 == (ids[:2], cursors.encode(seqs[1]))
    page2 = await listed(service, limit=2, cursor=page1[1])
    assert page2 == (ids[2:], None)
    # Exactly a page's worth left: no cursor pointing at nothing.
    assert await listed(service, limit=4) == (ids, None)
    assert await listed(service, limit=3) == (ids[:3], cursors.encode(seqs[2]))


async def test_rejections_filter_by_session_and_time_inclusively(service: PolicyService, store: Store) -> None:
    base = 1_700_000_000_000
    seqs = await add_rejections(store, [("a", base), ("b", base + 10), ("a", base + 20), ("a", base + 30)])
    ids = [f"rej_{s}" for s in seqs]
    assert await listed(service, session_id="a") == ([ids[0], ids[2], ids[3]], None)
    assert await listed(service, created_after=iso(base + 10)) == (ids[1:], None)
    assert await listed(service, created_before=iso(base + 20)) == (ids[:3], None)
    assert await listed(service, session_id="a", created_after=iso(base + 1), created_before=iso(base + 20)) == (
        [ids[2]],
        None,
    )
    rows = await store.read(
        lambda conn: policy_store.page_rejections(conn, after_seq=seqs[0], limit=10, session_id="a")
    )
    assert [(r.seq, r.session_id, r.run_id, r.active_runs, r.created_at_ms) for r in rows] == [
        (seqs[2], "a", "run-2", 2, base + 20),
        (seqs[3], "a", "run-3", 3, base + 30),
    ]


async def test_rejections_refuse_a_bad_cursor(service: PolicyService) -> None:
    with pytest.raises(AthenaError) as err:
        await service.rejections(policy_pb2.ListPolicyRejectionsRequest(cursor="!!"))
    assert err.value.message == "policy.rejections.cursor is invalid."


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"session_id": "bad id!"}, "Invalid sessionId 'bad id!'."),
        ({"created_after": "yesterday"}, "policy.rejections.createdAfter must be a valid ISO datetime."),
        ({"created_before": "soon"}, "policy.rejections.createdBefore must be a valid ISO datetime."),
    ],
)
async def test_rejections_refuse_bad_filters_naming_them(
    service: PolicyService, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(AthenaError) as err:
        await service.rejections(policy_pb2.ListPolicyRejectionsRequest(**fields))
    assert err.value.message.startswith(message)


async def test_page_rejections_returns_whole_rows_up_to_the_limit(store: Store) -> None:
    def unit(conn: Connection) -> list[RejectionRow]:
        for n in range(3):
            policy_store.insert_rejection(
                conn,
                created_at_ms=100 + n,
                session_id="s",
                run_id=None,
                active_runs=n,
                max_concurrent_runs=7,
                reason=f"why-{n}",
                policy_meta={"n": n},
                event={"e": n},
            )
        return policy_store.page_rejections(conn, after_seq=0, limit=2)

    rows = await store.write(unit)
    assert [(r.created_at_ms, r.session_id, r.run_id, r.active_runs) for r in rows] == [
        (100, "s", None, 0),
        (101, "s", None, 1),
    ]
    assert [(r.max_concurrent_runs, r.reason, r.policy, r.event) for r in rows] == [
        (7, "why-0", {"n": 0}, {"e": 0}),
        (7, "why-1", {"n": 1}, {"e": 1}),
    ]


async def test_a_write_group_reads_the_policy_once_and_never_a_stale_one(store: Store) -> None:
    """The units of one SQLite write group share the policy one of them read (GROUP_MEMO), so a group of
    admissions reads it once; but a unit's put is what the next unit reads, and a put rolled back with its
    unit is not."""
    second = replace(FULL, max_concurrent_runs=9)
    third = replace(FULL, max_concurrent_runs=7)
    statements: list[str] = []

    def trace(conn: Connection) -> None:
        conn.connection.driver_connection.set_trace_callback(statements.append)  # type: ignore[union-attr]

    def untrace(conn: Connection) -> None:
        conn.connection.driver_connection.set_trace_callback(None)  # type: ignore[union-attr]

    def put(doc: PolicyDoc) -> Callable[[Connection], None]:
        return lambda conn: policy_store.put(conn, doc)

    def put_read_fail(conn: Connection) -> None:
        policy_store.put(conn, third)
        assert policy_store.get(conn) == third
        raise AthenaError(ErrorCode.ERROR_CODE_CONFIG_ERROR, "refused after its put")

    await store.write(put(FULL))
    assert await one_group(store, [trace, policy_store.get, policy_store.get, policy_store.get, untrace]) == [
        None,
        FULL,
        FULL,
        FULL,
        None,
    ]
    assert sum(s.startswith("SELECT policy.document") for s in statements) == 1
    # The first group with a failing unit runs optimistically (then again without it); the writer then runs
    # the next groups with a savepoint per unit, so the second pass covers a unit rolled back alone.
    for _pass in ("optimistic", "cautious"):
        await store.write(put(FULL))
        results = await one_group(
            store, [policy_store.get, put(second), policy_store.get, put_read_fail, policy_store.get]
        )
        assert results[:3] == [FULL, None, second] and results[4] == second
        assert isinstance(results[3], AthenaError)
        assert await store.read(policy_store.get) == second
