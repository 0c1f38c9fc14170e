"""Event and transcript streams: SSE through the gateway and server-streaming gRPC, with resume."""

from __future__ import annotations

import grpc
import httpx

from athena.v1 import events_pb2, events_pb2_grpc, sessions_pb2, sessions_pb2_grpc
from tests.support.events import events_of
from tests.support.shapes import error_of, new_session, ok_data
from tests.support.sse import read_sse


def _run(rest: httpx.Client, session: str, text: str = "hello") -> dict:
    return ok_data(rest.post("/api/v1/runs", json={"sessionId": session, "input": text, "provider": "mock"}))


def test_sse_resumes_strictly_after_last_event_id(api, rest: httpx.Client) -> None:
    session = new_session()
    _run(rest, session)
    events = events_of(rest, session)
    frames, lines = read_sse(
        f"{api.rest_url}/api/v1/events/stream",
        {"sessionId": session},
        headers={"Last-Event-ID": events[0]["id"]},
        frames=2,
    )
    assert lines[0] == "retry: 2000"
    assert [f["id"] for f in frames] == [e["id"] for e in events[1:]]
    assert [f["event"] for f in frames] == ["run.started", "run.completed"]
    assert frames[0]["data"] == {"ok": True, "data": events[1]}


def test_sse_last_event_id_wins_over_after_param(api, rest: httpx.Client) -> None:
    session = new_session()
    _run(rest, session)
    events = events_of(rest, session)
    frames, _ = read_sse(
        f"{api.rest_url}/api/v1/events/stream",
        {"sessionId": session, "after": events[0]["id"]},
        headers={"Last-Event-ID": events[1]["id"]},
        frames=1,
    )
    assert [f["id"] for f in frames] == [events[2]["id"]]


def test_sse_delivers_live_events_in_order(api, rest: httpx.Client) -> None:
    session = new_session()
    # The run starts once the stream is open, so its events can only reach the stream live.
    frames, _ = read_sse(
        f"{api.rest_url}/api/v1/events/stream", {"sessionId": session}, frames=3, on_open=lambda: _run(rest, session)
    )
    assert [f["event"] for f in frames] == ["run.created", "run.started", "run.completed"]
    ids = [int(f["id"].removeprefix("evt_")) for f in frames]
    assert ids == sorted(ids) and len(set(ids)) == 3


def test_sse_heartbeat_comment(api) -> None:
    # The session server runs with ATHENA_SSE_HEARTBEAT_SECONDS=1; nothing happens in this session.
    frames, lines = read_sse(f"{api.rest_url}/api/v1/events/stream", {"sessionId": new_session()}, until_heartbeat=True)
    assert frames == []
    assert ": heartbeat" in lines


def test_sse_bad_resume_point_is_an_error_envelope(api) -> None:
    resp = httpx.get(f"{api.rest_url}/api/v1/events/stream", headers={"Last-Event-ID": "garbage!"}, timeout=60)
    error_of(resp, 400, "CONFIG_ERROR")


def test_grpc_stream_resumes_like_sse(rest: httpx.Client, channel: grpc.Channel) -> None:
    session = new_session()
    _run(rest, session)
    events = events_of(rest, session)
    stub = events_pb2_grpc.EventServiceStub(channel)
    call = stub.StreamEvents(events_pb2.StreamEventsRequest(after=events[0]["id"], session_id=session), timeout=60)
    got = [next(call).event for _ in range(2)]
    call.cancel()
    assert [e.id for e in got] == [e["id"] for e in events[1:]]
    assert [e.type for e in got] == ["run.started", "run.completed"]


def test_grpc_stream_rejects_bad_resume_point(channel: grpc.Channel) -> None:
    stub = events_pb2_grpc.EventServiceStub(channel)
    call = stub.StreamEvents(events_pb2.StreamEventsRequest(after="evt_x"), timeout=60)
    try:
        next(call)
        raise AssertionError("expected an error")
    except grpc.RpcError as err:
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_transcript_stream_sse_and_grpc(api, rest: httpx.Client, channel: grpc.Channel) -> None:
    session = new_session()
    _run(rest, session, "one")
    _run(rest, session, "two")
    entries = ok_data(rest.get(f"/api/v1/sessions/{session}/transcript"))["items"]
    frames, lines = read_sse(
        f"{api.rest_url}/api/v1/sessions/{session}/transcript/stream",
        {},
        headers={"Last-Event-ID": entries[1]["id"]},
        frames=2,
    )
    assert lines[0] == "retry: 1500"
    assert [f["event"] for f in frames] == ["transcript.entry", "transcript.entry"]
    assert [f["data"]["data"] for f in frames] == entries[2:4]
    stub = sessions_pb2_grpc.SessionServiceStub(channel)
    call = stub.StreamTranscript(
        sessions_pb2.StreamTranscriptRequest(session_id=session, after=entries[0]["id"]), timeout=60
    )
    got = [next(call).entry.id for _ in range(3)]
    call.cancel()
    assert got == [e["id"] for e in entries[1:]]
