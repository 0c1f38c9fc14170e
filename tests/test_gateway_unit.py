"""The REST gateway: its descriptor-driven logic on its own, then its HTTP behaviour in front of a real
grpc.aio server (tiny servicers defined here) through a real uvicorn listener."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import grpc
import httpx
import pytest
import uvicorn
from google.protobuf import any_pb2, struct_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from athena.v1 import (
    a2a_dlq_pb2,
    events_pb2,
    events_pb2_grpc,
    memory_pb2,
    policy_pb2,
    runs_pb2,
    system_pb2,
    system_pb2_grpc,
)
from athena_gateway.app import create_app
from athena_gateway.envelope import field_json, success_body
from athena_gateway.errors import GatewayError, from_status
from athena_gateway.routes import RouteSpec, build_routes, route_table, services
from athena_gateway.transcode import build_request, query_to_json, read_body

# ---------------------------------------------------------------------------------------------------------
# Route table


def test_every_rpc_of_every_service_has_a_route() -> None:
    routed = {(service, method) for _, _, service, method in route_table()}
    rpcs = {(s.full_name, m.name) for s in services() for m in s.methods}
    assert len(services()) == 15
    assert rpcs == routed


def test_seed_paths_are_routed_to_their_rpcs() -> None:
    table = set(route_table())
    for row in [
        ("GET", "/api/v1/capabilities", "athena.v1.SystemService", "GetCapabilities"),
        ("POST", "/api/v1/runs", "athena.v1.RunService", "CreateRun"),
        ("GET", "/api/v1/runs/active", "athena.v1.RunService", "ListActiveRuns"),
        ("POST", "/api/v1/run-control/by-run/{run_id}/cancel", "athena.v1.RunService", "CancelRunByRunId"),
        ("POST", "/api/v1/runs/{session_id}/cancel", "athena.v1.RunService", "CancelRunBySessionId"),
        ("DELETE", "/api/v1/schedules/{id}", "athena.v1.ScheduleService", "DeleteSchedule"),
        ("GET", "/api/v1/events/stream", "athena.v1.EventService", "StreamEvents"),
        ("PUT", "/api/v1/policy", "athena.v1.PolicyService", "PutPolicy"),
    ]:
        assert row in table


def _template_regex(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")


def test_literal_paths_are_registered_before_templates_that_would_capture_them() -> None:
    table = route_table()
    position = {(verb, path): i for i, (verb, path, _, _) in enumerate(table)}
    assert position[("GET", "/api/v1/runs/active")] < position[("GET", "/api/v1/runs/{run_id}")]
    assert position[("GET", "/api/v1/runs/cancel-requests")] < position[("GET", "/api/v1/runs/{run_id}")]
    # In general: whenever one route's template matches another's path, the more literal one is first.
    for i, (verb, path, _, _) in enumerate(table):
        for j, (other_verb, other_path, _, _) in enumerate(table):
            if i != j and verb == other_verb and path.count("{") < other_path.count("{"):
                if _template_regex(other_path).match(path.replace("{", "x").replace("}", "")):
                    assert i < j, (path, other_path)


def test_app_registers_routes_in_table_order() -> None:
    app = create_app("127.0.0.1:1")
    registered = [(next(iter(r.methods)), r.path) for r in app.routes if getattr(r, "name", "").startswith("athena.")]
    assert registered == [(verb, path) for verb, path, _, _ in route_table()]


# ---------------------------------------------------------------------------------------------------------
# Transcoding


def test_query_conversion_is_lenient_and_splits_csv() -> None:
    fields = events_pb2.ListEventsRequest.DESCRIPTOR.fields
    items = [("limit", "abc"), ("types", "run.created,run.completed"), ("types", "x"), ("session_id", "s1")]
    assert query_to_json(fields, [*items, ("unknown", "1")]) == {
        "types": ["run.created", "run.completed", "x"],
        "sessionId": "s1",
    }
    assert query_to_json(fields, [("limit", "12abc"), ("limit", "99"), ("createdAfter", "t")]) == {
        "limit": 12,
        "createdAfter": "t",
    }
    search = memory_pb2.SearchMemoryRequest.DESCRIPTOR.fields
    assert query_to_json(search, [("maxResults", " 3"), ("minScore", "0.5x")]) == {"maxResults": 3, "minScore": 0.5}
    assert query_to_json(search, [("minScore", "nope")]) == {}


class _Chunks:
    """An HTTP body source that counts how many chunks the reader pulled."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.pulled += 1
            yield chunk


