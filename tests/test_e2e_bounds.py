"""Every input is bounded in the server, identically over gRPC and REST, and none answers 500.

The first part is generated from the descriptors: for every RPC and every bounded string, repeated or map
field path of its request, a value just over its bound is refused naming the field (the same code and
message on both transports; a value the request size cannot hold is PAYLOAD_TOO_LARGE on both), and a
value at its bound is not refused for its size. The oversize pass runs against a PostgreSQL store too.
The rest reproduces the issue: refused 900,000-character inputs, pages too large for the transport,
identifiers PostgreSQL cannot store, cursors beyond the store, resume points never issued, oversized
gRPC messages and headers.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import grpc
import httpx
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from athena.v1 import events_pb2, runs_pb2, sessions_pb2
from athena_client.contract import ERROR_CODES, field_bounds, message_to_json
from athena_client.rpcs import rpcs
from athena_gateway.routes import RouteSpec, build_routes
from tests.support.events import events_of
from tests.support.grpc_errors import reason
from tests.support.pages import every_item
from tests.support.postgres import servers_on_one_database
from tests.support.processes import Served, serving
from tests.support.shapes import error_of, new_session, ok_data, unique

REQUEST_BYTES = 1_000_000
TOO_LARGE = "request.body exceeds 1000000 bytes."
# Room left for the rest of a request when a value "at its bound" would not fit the request size.
REQUEST_ROOM = REQUEST_BYTES - 2_000
# How a refusal for size is worded: an at-bound value is never refused with these (nor PAYLOAD_TOO_LARGE).
SIZE_WORDS = ("must be at most", "must have at most", "keys must be at most")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server of the module's own: the oversize pass fills its store with at-bound records."""
    with serving(tmp_path_factory.mktemp("bounds")) as s:
        yield s


@pytest.fixture
def client(served: Served) -> httpx.Client:
    return served.rest


@pytest.fixture
def grpc_channel(served: Served) -> grpc.Channel:
    return served.channel


# ---- the generated cases --------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One bounded field path of one RPC's request and the value that tests it."""

    spec: RouteSpec
    chain: tuple[FieldDescriptor, ...]  # from the request down to the bounded field
    kind: str  # chars | items | item | entries | key | value
    bound: int

    @property
    def rpc(self) -> str:
        name = self.spec.method.name
        return name[:1].lower() + name[1:]

    @property
    def json_path(self) -> str:
        parts = []
        for i, field in enumerate(self.chain):
            inner = i < len(self.chain) - 1 and field.is_repeated and field.message_type is not None
            parts.append(field.json_name + ("[0]" if inner else ""))
        return ".".join(parts)

    @property
    def id(self) -> str:
        return f"{self.spec.method.name}.{self.json_path}:{self.kind}"

    def expected(self) -> str:
        path = f"{self.rpc}.{self.json_path}"
        return {
            "chars": f"{path} must be at most {self.bound} characters.",
            "items": f"{path} must have at most {self.bound} items.",
            "item": f"{path}[0] must be at most {self.bound} characters.",
            "entries": f"{path} must have at most {self.bound} entries.",
            "key": f"{path} keys must be at most {self.bound} characters.",
            "value": f"{path}.k must be at most {self.bound} characters.",
        }[self.kind]

    def value(self, over: bool) -> Any:
        n = self.bound + 1 if over else self.bound
        if not over and self.kind in ("chars", "item", "value"):
            n = min(n, REQUEST_ROOM)  # the largest value the request size allows
        return {
            "chars": lambda: "x" * n,
            "items": lambda: n,
            "item": lambda: ["x" * n],
            "entries": lambda: {f"k{i}": "v" for i in range(n)},
            "key": lambda: {"k" * n: "v"},
            "value": lambda: {"k": "x" * n},
        }[self.kind]()

    def request(self, over: bool) -> Message:
        message = message_factory.GetMessageClass(self.spec.method.input_type)()
        for name in self.spec.path_params:  # a route's path needs every parameter
            if name != self.chain[0].name:
                setattr(message, name, "x")
        target = message
        for field in self.chain[:-1]:
            target = getattr(target, field.name).add() if field.is_repeated else getattr(target, field.name)
        leaf = self.chain[-1]
        value = self.value(over)
        if self.kind == "items":
            items = getattr(target, leaf.name)
            for _ in range(value):
                if leaf.message_type is not None:
                    items.add()
                else:
                    items.append("x")
        elif self.kind in ("entries", "key", "value"):
            getattr(target, leaf.name).update(value)
        elif self.kind == "item":
            getattr(target, leaf.name).extend(value)
        else:
            setattr(target, leaf.name, value)
        return message


