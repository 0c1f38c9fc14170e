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
from pathlib import Path
from typing import Any

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
from athena_client.contract import services
from athena_client.rest_data import field_json
from athena_gateway.app import create_app
from athena_gateway.body import is_json_media_type, parse_json_object, read_body
from athena_gateway.envelope import success_body
from athena_gateway.errors import GatewayError, from_status
from athena_gateway.guard import (
    LOOPBACK_HOSTS,
    BrowserGuardMiddleware,
    HostAllowList,
    default_allowed_hosts,
    split_setting,
)
from athena_gateway.params import params_by_name, query_json, scalar_parser
from athena_gateway.routes import RouteSpec, build_routes, route_table
from athena_gateway.transcode import build_request
from athena_server.config import Settings
from athena_server.serve import gateway_app as serve_gateway_app
from tests.support.waiting import DEADLINE_S, wait_until


def query_to_json(fields: Any, items: Any) -> dict[str, Any]:
    """Query parameters as the gateway reads them for a request with these fields."""
    return query_json(params_by_name(fields), items)


# ---------------------------------------------------------------------------------------------------------
# Route table


def test_every_rpc_of_every_service_has_a_route() -> None:
    routed = {(service, method) for _, _, service, method in route_table()}
    rpcs = {(s.full_name, m.name) for s in services() for m in s.methods}
    # Discovery from the generated modules finds every service the proto files declare.
    proto_dir = Path(__file__).resolve().parent.parent / "proto" / "athena" / "v1"
    declared = sum(len(re.findall(r"^service \w+", p.read_text(), re.MULTILINE)) for p in proto_dir.glob("*.proto"))
    assert len(services()) == declared > 0
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