def _spec(verb: str, path: str) -> RouteSpec:
    return next(s for s in build_routes() if (s.http_method, s.path) == (verb, path))


async def test_build_request_merges_query_enum_path_and_last_event_id() -> None:
    spec = _spec("GET", "/api/v1/a2a/dlq")
    msg = await build_request(spec, {}, [("status", "requeued"), ("limit", "7")], {}, _Chunks())
    assert msg == a2a_dlq_pb2.ListA2aDlqItemsRequest(status=a2a_dlq_pb2.A2A_DLQ_STATUS_REQUEUED, limit=7)

    spec = _spec("POST", "/api/v1/run-control/by-run/{run_id}/cancel")
    body = _Chunks(b'{"runId": "from-body", "reason": "operator cancel"}')
    msg = await build_request(spec, {}, [("reason", "ignored")], {"run_id": "run_1"}, body)
    assert msg == runs_pb2.CancelRunByRunIdRequest(run_id="run_1", reason="operator cancel")

    spec = _spec("GET", "/api/v1/events/stream")
    query = [("after", "evt_1"), ("types", "a,b")]
    msg = await build_request(spec, {"last-event-id": "evt_9"}, query, {}, _Chunks())
    assert msg == events_pb2.StreamEventsRequest(after="evt_9", types=["a", "b"])


async def test_build_request_rejects_json_of_the_wrong_type() -> None:
    with pytest.raises(GatewayError) as caught:
        await build_request(_spec("POST", "/api/v1/runs"), {}, [], {}, _Chunks(b'{"sessionId": 5}'))
    assert caught.value.code == "CONFIG_ERROR"
    assert "sessionId" in caught.value.message or "session_id" in caught.value.message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(b"", {}), (b"  \n\t", {}), (b'{"a": [1]}', {"a": [1]}), ('{"é": "ü"}'.encode(), {"é": "ü"})],
)
async def test_read_body_accepts_objects_and_empty_bodies(raw: bytes, expected: dict[str, object]) -> None:
    assert await read_body({}, _Chunks(raw)) == expected


@pytest.mark.parametrize(
    ("headers", "raw", "status", "code", "message"),
    [
        ({}, b"{nope", 400, "CONFIG_ERROR", "request.body must contain valid JSON."),
        ({}, b"\xff\xfe\x00", 400, "CONFIG_ERROR", "request.body must contain valid JSON."),
        ({}, b"[1,2]", 400, "CONFIG_ERROR", "request.body must be a JSON object."),
        ({}, b'"text"', 400, "CONFIG_ERROR", "request.body must be a JSON object."),
        ({"content-length": "abc"}, b"{}", 400, "CONFIG_ERROR", "content-length must be a non-negative integer."),
        ({"content-length": "-1"}, b"{}", 400, "CONFIG_ERROR", "content-length must be a non-negative integer."),
    ],
)
async def test_read_body_rejects(headers: dict[str, str], raw: bytes, status: int, code: str, message: str) -> None:
    with pytest.raises(GatewayError) as caught:
        await read_body(headers, _Chunks(raw))
    assert (caught.value.http_status, caught.value.code, caught.value.message) == (status, code, message)


async def test_oversized_body_is_refused_before_or_while_reading() -> None:
    declared = _Chunks(b"x")
    with pytest.raises(GatewayError) as caught:
        await read_body({"content-length": "1000001"}, declared)
    assert (caught.value.http_status, caught.value.code) == (413, "PAYLOAD_TOO_LARGE")
    assert caught.value.message == "request.body exceeds 1000000 bytes."
    assert declared.pulled == 0

    streamed = _Chunks(b" " * 600_000, b" " * 400_001, b"never read")
    with pytest.raises(GatewayError) as caught:
        await read_body({}, streamed)
    assert caught.value.code == "PAYLOAD_TOO_LARGE"
    assert streamed.pulled == 2
    assert await read_body({}, _Chunks(b" " * 999_998, b"{}")) == {}