def _paths(
    descriptor: Descriptor, chain: tuple[FieldDescriptor, ...]
) -> Iterator[tuple[tuple[FieldDescriptor, ...], str, int]]:
    for field in descriptor.fields:
        here = (*chain, field)
        bounds = field_bounds(field)
        message = field.message_type
        if message is not None and message.GetOptions().map_entry:
            assert bounds.max_items is not None
            yield here, "entries", bounds.max_items
            if bounds.max_key_chars is not None:
                yield here, "key", bounds.max_key_chars
            if bounds.max_chars is not None:
                yield here, "value", bounds.max_chars
        elif message is not None:
            if field.is_repeated:
                assert bounds.max_items is not None
                yield here, "items", bounds.max_items
            yield from _paths(message, here)
        elif bounds.max_chars is not None:
            if field.is_repeated:
                assert bounds.max_items is not None
                yield here, "items", bounds.max_items
                yield here, "item", bounds.max_chars
            else:
                yield here, "chars", bounds.max_chars
        elif field.is_repeated and bounds.max_items is not None:
            yield here, "items", bounds.max_items


def _cases() -> list[Case]:
    seen: set[str] = set()
    cases: list[Case] = []
    for spec in build_routes():
        if spec.method.full_name in seen:
            continue
        seen.add(spec.method.full_name)
        cases.extend(Case(spec, chain, kind, bound) for chain, kind, bound in _paths(spec.method.input_type, ()))
    return cases


CASES = _cases()


# ---- calling an RPC both ways ---------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a call answered: an error code and message, or None for a success (or an opened stream)."""

    code: str | None
    message: str = ""


def call_grpc(
    channel: grpc.Channel, spec: RouteSpec, request: Message, metadata: tuple[tuple[str, str], ...] = ()
) -> Outcome:
    response_type = message_factory.GetMessageClass(spec.method.output_type)
    path = f"/{spec.service.full_name}/{spec.method.name}"
    if spec.method.server_streaming:
        stream = channel.unary_stream(
            path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=response_type.FromString
        )
        call = stream(request, timeout=30, metadata=metadata)
        try:
            call.initial_metadata()  # the server sends headers once the request is validated
            if not call.done():
                return Outcome(None)
            next(call)
        except grpc.RpcError as err:
            return Outcome(reason(err), err.details() or "")
        except StopIteration:
            return Outcome(None)
        finally:
            call.cancel()
        return Outcome(None)
    unary = channel.unary_unary(
        path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=response_type.FromString
    )
    try:
        unary(request, timeout=60, metadata=metadata)
    except grpc.RpcError as err:
        return Outcome(reason(err), err.details() or "")
    return Outcome(None)


def _query(spec: RouteSpec, request: Message) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    for field, value in request.ListFields():
        if field.name in spec.path_params:
            continue
        if field.is_repeated:
            params.extend((field.json_name, str(v)) for v in value)
        elif field.message_type is None:
            params.append((field.json_name, str(value)))
    return params


def call_rest(client: httpx.Client, spec: RouteSpec, request: Message) -> Outcome:
    path = spec.path
    for name in spec.path_params:
        path = path.replace("{" + name + "}", quote(str(getattr(request, name)), safe=""))
    kwargs: dict[str, Any] = {}
    if spec.body == "*":
        kwargs["content"] = json.dumps(message_to_json(request)).encode()
        kwargs["headers"] = {"content-type": "application/json"}
    else:
        kwargs["params"] = _query(spec, request)
    if spec.sse is not None:
        with client.stream(spec.http_method, path, **kwargs) as resp:
            if resp.status_code == 200:
                return Outcome(None)
            resp.read()
            return _rest_outcome(resp)
    return _rest_outcome(client.request(spec.http_method, path, **kwargs))


