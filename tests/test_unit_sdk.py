"""The SDK's pure logic, no server: request building, the retry decision, the REST encoding of requests and
decoding of server-sent events, the two error readers agreeing, URL and credential handling, and the
client's retry and resume loops driven by a scripted transport."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2, struct_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

import athena_client
from athena.v1 import (
    a2a_dlq_pb2,
    directives_pb2,
    events_pb2,
    harness_profiles_pb2,
    runs_pb2,
    schedules_pb2,
    work_pb2,
    workflows_pb2,
)
from athena_client import AthenaError, AthenaTransportError, Client, Credentials, RetryPolicy
from athena_client.contract import ERROR_DOMAIN, IDEMPOTENCY_HEADER
from athena_client.errors import STATUS_DETAILS_KEY, from_envelope, from_grpc
from athena_client.grpc_transport import GrpcTransport
from athena_client.requests import build, set_field
from athena_client.rest_transport import HttpRequest, RestTransport, SseParser, encode, stream_message
from athena_client.rpcs import Rpc, rpc, rpcs
from athena_client.transport import Headers

GET_RUN = rpc("athena.v1.RunService.GetRun")
CREATE_RUN = rpc("athena.v1.RunService.CreateRun")
CREATE_DIRECTIVE = rpc("athena.v1.DirectiveService.CreateDirective")
GET_HEALTH = rpc("athena.v1.SystemService.GetHealth")
STREAM_EVENTS = rpc("athena.v1.EventService.StreamEvents")

# ---------------------------------------------------------------------------------------- requests.build


def test_build_from_keywords_drops_none_and_keeps_explicit_false() -> None:
    request = build(
        runs_pb2.CreateRunRequest,
        None,
        {"session_id": "s1", "input": "hi", "model": None, "metadata": {"k": "v"}, "wait": False},
    )
    assert request == runs_pb2.CreateRunRequest(session_id="s1", input="hi", metadata={"k": "v"}, wait=False)
    assert request.HasField("wait") and not request.wait  # `wait=False` is said, not left to the default
    assert build(runs_pb2.CreateRunRequest, None, {"session_id": None}) == runs_pb2.CreateRunRequest()


def test_build_takes_the_message_itself_or_keywords_never_both() -> None:
    message = runs_pb2.GetRunRequest(run_id="r1")
    assert build(runs_pb2.GetRunRequest, message, {"run_id": None}) is message
    with pytest.raises(TypeError, match=r"pass a GetRunRequest or its fields as keywords, not both \(run_id\)"):
        build(runs_pb2.GetRunRequest, message, {"run_id": "r2"})
    with pytest.raises(TypeError, match="expected a GetRunRequest, got CreateRunRequest"):
        build(runs_pb2.GetRunRequest, runs_pb2.CreateRunRequest(), {})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="GetRunRequest has no field 'runId'"):
        build(runs_pb2.GetRunRequest, None, {"runId": "r1"})


def test_enums_take_the_contract_spelling_the_value_name_or_the_number() -> None:
    def mode(value: Any) -> int:
        return build(work_pb2.EnqueueWorkRequest, None, {"mode": value}).mode

    assert mode("followup") == work_pb2.WORK_MODE_FOLLOWUP
    assert mode("WORK_MODE_COLLECT") == work_pb2.WORK_MODE_COLLECT
    assert mode(work_pb2.WORK_MODE_COLLECT) == work_pb2.WORK_MODE_COLLECT
    behaviour = build(runs_pb2.CreateRunRequest, None, {"running_run_behavior": "enqueue"}).running_run_behavior
    assert behaviour == runs_pb2.RUNNING_RUN_BEHAVIOR_ENQUEUE
    with pytest.raises(ValueError, match=r"EnqueueWorkRequest.mode: 'later' is not one of \['collect', 'followup'\]"):
        mode("later")
    with pytest.raises(TypeError, match="takes an enum value, not a bool"):
        mode(True)
    with pytest.raises(TypeError, match="not float"):
        mode(1.0)


def test_message_fields_take_a_message_or_its_json_form() -> None:
    request = build(
        harness_profiles_pb2.CreateHarnessProfileRequest,
        None,
        {
            "display_name": "p",
            "config": {"provider": "mock", "model": "default", "tools": ["shell"]},
            "policies": {"timeoutMs": 5000, "retryLimit": 2},  # JSON names, as the REST API spells them
            "allowed_egress": [{"host": "example.com"}, harness_profiles_pb2.EgressRule(host="b.example")],
        },
    )
    assert request.config == harness_profiles_pb2.HarnessConfig(provider="mock", model="default", tools=["shell"])
    assert (request.policies.timeout_ms, request.policies.retry_limit) == (5000, 2)
    assert [e.host for e in request.allowed_egress] == ["example.com", "b.example"]
    definition = {"steps": [{"id": "a"}, {"id": "b"}], "dependencies": [{"from": "a", "to": "b"}]}
    workflow = build(workflows_pb2.CreateWorkflowRequest, None, {"definition": definition})
    assert [(d.from_step, d.to_step) for d in workflow.definition.dependencies] == [("a", "b")]
    # Well-known types take their own JSON form.
    event = events_pb2.Event()
    set_field(event, event.DESCRIPTOR.fields_by_name["payload"], {"n": 1, "tags": ["x"]})
    expected = struct_pb2.Struct()
    expected.update({"n": 1, "tags": ["x"]})
    assert event.payload == expected
    with pytest.raises(TypeError, match="HarnessConfig or a dict, not str"):
        build(harness_profiles_pb2.CreateHarnessProfileRequest, None, {"config": "mock"})


def test_repeated_and_map_fields_take_lists_and_mappings() -> None:
    request = build(directives_pb2.CreateDirectiveRequest, None, {"context_refs": ("a", "b"), "metadata": {"k": "v"}})
    assert (list(request.context_refs), dict(request.metadata)) == (["a", "b"], {"k": "v"})
    with pytest.raises(TypeError, match=r"CreateDirectiveRequest\.context_refs takes a list"):
        build(directives_pb2.CreateDirectiveRequest, None, {"context_refs": "a"})  # not one ref per character
    with pytest.raises(TypeError, match=r"CreateDirectiveRequest\.metadata takes a mapping"):
        build(directives_pb2.CreateDirectiveRequest, None, {"metadata": [("k", "v")]})


# ------------------------------------------------------------------------------ every RPC, typed methods


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_every_rpc_of_the_contract_is_a_method_of_both_clients() -> None:
    with athena_client.connect("grpc://127.0.0.1:1") as client:
        a = athena_client.connect_async("grpc://127.0.0.1:1")
        for full_name, target in rpcs().items():
            service = snake(target.method.containing_service.name)
            method = snake(target.method.name)
            for c in (client, a):
                assert callable(getattr(getattr(c, service), method)), (full_name, type(c).__name__)
                paged = getattr(getattr(c, service), f"iter_{method}", None)
                assert (paged is not None) == (target.items_field is not None), full_name
        asyncio.run(a.close())


# ----------------------------------------------------------------------------------- the retry decision


def rate_limited(retry_after: float | None = 2.0) -> AthenaError:
    return AthenaError("RATE_LIMITED", "slow down", retryable=True, retry_after=retry_after)


def test_the_contract_decides_which_rpcs_are_safe_to_retry() -> None:
    assert (GET_RUN.retry_safe, GET_RUN.idempotency_key) == (True, False)  # a read
    assert (GET_HEALTH.retry_safe, GET_HEALTH.idempotency_key) == (True, False)  # exempt probe
    assert (CREATE_RUN.retry_safe, CREATE_RUN.idempotency_key) == (True, True)  # deduplicated by its key
    assert (CREATE_DIRECTIVE.retry_safe, CREATE_DIRECTIVE.idempotency_key) == (False, False)  # a plain write
    assert rpc("athena.v1.EventService.ListEvents").items_field == "events"
    assert GET_RUN.items_field is None and STREAM_EVENTS.streaming


def test_retry_after_is_honoured_and_one_too_long_reaches_the_caller() -> None:
    policy = RetryPolicy()
    assert policy.delay(0, rate_limited(2.0), retry_safe=True) == 2.0
    assert policy.delay(0, rate_limited(30.0), retry_safe=True) == 30.0
    assert policy.delay(0, rate_limited(30.5), retry_safe=True) is None  # beyond max_retry_after
    assert RetryPolicy(max_retry_after=60).delay(0, rate_limited(45.0), retry_safe=True) == 45.0


def test_rate_limited_is_retried_even_for_a_write() -> None:
    """The gate refuses before any servicer reads the request, so the server did nothing."""
    assert RetryPolicy().delay(0, rate_limited(1.0), retry_safe=False) == 1.0
    concurrency = AthenaError("POLICY_CONCURRENCY_LIMIT_EXCEEDED", "busy", retryable=True, retry_after=1.0)
    assert RetryPolicy().delay(0, concurrency, retry_safe=False) is None
    assert RetryPolicy().delay(0, concurrency, retry_safe=True) == 1.0


def test_a_transport_error_is_retried_only_where_safe() -> None:
    lost = AthenaTransportError("UNAVAILABLE", "connection reset")
    assert RetryPolicy().delay(0, lost, retry_safe=False) is None  # the server may have acted
    pause = RetryPolicy(initial_backoff=0.2).delay(0, lost, retry_safe=True)
    assert pause is not None and 0.1 <= pause <= 0.2
    assert RetryPolicy().delay(0, AthenaError("NOT_FOUND", "gone"), retry_safe=True) is None  # not retryable


def test_attempts_and_back_off_are_bounded() -> None:
    policy = RetryPolicy(max_attempts=3, initial_backoff=1.0, multiplier=10.0, max_backoff=4.0)
    lost = AthenaTransportError("UNAVAILABLE", "x")
    assert policy.delay(1, lost, retry_safe=True) is not None
    assert policy.delay(2, lost, retry_safe=True) is None  # the third attempt was the last
    for attempt in range(6):
        ceiling = min(4.0, 1.0 * 10.0**attempt)
        assert ceiling / 2 <= policy.backoff(attempt) <= ceiling
    assert athena_client.options.NO_RETRY.delay(0, rate_limited(), retry_safe=True) is None


# ----------------------------------------------------------------------- the client's loops, scripted


class Scripted:
    """A transport that answers from a script: each unary call takes the next outcome (a message to return
    or an error to raise); each stream the next list of messages, optionally ending with an error."""

    def __init__(self, *outcomes: Message | AthenaError, streams: list[list[Message | AthenaError]] | None = None):
        self.outcomes = list(outcomes)
        self.streams = streams or []
        self.headers: list[dict[str, str]] = []
        self.requests: list[Message] = []
        self.timeouts: list[float | None] = []

    def unary(self, rpc: Rpc, request: Message, headers: Headers, timeout: float | None) -> Message:
        self.headers.append(dict(headers))
        self.requests.append(request)
        self.timeouts.append(timeout)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, AthenaError):
            raise outcome
        return outcome

    def stream(self, rpc: Rpc, request: Message, headers: Headers, timeout: float | None) -> Iterator[Message]:
        self.requests.append(request)
        self.timeouts.append(timeout)
        for item in self.streams.pop(0):
            if isinstance(item, AthenaError):
                raise item
            yield item

    def close(self) -> None:
        pass


class Clock:
    """The client module's `time`: sleeping only moves the clock on, and is recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(athena_client.client, "time", fake)
    return fake