def test_query_conversion_splits_csv_and_ignores_unknown_parameters() -> None:
    fields = events_pb2.ListEventsRequest.DESCRIPTOR.fields
    items = [("limit", " 7 "), ("types", "run.created,,run.completed"), ("types", "x"), ("session_id", "s1")]
    assert query_to_json(fields, [*items, ("unknown", "1")]) == {
        "limit": 7,
        "types": ["run.created", "run.completed", "x"],
        "sessionId": "s1",
    }
    assert query_to_json(fields, [("types", "")]) == {"types": []}
    search = memory_pb2.SearchMemoryRequest.DESCRIPTOR.fields
    assert query_to_json(search, [("maxResults", "+3"), ("minScore", " .5 ")]) == {"maxResults": 3, "minScore": 0.5}
    assert query_to_json(search, [("minScore", "-1e3")]) == {"minScore": -1000.0}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("-1", -1),
        ("+500", 500),
        ("\t12 ", 12),
        ("0007", 7),
        ("2147483648", 2**31 - 1),  # beyond int32: clamped to it, then by the server to 500
        ("99999999999999999999", 2**31 - 1),
        ("9" * 5000, 2**31 - 1),  # never converted: Python refuses int() of over 4,300 digits
        ("-99999999999999999999", -(2**31)),
    ],
)
def test_integer_parameters_are_integers_clamped_to_their_type(text: str, value: int) -> None:
    fields = events_pb2.ListEventsRequest.DESCRIPTOR.fields
    assert query_to_json(fields, [("limit", text)]) == {"limit": value}


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([("limit", "abc")], "limit must be an integer."),
        ([("limit", "null")], "limit must be an integer."),
        ([("limit", "1.5")], "limit must be an integer."),
        ([("limit", "12abc")], "limit must be an integer."),
        ([("limit", "")], "limit must be an integer."),
        ([("limit", "1 2")], "limit must be an integer."),
        ([("limit", "\u0663")], "limit must be an integer."),  # ARABIC-INDIC DIGIT THREE: int() would take it
        ([("limit", "1"), ("limit", "2")], "limit must be given once."),
        ([("sessionId", "a"), ("session_id", "b")], "sessionId must be given once."),
    ],
)
def test_query_parameters_are_strict(items: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(GatewayError) as caught:
        query_to_json(events_pb2.ListEventsRequest.DESCRIPTOR.fields, items)
    assert (caught.value.http_status, caught.value.code, caught.value.message) == (400, "CONFIG_ERROR", message)


@pytest.mark.parametrize("text", ["nope", "inf", "-Infinity", "nan", "1e999", "0x10", "1_0", "0.5x"])
def test_float_parameters_must_be_finite_numbers(text: str) -> None:
    with pytest.raises(GatewayError) as caught:
        query_to_json(memory_pb2.SearchMemoryRequest.DESCRIPTOR.fields, [("minScore", text)])
    assert (caught.value.code, caught.value.message) == ("CONFIG_ERROR", "minScore must be a finite number.")


def test_boolean_parameters() -> None:
    wait = runs_pb2.CreateRunRequest.DESCRIPTOR.fields_by_name["wait"]
    parse = scalar_parser(wait)
    for text, value in [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("false", False),
        (" False ", False),
        ("0", False),
    ]:
        assert parse("wait", text) is value
    for text in ["yes", "", "2", "t"]:
        with pytest.raises(GatewayError) as caught:
            parse("wait", text)
        assert (caught.value.code, caught.value.message) == ("CONFIG_ERROR", "wait must be true or false.")


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


JSON = {"content-type": "application/json"}


async def test_build_request_merges_query_enum_path_and_last_event_id() -> None:
    spec = _spec("GET", "/api/v1/a2a/dlq")
    msg = await build_request(spec, {}, [("status", "requeued"), ("limit", "7")], {}, _Chunks())
    assert msg == a2a_dlq_pb2.ListA2aDlqItemsRequest(status=a2a_dlq_pb2.A2A_DLQ_STATUS_REQUEUED, limit=7)

    spec = _spec("POST", "/api/v1/run-control/by-run/{run_id}/cancel")
    body = _Chunks(b'{"runId": "from-body", "reason": "operator cancel"}')
    msg = await build_request(spec, JSON, [("reason", "ignored")], {"run_id": "run_1"}, body)
    assert msg == runs_pb2.CancelRunByRunIdRequest(run_id="run_1", reason="operator cancel")

    spec = _spec("GET", "/api/v1/events/stream")
    query = [("after", "evt_1"), ("types", "a,b")]
    msg = await build_request(spec, {"last-event-id": "evt_9"}, query, {}, _Chunks())
    assert msg == events_pb2.StreamEventsRequest(after="evt_9", types=["a", "b"])


async def test_build_request_rejects_json_of_the_wrong_type() -> None:
    with pytest.raises(GatewayError) as caught:
        await build_request(_spec("POST", "/api/v1/runs"), JSON, [], {}, _Chunks(b'{"sessionId": 5}'))
    assert caught.value.code == "CONFIG_ERROR"
    assert "sessionId" in caught.value.message or "session_id" in caught.value.message


async def test_null_is_an_absent_field() -> None:
    """Protobuf JSON semantics, as the original: `null` leaves a field unset, whatever its type."""
    body = _Chunks(b'{"sessionId": "s1", "input": null, "provider": null, "metadata": null, "wait": null}')
    msg = await build_request(_spec("POST", "/api/v1/runs"), JSON, [], {}, body)
    assert msg == runs_pb2.CreateRunRequest(session_id="s1")
    assert not msg.HasField("wait")


async def test_routes_without_a_body_never_read_one() -> None:
    body = _Chunks(b"not json at all")
    spec = _spec("DELETE", "/api/v1/schedules/{id}")
    assert await build_request(spec, {"content-type": "text/plain"}, [], {"id": "j1"}, body) is not None
    assert body.pulled == 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(b"", {}), (b"  \n\t", {}), (b'{"a": [1]}', {"a": [1]}), ('{"é": "ü"}'.encode(), {"é": "ü"})],
)
async def test_read_body_accepts_objects_and_empty_bodies(raw: bytes, expected: dict[str, object]) -> None:
    assert await read_body(JSON, _Chunks(raw)) == expected


@pytest.mark.parametrize(
    ("content_type", "accepted"),
    [
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/merge-patch+json", True),
        ("application/vnd.athena+json;v=1", True),
        ("text/plain", False),
        ("text/plain;charset=UTF-8", False),
        ("application/x-www-form-urlencoded", False),
        ("multipart/form-data; boundary=x", False),
        ("text/json", False),
        ("application/jsonp", False),
        ("", False),
        (None, False),
    ],
)
def test_json_media_types(content_type: str | None, accepted: bool) -> None:
    assert is_json_media_type(content_type) is accepted