def _rest_outcome(resp: httpx.Response) -> Outcome:
    assert resp.status_code < 500 or resp.status_code in (501, 503), resp.text
    body = resp.json()
    if body["ok"]:
        return Outcome(None)
    err = body["error"]
    assert ERROR_CODES[err["code"]].http_status == resp.status_code, resp.text
    return Outcome(err["code"], err["message"])


def _oversize(case: Case, client: httpx.Client, channel: grpc.Channel) -> None:
    request = case.request(over=True)
    if request.ByteSize() > REQUEST_BYTES:
        expected = Outcome("PAYLOAD_TOO_LARGE", TOO_LARGE)
    else:
        expected = Outcome("CONFIG_ERROR", case.expected())
    assert call_grpc(channel, case.spec, request) == expected
    assert call_rest(client, case.spec, request) == expected


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_just_over_the_bound_is_refused_naming_the_field(
    case: Case, client: httpx.Client, grpc_channel: grpc.Channel
) -> None:
    _oversize(case, client, grpc_channel)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_at_the_bound_is_not_refused_for_its_size(case: Case, client: httpx.Client, grpc_channel: grpc.Channel) -> None:
    request = case.request(over=False)
    assert request.ByteSize() <= REQUEST_BYTES
    for outcome in (call_grpc(grpc_channel, case.spec, request), call_rest(client, case.spec, request)):
        assert outcome.code not in ("PAYLOAD_TOO_LARGE", "INTERNAL_ERROR"), outcome
        assert not any(words in outcome.message for words in SIZE_WORDS), outcome


def test_every_rpc_has_bounded_fields_or_none_to_bound() -> None:
    """The generator reaches nested messages (HarnessConfig, WorkflowDefinition) and every list route."""
    ids = {c.id for c in CASES}
    assert "CreateWorkflow.definition.steps[0].execution.metadata:value" in ids
    assert "CreateHarnessProfile.config.command:item" in ids
    assert "CreateWorkflow.definition.dependencies[0].mappings:items" in ids
    paged = [r for r in rpcs().values() if "cursor" in r.method.input_type.fields_by_name]
    assert sum(1 for c in CASES if c.json_path == "cursor") == len(paged) > 0


# ---- the reproductions --------------------------------------------------------------------


def _profile(client: httpx.Client) -> str:
    body = {
        "displayName": "Bounds",
        "version": "v1",
        "config": {"provider": "mock", "model": "default", "tools": ["shell"]},
        "policies": {"timeoutMs": 60000, "retryLimit": 1, "budgetUsd": 1},
    }
    return str(ok_data(client.post("/api/v1/harness-profiles", json=body))["id"])


def test_refused_inputs_leave_nothing_and_the_transcript_stays_readable(
    client: httpx.Client, grpc_channel: grpc.Channel
) -> None:
    session = new_session()
    refused = "x" * 900_000
    for _ in range(5):
        resp = client.post("/api/v1/runs", json={"sessionId": session, "input": refused})
        err = error_of(resp, 413, "CONTEXT_OVERFLOW")
        assert err["message"] == "Context of 900006 chars exceeds the limit of 30000 chars."
    stub = grpc_channel.unary_unary(
        "/athena.v1.RunService/CreateRun",
        request_serializer=runs_pb2.CreateRunRequest.SerializeToString,
        response_deserializer=runs_pb2.CreateRunResponse.FromString,
    )
    with pytest.raises(grpc.RpcError) as exc:
        stub(runs_pb2.CreateRunRequest(session_id=session, input=refused), timeout=30)
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert ok_data(client.get(f"/api/v1/sessions/{session}/transcript")) == {"items": []}
    assert events_of(client, session) == []
    # No directive holds the refused input, and the session was not created.
    assert [d["id"] for d in every_item(client, "/api/v1/directives") if d["input"] == refused] == []
    assert session not in {s["id"] for s in every_item(client, "/api/v1/sessions")}