@pytest.fixture
def pauses(clock: Clock) -> list[float]:
    return clock.slept


def ran(run_id: str) -> runs_pb2.CreateRunResponse:
    return runs_pb2.CreateRunResponse(result=runs_pb2.RunResult(run_id=run_id))


def test_one_key_per_logical_call_across_its_retries(pauses: list[float]) -> None:
    lost = AthenaTransportError("UNAVAILABLE", "reset")
    script = Scripted(lost, lost, ran("r1"), ran("r2"))
    client = Client(script, credentials=Credentials(identity="ann"))
    assert client.run_service.create_run(session_id="s", input="x").result.run_id == "r1"
    first, second, third = (h[IDEMPOTENCY_HEADER] for h in script.headers[:3])
    assert first == second == third and len(first) == 32
    assert all(h["x-athena-identity"] == "ann" for h in script.headers)
    assert client.run_service.create_run(session_id="s", input="y").result.run_id == "r2"
    assert script.headers[3][IDEMPOTENCY_HEADER] != first  # a new logical call
    assert len(pauses) == 2
    script.outcomes.append(ran("r3"))
    client.run_service.create_run(session_id="s", input="z", idempotency_key="mine")
    assert script.headers[-1][IDEMPOTENCY_HEADER] == "mine"


def test_what_the_caller_says_about_retrying_wins(pauses: list[float]) -> None:
    lost = AthenaTransportError("UNAVAILABLE", "reset")
    made = directives_pb2.CreateDirectiveResponse()
    client = Client(Scripted(lost))
    with pytest.raises(AthenaTransportError):
        client.directive_service.create_directive(input="x")  # a write: not retried by default
    client = Client(Scripted(lost, made))
    assert client.directive_service.create_directive(input="x", rpc_retry=True) == made
    client = Client(Scripted(lost, runs_pb2.GetRunResponse()))
    with pytest.raises(AthenaTransportError):
        client.run_service.get_run(run_id="r", rpc_retry=False)  # a read, but the caller said no
    script = Scripted(rate_limited(3.0), rate_limited(1.0), runs_pb2.GetRunResponse())
    Client(script).run_service.get_run(run_id="r")
    assert pauses[-2:] == [3.0, 1.0]  # the server's figures, not the (shorter) back-off


