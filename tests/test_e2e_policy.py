"""The operational policy document and its rejections, end to end through REST and gRPC (seed 002 #24-#26);
and the openai provider through the API against a real HTTP server speaking the chat-completions protocol.

The policy governs admission for every run of a server, so these tests never write it on the shared
session server: a policy left there would refuse or time out other modules' runs.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from athena.v1 import policy_pb2, policy_pb2_grpc
from athena_server.timefmt import parse_iso
from tests.fake_openai import FakeOpenAI, Scripted
from tests.support.grpc_errors import error_info
from tests.support.postgres import servers_on_one_database
from tests.support.processes import Served, serving
from tests.support.runs import all_events, wait_status
from tests.support.shapes import assert_iso, error_of, new_session, ok_data

SEED_26 = {
    "schemaVersion": 1,
    "maxConcurrentRuns": 2,
    "defaultRunTimeoutMs": 10000,
    "defaultScheduleTimeoutMs": 20000,
    "retryBudgetPerRun": 3,
    "costBudgetDailyUsd": 25.5,
}
SEED_25_KEYS = {"id", "createdAt", "sessionId", "activeRuns", "maxConcurrentRuns", "reason"}
# Additive to seed 25's item: the versioned policy metadata, the refused run's id and the rejection event.
ADDITIVE_REJECTION_KEYS = {"policy", "runId", "event"}
SLOW = {"mock.delayMs": "60000"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(tmp_path_factory.mktemp("policy")) as s:
        yield s


@pytest.fixture(scope="module")
def client(served: Served) -> httpx.Client:
    return served.rest


@pytest.fixture(scope="module")
def stub(served: Served) -> policy_pb2_grpc.PolicyServiceStub:
    return policy_pb2_grpc.PolicyServiceStub(served.channel)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def policy_events(client: httpx.Client) -> list[dict[str, Any]]:
    return all_events(client, "policy.updated")


def assert_server_authored(updated_at: str, started_ms: int, ended_ms: int) -> None:
    assert_iso(updated_at)
    at = parse_iso(updated_at)
    assert at is not None and started_ms - 1 <= at <= ended_ms + 1, (updated_at, started_ms, ended_ms)


# -- GET / PUT (seed 002 #24, #26) ----------------------------------------------------------------------


def test_null_until_the_first_put_then_the_seed_document_and_its_audit_trail(workdir: Path) -> None:
    with serving(workdir) as served:
        c, stub = served.rest, policy_pb2_grpc.PolicyServiceStub(served.channel)
        # Seed #24: data is null until the first PUT (and over gRPC the policy field is unset).
        assert c.get("/api/v1/policy").json() == {"ok": True, "data": None}
        assert not stub.GetPolicy(policy_pb2.GetPolicyRequest()).HasField("policy")
        assert policy_events(c) == []

        # Seed #26: the flat form; the client's updatedAt is accepted and ignored.
        started = now_ms()
        resp = c.put("/api/v1/policy", json={**SEED_26, "updatedAt": "2001-01-01T00:00:00.000Z"})
        first = ok_data(resp)
        assert_server_authored(first["updatedAt"], started, now_ms())
        assert first == {**SEED_26, "updatedAt": first["updatedAt"]}
        assert list(first) == ["schemaVersion", "updatedAt", *list(SEED_26)[1:]]
        assert ok_data(c.get("/api/v1/policy")) == first

        # The write and its event are one: `policy.updated` with no `before` on the first write.
        (event,) = policy_events(c)
        assert event["traceId"] == resp.headers["x-trace-id"]
        assert event["payload"] == {"schemaVersion": 1, "updatedAt": first["updatedAt"], "after": first}
        assert "sessionId" not in event and "runId" not in event

        # The wrapped form records its audit comment and the document it replaced.
        started = now_ms()
        body = {
            "policy": {"schemaVersion": 2, "maxConcurrentRuns": 4, "updatedAt": "2001-01-01T00:00:00.000Z"},
            "auditComment": "  raise the limit for the migration  ",
        }
        second = ok_data(c.put("/api/v1/policy", json=body))
        assert_server_authored(second["updatedAt"], started, now_ms())
        assert second == {"schemaVersion": 2, "updatedAt": second["updatedAt"], "maxConcurrentRuns": 4}
        assert second["updatedAt"] >= first["updatedAt"]
        events = policy_events(c)
        assert [e["type"] for e in events] == ["policy.updated", "policy.updated"]
        assert events[1]["payload"] == {
            "schemaVersion": 2,
            "updatedAt": second["updatedAt"],
            "auditComment": "raise the limit for the migration",
            "before": first,
            "after": second,
        }
        assert int(events[1]["id"].removeprefix("evt_")) > int(events[0]["id"].removeprefix("evt_"))


def test_put_is_a_full_replace(client: httpx.Client) -> None:
    ok_data(client.put("/api/v1/policy", json=SEED_26))
    # Zero is a value, not an absence: retryBudgetPerRun 0 and costBudgetDailyUsd 0 are kept.
    data = ok_data(
        client.put("/api/v1/policy", json={"schemaVersion": 3, "retryBudgetPerRun": 0, "costBudgetDailyUsd": 0})
    )
    assert data == {"schemaVersion": 3, "updatedAt": data["updatedAt"], "retryBudgetPerRun": 0, "costBudgetDailyUsd": 0}
    assert ok_data(client.get("/api/v1/policy")) == data
    # A bare document drops every optional field; null counts as not sent.
    data = ok_data(client.put("/api/v1/policy", json={"schemaVersion": 1, "maxConcurrentRuns": None}))
    assert data == {"schemaVersion": 1, "updatedAt": data["updatedAt"]}
    assert ok_data(client.get("/api/v1/policy")) == data


def test_flat_form_may_carry_an_audit_comment(client: httpx.Client) -> None:
    data = ok_data(client.put("/api/v1/policy", json={"schemaVersion": 1, "auditComment": "nightly reset"}))
    last = policy_events(client)[-1]["payload"]
    assert last["after"] == data and last["auditComment"] == "nightly reset"
    # Blank counts as absent.
    ok_data(client.put("/api/v1/policy", json={"schemaVersion": 1, "auditComment": "   "}))
    assert "auditComment" not in policy_events(client)[-1]["payload"]


# -- validation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "policy.schemaVersion must be a positive integer."),
        ({"maxConcurrentRuns": 2}, "policy.schemaVersion must be a positive integer."),
        ({"schemaVersion": 0}, "policy.schemaVersion must be a positive integer."),
        ({"schemaVersion": -1}, "policy.schemaVersion must be a positive integer."),
        ({"schemaVersion": 1, "maxConcurrentRuns": 0}, "policy.maxConcurrentRuns must be a positive integer."),
        ({"schemaVersion": 1, "maxConcurrentRuns": -3}, "policy.maxConcurrentRuns must be a positive integer."),
        ({"schemaVersion": 1, "defaultRunTimeoutMs": 0}, "policy.defaultRunTimeoutMs must be a positive integer."),
        (
            {"schemaVersion": 1, "defaultScheduleTimeoutMs": -1},
            "policy.defaultScheduleTimeoutMs must be a positive integer.",
        ),
        ({"schemaVersion": 1, "retryBudgetPerRun": -1}, "policy.retryBudgetPerRun must be an integer >= 0."),
        ({"schemaVersion": 1, "costBudgetDailyUsd": -0.01}, "policy.costBudgetDailyUsd must be a finite number >= 0."),
        # Protobuf JSON spells non-finite doubles as strings; they are still not a budget.
        ({"schemaVersion": 1, "costBudgetDailyUsd": "NaN"}, "policy.costBudgetDailyUsd must be a finite number >= 0."),
        (
            {"schemaVersion": 1, "costBudgetDailyUsd": "Infinity"},
            "policy.costBudgetDailyUsd must be a finite number >= 0.",
        ),
        # The wrapped form: the comment is required, and the document's fields follow the same rules.
        ({"policy": {"schemaVersion": 1}}, "policy.auditComment is required when the document is sent under `policy`."),
        (
            {"policy": {"schemaVersion": 1}, "auditComment": " "},
            "policy.auditComment is required when the document is sent under `policy`.",
        ),
        ({"policy": {}, "auditComment": "x"}, "policy.schemaVersion must be a positive integer."),
        ({"policy": {"schemaVersion": 0}, "auditComment": "x"}, "policy.schemaVersion must be a positive integer."),
        (
            {"policy": {"schemaVersion": 1, "maxConcurrentRuns": 0}, "auditComment": "x"},
            "policy.maxConcurrentRuns must be a positive integer.",
        ),
        (
            {"policy": {"schemaVersion": 1, "retryBudgetPerRun": -2}, "auditComment": "x"},
            "policy.retryBudgetPerRun must be an integer >= 0.",
        ),
        (
            {"policy": {"schemaVersion": 1, "costBudgetDailyUsd": -5}, "auditComment": "x"},
            "policy.costBudgetDailyUsd must be a finite number >= 0.",
        ),
        # Both forms at once: the full replace would silently drop the top-level field, so it is refused.
        (
            {"policy": {"schemaVersion": 1}, "maxConcurrentRuns": 2, "auditComment": "x"},
            "policy: send the document either flat or under `policy`, not both (also sent: maxConcurrentRuns).",
        ),
    ],
)
def test_invalid_documents_are_config_errors_that_change_nothing(
    client: httpx.Client, body: dict[str, Any], message: str
) -> None:
    before = ok_data(client.put("/api/v1/policy", json={"schemaVersion": 7, "maxConcurrentRuns": 9}))
    count = len(policy_events(client))
    err = error_of(client.put("/api/v1/policy", json=body), 400, "CONFIG_ERROR")
    assert err["message"] == message
    assert ok_data(client.get("/api/v1/policy")) == before
    assert len(policy_events(client)) == count


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("maxConcurrentRuns", 1.5),
        ("maxConcurrentRuns", "two"),
        ("maxConcurrentRuns", True),
        ("maxConcurrentRuns", 2**31),
        ("defaultRunTimeoutMs", 10.25),
        ("retryBudgetPerRun", [1]),
        ("schemaVersion", 1.5),
        ("costBudgetDailyUsd", "cheap"),
    ],
)
def test_values_of_the_wrong_json_type_are_config_errors_naming_the_field(
    client: httpx.Client, field: str, value: Any
) -> None:
    """The gateway's JSON-to-proto parse refuses them before the server sees the request."""
    body = {"schemaVersion": 1, field: value}
    err = error_of(client.put("/api/v1/policy", json=body), 400, "CONFIG_ERROR")
    assert field in err["message"], err
    wrapped = {"policy": body, "auditComment": "x"}
    err = error_of(client.put("/api/v1/policy", json=wrapped), 400, "CONFIG_ERROR")
    assert field in err["message"], err