def test_refused_inputs_leave_nothing_on_every_path_to_a_run(client: httpx.Client) -> None:
    big = "y" * 30_000
    # A schedule or a queued item whose every run would be refused is not stored.
    schedule = unique("big-input")
    body = {"id": schedule, "sessionId": new_session(), "input": big, "everyMinutes": 5}
    error_of(client.post("/api/v1/schedules", json=body), 413, "CONTEXT_OVERFLOW")
    error_of(client.get(f"/api/v1/schedules/{schedule}"), 404, "NOT_FOUND")
    session = new_session()
    error_of(
        client.post("/api/v1/work/enqueue", json={"sessionId": session, "payload": big, "mode": "followup"}),
        413,
        "CONTEXT_OVERFLOW",
    )
    assert ok_data(client.get(f"/api/v1/sessions/{session}/work-queue"))["items"] == []
    # Items that fit alone but not merged: the drain's run is refused before it exists; the items stay.
    for text in ("a" * 20_000, "b" * 20_000):
        ok_data(client.post("/api/v1/work/enqueue", json={"sessionId": session, "payload": text, "mode": "collect"}))
    error_of(client.post(f"/api/v1/work/{session}/drain", json={}), 413, "CONTEXT_OVERFLOW")
    assert len(ok_data(client.get(f"/api/v1/sessions/{session}/work-queue"))["items"]) == 2
    assert [e["type"] for e in events_of(client, session)] == ["work.enqueued", "work.enqueued", "work.drained"]
    assert ok_data(client.get(f"/api/v1/sessions/{session}/transcript")) == {"items": []}
    # A template whose rendered text does not fit.
    template = ok_data(
        client.post(
            "/api/v1/run-templates",
            json={
                "harnessProfileId": _profile(client),
                "directiveTemplate": "{{ text }}",
                "defaultParams": {"text": "t"},
            },
        )
    )
    session = new_session()
    resp = client.post(f"/api/v1/templates/{template['id']}/run", json={"sessionId": session, "params": {"text": big}})
    error_of(resp, 413, "CONTEXT_OVERFLOW")
    assert events_of(client, session) == []


def _json_size(items: list[dict[str, Any]]) -> int:
    return sum(len(json.dumps(i)) for i in items)


def test_pages_cut_by_bytes_deliver_every_item_exactly_once(client: httpx.Client) -> None:
    """20 directives of 250,000 characters (5 MB) used to make one page over gRPC's 4 MB: a 500."""
    created = [
        ok_data(client.post("/api/v1/directives", json={"input": f"{i:02d}" + "d" * 250_000}))["id"] for i in range(20)
    ]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        data = ok_data(client.get("/api/v1/directives", params=params))
        pages += 1
        assert 1 <= len(data["items"]) and _json_size(data["items"]) <= (1 << 20) + 260_000
        seen.extend(d["id"] for d in data["items"])
        cursor = data.get("nextCursor")
        if not cursor:
            break
    assert pages >= 5
    assert len(seen) == len(set(seen))
    mine = [d for d in seen if d in set(created)]
    assert mine == created[::-1]  # newest first, each once


def test_transcript_windows_fit_the_transport(client: httpx.Client, grpc_channel: grpc.Channel) -> None:
    session = new_session()
    ok_data(client.post("/api/v1/runs", json={"sessionId": session, "input": "start"}))
    start = ok_data(client.get(f"/api/v1/sessions/{session}/transcript"))["items"][0]
    for i in range(40):
        ok_data(client.post("/api/v1/runs", json={"sessionId": session, "input": f"{i:02d}" + "t" * 12_000}))
    total = 2 * 41
    # The tail window: the newest entries that fit, oldest first.
    tail = ok_data(client.get(f"/api/v1/sessions/{session}/transcript", params={"limit": 500}))["items"]
    assert 1 <= len(tail) < total
    assert _json_size(tail) <= (1 << 20) + 40_000
    # Reading on with `after` from the first entry delivers every entry once, in order.
    seen = [start["id"]]
    after = start["id"]
    while True:
        items = ok_data(client.get(f"/api/v1/sessions/{session}/transcript", params={"after": after, "limit": 500}))[
            "items"
        ]
        if not items:
            break
        assert _json_size(items) <= (1 << 20) + 40_000
        seen.extend(e["id"] for e in items)
        after = items[-1]["id"]
    assert len(seen) == total and len(set(seen)) == total
    assert seen[-len(tail) :] == [e["id"] for e in tail]
    stub = grpc_channel.unary_unary(
        "/athena.v1.SessionService/ListTranscriptEntries",
        request_serializer=sessions_pb2.ListTranscriptEntriesRequest.SerializeToString,
        response_deserializer=sessions_pb2.ListTranscriptEntriesResponse.FromString,
    )
    window = stub(sessions_pb2.ListTranscriptEntriesRequest(session_id=session, limit=500), timeout=30)
    assert window.ByteSize() <= (1 << 20) + 40_000