def test_the_timeout_bounds_the_whole_call_retries_included(pauses: list[float]) -> None:
    lost = AthenaTransportError("UNAVAILABLE", "reset")
    script = Scripted(lost, lost, runs_pb2.GetRunResponse())
    Client(script, timeout=30).run_service.get_run(run_id="r")
    first, second = pauses
    # Each attempt gets what is left of the call's 30 s, not 30 s again.
    assert script.timeouts == [30, pytest.approx(30 - first), pytest.approx(30 - first - second)]
    # A wait the server asks for that would outlast the call is not slept through: the caller gets the error.
    script = Scripted(rate_limited(5.0), runs_pb2.GetRunResponse())
    with pytest.raises(AthenaError) as caught:
        Client(script).run_service.get_run(run_id="r", rpc_timeout=3)
    assert caught.value.code == "RATE_LIMITED" and script.timeouts == [3] and len(pauses) == 2
    # Nor is a retry started when no time is left for it.
    script = Scripted(rate_limited(1.0), runs_pb2.GetRunResponse())
    with pytest.raises(AthenaError):
        Client(script).run_service.get_run(run_id="r", rpc_timeout=1)
    assert script.timeouts == [1] and len(pauses) == 2


def event(n: int) -> events_pb2.StreamEventsResponse:
    return events_pb2.StreamEventsResponse(event=events_pb2.Event(id=f"evt_{n}", type="run.created"))