def test_body_that_is_not_a_json_object(client: httpx.Client) -> None:
    headers = {"content-type": "application/json"}
    err = error_of(client.put("/api/v1/policy", content=b"[1]", headers=headers), 400, "CONFIG_ERROR")
    assert err["message"] == "request.body must be a JSON object."
    err = error_of(client.put("/api/v1/policy", content=b"{", headers=headers), 400, "CONFIG_ERROR")
    assert err["message"] == "request.body must contain valid JSON."


# -- gRPC ------------------------------------------------------------------------------------------------


def test_grpc_put_and_get(client: httpx.Client, stub: policy_pb2_grpc.PolicyServiceStub) -> None:
    started = now_ms()
    put = stub.PutPolicy(
        policy_pb2.PutPolicyRequest(schema_version=5, max_concurrent_runs=3, retry_budget_per_run=0, updated_at="x")
    ).policy
    assert (put.schema_version, put.max_concurrent_runs, put.retry_budget_per_run) == (5, 3, 0)
    assert_server_authored(put.updated_at, started, now_ms())
    assert put.HasField("retry_budget_per_run") and not put.HasField("cost_budget_daily_usd")
    got = stub.GetPolicy(policy_pb2.GetPolicyRequest()).policy
    assert got == put
    # The same document over REST.
    assert ok_data(client.get("/api/v1/policy")) == {
        "schemaVersion": 5,
        "updatedAt": put.updated_at,
        "maxConcurrentRuns": 3,
        "retryBudgetPerRun": 0,
    }

    wrapped = stub.PutPolicy(
        policy_pb2.PutPolicyRequest(
            policy=policy_pb2.Policy(schema_version=6, cost_budget_daily_usd=12.5), audit_comment="budget"
        )
    ).policy
    assert (wrapped.schema_version, wrapped.cost_budget_daily_usd) == (6, 12.5)
    assert not wrapped.HasField("max_concurrent_runs")
    assert policy_events(client)[-1]["payload"]["auditComment"] == "budget"


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (policy_pb2.PutPolicyRequest(), "policy.schemaVersion must be a positive integer."),
        (
            policy_pb2.PutPolicyRequest(schema_version=1, default_run_timeout_ms=0),
            "policy.defaultRunTimeoutMs must be a positive integer.",
        ),
        (
            policy_pb2.PutPolicyRequest(policy=policy_pb2.Policy(schema_version=1)),
            "policy.auditComment is required when the document is sent under `policy`.",
        ),
    ],
)
def test_grpc_invalid_put_is_invalid_argument(
    stub: policy_pb2_grpc.PolicyServiceStub, request_: policy_pb2.PutPolicyRequest, message: str
) -> None:
    with pytest.raises(grpc.RpcError) as exc:
        stub.PutPolicy(request_)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.details() == message
    assert error_info(exc.value).reason == "CONFIG_ERROR"