HUGE = "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ"  # base64url of 9999999999999999999999999
LISTS = [
    ("/api/v1/events", "events.list"),
    ("/api/v1/sessions", "sessions.list"),
    ("/api/v1/directives", "directives.list"),
    ("/api/v1/harness-profiles", "harnessProfiles.list"),
    ("/api/v1/run-templates", "runTemplates.list"),
    ("/api/v1/workflows", "workflows.list"),
    ("/api/v1/policy/rejections", "policy.rejections"),
    ("/api/v1/runs/active", "runs.active"),
    ("/api/v1/runs/cancel-requests", "runs.cancelRequests"),
    ("/api/v1/schedules", "schedules.list"),
]


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [HUGE, _b64("-1"), _b64('{"kind":"x","seq":1e300}'), "A" * 512])
@pytest.mark.parametrize(("path", "context"), LISTS)
def test_cursors_beyond_the_store_are_config_errors(client: httpx.Client, path: str, context: str, cursor: str) -> None:
    err = error_of(client.get(path, params={"cursor": cursor}), 400, "CONFIG_ERROR")
    assert err["message"] == f"{context}.cursor is invalid."


LARGEST = _b64(str(2**53))  # the largest number a cursor may carry: an offset or sequence past everything


@pytest.mark.parametrize(("path", "context"), [entry for entry in LISTS if entry[0] != "/api/v1/schedules"])
def test_the_largest_cursor_reads_an_empty_page(client: httpx.Client, path: str, context: str) -> None:
    data = ok_data(client.get(path, params={"cursor": LARGEST}))
    assert [v for k, v in data.items() if k in ("items", "events")] == [[]] and "nextCursor" not in data


def test_huge_cursor_over_grpc(grpc_channel: grpc.Channel) -> None:
    stub = grpc_channel.unary_unary(
        "/athena.v1.EventService/ListEvents",
        request_serializer=events_pb2.ListEventsRequest.SerializeToString,
        response_deserializer=events_pb2.ListEventsResponse.FromString,
    )
    with pytest.raises(grpc.RpcError) as exc:
        stub(events_pb2.ListEventsRequest(cursor=HUGE), timeout=10)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.details() == "events.list.cursor is invalid."


def test_resume_points_that_name_nothing(client: httpx.Client) -> None:
    schedule = unique("resume-logs")
    body = {"id": schedule, "sessionId": new_session(), "input": "x", "everyMinutes": 5}
    ok_data(client.post("/api/v1/schedules", json=body))
    err = error_of(client.get(f"/api/v1/schedules/{schedule}/logs", params={"after": HUGE}), 400, "CONFIG_ERROR")
    assert err["message"] == f"schedules.logs.after must be a log id of schedule '{schedule}'. Received: {HUGE}."
    session = new_session()
    ok_data(client.post("/api/v1/runs", json={"sessionId": session, "input": "x"}))
    resp = client.get(f"/api/v1/sessions/{session}/transcript/stream", headers={"Last-Event-ID": "nope"})
    err = error_of(resp, 400, "CONFIG_ERROR")
    assert err["message"] == (
        f"sessions.transcript.stream.after must be an entry id of session '{session}'; list GET "
        f"/api/v1/sessions/{session}/transcript to resume from an entry that exists."
    )


