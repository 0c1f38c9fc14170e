"""The two REST paths give the same answers: `athena api serve` reaches the servicers in-process through
the server's interceptor chain, `athena gateway serve --upstream` over a gRPC channel. Both are pointed
at one server, so every request below is answered by the same store; the answers must match in status,
headers a client reads and body, once the values that differ by nature (ids, times, trace ids) are
masked."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.events import events_of
from tests.support.processes import AthenaProcess, free_port, running_api, start, wait_rest_ready
from tests.support.shapes import new_session, unique
from tests.support.sse import read_sse

_VOLATILE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # uuids: run, directive ids
    r"|[0-9a-f]{32}"  # trace ids (OTel)
    r"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"  # timestamps
    r"|shadow-harness-[0-9a-f]+"
    r"|s-[0-9a-f]{12}(-[ab])?"  # the test's session ids
)
_READ_HEADERS = ("content-type", "retry-after", "x-ratelimit-limit")


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items() if k not in ("durationMs", "cursor", "nextCursor", "id")}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    if isinstance(value, str):
        return _VOLATILE.sub("<v>", value)
    return value


def _answer(resp: httpx.Response) -> tuple[int, dict[str, str], Any]:
    headers = {h: resp.headers[h] for h in _READ_HEADERS if h in resp.headers}
    body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else resp.text
    return resp.status_code, headers, _masked(body)


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AthenaProcess, AthenaProcess]]:
    workdir = tmp_path_factory.mktemp("inprocess")
    with running_api(workdir) as api:
        port = free_port()
        gateway = start(["gateway", "serve", "--port", str(port), "--upstream", api.grpc_target], workdir, name="gw")
        gateway.rest_port = port
        try:
            wait_rest_ready(gateway)
            yield api, gateway
        finally:
            gateway.stop()


def _both(paths: tuple[AthenaProcess, AthenaProcess], method: str, path: str, **kwargs: Any) -> list[Any]:
    return [_answer(httpx.request(method, f"{p.rest_url}{path}", timeout=30, **kwargs)) for p in paths]


def _run_body(session: str, **extra: Any) -> dict[str, Any]:
    return {"sessionId": session, "input": "hello", "provider": "mock", "model": "default", **extra}


REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/api/v1/capabilities", {}),
    ("GET", "/api/v1/health", {}),
    ("GET", "/api/v1/policy", {}),
    ("GET", "/api/v1/runs/no-such-run", {}),  # NOT_FOUND from the servicer
    ("GET", "/api/v1/nowhere", {}),  # NOT_FOUND from the gateway's router
    ("POST", "/api/v1/runs", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
    ("POST", "/api/v1/runs", {"json": {"input": "no session"}}),  # CONFIG_ERROR from the server's validation
    ("POST", "/api/v1/runs", {"json": {"sessionId": "x" * 5000, "input": "long id"}}),  # request bounds
    ("POST", "/api/v1/runs", {"json": {"sessionId": "s", "input": "h"}, "headers": {"idempotency-key": "k" * 300}}),
    ("GET", "/api/v1/events", {"params": {"limit": "0"}}),
    ("GET", "/api/v1/events", {"params": {"cursor": "not-a-cursor"}}),
    ("GET", "/api/v1/schedules/no-such-schedule/logs", {}),
    ("GET", "/api/v1/work/queues/no-such-queue", {}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), REQUESTS, ids=[f"{m} {p}" for m, p, _ in REQUESTS])
def test_both_paths_answer_alike(
    paths: tuple[AthenaProcess, AthenaProcess], method: str, path: str, kwargs: dict[str, Any]
) -> None:
    in_process, over_grpc = _both(paths, method, path, **kwargs)
    assert in_process == over_grpc


def test_runs_answer_alike_finished_and_accepted(paths: tuple[AthenaProcess, AthenaProcess]) -> None:
    """A finished run (200) and a run answered while it goes on (202): the status trailer crosses both paths."""
    session = new_session()
    done = [
        _answer(httpx.post(f"{p.rest_url}/api/v1/runs", json=_run_body(f"{session}-{x}"), timeout=30))
        for p, x in zip(paths, "ab", strict=True)
    ]
    assert done[0][0] == 200
    assert done[0] == done[1]
    slow = {"metadata": {"mock.delayMs": "20000"}, "wait": False}
    accepted = []
    for p, x in zip(paths, "ab", strict=True):
        resp = httpx.post(f"{p.rest_url}/api/v1/runs", json=_run_body(f"{session}-{x}", **slow), timeout=30)
        accepted.append(_answer(resp))
        run_id = resp.json()["data"]["runId"]
        httpx.post(f"{p.rest_url}/api/v1/run-control/by-run/{run_id}/cancel", json={}, timeout=30)
    assert accepted[0][0] == 202
    assert accepted[0] == accepted[1]


def test_an_idempotent_replay_crosses_paths(paths: tuple[AthenaProcess, AthenaProcess]) -> None:
    """A key first used through one path replays through the other: one store, one answer."""
    key = unique("key")
    body = _run_body(new_session())
    first, second = (
        httpx.post(f"{p.rest_url}/api/v1/runs", json=body, headers={"idempotency-key": key}, timeout=30).json()
        for p in paths
    )
    assert first == second


def test_a_stream_opens_and_refuses_alike(paths: tuple[AthenaProcess, AthenaProcess]) -> None:
    session = new_session()
    for p in paths:
        httpx.post(f"{p.rest_url}/api/v1/runs", json=_run_body(session), timeout=30)
    first = events_of(httpx.Client(base_url=paths[0].rest_url), session)[0]["id"]
    streams = [
        read_sse(f"{p.rest_url}/api/v1/events/stream", {"sessionId": session, "after": first}, frames=5) for p in paths
    ]
    assert len(streams[0][0]) == 5
    assert _masked(streams[0]) == _masked(streams[1])
    refused = _both(paths, "GET", "/api/v1/events/stream", params={"after": "not-an-id"})
    assert refused[0] == refused[1]
    assert refused[0][0] == 400