# -- rejections (seed 002 #25) ---------------------------------------------------------------------------


def test_rejections_empty_page_and_query_validation(workdir: Path) -> None:
    # A server of its own: the empty record is only empty where nothing else was ever refused.
    with serving(workdir) as served:
        rejections_empty_page_and_query_validation(served.rest, policy_pb2_grpc.PolicyServiceStub(served.channel))


def rejections_empty_page_and_query_validation(client: httpx.Client, stub: policy_pb2_grpc.PolicyServiceStub) -> None:
    assert ok_data(client.get("/api/v1/policy/rejections")) == {"items": []}
    assert ok_data(client.get("/api/v1/policy/rejections", params={"limit": "7", "cursor": "MQ"})) == {"items": []}
    assert list(stub.ListPolicyRejections(policy_pb2.ListPolicyRejectionsRequest()).items) == []

    def bad(params: dict[str, str]) -> str:
        return error_of(client.get("/api/v1/policy/rejections", params=params), 400, "CONFIG_ERROR")["message"]

    for cursor in ("!!", "abc", "LTE", "eyJraW5kIjoieCJ9"):  # not base64, not a number, "-1", a JSON keyset
        assert bad({"cursor": cursor}) == "policy.rejections.cursor is invalid.", cursor
    assert bad({"sessionId": "bad id"}) == "Invalid sessionId 'bad id'. Allowed pattern: ^[A-Za-z0-9._-]+$"
    assert bad({"createdAfter": "yesterday"}) == "policy.rejections.createdAfter must be a valid ISO datetime."
    assert bad({"limit": "junk"}) == "limit must be an integer."
    assert bad({"createdBefore": "2026-13-01"}) == "policy.rejections.createdBefore must be a valid ISO datetime."
    with pytest.raises(grpc.RpcError) as exc:
        stub.ListPolicyRejections(policy_pb2.ListPolicyRejectionsRequest(cursor="!!"))
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_rejections_are_listed_oldest_first_with_cursor_pages_and_filters(workdir: Path) -> None:
    with serving(workdir) as served:
        c, stub = served.rest, policy_pb2_grpc.PolicyServiceStub(served.channel)
        ok_data(c.put("/api/v1/policy", json={"schemaVersion": 1, "maxConcurrentRuns": 1}))
        # One slow run takes the only slot; each run asked for meanwhile is refused and recorded.
        holder = ok_data(
            c.post("/api/v1/runs", json={"sessionId": new_session(), "input": "x", "metadata": SLOW, "wait": False}),
            202,
        )
        wait_status(c, holder["runId"], "running")
        s1, s2 = new_session(), new_session()
        for sid in (s1, s2, s1):
            error_of(
                c.post("/api/v1/runs", json={"sessionId": sid, "input": "hello"}),
                429,
                "POLICY_CONCURRENCY_LIMIT_EXCEEDED",
            )

        everything = ok_data(c.get("/api/v1/policy/rejections"))
        assert set(everything) == {"items"}  # no nextCursor: there is no other page
        items = everything["items"]
        assert [r["id"] for r in items] == ["rej_1", "rej_2", "rej_3"]
        assert [r["sessionId"] for r in items] == [s1, s2, s1]
        for r in items:
            assert SEED_25_KEYS <= set(r) <= SEED_25_KEYS | ADDITIVE_REJECTION_KEYS, r
            assert_iso(r["createdAt"])
            assert {k: r[k] for k in ("activeRuns", "maxConcurrentRuns", "reason")} == {
                "activeRuns": 1,
                "maxConcurrentRuns": 1,
                "reason": "max-concurrent-runs-exceeded",
            }
        assert [r["createdAt"] for r in items] == sorted(r["createdAt"] for r in items)

        def page(**params: Any) -> dict[str, Any]:
            data: dict[str, Any] = ok_data(c.get("/api/v1/policy/rejections", params=params))
            return data

        # Seed #25 exactly: the first page of one, and the cursor "MQ" after rej_1.
        first = page(limit=1)
        assert first == {"items": [items[0]], "nextCursor": "MQ"}
        second = page(limit=1, cursor="MQ")
        assert second == {"items": [items[1]], "nextCursor": "Mg"}
        assert page(limit=1, cursor="Mg") == {"items": [items[2]]}
        assert page(limit=2) == {"items": items[:2], "nextCursor": "Mg"}
        assert page(cursor="Mw") == {"items": []}

        # Filters, with the cursor still the position in the whole record.
        assert page(sessionId=s1) == {"items": [items[0], items[2]]}
        assert page(sessionId=s1, limit=1) == {"items": [items[0]], "nextCursor": "MQ"}
        assert page(sessionId=s1, limit=1, cursor="MQ") == {"items": [items[2]]}
        assert page(sessionId=new_session()) == {"items": []}
        mid = items[1]["createdAt"]
        assert page(createdAfter=mid) == {"items": [r for r in items if r["createdAt"] >= mid]}
        assert page(createdBefore=mid) == {"items": [r for r in items if r["createdAt"] <= mid]}
        assert page(createdAfter=mid, createdBefore=mid) == {"items": [r for r in items if r["createdAt"] == mid]}
        assert page(createdAfter="2999-01-01T00:00:00.000Z") == {"items": []}
        assert page(createdBefore="2000-01-01T00:00:00Z") == {"items": []}

        # The same record over gRPC.
        resp = stub.ListPolicyRejections(policy_pb2.ListPolicyRejectionsRequest(limit=2))
        assert [r.id for r in resp.items] == ["rej_1", "rej_2"] and resp.next_cursor == "Mg"
        assert resp.items[0].session_id == s1 and resp.items[0].reason == "max-concurrent-runs-exceeded"

        ok_data(c.post(f"/api/v1/run-control/by-run/{holder['runId']}/cancel", json={}))