BEYOND = re.compile(
    r"events\.stream\.after 'evt_999999' is beyond the newest event \(the newest event is evt_(\d+)\); "
    r"list GET /api/v1/events to resume from an event that exists\."
)


def _newest(client: httpx.Client) -> int:
    """The id number of the newest event in the log, after appending one."""
    ok_data(client.post("/api/v1/runs", json={"sessionId": new_session(), "input": "x"}))
    return int(every_item(client, "/api/v1/events", key="events")[-1]["id"].removeprefix("evt_"))


def _assert_beyond(message: str, client: httpx.Client, newest_before: int) -> None:
    """The refusal names the newest event when it was made: one at least as new as the newest before the
    request and no newer than the newest after it (other writers may append meanwhile)."""
    named = BEYOND.fullmatch(message)
    assert named is not None, message
    assert newest_before <= int(named.group(1)) <= _newest(client), message


def test_last_event_id_never_issued_is_refused_over_sse(served: Served, client: httpx.Client) -> None:
    rest_url = served.process.rest_url
    newest = _newest(client)
    resp = httpx.get(f"{rest_url}/api/v1/events/stream", headers={"Last-Event-ID": "evt_999999"}, timeout=60)
    _assert_beyond(error_of(resp, 400, "CONFIG_ERROR")["message"], client, newest)
    # The newest event itself is a resume point: the stream opens.
    with httpx.stream(
        "GET", f"{rest_url}/api/v1/events/stream", headers={"Last-Event-ID": f"evt_{newest}"}, timeout=60
    ) as stream:
        assert stream.status_code == 200


def test_after_never_issued_is_refused_over_grpc(client: httpx.Client, grpc_channel: grpc.Channel) -> None:
    newest = _newest(client)
    stub = grpc_channel.unary_stream(
        "/athena.v1.EventService/StreamEvents",
        request_serializer=events_pb2.StreamEventsRequest.SerializeToString,
        response_deserializer=events_pb2.StreamEventsResponse.FromString,
    )
    call = stub(events_pb2.StreamEventsRequest(after="evt_999999"), timeout=60)
    with pytest.raises(grpc.RpcError) as exc:
        next(call)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    _assert_beyond(exc.value.details(), client, newest)


def _create_run(channel: grpc.Channel) -> Any:
    return channel.unary_unary(
        "/athena.v1.RunService/CreateRun",
        request_serializer=runs_pb2.CreateRunRequest.SerializeToString,
        response_deserializer=runs_pb2.CreateRunResponse.FromString,
    )


def test_grpc_requests_over_the_size_bound(grpc_channel: grpc.Channel) -> None:
    with pytest.raises(grpc.RpcError) as exc:
        _create_run(grpc_channel)(
            runs_pb2.CreateRunRequest(session_id=new_session(), input="x" * 1_500_000), timeout=30
        )
    assert (reason(exc.value), exc.value.details()) == ("PAYLOAD_TOO_LARGE", TOO_LARGE)
    # Beyond the server's receive limit (4 MiB) gRPC itself refuses the message, before any handler.
    with pytest.raises(grpc.RpcError) as exc:
        _create_run(grpc_channel)(
            runs_pb2.CreateRunRequest(session_id=new_session(), input="x" * (5 << 20)), timeout=30
        )
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_request_headers_are_bounded(grpc_channel: grpc.Channel) -> None:
    request = runs_pb2.CreateRunRequest(session_id=new_session(), input="x")
    cases = [
        (("x-trace-id", "t" * 65), "header 'x-trace-id' must be at most 64 characters."),
        (("x-trace-id", "not a trace"), "header 'x-trace-id' must match [A-Za-z0-9._:-]{1,64}."),
        (("idempotency-key", "k" * 256), "header 'idempotency-key' must be at most 255 characters."),
    ]
    for header, message in cases:
        with pytest.raises(grpc.RpcError) as exc:
            _create_run(grpc_channel)(request, timeout=30, metadata=(header,))
        assert (reason(exc.value), exc.value.details()) == ("CONFIG_ERROR", message)
    trace = uuid.uuid4().hex
    response, call = _create_run(grpc_channel).with_call(request, timeout=30, metadata=(("x-trace-id", trace),))
    assert response.result.trace_id == trace
    assert ("x-trace-id", trace) in call.trailing_metadata()