async def test_body_not_declared_json_is_415_unless_empty() -> None:
    for headers, message in [
        ({"content-type": "text/plain"}, "request.body must be application/json (Content-Type: 'text/plain')."),
        ({}, "request.body must be application/json (Content-Type: none)."),
    ]:
        body = _Chunks(b"  ", b'{"sessionId": "s1"}', b"never read")
        with pytest.raises(GatewayError) as caught:
            await read_body(headers, body)
        assert (caught.value.http_status, caught.value.code) == (415, "UNSUPPORTED_MEDIA_TYPE")
        assert caught.value.message == message
        assert body.pulled == 2  # refused at its first non-whitespace chunk
        # An empty (or blank) body carries nothing: accepted with any content type or none (curl -X POST).
        assert await read_body(headers, _Chunks()) == {}
        assert await read_body(headers, _Chunks(b" \r\n")) == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{nope", "request.body must contain valid JSON."),
        (b"\xff\xfe\x00", "request.body must contain valid JSON."),
        (b'{"a": 1} {"b": 2}', "request.body must contain valid JSON."),
        (b"[1,2]", "request.body must be a JSON object."),
        (b'"text"', "request.body must be a JSON object."),
        (b"[" * 100_000, "request.body must contain valid JSON."),  # too deep to parse
        (b'{"a": 1, "a": 2}', "request.body has a duplicate key 'a'."),
        (b'{"a": {"b": [{"c": 1, "d": 2, "c": 1}]}}', "request.body has a duplicate key 'c'."),
        (b'{"x": NaN}', "request.body must not contain NaN (not a JSON number)."),
        (b'{"x": [Infinity]}', "request.body must not contain Infinity (not a JSON number)."),
        (b'{"x": -Infinity}', "request.body must not contain -Infinity (not a JSON number)."),
        (b'{"x": 1e999}', "request.body has a number out of range: '1e999'."),
        (b'{"x": -1.5E+400}', "request.body has a number out of range: '-1.5E+400'."),
    ],
)
async def test_json_bodies_are_parsed_strictly(raw: bytes, message: str) -> None:
    with pytest.raises(GatewayError) as caught:
        await read_body(JSON, _Chunks(raw))
    assert (caught.value.http_status, caught.value.code, caught.value.message) == (400, "CONFIG_ERROR", message)


def test_strict_json_keeps_what_json_allows() -> None:
    raw = b'{"a": 1e308, "b": -0.0, "c": 12345678901234567890, "d": {"a": 1}, "e": [{"a": 1}, {"a": 2}]}'
    assert parse_json_object(raw) == {
        "a": 1e308,
        "b": -0.0,
        "c": 12345678901234567890,
        "d": {"a": 1},
        "e": [{"a": 1}, {"a": 2}],
    }


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"content-length": "abc"}, "content-length must be a non-negative integer."),
        ({"content-length": "-1"}, "content-length must be a non-negative integer."),
        ({"content-length": "\u0661"}, "content-length must be a non-negative integer."),
    ],
)
async def test_read_body_rejects_a_bad_content_length(headers: dict[str, str], message: str) -> None:
    with pytest.raises(GatewayError) as caught:
        await read_body({**JSON, **headers}, _Chunks(b"{}"))
    assert (caught.value.http_status, caught.value.code, caught.value.message) == (400, "CONFIG_ERROR", message)


async def test_oversized_body_is_refused_before_or_while_reading() -> None:
    declared = _Chunks(b"x")
    with pytest.raises(GatewayError) as caught:
        await read_body({**JSON, "content-length": "1000001"}, declared)
    assert (caught.value.http_status, caught.value.code) == (413, "PAYLOAD_TOO_LARGE")
    assert caught.value.message == "request.body exceeds 1000000 bytes."
    assert declared.pulled == 0

    streamed = _Chunks(b" " * 600_000, b" " * 400_001, b"never read")
    with pytest.raises(GatewayError) as caught:
        await read_body(JSON, streamed)
    assert caught.value.code == "PAYLOAD_TOO_LARGE"
    assert streamed.pulled == 2
    assert await read_body(JSON, _Chunks(b" " * 999_998, b"{}")) == {}


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
    rate = {"rateLimitLimit": "5", "rateLimitRemaining": "0", "rateLimitReset": "soon"}
    trailers = _error_trailers("RATE_LIMITED", "slow down", retryable="true", retryAfterSeconds="2", **rate)
    err = from_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down", trailers, "CreateRun", "t1")
    # Only whole numbers become headers: a client could not act on anything else.
    assert err.headers == {"retry-after": "2", "x-ratelimit-limit": "5", "x-ratelimit-remaining": "0"}
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
    metadata_keys: list[str] = field(default_factory=list)
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
        self.seen.metadata_keys = [k for k, _ in context.invocation_metadata()]
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
        status = _abort_status(
            "RATE_LIMITED",
            "slow down",
            retryable="true",
            retryAfterSeconds="3",
            rateLimitLimit="10",
            rateLimitRemaining="0",
            rateLimitReset="1700000003",
        )
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
    grpc_target: str


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
    # uvicorn offers no "started" event to await: poll its flag from a thread while the loop serves.
    await asyncio.to_thread(wait_until, lambda: web.started, "the test gateway to start")
    yield Stack(f"http://127.0.0.1:{sock.getsockname()[1]}", seen, f"127.0.0.1:{grpc_port}")
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
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id)  # an OTel trace id
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
    assert seen["x-athena-client-address"] == "127.0.0.1"