# ---------------------------------------------------------------------------------------------------------
# Response selection and error mapping


def test_response_body_selection() -> None:
    assert field_json(policy_pb2.GetPolicyResponse(), "policy") is None
    policy = policy_pb2.GetPolicyResponse(policy=policy_pb2.Policy(schema_version=1, max_concurrent_runs=2))
    assert field_json(policy, "policy") == {"schemaVersion": 1, "updatedAt": "", "maxConcurrentRuns": 2}
    assert field_json(memory_pb2.SearchMemoryResponse(), "results") == []
    hits = memory_pb2.SearchMemoryResponse(results=[memory_pb2.MemoryHit(id="MEMORY.md:1", score=1)])
    assert [hit["id"] for hit in field_json(hits, "results")] == ["MEMORY.md:1"]
    # Integral doubles print as the seeds (and JavaScript) print them.
    assert success_body(field_json(hits, "results")[0]["score"]) == '{"ok":true,"data":1}'
    assert success_body({"a": [2.0, 0.5], "b": 1e300}) == '{"ok":true,"data":{"a":[2,0.5],"b":1e+300}}'
    cancel = runs_pb2.CancelRunBySessionIdResponse(session_id="s1", status=runs_pb2.CANCEL_STATUS_NOT_RUNNING)
    assert field_json(cancel, "") == {"sessionId": "s1", "status": "not-running"}
    event = events_pb2.StreamEventsResponse(event=events_pb2.Event(id="evt_1", type="run.created"))
    assert field_json(event, "event.id") == "evt_1"
    assert field_json(events_pb2.StreamEventsResponse(), "event.id") is None


def _error_trailers(reason: str, message: str, **metadata: str) -> tuple[tuple[str, bytes], ...]:
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="athena.dev", metadata=metadata))
    status = rpc_status.to_status(status_pb2.Status(code=8, message=message, details=[detail]))
    return tuple(status.trailing_metadata)


def test_error_info_decides_the_code_and_fallbacks_cover_the_rest() -> None:
    trailers = _error_trailers("RATE_LIMITED", "slow down", retryable="true", retryAfterSeconds="7")
    err = from_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down", trailers, "CreateRun", "t1")
    assert (err.code, err.http_status, err.message, err.retryable, err.retry_after) == (
        "RATE_LIMITED",
        429,
        "slow down",
        True,
        "7",
    )
    fallbacks = {
        grpc.StatusCode.UNIMPLEMENTED: ("NOT_IMPLEMENTED", 501, False),
        grpc.StatusCode.UNAVAILABLE: ("UNAVAILABLE", 503, True),
        grpc.StatusCode.DEADLINE_EXCEEDED: ("UNAVAILABLE", 503, True),
        grpc.StatusCode.INVALID_ARGUMENT: ("CONFIG_ERROR", 400, False),
        grpc.StatusCode.NOT_FOUND: ("NOT_FOUND", 404, False),
        grpc.StatusCode.INTERNAL: ("INTERNAL_ERROR", 500, False),
        grpc.StatusCode.UNKNOWN: ("INTERNAL_ERROR", 500, False),
    }
    for code, expected in fallbacks.items():
        err = from_status(code, "Traceback (most recent call last)", (), "GetRun", "t1")
        assert (err.code, err.http_status, err.retryable) == expected
        if err.code == "INTERNAL_ERROR":
            assert "Traceback" not in err.message and "t1" in err.message


# ---------------------------------------------------------------------------------------------------------
# Through HTTP: a real gRPC server, the real gateway, a real HTTP listener


def _abort_status(reason: str, message: str, **metadata: str) -> grpc.Status:
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="athena.dev", metadata=metadata))
    code = {"AUTHZ_DENIED": grpc.StatusCode.PERMISSION_DENIED, "CONFIG_ERROR": grpc.StatusCode.INVALID_ARGUMENT}.get(
        reason, grpc.StatusCode.RESOURCE_EXHAUSTED
    )
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=[detail]))