def test_a_broken_stream_resumes_after_the_last_message_delivered(pauses: list[float]) -> None:
    broken = AthenaTransportError("UNAVAILABLE", "server restarting")
    script = Scripted(streams=[[event(1), event(2), broken], [broken], [event(3)]])
    client = Client(script)
    got = [m.event.id for m in client.event_service.stream_events(session_id="s")]
    assert got == ["evt_1", "evt_2", "evt_3"]
    assert [(r.after, r.session_id) for r in script.requests] == [("", "s"), ("evt_2", "s"), ("evt_2", "s")]  # type: ignore[attr-defined]
    assert len(pauses) == 2


def test_a_stream_ends_on_its_timeout_and_on_errors_that_are_not_a_lost_connection(pauses: list[float]) -> None:
    timed_out = AthenaTransportError("DEADLINE_EXCEEDED", "deadline")
    client = Client(Scripted(streams=[[event(1), timed_out], [event(2)]]))
    stream = client.event_service.stream_events(rpc_timeout=5)
    assert next(stream).event.id == "evt_1"
    with pytest.raises(AthenaTransportError) as caught:
        next(stream)
    assert caught.value.code == "DEADLINE_EXCEEDED"
    refused = AthenaError("CONFIG_ERROR", "bad resume point")
    with pytest.raises(AthenaError, match="bad resume point"):
        list(Client(Scripted(streams=[[refused], [event(1)]])).event_service.stream_events())
    broken = AthenaTransportError("UNAVAILABLE", "gone")
    with pytest.raises(AthenaTransportError):
        list(Client(Scripted(streams=[[broken], [event(1)]])).event_service.stream_events(rpc_resume=False))
    assert pauses == []