async def test_error_info_becomes_the_envelope(http: httpx.AsyncClient, stack: Stack) -> None:
    response = await http.get("/api/v1/admin/health")
    _assert_error(response, 403, "AUTHZ_DENIED", "role viewer may not do that")
    assert stack.seen.metadata["x-trace-id"] == response.headers["x-trace-id"]

    response = await http.get("/api/v1/health")
    _assert_error(response, 429, "RATE_LIMITED", "slow down", retryable=True)
    assert response.headers["retry-after"] == "3"
    assert response.headers["x-ratelimit-limit"] == "10"
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert response.headers["x-ratelimit-reset"] == "1700000003"


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
    _assert_error(await http.post("/api/v1/runs", content=b"{oops", headers=JSON), 400, "CONFIG_ERROR", invalid)
    not_object = "request.body must be a JSON object."
    _assert_error(await http.post("/api/v1/runs", content=b"[1,2]", headers=JSON), 400, "CONFIG_ERROR", not_object)
    plain = "request.body must be application/json (Content-Type: 'text/plain')."
    response = await http.post("/api/v1/runs", content=b'{"sessionId": "s1"}', headers={"content-type": "text/plain"})
    _assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE", plain)
    response = await http.post("/api/v1/runs", json={"sessionId": 5})
    assert (response.status_code, response.json()["error"]["code"]) == (400, "CONFIG_ERROR")


async def test_upstream_down_is_503() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    app = create_app(dead)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        response = await client.get("/api/v1/capabilities")
        _assert_error(response, 503, "UNAVAILABLE", "upstream gRPC server unavailable", retryable=True)
        response = await client.get("/api/v1/events/stream")
        _assert_error(response, 503, "UNAVAILABLE", "upstream gRPC server unavailable", retryable=True)
    await app.state.upstream.close()


async def _read_frames(response: httpx.Response, count: int) -> list[str]:
    frames: list[str] = []
    buffer = ""
    async with asyncio.timeout(DEADLINE_S):
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
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-trace-id"])
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
    async with asyncio.timeout(DEADLINE_S):  # leaving the response cancelled the upstream call
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
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
        response = await client.get("/api/v1/capabilities")
    trace_id = response.headers["x-trace-id"]
    _assert_error(response, 500, "INTERNAL_ERROR", f"Internal error (trace id {trace_id}).")
    assert "gateway bug" not in response.text
    assert any(trace_id in record.getMessage() for record in caplog.records)


# ---------------------------------------------------------------------------------------------------------
# Hosts, origins and CORS (refusals never reach the upstream; accepted requests reach the test servers)


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8787", "LOCALHOST.", "127.0.0.1", "127.0.0.1:1", "[::1]", "[::1]:8787"]
)
def test_loopback_names_are_allowed_by_default(host: str) -> None:
    assert HostAllowList(LOOPBACK_HOSTS).allows(host)


@pytest.mark.parametrize(
    "host",
    [
        None,
        "",
        "evil.example",
        "evil.example:8787",
        "localhost.evil.example",
        "127.0.0.1.nip.io",
        "127.0.0.2",
        "::1",  # an IPv6 literal must be bracketed in Host
        "[::1",
        "local host",
        "localhost:http",
        "user@localhost",
    ],
)
def test_other_hosts_are_refused_by_default(host: str | None) -> None:
    assert not HostAllowList(LOOPBACK_HOSTS).allows(host)