@dataclass
class Seen:
    """What the test servicers observed."""

    metadata: dict[str, str] = field(default_factory=dict)
    stream_requests: list[events_pb2.StreamEventsRequest] = field(default_factory=list)
    stream_cancelled: asyncio.Event = field(default_factory=asyncio.Event)


class System(system_pb2_grpc.SystemServiceServicer):
    """GetCapabilities answers, GetAdminHealth and GetHealth fail with ErrorInfo, GetReadiness is left to
    the generated base (UNIMPLEMENTED)."""

    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    async def GetCapabilities(
        self, request: system_pb2.GetCapabilitiesRequest, context: grpc.aio.ServicerContext
    ) -> system_pb2.GetCapabilitiesResponse:
        self.seen.metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        return system_pb2.GetCapabilitiesResponse(execution_backend="local", state_store="sqlite")

    async def GetAdminHealth(
        self, request: system_pb2.GetAdminHealthRequest, context: grpc.aio.ServicerContext
    ) -> system_pb2.GetAdminHealthResponse:
        self.seen.metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        status = _abort_status("AUTHZ_DENIED", "role viewer may not do that", retryable="false", traceId="x")
        await context.abort(status.code, status.details, status.trailing_metadata)

    async def GetHealth(
        self, request: system_pb2.GetHealthRequest, context: grpc.aio.ServicerContext
    ) -> system_pb2.GetHealthResponse:
        status = _abort_status("RATE_LIMITED", "slow down", retryable="true", retryAfterSeconds="3")
        await context.abort(status.code, status.details, status.trailing_metadata)


def _event(n: int) -> events_pb2.StreamEventsResponse:
    payload = struct_pb2.Struct()
    payload.update({"provider": "mock", "tokens": 3})
    return events_pb2.StreamEventsResponse(
        event=events_pb2.Event(id=f"evt_{n}", trace_id="tr", type="run.created", created_at="T", payload=payload)
    )