def test_a_stream_timeout_bounds_every_reconnect_together(pauses: list[float]) -> None:
    broken = AthenaTransportError("UNAVAILABLE", "gone")
    script = Scripted(streams=[[event(1), broken], [event(2)]])
    assert [m.event.id for m in Client(script).event_service.stream_events(rpc_timeout=30)] == ["evt_1", "evt_2"]
    [pause] = pauses
    assert script.timeouts == [30, pytest.approx(30 - pause)]  # one deadline for the stream, not one each


# ------------------------------------------------------------------------------- REST request encoding


def test_encode_a_get_puts_path_fields_in_the_path_and_the_rest_in_the_query() -> None:
    logs = rpc("athena.v1.ScheduleService.ListScheduleLogs")
    request = schedules_pb2.ListScheduleLogsRequest(id="nightly job/1", after="log_7", limit=5)
    assert encode(logs.route, request) == HttpRequest(
        "GET", "/api/v1/schedules/nightly%20job%2F1/logs", [("after", "log_7"), ("limit", "5")], None
    )
    events = rpc("athena.v1.EventService.ListEvents")
    listing = events_pb2.ListEventsRequest(limit=2, session_id="s1", types=["run.created", "run.failed"])
    assert encode(events.route, listing).params == [
        ("limit", "2"),
        ("sessionId", "s1"),
        ("types", "run.created"),
        ("types", "run.failed"),
    ]
    dlq = rpc("athena.v1.A2aDlqService.ListA2aDlqItems")
    pending = a2a_dlq_pb2.ListA2aDlqItemsRequest(status=a2a_dlq_pb2.A2A_DLQ_STATUS_PENDING)
    assert encode(dlq.route, pending).params == [("status", "pending")]  # the contract's spelling
    assert encode(events.route, events_pb2.ListEventsRequest()) == HttpRequest("GET", "/api/v1/events", [], None)


def test_encode_a_post_with_body_star_sends_every_field_but_the_path_as_json() -> None:
    create = runs_pb2.CreateRunRequest(
        session_id="s1",
        input="hé",
        metadata={"k": "v"},
        wait=False,
        running_run_behavior=runs_pb2.RUNNING_RUN_BEHAVIOR_ENQUEUE,
    )
    http = encode(CREATE_RUN.route, create)
    assert (http.method, http.path, http.params) == ("POST", "/api/v1/runs", [])
    assert http.body is not None
    assert json.loads(http.body) == {
        "sessionId": "s1",
        "input": "hé",
        "metadata": {"k": "v"},
        "wait": False,
        "runningRunBehavior": "enqueue",
    }
    assert "hé" in http.body.decode()  # UTF-8, not \\u escapes
    cancel = rpc("athena.v1.RunService.CancelRunByRunId")
    http = encode(cancel.route, runs_pb2.CancelRunByRunIdRequest(run_id="r 1", reason="stop"))
    assert (http.method, http.path, http.body) == (
        "POST",
        "/api/v1/run-control/by-run/r%201/cancel",
        b'{"reason":"stop"}',
    )
    delete = rpc("athena.v1.ScheduleService.DeleteSchedule")
    assert encode(delete.route, schedules_pb2.DeleteScheduleRequest(id="j")) == HttpRequest(
        "DELETE", "/api/v1/schedules/j", [], None
    )


# ------------------------------------------------------------------------------------ server-sent events


def frames(lines: list[str]) -> list[tuple[str, str]]:
    parser = SseParser()
    return [frame for line in lines if (frame := parser.feed(line)) is not None]