def test_configured_hosts_and_patterns() -> None:
    hosts = HostAllowList(["API.example.com", "*.corp.example", "[::2]"])
    for host in ["api.example.com", "api.example.com:443", "a.corp.example", "a.b.corp.example:1", "[::2]:8"]:
        assert hosts.allows(host), host
    for host in ["corp.example", "xcorp.example", "localhost", "127.0.0.1", "example.com"]:
        assert not hosts.allows(host), host
    anything = HostAllowList(["*"])
    assert anything.allows("whatever.example") and anything.allows(None)
    for bad in ["a*.example", "**.example", "example.*", " "]:
        with pytest.raises(ValueError):
            HostAllowList([bad])


def test_default_hosts_add_a_specific_bind_address() -> None:
    assert default_allowed_hosts("127.0.0.1") == ["localhost", "127.0.0.1", "::1"]
    assert default_allowed_hosts("10.1.2.3") == ["localhost", "127.0.0.1", "::1", "10.1.2.3"]
    assert default_allowed_hosts("0.0.0.0") == ["localhost", "127.0.0.1", "::1"]
    assert default_allowed_hosts("::") == ["localhost", "127.0.0.1", "::1"]
    assert split_setting(" a.example , ,*.b.example,") == ["a.example", "*.b.example"]


def test_a_request_without_host_is_refused() -> None:
    guard = BrowserGuardMiddleware(create_app("127.0.0.1:1"), HostAllowList(LOOPBACK_HOSTS))
    scope = {"type": "http", "method": "GET", "scheme": "http", "headers": [(b"accept", b"*/*")]}
    err = guard.check(scope)
    assert err is not None and (err.http_status, err.code, err.message) == (
        400,
        "HOST_NOT_ALLOWED",
        "Host is required.",
    )


