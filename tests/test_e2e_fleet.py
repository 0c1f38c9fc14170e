"""The fleet summary end to end (seed 002 #21): real counts of runs by status, over REST and gRPC.

Each test starts its own server, so the counts are exact: the shared session server holds other modules'
runs. Runs are made to reach every status through the API alone (mock provider options and the policy).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import httpx

from athena.v1 import fleet_pb2, fleet_pb2_grpc
from tests.support.processes import serving
from tests.support.runs import wait_status
from tests.support.shapes import error_of, new_session, ok_data

CAPABILITIES = {"supportsPodStatus": False, "supportsCpuMemMetrics": False}
SLOW = {"mock.delayMs": "120000"}
# Slow runs and the run waiting behind one must keep their status for the whole test.
PATIENT = {"ATHENA_RUN_TIMEOUT_MS": "300000", "ATHENA_SESSION_LOCK_TIMEOUT_MS": "300000"}


def summary(client: httpx.Client) -> dict[str, Any]:
    data: dict[str, Any] = ok_data(client.get("/api/v1/fleet/summary"))
    return data


def grpc_summary(channel: grpc.Channel) -> dict[str, Any]:
    resp = fleet_pb2_grpc.FleetServiceStub(channel).GetFleetSummary(fleet_pb2.GetFleetSummaryRequest())
    return {
        "total": resp.total,
        "running": resp.running,
        "pending": resp.pending,
        "succeeded": resp.succeeded,
        "failed": resp.failed,
        "cancelled": resp.cancelled,
        "capabilities": {
            "supportsPodStatus": resp.capabilities.supports_pod_status,
            "supportsCpuMemMetrics": resp.capabilities.supports_cpu_mem_metrics,
        },
    }


def start_slow(client: httpx.Client, session_id: str) -> str:
    body = {"sessionId": session_id, "input": "hello", "metadata": SLOW, "wait": False}
    run_id: str = ok_data(client.post("/api/v1/runs", json=body), 202)["runId"]
    return run_id


def test_empty_fleet(workdir: Path) -> None:
    with serving(workdir) as served:
        client = served.rest
        zero = {"total": 0, "running": 0, "pending": 0, "succeeded": 0, "failed": 0, "cancelled": 0}
        assert summary(client) == {**zero, "capabilities": CAPABILITIES}
        assert grpc_summary(served.channel) == {**zero, "capabilities": CAPABILITIES}


def test_counts_by_status_from_the_seed_example_to_every_status(workdir: Path) -> None:
    with serving(workdir, env=PATIENT) as served:
        client = served.rest
        # Seed #21 exactly: 5 succeeded, 2 running, 1 pending (waiting for its session's turn).
        for _ in range(5):
            ok_data(client.post("/api/v1/runs", json={"sessionId": new_session(), "input": "hello"}))
        busy, other = new_session(), new_session()
        first = start_slow(client, busy)
        second = start_slow(client, other)
        wait_status(client, first, "running")
        wait_status(client, second, "running")
        queued = ok_data(client.post("/api/v1/runs", json={"sessionId": busy, "input": "next", "wait": False}), 202)[
            "runId"
        ]
        wait_status(client, queued, "pending")
        seed = {
            "total": 8,
            "running": 2,
            "pending": 1,
            "succeeded": 5,
            "failed": 0,
            "capabilities": CAPABILITIES,
        }
        # `cancelled` is additive to the seed, so that total is the sum of the parts.
        assert summary(client) == {**seed, "cancelled": 0}
        assert grpc_summary(served.channel) == {**seed, "cancelled": 0}

        # A provider failure and a timeout both count as failed; a cancel is counted apart.
        failing = {"sessionId": new_session(), "input": "x", "metadata": {"mock.failAttempts": "9"}}
        error_of(client.post("/api/v1/runs", json=failing), 502, "PROVIDER_ERROR")
        ok_data(client.put("/api/v1/policy", json={"schemaVersion": 1, "defaultRunTimeoutMs": 200}))
        slow = {"sessionId": new_session(), "input": "x", "metadata": {"mock.delayMs": "5000"}}
        error_of(client.post("/api/v1/runs", json=slow), 408, "RUN_TIMEOUT")
        ok_data(client.put("/api/v1/policy", json={"schemaVersion": 1}))
        ok_data(client.post(f"/api/v1/run-control/by-run/{second}/cancel", json={}))
        wait_status(client, second, "cancelled")
        expected = {
            "total": 10,
            "running": 1,
            "pending": 1,
            "succeeded": 5,
            "failed": 2,
            "cancelled": 1,
            "capabilities": CAPABILITIES,
        }
        assert summary(client) == expected
        assert grpc_summary(served.channel) == expected

        # Ending the rest moves them, never losing one: total stays the sum of the parts.
        ok_data(client.post(f"/api/v1/run-control/by-run/{queued}/cancel", json={}))
        wait_status(client, queued, "cancelled")
        ok_data(client.post(f"/api/v1/run-control/by-run/{first}/cancel", json={}))
        wait_status(client, first, "cancelled")
        assert summary(client) == {**expected, "running": 0, "pending": 0, "cancelled": 3}


def test_fleet_summary_on_the_shared_server_is_consistent(rest: httpx.Client) -> None:
    """Other modules' runs come and go on the shared server; whatever the moment, the parts add up."""
    data = summary(rest)
    assert set(data) == {"total", "running", "pending", "succeeded", "failed", "cancelled", "capabilities"}
    assert data["capabilities"] == CAPABILITIES
    parts = ("running", "pending", "succeeded", "failed", "cancelled")
    assert all(isinstance(data[k], int) and data[k] >= 0 for k in parts)
    assert data["total"] == sum(data[k] for k in parts)