def test_sse_frames_multi_line_data_comments_and_event_names() -> None:
    lines = [
        "retry: 2000",
        "",  # a frame without data is no message
        ": heartbeat",
        "",
        "id: evt_1",
        "event: run.created",
        'data: {"ok":true,',
        'data: "data":{}}',
        "",
        "data:no space",
        "",
        "event: error",
        ": a comment inside a frame",
        "data: {}",
        "",
    ]
    assert frames(lines) == [("run.created", '{"ok":true,\n"data":{}}'), ("", "no space"), ("error", "{}")]


def test_an_error_frame_is_the_error_it_carries() -> None:
    body = {
        "ok": False,
        "error": {"code": "UNAVAILABLE", "message": "upstream gone", "retryable": True, "traceId": "t"},
    }
    with pytest.raises(AthenaError) as caught:
        stream_message(STREAM_EVENTS, "error", json.dumps(body))
    assert (caught.value.code, caught.value.http_status, caught.value.retryable) == ("UNAVAILABLE", 503, True)
    data = {"ok": True, "data": {"id": "evt_9", "type": "run.created", "createdAt": "x", "payload": {"a": 1}}}
    message = stream_message(STREAM_EVENTS, "run.created", json.dumps(data))
    assert message == events_pb2.StreamEventsResponse(
        event=events_pb2.Event(id="evt_9", type="run.created", created_at="x", payload={"a": 1})
    )


# ------------------------------------------------------------------------------------------------ errors


def grpc_trailer(reason: str, **metadata: str) -> list[tuple[str, str | bytes]]:
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata))
    status = status_pb2.Status(code=8, message="m", details=[detail])
    return [("x-trace-id", "t1"), (STATUS_DETAILS_KEY, status.SerializeToString())]


def envelope(code: str, message: str, retryable: bool, trace_id: str) -> bytes:
    error = {"code": code, "message": message, "retryable": retryable, "traceId": trace_id}
    return json.dumps({"ok": False, "error": error}).encode()


def test_one_refusal_reads_the_same_from_grpc_and_from_rest() -> None:
    message = "Rate limit exceeded: 2 read requests per second; retry in 2 s."
    over_grpc = from_grpc(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        message,
        grpc_trailer("RATE_LIMITED", retryable="true", traceId="t1", retryAfterSeconds="2"),
    )
    over_rest = from_envelope(429, envelope("RATE_LIMITED", message, True, "t2"), {"retry-after": "2"})
    assert over_grpc == over_rest
    for error in (over_grpc, over_rest):
        assert type(error) is AthenaError
        assert (error.code, error.http_status, error.retryable, error.retry_after) == ("RATE_LIMITED", 429, True, 2.0)
    assert (over_grpc.trace_id, over_rest.trace_id) == ("t1", "t2")  # kept, but not part of equality
    assert hash(over_grpc) == hash(over_rest)

    not_found = from_grpc(grpc.StatusCode.NOT_FOUND, "Run 'r' not found.", grpc_trailer("NOT_FOUND", retryable="false"))
    assert not_found == from_envelope(404, envelope("NOT_FOUND", "Run 'r' not found.", False, "t"), {})
    assert not_found != over_rest
    assert not_found != from_envelope(404, envelope("NOT_FOUND", "Run 'x' not found.", False, "t"), {})