class Events(events_pb2_grpc.EventServiceServicer):
    """StreamEvents: `after=bad` is rejected before the stream starts, `after=boom` fails after one event;
    otherwise two events after `after`, then silence until the client leaves."""

    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    async def StreamEvents(
        self, request: events_pb2.StreamEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[events_pb2.StreamEventsResponse]:
        self.seen.stream_requests.append(request)
        if request.after == "bad":
            status = _abort_status("CONFIG_ERROR", "Invalid cursor 'bad'.", retryable="false")
            await context.abort(status.code, status.details, status.trailing_metadata)
        await context.send_initial_metadata(())
        start = int(request.after.removeprefix("evt_") or 0) if request.after != "boom" else 0
        yield _event(start + 1)
        if request.after == "boom":
            status = _abort_status("INTERNAL_ERROR", "store failed", retryable="false")
            await context.abort(status.code, status.details, status.trailing_metadata)
        yield _event(start + 2)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.seen.stream_cancelled.set()
            raise


class _Uvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # leave pytest's signal handling alone
        yield


@dataclass
class Stack:
    url: str
    seen: Seen


@pytest.fixture(scope="session")
async def stack() -> AsyncIterator[Stack]:
    seen = Seen()
    server = grpc.aio.server()
    system_pb2_grpc.add_SystemServiceServicer_to_server(System(seen), server)
    events_pb2_grpc.add_EventServiceServicer_to_server(Events(seen), server)
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    app = create_app(f"127.0.0.1:{grpc_port}", heartbeat_seconds=0.2)
    web = _Uvicorn(uvicorn.Config(app, lifespan="on", log_level="warning"))
    task = asyncio.create_task(web.serve(sockets=[sock]))
    while not web.started:  # noqa: ASYNC110 (uvicorn offers no "started" event to wait on)
        await asyncio.sleep(0.01)
    yield Stack(f"http://127.0.0.1:{sock.getsockname()[1]}", seen)
    web.should_exit = True
    await task
    await server.stop(0)


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        yield client


def _assert_error(response: httpx.Response, status: int, code: str, message: str, retryable: bool = False) -> None:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    trace_id = response.headers["x-trace-id"]
    assert re.fullmatch(r"[0-9a-f-]{36}", trace_id)
    assert response.json() == {
        "ok": False,
        "error": {"code": code, "message": message, "retryable": retryable, "traceId": trace_id},
    }


async def test_success_envelope(http: httpx.AsyncClient, stack: Stack) -> None:
    headers = {"authorization": "Bearer t", "idempotency-key": "k1", "traceparent": "00-abc-def-01", "x-other": "no"}
    response = await http.get("/api/v1/capabilities", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.text == (
        '{"ok":true,"data":{"executionBackend":"local","stateStore":"sqlite","supportsPods":false,'
        '"supportsCpuMemMetrics":false,"supportsA2ABus":false,"providers":[],"supportsSandbox":false}}'
    )
    assert response.headers["traceparent"] == "00-abc-def-01"
    seen = stack.seen.metadata
    assert seen["x-trace-id"] == response.headers["x-trace-id"]
    assert (seen["authorization"], seen["idempotency-key"], seen["traceparent"]) == ("Bearer t", "k1", "00-abc-def-01")
    assert "x-other" not in seen


async def test_error_info_becomes_the_envelope(http: httpx.AsyncClient, stack: Stack) -> None:
    response = await http.get("/api/v1/admin/health")
    _assert_error(response, 403, "AUTHZ_DENIED", "role viewer may not do that")
    assert stack.seen.metadata["x-trace-id"] == response.headers["x-trace-id"]

    response = await http.get("/api/v1/health")
    _assert_error(response, 429, "RATE_LIMITED", "slow down", retryable=True)
    assert response.headers["retry-after"] == "3"


async def test_unimplemented_rpcs_answer_501(http: httpx.AsyncClient) -> None:
    # Overridden by nobody: the generated base servicer answers UNIMPLEMENTED.
    message = "GetReadiness is not implemented by the upstream server."
    _assert_error(await http.get("/api/v1/readiness"), 501, "NOT_IMPLEMENTED", message)
    # A service the upstream does not register at all.
    response = await http.post("/api/v1/runs", json={"sessionId": "s1", "input": "hi"})
    _assert_error(response, 501, "NOT_IMPLEMENTED", "CreateRun is not implemented by the upstream server.")


async def test_unknown_route_and_wrong_method_are_404(http: httpx.AsyncClient) -> None:
    _assert_error(await http.get("/api/v1/nope"), 404, "NOT_FOUND", "Not found: GET /api/v1/nope")
    _assert_error(await http.delete("/api/v1/capabilities"), 404, "NOT_FOUND", "Not found: DELETE /api/v1/capabilities")
    _assert_error(await http.get("/api/v1/capabilities/"), 404, "NOT_FOUND", "Not found: GET /api/v1/capabilities/")


async def test_bodies_rejected_before_the_server(http: httpx.AsyncClient) -> None:
    too_large = "request.body exceeds 1000000 bytes."
    body = b" " * 1_000_001
    _assert_error(await http.post("/api/v1/runs", content=body), 413, "PAYLOAD_TOO_LARGE", too_large)

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: caught while reading
        for _ in range(11):
            yield b" " * 100_000

    _assert_error(await http.post("/api/v1/runs", content=chunked()), 413, "PAYLOAD_TOO_LARGE", too_large)
    invalid = "request.body must contain valid JSON."
    _assert_error(await http.post("/api/v1/runs", content=b"{oops"), 400, "CONFIG_ERROR", invalid)
    not_object = "request.body must be a JSON object."
    _assert_error(await http.post("/api/v1/runs", content=b"[1,2]"), 400, "CONFIG_ERROR", not_object)
    response = await http.post("/api/v1/runs", json={"sessionId": 5})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "CONFIG_ERROR")


async def test_upstream_down_is_503() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    app = create_app(dead)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        response = await client.get("/api/v1/capabilities")
        _assert_error(response, 503, "UNAVAILABLE", "upstream gRPC server unavailable", retryable=True)
        response = await client.get("/api/v1/events/stream")
        _assert_error(response, 503, "UNAVAILABLE", "upstream gRPC server unavailable", retryable=True)
    await app.state.upstream.close()


async def _read_frames(response: httpx.Response, count: int) -> list[str]:
    frames: list[str] = []
    buffer = ""
    async with asyncio.timeout(5):
        async for text in response.aiter_text():
            buffer += text
            while "\n\n" in buffer and len(frames) < count:
                frame, buffer = buffer.split("\n\n", 1)
                frames.append(frame)
            if len(frames) >= count:
                return frames
    return frames


def _data(frame: str) -> dict[str, object]:
    lines = frame.split("\n")
    assert lines[-1].startswith("data: ")
    return json.loads(lines[-1].removeprefix("data: "))  # type: ignore[no-any-return]


async def test_sse_frames_heartbeat_resume_and_cancel(http: httpx.AsyncClient, stack: Stack) -> None:
    stack.seen.stream_cancelled.clear()
    headers = {"last-event-id": "evt_4"}
    async with http.stream("GET", "/api/v1/events/stream?after=evt_1&types=a,b", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        assert re.fullmatch(r"[0-9a-f-]{36}", response.headers["x-trace-id"])
        frames = await _read_frames(response, 4)
    assert frames[0] == "retry: 2000"
    assert frames[1].split("\n")[:2] == ["id: evt_5", "event: run.created"]
    assert _data(frames[1]) == {
        "ok": True,
        "data": {
            "id": "evt_5",
            "traceId": "tr",
            "type": "run.created",
            "createdAt": "T",
            "payload": {"provider": "mock", "tokens": 3},
        },
    }
    assert frames[2].startswith("id: evt_6\nevent: run.created\ndata: ")
    assert '"tokens":3,' in frames[2] or '"tokens":3}' in frames[2]  # not 3.0 (Struct numbers are doubles)
    assert frames[3] == ": heartbeat"
    assert stack.seen.stream_requests[-1] == events_pb2.StreamEventsRequest(after="evt_4", types=["a", "b"])
    async with asyncio.timeout(5):  # leaving the response cancelled the upstream call
        await stack.seen.stream_cancelled.wait()


async def test_sse_rejected_before_start_is_a_json_error(http: httpx.AsyncClient) -> None:
    _assert_error(await http.get("/api/v1/events/stream?after=bad"), 400, "CONFIG_ERROR", "Invalid cursor 'bad'.")
    message = "StreamTranscript is not implemented by the upstream server."
    _assert_error(await http.get("/api/v1/sessions/s1/transcript/stream"), 501, "NOT_IMPLEMENTED", message)


async def test_sse_failure_mid_stream_is_an_error_frame(http: httpx.AsyncClient) -> None:
    async with http.stream("GET", "/api/v1/events/stream?after=boom") as response:
        assert response.status_code == 200
        trace_id = response.headers["x-trace-id"]
        frames = await _read_frames(response, 3)
    assert frames[0] == "retry: 2000"
    assert frames[1].startswith("id: evt_1\n")
    assert frames[2].split("\n")[0] == "event: error"
    assert _data(frames[2]) == {
        "ok": False,
        "error": {"code": "INTERNAL_ERROR", "message": "store failed", "retryable": False, "traceId": trace_id},
    }


class _BrokenChannel:
    """A channel whose every call fails inside the gateway, not on the wire."""

    def unary_unary(self, *args: object, **kwargs: object) -> object:
        raise RuntimeError("gateway bug")


async def test_unexpected_gateway_fault_is_a_500_envelope(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app("unused:1", channel=_BrokenChannel())  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        response = await client.get("/api/v1/capabilities")
    trace_id = response.headers["x-trace-id"]
    _assert_error(response, 500, "INTERNAL_ERROR", f"Internal error (trace id {trace_id}).")
    assert "gateway bug" not in response.text
    assert any(trace_id in record.getMessage() for record in caplog.records)
