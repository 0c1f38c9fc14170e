"""Rate limits against real servers: per identity and per class with auth on, per client address with auth
off, one bucket for REST and gRPC, Retry-After that is true (waiting it is enough), and refused writes that
leave nothing behind."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from tests.rpc_calls import call_grpc, method_named, request_of
from tests.servers import AthenaProcess, start_api
from tests.shapes import error_of, ok_data

WINDOW_SECONDS = 4
LIMITED_ENV = {
    "ATHENA_AUTH_ENABLED": "true",
    "ATHENA_AUTH_IDENTITY_ROLE_MAP": "alice:Operator,bob:Operator",
    "ATHENA_RATE_LIMIT_READ": f"3/{WINDOW_SECONDS} seconds",
    "ATHENA_RATE_LIMIT_RUN_START": f"1/{WINDOW_SECONDS} seconds",
}
ALICE = {"x-athena-identity": "alice"}
BOB = {"x-athena-identity": "bob"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AthenaProcess]:
    p = start_api(tmp_path_factory.mktemp("limits"), env=LIMITED_ENV)
    yield p
    p.stop()


def spend(client: httpx.Client, path: str, headers: dict[str, str], times: int) -> None:
    for _ in range(times):
        ok_data(client.get(path, headers=headers))


def test_a_limit_refuses_with_true_retry_figures_and_waiting_them_is_enough(server: AthenaProcess) -> None:
    with httpx.Client(base_url=server.rest_url, timeout=30) as client, grpc.insecure_channel(server.grpc_target) as ch:
        spend(client, "/api/v1/capabilities", ALICE, 2)
        # gRPC and REST draw from one bucket per identity.
        caps = method_named("SystemService.GetCapabilities")
        assert call_grpc(ch, caps, request_of(caps), ALICE).code is None
        refused = client.get("/api/v1/sessions", headers=ALICE)  # another read: the same class
        err = error_of(refused, 429, "RATE_LIMITED")
        assert err["retryable"] is True
        assert err["message"].startswith(f"Rate limit exceeded: 3 read requests per {WINDOW_SECONDS} seconds")
        retry_after = int(refused.headers["retry-after"])
        assert 1 <= retry_after <= WINDOW_SECONDS
        assert refused.headers["x-ratelimit-limit"] == "3"
        assert refused.headers["x-ratelimit-remaining"] == "0"
        assert 0 <= int(refused.headers["x-ratelimit-reset"]) - time.time() <= WINDOW_SECONDS + 1
        over_grpc = call_grpc(ch, caps, request_of(caps), ALICE)
        assert over_grpc.code == "RATE_LIMITED"
        assert over_grpc.retry_delay_seconds is not None and 1 <= over_grpc.retry_delay_seconds <= WINDOW_SECONDS
        # Another identity has its own bucket; probes are never limited.
        ok_data(client.get("/api/v1/capabilities", headers=BOB))
        for _ in range(5):
            ok_data(client.get("/api/v1/health"))
        time.sleep(retry_after)
        ok_data(client.get("/api/v1/capabilities", headers=ALICE))


def test_a_refused_run_start_leaves_nothing_behind(server: AthenaProcess) -> None:
    with httpx.Client(base_url=server.rest_url, timeout=30) as client:
        ok_data(client.post("/api/v1/runs", json={"sessionId": "rl-1", "input": "one"}, headers=BOB))
        refused = client.post("/api/v1/runs", json={"sessionId": "rl-2", "input": "two"}, headers=BOB)
        error_of(refused, 429, "RATE_LIMITED")
        # Writes of another class are not limited by the run-start bucket.
        ok_data(client.post("/api/v1/directives", json={"input": "fine"}, headers=BOB))
        time.sleep(int(refused.headers["retry-after"]))
        sessions = ok_data(client.get("/api/v1/sessions", headers=ALICE))["items"]
        ids = {s["id"] for s in sessions}
        assert "rl-1" in ids and "rl-2" not in ids
        events = ok_data(client.get("/api/v1/events", params={"sessionId": "rl-2"}, headers=ALICE))["events"]
        assert events == []


def test_without_auth_the_client_address_is_the_key(tmp_path: Path) -> None:
    p = start_api(tmp_path, env={"ATHENA_RATE_LIMIT_WRITE": "2/30 seconds"})
    try:
        with httpx.Client(base_url=p.rest_url, timeout=30) as client:
            for _ in range(2):
                ok_data(client.post("/api/v1/directives", json={"input": "x"}))
            # The identity header means nothing without auth: it does not open a new bucket.
            refused = client.post("/api/v1/directives", json={"input": "x"}, headers={"x-athena-identity": "z"})
            error_of(refused, 429, "RATE_LIMITED")
            assert refused.headers["x-ratelimit-limit"] == "2"
            listed = ok_data(client.get("/api/v1/directives"))["items"]
            assert len(listed) == 2
    finally:
        p.stop()