@contextlib.asynccontextmanager
async def _client(
    upstream: str, base_url: str = "http://localhost", **options: Any
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(upstream, **options)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client:
        yield client
    await app.state.upstream.close()


@pytest.mark.parametrize("path", ["/api/v1/capabilities", "/openapi.json", "/docs", "/api/v1/nope"])
async def test_foreign_host_is_refused_on_every_path(stack: Stack, path: str) -> None:
    async with _client(stack.grpc_target) as client:
        response = await client.get(path, headers={"host": "evil.example:8787"})
        message = "Host 'evil.example:8787' is not allowed (ATHENA_ALLOWED_HOSTS)."
        _assert_error(response, 400, "HOST_NOT_ALLOWED", message)
        assert (await client.get(path, headers={"host": "[::1]:8787"})).status_code != 400


async def test_configured_hosts_replace_the_default(stack: Stack) -> None:
    async with _client(stack.grpc_target, allowed_hosts=["api.example.com"]) as client:
        ok = await client.get("/api/v1/capabilities", headers={"host": "api.example.com"})
        assert ok.status_code == 200
        refused = await client.get("/api/v1/capabilities", headers={"host": "localhost"})
        _assert_error(refused, 400, "HOST_NOT_ALLOWED", "Host 'localhost' is not allowed (ATHENA_ALLOWED_HOSTS).")


def _foreign(origin: str) -> str:
    return f"Origin {origin!r} may not change state here: only this server's own origin and ATHENA_CORS_ORIGINS may."


@pytest.mark.parametrize(
    ("method", "origin", "allowed"),
    [
        ("POST", None, True),  # not a browser
        ("POST", "http://localhost", True),  # this server's own origin (Host: localhost)
        ("POST", "HTTP://LOCALHOST:80", True),  # the same origin, spelled differently
        ("POST", "https://app.example", True),  # a CORS origin
        ("GET", "http://evil.example", True),  # reads are CORS's business
        ("POST", "http://evil.example", False),
        ("POST", "null", False),
        ("POST", "https://localhost", False),  # another scheme is another origin
        ("POST", "http://localhost:8787", False),  # so is another port
        ("POST", "http://localhost.evil.example", False),
        ("PUT", "http://evil.example", False),
        ("DELETE", "http://evil.example", False),
        ("PATCH", "http://evil.example", False),
    ],
)
async def test_state_changes_need_an_allowed_origin(
    stack: Stack, method: str, origin: str | None, allowed: bool
) -> None:
    headers = {"origin": origin} if origin else {}
    async with _client(stack.grpc_target, cors_origins=["https://app.example"]) as client:
        # Bodiless, as a `no-cors` fetch may be: the 415 rule alone would not stop it.
        response = await client.request(method, "/api/v1/schedules/tick", headers=headers)
    if allowed:
        assert response.json()["error"]["code"] in ("NOT_IMPLEMENTED", "NOT_FOUND")  # reached the app
    else:
        _assert_error(response, 403, "ORIGIN_NOT_ALLOWED", _foreign(str(origin)))


async def test_cors_is_off_unless_origins_are_configured(stack: Stack) -> None:
    preflight = {"origin": "https://app.example", "access-control-request-method": "POST"}
    async with _client(stack.grpc_target) as client:
        response = await client.options("/api/v1/runs", headers=preflight)
        _assert_error(response, 404, "NOT_FOUND", "Not found: OPTIONS /api/v1/runs")
        response = await client.get("/api/v1/capabilities", headers={"origin": "https://app.example"})
        assert response.status_code == 200
        assert not [name for name in response.headers if name.startswith("access-control-")]


async def test_cors_for_configured_origins(stack: Stack) -> None:
    options: dict[str, Any] = {"cors_origins": ["https://app.example/"], "identity_header": "x-user"}
    requested = "content-type,authorization,x-athena-api-token,x-user,idempotency-key,last-event-id,traceparent"
    preflight = {
        "origin": "https://app.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": requested,
    }
    async with _client(stack.grpc_target, **options) as client:
        response = await client.options("/api/v1/runs", headers=preflight)
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://app.example"
        assert set(response.headers["access-control-allow-methods"].split(", ")) == {"GET", "POST", "PUT", "DELETE"}
        allowed = set(response.headers["access-control-allow-headers"].split(", "))
        assert set(requested.split(",")) | {"tracestate"} <= allowed
        assert "access-control-allow-credentials" not in response.headers

        refused = await client.options("/api/v1/runs", headers={**preflight, "origin": "https://evil.example"})
        assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers

        response = await client.get("/api/v1/capabilities", headers={"origin": "https://app.example"})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://app.example"
        exposed = set(response.headers["access-control-expose-headers"].split(", "))
        assert exposed == {
            "x-trace-id",
            "retry-after",
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
        }


# ---------------------------------------------------------------------------------------------------------
# Forwarded headers: bounds, printable ASCII, one copy; the identity header by its configured name


@pytest.mark.parametrize(
    ("name", "limit"),
    [
        ("authorization", 4096),
        ("idempotency-key", 255),
        ("x-athena-api-token", 256),
        ("traceparent", 512),
        ("tracestate", 512),
        ("x-athena-identity", 256),
    ],
)
async def test_forwarded_headers_have_bounds(http: httpx.AsyncClient, stack: Stack, name: str, limit: int) -> None:
    response = await http.get("/api/v1/capabilities", headers={name: "a" * limit})
    assert response.status_code == 200
    assert stack.seen.metadata[name] == "a" * limit
    response = await http.get("/api/v1/capabilities", headers={name: "a" * (limit + 1)})
    _assert_error(response, 400, "CONFIG_ERROR", f"header '{name}' must be at most {limit} characters.")
    assert name not in response.headers  # an over-long trace header is not echoed either


@pytest.mark.parametrize("value", [b"Bearer \xe9t\xe9", b"Bearer a\tb", b"Bearer \x7f"])
async def test_forwarded_headers_must_be_printable_ascii(http: httpx.AsyncClient, value: bytes) -> None:
    response = await http.get("/api/v1/capabilities", headers={"authorization": value})
    _assert_error(response, 400, "CONFIG_ERROR", "header 'authorization' must be printable ASCII.")


async def test_forwarded_headers_are_sent_once(http: httpx.AsyncClient, stack: Stack) -> None:
    twice = [("authorization", "Bearer a"), ("Authorization", "Bearer b")]
    response = await http.get("/api/v1/capabilities", headers=twice)
    _assert_error(response, 400, "CONFIG_ERROR", "header 'authorization' must be sent once.")
    # tracestate is a list: its lines join (W3C trace context).
    response = await http.get("/api/v1/capabilities", headers=[("tracestate", "a=1"), ("tracestate", "b=2")])
    assert response.status_code == 200
    assert stack.seen.metadata["tracestate"] == "a=1,b=2"


async def test_client_address_is_the_gateways_to_say(http: httpx.AsyncClient, stack: Stack) -> None:
    response = await http.get("/api/v1/capabilities", headers={"x-athena-client-address": "10.9.9.9"})
    assert response.status_code == 200
    assert stack.seen.metadata_keys.count("x-athena-client-address") == 1
    assert stack.seen.metadata["x-athena-client-address"] == "127.0.0.1"


async def test_identity_header_is_forwarded_under_its_configured_name(stack: Stack) -> None:
    async with _client(stack.grpc_target, identity_header="x-user") as client:
        response = await client.get("/api/v1/capabilities", headers={"x-user": "alice", "x-athena-identity": "bob"})
        assert response.status_code == 200
        assert stack.seen.metadata["x-user"] == "alice"
        assert "x-athena-identity" not in stack.seen.metadata
        response = await client.get("/api/v1/capabilities", headers={"x-user": "a" * 257})
        _assert_error(response, 400, "CONFIG_ERROR", "header 'x-user' must be at most 256 characters.")


async def test_serve_passes_the_settings_to_the_gateway(stack: Stack) -> None:
    settings = Settings(host="10.1.2.3", cors_origins="https://app.example", auth_identity_header=" X-User ")
    app = serve_gateway_app(stack.grpc_target, settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://10.1.2.3") as client:
        assert (await client.get("/api/v1/capabilities", headers={"x-user": "alice"})).status_code == 200
        assert stack.seen.metadata["x-user"] == "alice"
        assert (await client.get("/api/v1/health", headers={"host": "localhost:8787"})).status_code == 429
        response = await client.get("/api/v1/health", headers={"host": "10.1.2.4"})
        assert response.json()["error"]["code"] == "HOST_NOT_ALLOWED"
        response = await client.post("/api/v1/schedules/tick", headers={"origin": "https://app.example"})
        assert response.json()["error"]["code"] == "NOT_IMPLEMENTED"  # let through to the upstream
    await app.state.upstream.close()

    replaced = serve_gateway_app(stack.grpc_target, Settings(host="0.0.0.0", allowed_hosts="api.example.com"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=replaced), base_url="http://localhost") as client:
        assert (await client.get("/api/v1/health")).json()["error"]["code"] == "HOST_NOT_ALLOWED"
        assert (await client.get("/api/v1/health", headers={"host": "api.example.com"})).status_code == 429
    await replaced.state.upstream.close()

    with pytest.raises(SystemExit, match="ATHENA_ALLOWED_HOSTS"):
        serve_gateway_app(stack.grpc_target, Settings(allowed_hosts="api.*.example"))


def test_the_frame_cache_keeps_the_most_recently_used_frames() -> None:
    from athena_gateway.sse import FrameCache

    cache = FrameCache(size=2)
    cache.put(("/a", b"1"), "one")
    cache.put(("/a", b"2"), "two")
    assert cache.get(("/a", b"1")) == "one"  # now the most recent
    cache.put(("/a", b"3"), "three")  # evicts the least recent: b"2"
    assert cache.get(("/a", b"2")) is None
    assert cache.get(("/a", b"1")) == "one"
    assert cache.get(("/b", b"1")) is None  # the route is part of the key
    assert len(cache) == 2


async def _local_stream(items: list[Any], error: BaseException | None) -> tuple[list[Any], Any]:
    """Read an in-process stream of `items` that then ends with `error` (or cleanly)."""
    import grpc

    from athena_gateway.inprocess import LocalContext, LocalStreamCall

    async def responses() -> Any:
        for item in items:
            yield item
        if error is not None:
            raise error

    call = LocalStreamCall(responses(), LocalContext(()))
    await call.initial_metadata()
    got: list[Any] = []
    try:
        while (item := await call.read()) is not grpc.aio.EOF:
            got.append(item)
    except grpc.aio.AioRpcError as exc:
        return got, exc.code()
    return got, await call.code()


async def test_an_in_process_stream_ends_as_a_grpc_stream_would() -> None:
    import grpc

    from athena_gateway.inprocess import _Aborted

    one, two = events_pb2.Event(id="evt_1"), events_pb2.Event(id="evt_2")
    assert await _local_stream([one, two], None) == ([one, two], grpc.StatusCode.OK)
    aborted = _Aborted(grpc.StatusCode.NOT_FOUND, "gone", ())
    assert await _local_stream([one], aborted) == ([one], grpc.StatusCode.NOT_FOUND)
    # Anything else escaping the interceptor is the path's own failure: an error, never a clean end.
    assert await _local_stream([one], RuntimeError("bug")) == ([one], grpc.StatusCode.INTERNAL)