# -- two processes on one PostgreSQL database --------------------------------------------------------------


def test_concurrent_puts_through_two_processes_keep_an_exact_audit_trail(postgres_cluster: str, tmp_path: Path) -> None:
    """Each PUT reads the document it replaces; without serialising the writes, two replicas collide on the
    single policy row (500s) or record a `before` another write already replaced."""
    with (
        servers_on_one_database(postgres_cluster, tmp_path) as servers,
        httpx.Client(base_url=servers[0].rest_url, timeout=60) as a,
        httpx.Client(base_url=servers[1].rest_url, timeout=60) as b,
    ):
        clients = [a, b]

        def put(i: int) -> httpx.Response:
            return clients[i % 2].put("/api/v1/policy", json={"schemaVersion": 1, "maxConcurrentRuns": i + 1})

        with ThreadPoolExecutor(20) as pool:
            responses = list(pool.map(put, range(40)))
        assert [r.status_code for r in responses] == [200] * 40, [r.text for r in responses if r.status_code != 200]
        events = policy_events(clients[0])
        assert len(events) == 40
        assert "before" not in events[0]["payload"]
        for prev, cur in itertools.pairwise(events):
            assert cur["payload"]["before"] == prev["payload"]["after"]
            assert cur["payload"]["updatedAt"] >= prev["payload"]["updatedAt"]
        assert ok_data(clients[1].get("/api/v1/policy")) == events[-1]["payload"]["after"]
        assert sorted(e["payload"]["after"]["maxConcurrentRuns"] for e in events) == list(range(1, 41))