def test_statuses_without_athena_details() -> None:
    unavailable = from_grpc(grpc.StatusCode.UNAVAILABLE, "connection refused", None)
    assert type(unavailable) is AthenaTransportError and unavailable.code == "UNAVAILABLE"
    assert unavailable.http_status is None and unavailable.retryable
    late = from_grpc(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", [])
    assert type(late) is AthenaTransportError and late.code == "DEADLINE_EXCEEDED"
    assert unavailable != AthenaError("UNAVAILABLE", "connection refused", retryable=True, http_status=None)
    missing = from_grpc(grpc.StatusCode.UNIMPLEMENTED, "Method not found!", [])
    assert (type(missing), missing.code, missing.http_status) == (AthenaError, "NOT_IMPLEMENTED", 501)
    odd = from_grpc(grpc.StatusCode.DATA_LOSS, "bits", [])
    assert (odd.code, odd.message) == ("UNKNOWN_ERROR", "DATA_LOSS: bits")
    proxy = from_envelope(502, b"<html>Bad Gateway</html>", {})
    assert type(proxy) is AthenaTransportError and proxy.code == "UNAVAILABLE"
    broken = from_envelope(500, b"Internal Server Error", {"x-trace-id": "t"})
    assert (type(broken), broken.code, broken.http_status) == (AthenaError, "UNKNOWN_ERROR", 500)
    trace_from_header = from_envelope(404, envelope("NOT_FOUND", "x", False, ""), {"x-trace-id": "h1"})
    assert trace_from_header.trace_id == "h1"


# ---------------------------------------------------------------------------------- connect, credentials


@pytest.mark.parametrize(
    "bad",
    ["grpc://", "http://", "ftp://example.com", "127.0.0.1:50051", "localhost:8787", "grpc:127.0.0.1:50051"],
)
def test_connect_refuses_what_is_not_an_athena_url(bad: str) -> None:
    with pytest.raises(ValueError, match=r"expected grpc://host:port|needs"):
        athena_client.connect(bad)
    with pytest.raises(ValueError, match=r"expected grpc://host:port|needs"):
        athena_client.connect_async(bad)


def test_connect_picks_the_transport_from_the_scheme_without_connecting() -> None:
    with athena_client.connect("grpc://127.0.0.1:1") as g:
        assert isinstance(g.transport, GrpcTransport) and g.transport.target == "127.0.0.1:1"
    with athena_client.connect("https://athena.example/") as r:
        assert isinstance(r.transport, RestTransport) and r.transport.base_url == "https://athena.example"
    with athena_client.connect("unix:/run/athena.sock") as u:
        assert isinstance(u.transport, GrpcTransport) and u.transport.target == "unix:/run/athena.sock"
    a = athena_client.connect_async("http://127.0.0.1:1", timeout=5)
    assert isinstance(a, athena_client.AsyncClient) and a.timeout == 5
    asyncio.run(a.close())


def test_credentials_come_from_arguments_else_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATHENA_IDENTITY", "env-user")
    monkeypatch.setenv("ATHENA_API_TOKEN", "env-token")
    monkeypatch.setenv("ATHENA_AUTH_IDENTITY_HEADER", "X-Forwarded-User")
    from_env = Credentials.resolve()
    assert from_env.headers() == [("x-forwarded-user", "env-user"), ("authorization", "Bearer env-token")]
    assert Credentials.resolve("arg-user", "arg-token").headers() == [
        ("x-forwarded-user", "arg-user"),
        ("authorization", "Bearer arg-token"),
    ]
    assert "env-token" not in repr(from_env) and "***" in repr(from_env)
    monkeypatch.delenv("ATHENA_IDENTITY")
    monkeypatch.delenv("ATHENA_API_TOKEN")
    monkeypatch.delenv("ATHENA_AUTH_IDENTITY_HEADER")
    assert Credentials.resolve().headers() == []
    with athena_client.connect("grpc://127.0.0.1:1", identity="ann") as c:
        assert c.credentials.headers() == [("x-athena-identity", "ann")]


def test_map_and_struct_keys_come_out_sorted_whatever_the_process_hash_order() -> None:
    """protobuf's C maps iterate in a per-process order; `-o json` equals REST `data` only if both sort."""
    from athena.v1 import events_pb2, runs_pb2
    from athena_client.contract import message_to_json

    keys = [f"k{n:02d}" for n in range(24, 0, -1)]
    run = runs_pb2.Run(metadata={key: "v" for key in keys})
    assert list(message_to_json(run)["metadata"]) == sorted(keys)
    event = events_pb2.Event()
    event.payload.update({key: {"inner": {k: 1 for k in keys}} for key in keys})
    payload = message_to_json(event)["payload"]
    assert list(payload) == sorted(keys)
    assert all(list(value["inner"]) == sorted(keys) for value in payload.values())