def test_schedule_inputs_at_the_edges_of_the_calendar(client: httpx.Client) -> None:
    """A cron expression that never matches, and a tick at the last instant the API writes, used to be 500s."""
    body = {"id": unique("never"), "sessionId": new_session(), "input": "x", "cron": "0 0 30 2 *"}
    err = error_of(client.post("/api/v1/schedules", json=body), 400, "CONFIG_ERROR")
    assert err["message"] == "schedules.create.cron never matches a date. Received: 0 0 30 2 *."
    edges = {unique("edge-cron"): {"cron": "* * * * *"}, unique("edge-every"): {"everyMinutes": 2**31 - 1}}
    for sid, cadence in edges.items():
        ok_data(client.post("/api/v1/schedules", json={"id": sid, "sessionId": new_session(), "input": "x", **cadence}))
    ok_data(client.post("/api/v1/schedules/tick", json={"at": "9999-12-31T23:59:59.000Z"}))
    for sid in edges:
        assert ok_data(client.get(f"/api/v1/schedules/{sid}"))["nextRunAt"] == "9999-12-31T23:59:59.999Z"
    err = error_of(client.post("/api/v1/schedules/tick", json={"at": "9999-12-31T23:59:59-01:00"}), 400, "CONFIG_ERROR")
    assert err["message"] == "schedules.tick.at must be a valid ISO datetime."


# ---- PostgreSQL -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory, postgres_cluster: str) -> Iterator[Served]:
    """A server on a new database of the session's own PostgreSQL cluster."""
    with (
        servers_on_one_database(postgres_cluster, tmp_path_factory.mktemp("pg-bounds"), count=1) as [server],
        httpx.Client(base_url=server.rest_url, timeout=60) as rest,
        grpc.insecure_channel(server.grpc_target) as channel,
    ):
        yield Served(server, rest, channel)


def test_postgres_oversize_pass_answers_no_500(postgres: Served) -> None:
    for case in CASES:
        _oversize(case, postgres.rest, postgres.channel)


def test_postgres_refuses_what_it_cannot_store(postgres: Served) -> None:
    """The issue's StringDataRightTruncationError (a 500) and NUL, which PostgreSQL text cannot hold."""
    long = "s" * 100_000
    client = postgres.rest
    cases = [
        ("/api/v1/runs", {"sessionId": long, "input": "x"}, "createRun.sessionId must be at most 128 characters."),
        (
            "/api/v1/runs",
            {"sessionId": new_session(), "input": "x", "model": long},
            "createRun.model must be at most 128 characters.",
        ),
        (
            "/api/v1/schedules",
            {"id": long, "sessionId": new_session(), "input": "x", "everyMinutes": 5},
            "createSchedule.id must be at most 128 characters.",
        ),
        (
            "/api/v1/runs",
            {"sessionId": new_session(), "input": "a\u0000b"},
            "createRun.input must not contain NUL characters (U+0000).",
        ),
        (
            "/api/v1/run-control/by-run/" + "r" * 65 + "/cancel",
            {},
            "cancelRunByRunId.runId must be at most 64 characters.",
        ),
    ]
    for path, body, message in cases:
        assert error_of(client.post(path, json=body), 400, "CONFIG_ERROR")["message"] == message
    for path, context in LISTS:
        err = error_of(client.get(path, params={"cursor": HUGE}), 400, "CONFIG_ERROR")
        assert err["message"] == f"{context}.cursor is invalid."
        if path != "/api/v1/schedules":  # schedules never had offset cursors
            ok_data(client.get(path, params={"cursor": LARGEST}))
    # What fits is stored: a 128-character session id and model run on PostgreSQL.
    data = ok_data(client.post("/api/v1/runs", json={"sessionId": "s" * 128, "input": "x", "model": "m" * 128}))
    assert data["model"] == "m" * 128