# -- the openai provider through the API ------------------------------------------------------------------


def test_openai_provider_through_the_api(workdir: Path) -> None:
    fake = FakeOpenAI().start()
    prices = {"openai/gpt-test": {"inputPerMillion": 1000, "outputPerMillion": 2000}}
    env = {
        "ATHENA_OPENAI_BASE_URL": fake.base_url,
        "ATHENA_OPENAI_API_KEY": "sk-test",
        "ATHENA_MODEL_PRICES": json.dumps(prices),
    }
    try:
        with serving(workdir, env=env) as served:
            client = served.rest
            sid = new_session()
            body = {"sessionId": sid, "input": "hello", "provider": "openai", "model": "gpt-test"}
            data = ok_data(client.post("/api/v1/runs", json=body))
            assert data["output"] == "reply: hello"
            assert data["usage"] == {"inputTokens": 11, "outputTokens": 7, "totalTokens": 18}
            assert data["costUsd"] == pytest.approx((11 * 1000 + 7 * 2000) / 1_000_000)
            sent = fake.requests[-1]
            assert sent.headers["authorization"] == "Bearer sk-test"
            assert sent.body == {"model": "gpt-test", "messages": [{"role": "user", "content": "hello"}]}
            # History is sent as chat turns; a 429 then succeeds within the retry budget.
            fake.script(Scripted(429, {"error": {"message": "slow down"}}))
            second = ok_data(client.post("/api/v1/runs", json={**body, "input": "again"}))
            assert second["attempts"] == 2
            assert fake.requests[-1].body["messages"] == [
                {"role": "user", "content": "hello"},
                {"role": "assistant", "content": "reply: hello"},
                {"role": "user", "content": "again"},
            ]
            fake.script(Scripted(400, {"error": {"message": "bad model"}}))
            err = error_of(client.post("/api/v1/runs", json={**body, "input": "x"}), 502, "PROVIDER_ERROR")
            assert "bad model" in err["message"] and err["retryable"] is False
            # A profile may name a priced model of its provider.
            profile = {
                "displayName": "gpt",
                "version": "v1",
                "config": {"provider": "openai", "model": "gpt-test", "tools": ["t"]},
                "policies": {"timeoutMs": 1000, "retryLimit": 1, "budgetUsd": 0},
            }
            ok_data(client.post("/api/v1/harness-profiles", json=profile))
    finally:
        fake.stop()
