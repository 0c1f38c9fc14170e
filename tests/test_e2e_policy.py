"""Policy document, rejections list and fleet summary end to end (seed 002 #21, #24-#26), and the openai
provider through the API against a real HTTP server speaking the chat-completions protocol."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from athena.v1 import fleet_pb2, fleet_pb2_grpc, policy_pb2, policy_pb2_grpc
from tests.fake_openai import FakeOpenAI, Scripted
from tests.servers import start_api
from tests.shapes import assert_iso, error_of, new_session, ok_data

SEED_26 = {
    "schemaVersion": 1,
    "maxConcurrentRuns": 2,
    "defaultRunTimeoutMs": 10000,
    "defaultScheduleTimeoutMs": 20000,
    "retryBudgetPerRun": 3,
    "costBudgetDailyUsd": 25.5,
}


def test_policy_document_seed_24_and_26(workdir: Path) -> None:
    p = start_api(workdir)
    try:
        with httpx.Client(base_url=p.rest_url, timeout=30) as client:
            assert client.get("/api/v1/policy").json() == {"ok": True, "data": None}
            written = ok_data(client.put("/api/v1/policy", json={**SEED_26, "updatedAt": "1999-01-01T00:00:00.000Z"}))
            assert {k: written[k] for k in SEED_26} == SEED_26
            assert written["updatedAt"] != "1999-01-01T00:00:00.000Z"
            assert_iso(written["updatedAt"])
            assert set(written) == {*SEED_26, "updatedAt"}
            assert ok_data(client.get("/api/v1/policy")) == written
            # A full replace: fields not sent are gone.
            replaced = ok_data(
                client.put("/api/v1/policy", json={"policy": {"schemaVersion": 2}, "auditComment": "reset"})
            )
            assert set(replaced) == {"schemaVersion", "updatedAt"} and replaced["schemaVersion"] == 2
            events = ok_data(client.get("/api/v1/events", params={"types": "policy.updated"}))["events"]
            assert [e["payload"]["schemaVersion"] for e in events] == [1, 2]
            last = events[-1]["payload"]
            assert last["auditComment"] == "reset" and last["before"]["maxConcurrentRuns"] == 2
            assert last["after"] == replaced
            with grpc.insecure_channel(p.grpc_target) as ch:
                got = policy_pb2_grpc.PolicyServiceStub(ch).GetPolicy(policy_pb2.GetPolicyRequest()).policy
                assert got.schema_version == 2 and not got.HasField("max_concurrent_runs")
                fleet = fleet_pb2_grpc.FleetServiceStub(ch).GetFleetSummary(fleet_pb2.GetFleetSummaryRequest())
                assert fleet.total == 0
    finally:
        p.stop()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "policy.schemaVersion is required."),
        ({"schemaVersion": 0}, "policy.schemaVersion must be a positive integer."),
        ({"schemaVersion": 1, "maxConcurrentRuns": 0}, "policy.maxConcurrentRuns must be a positive integer."),
        ({"schemaVersion": 1, "defaultRunTimeoutMs": -5}, "policy.defaultRunTimeoutMs must be a positive integer."),
        ({"schemaVersion": 1, "defaultScheduleTimeoutMs": 0}, "policy.defaultScheduleTimeoutMs must be a positive"),
        ({"schemaVersion": 1, "retryBudgetPerRun": -1}, "policy.retryBudgetPerRun must be an integer >= 0."),
        ({"schemaVersion": 1, "costBudgetDailyUsd": -0.5}, "policy.costBudgetDailyUsd must be a finite number >= 0."),
        ({"policy": {"schemaVersion": 1}}, "policy.auditComment is required"),
    ],
)
def test_policy_validation(rest: httpx.Client, body: dict[str, Any], message: str) -> None:
    err = error_of(rest.put("/api/v1/policy", json=body), 400, "CONFIG_ERROR")
    assert message in err["message"]


@pytest.mark.parametrize("value", [1.5, "two", True])
def test_policy_rejects_non_integers(rest: httpx.Client, value: Any) -> None:
    error_of(rest.put("/api/v1/policy", json={"schemaVersion": 1, "maxConcurrentRuns": value}), 400, "CONFIG_ERROR")


def test_rejections_list_validation_and_empty_shape(rest: httpx.Client) -> None:
    data = ok_data(rest.get("/api/v1/policy/rejections", params={"sessionId": new_session()}))
    assert data == {"items": []}
    for params in ({"cursor": "%%"}, {"sessionId": "bad id"}, {"createdAfter": "yesterday"}):
        error_of(rest.get("/api/v1/policy/rejections", params=params), 400, "CONFIG_ERROR")


def test_fleet_summary_counts_runs_by_status(workdir: Path) -> None:
    p = start_api(workdir)
    try:
        with httpx.Client(base_url=p.rest_url, timeout=30) as client:
            for _ in range(3):
                ok_data(client.post("/api/v1/runs", json={"sessionId": new_session(), "input": "x"}))
            error_of(
                client.post(
                    "/api/v1/runs",
                    json={"sessionId": new_session(), "input": "x", "metadata": {"mock.failAttempts": "5"}},
                ),
                502,
                "PROVIDER_ERROR",
            )
            summary = ok_data(client.get("/api/v1/fleet/summary"))
            assert summary == {
                "total": 4,
                "running": 0,
                "pending": 0,
                "succeeded": 3,
                "failed": 1,
                "cancelled": 0,
                "capabilities": {"supportsPodStatus": False, "supportsCpuMemMetrics": False},
            }
    finally:
        p.stop()


def test_openai_provider_through_the_api(workdir: Path) -> None:
    fake = FakeOpenAI().start()
    prices = {"openai/gpt-test": {"inputPerMillion": 1000, "outputPerMillion": 2000}}
    env = {
        "ATHENA_OPENAI_BASE_URL": fake.base_url,
        "ATHENA_OPENAI_API_KEY": "sk-test",
        "ATHENA_MODEL_PRICES": json.dumps(prices),
    }
    p = start_api(workdir, env=env)
    try:
        with httpx.Client(base_url=p.rest_url, timeout=30) as client:
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
        p.stop()
        fake.stop()
