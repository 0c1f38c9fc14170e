"""Rate limits against real servers: per identity and per class with auth on, per client address with auth
off, one bucket for REST and gRPC, Retry-After that is true (waiting it is enough), and refused writes that
leave nothing behind.

The refusals are made deterministic by windows far longer than any test (an hour): however slow the machine,
the counted requests are all in the window. Only the test of Retry-After itself needs time to pass; it uses a
short window, repeats requests until one is refused, then waits exactly the Retry-After it was given."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.events import events_of
from tests.support.pages import every_item
from tests.support.processes import Served, serving
from tests.support.rpc_calls import call_grpc, method_named, request_of
from tests.support.shapes import error_of, new_session, ok_data, unique
from tests.support.waiting import wait_until

WINDOW_SECONDS = 3600
LIMITED_ENV = {
    "ATHENA_AUTH_ENABLED": "true",
    "ATHENA_AUTH_IDENTITY_ROLE_MAP": "*:Operator",
    "ATHENA_RATE_LIMIT_READ": f"3/{WINDOW_SECONDS} seconds",
    "ATHENA_RATE_LIMIT_RUN_START": f"1/{WINDOW_SECONDS} seconds",
}
SHORT_WINDOW_SECONDS = 2


def identity(name: str) -> dict[str, str]:
    """The headers of an identity no other test uses, so its buckets are full whatever ran before."""
    return {"x-athena-identity": unique(name)}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(tmp_path_factory.mktemp("limits"), env=LIMITED_ENV) as served:
        yield served


def spend(client: httpx.Client, path: str, headers: dict[str, str], times: int) -> None:
    for _ in range(times):
        ok_data(client.get(path, headers=headers))


def test_a_limit_refuses_with_true_retry_figures(limited: Served) -> None:
    client, ch = limited.rest, limited.channel
    alice, bob = identity("alice"), identity("bob")
    spend(client, "/api/v1/capabilities", alice, 2)
    # gRPC and REST draw from one bucket per identity.
    caps = method_named("SystemService.GetCapabilities")
    assert call_grpc(ch, caps, request_of(caps), alice).code is None
    refused = client.get("/api/v1/sessions", headers=alice)  # another read: the same class
    err = error_of(refused, 429, "RATE_LIMITED")
    assert err["retryable"] is True
    assert err["message"].startswith(f"Rate limit exceeded: 3 read requests per {WINDOW_SECONDS} seconds")
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= WINDOW_SECONDS
    assert refused.headers["x-ratelimit-limit"] == "3"
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert 0 <= int(refused.headers["x-ratelimit-reset"]) - time.time() <= WINDOW_SECONDS + 1
    over_grpc = call_grpc(ch, caps, request_of(caps), alice)
    assert over_grpc.code == "RATE_LIMITED"
    assert over_grpc.retry_delay_seconds is not None and 1 <= over_grpc.retry_delay_seconds <= WINDOW_SECONDS
    # Another identity has its own bucket; probes are never limited.
    ok_data(client.get("/api/v1/capabilities", headers=bob))
    for _ in range(5):
        ok_data(client.get("/api/v1/health"))


def test_waiting_the_retry_after_is_enough(tmp_path: Path) -> None:
    env = {**LIMITED_ENV, "ATHENA_RATE_LIMIT_READ": f"2/{SHORT_WINDOW_SECONDS} seconds"}
    with serving(tmp_path, env=env) as served:
        alice = identity("alice")

        def refused() -> httpx.Response | None:
            resp = served.rest.get("/api/v1/capabilities", headers=alice)
            if resp.status_code == 429:
                return resp
            ok_data(resp)  # anything but a refusal is a success
            return None

        resp = wait_until(refused, "a read over the limit to be refused")
        retry_after = int(resp.headers["retry-after"])
        assert 1 <= retry_after <= SHORT_WINDOW_SECONDS
        time.sleep(retry_after)  # the time the server asked for: the test is that this is enough
        ok_data(served.rest.get("/api/v1/capabilities", headers=alice))


def test_a_refused_run_start_leaves_nothing_behind(limited: Served) -> None:
    client = limited.rest
    bob = identity("bob")
    first, second = new_session(), new_session()
    ok_data(client.post("/api/v1/runs", json={"sessionId": first, "input": "one"}, headers=bob))
    refused = client.post("/api/v1/runs", json={"sessionId": second, "input": "two"}, headers=bob)
    error_of(refused, 429, "RATE_LIMITED")
    # Writes of another class are not limited by the run-start bucket.
    ok_data(client.post("/api/v1/directives", json={"input": "fine"}, headers=bob))
    ids = {s["id"] for s in every_item(client, "/api/v1/sessions", headers=identity("reader"))}
    assert first in ids and second not in ids
    with httpx.Client(base_url=limited.process.rest_url, headers=identity("reader"), timeout=60) as reader:
        assert [e["type"] for e in events_of(reader, first)][:1] == ["run.created"]
        assert events_of(reader, second) == []


def test_without_auth_the_client_address_is_the_key(tmp_path: Path) -> None:
    with serving(tmp_path, env={"ATHENA_RATE_LIMIT_WRITE": f"2/{WINDOW_SECONDS} seconds"}) as served:
        client = served.rest
        for _ in range(2):
            ok_data(client.post("/api/v1/directives", json={"input": "x"}))
        # The identity header means nothing without auth: it does not open a new bucket.
        refused = client.post("/api/v1/directives", json={"input": "x"}, headers={"x-athena-identity": "z"})
        error_of(refused, 429, "RATE_LIMITED")
        assert refused.headers["x-ratelimit-limit"] == "2"
        listed = ok_data(client.get("/api/v1/directives"))["items"]
        assert len(listed) == 2  # the server's own, pristine store: only the two accepted writes
