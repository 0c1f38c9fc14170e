"""Streams resumed over a backlog longer than one internal page (the follower reads 500 rows at a time):
every event / transcript entry after the resume point arrives exactly once, in order, over REST SSE
(`after` and `Last-Event-ID`) and gRPC, and the stream then goes on with live rows.

Each stream read stops at a sentinel run made once the stream is open, so a stream that skipped rows ends
the read quickly (with the sentinel) and the comparison with the listed log shows what was lost."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest

from athena.v1 import events_pb2, events_pb2_grpc, sessions_pb2, sessions_pb2_grpc
from athena_client.contract import message_to_json
from tests.support.events import events_of
from tests.support.processes import AthenaProcess
from tests.support.shapes import new_session, ok_data
from tests.support.sse import Frame, read_frames

#: Runs in the backlog session: 3 events and 2 transcript entries each, so both logs are well over the
#: follower's 500-row page (the event log more than twice over).
RUNS = 440
#: The resume point: an early row, so the rows after it span three event pages / two transcript pages.
RESUME_AT = 4


@dataclass
class Backlog:
    session: str
    first_entries: list[dict[str, Any]]  # the transcript of the first run (the listing starts after it)


def _run(rest: httpx.Client, session: str, text: str) -> dict[str, Any]:
    data: dict[str, Any] = ok_data(rest.post("/api/v1/runs", json={"sessionId": session, "input": text}))
    return data


@pytest.fixture(scope="module")
def backlog(rest: httpx.Client) -> Backlog:
    session = new_session()
    _run(rest, session, "r0")
    first = ok_data(rest.get(f"/api/v1/sessions/{session}/transcript"))["items"]
    for i in range(1, RUNS):
        _run(rest, session, f"r{i}")
    return Backlog(session, first)


def _transcript(rest: httpx.Client, b: Backlog) -> list[dict[str, Any]]:
    """The whole transcript, oldest first, read page by page from the first entry."""
    entries = list(b.first_entries)
    while True:
        page = ok_data(
            rest.get(f"/api/v1/sessions/{b.session}/transcript", params={"after": entries[-1]["id"], "limit": 500})
        )["items"]
        if not page:
            return entries
        entries += page


def _check_events(rest: httpx.Client, session: str, before: list[dict[str, Any]], got: list[dict[str, Any]]) -> None:
    """`got` is exactly the listed events after the resume point, then the sentinel run's three events."""
    after = events_of(rest, session)
    assert after[: len(before)] == before  # the log itself did not change
    sentinel = after[len(before) :]
    assert [e["type"] for e in sentinel] == ["run.created", "run.started", "run.completed"]
    expected = [e["id"] for e in before[RESUME_AT + 1 :]] + [e["id"] for e in sentinel]
    ids = [e["id"] for e in got]
    missing = sorted(set(expected) - set(ids), key=expected.index)
    assert not missing, f"{len(missing)} events never arrived, from {missing[0]}"
    assert len(ids) == len(set(ids)), "an event arrived twice"
    assert ids == expected
    assert got == before[RESUME_AT + 1 :] + sentinel  # whole events, not only ids


def _sse_events(api: AthenaProcess, rest: httpx.Client, session: str, **how: Any) -> list[dict[str, Any]]:
    sentinel: list[str] = []

    def open_sentinel() -> None:
        sentinel.append(_run(rest, session, "sentinel")["runId"])

    def done(frames: list[Frame]) -> bool:
        last = frames[-1].data["data"]
        return bool(sentinel) and last["type"] == "run.completed" and last.get("runId") == sentinel[0]

    frames = read_frames(
        f"{api.rest_url}/api/v1/events/stream",
        until=done,
        params={"sessionId": session, **how.get("params", {})},
        headers=how.get("headers"),
        on_first=open_sentinel,
    )
    for f in frames:
        assert set(f.data) == {"ok", "data"} and f.data["ok"] is True
        assert f.id == f.data["data"]["id"] and f.event == f.data["data"]["type"]
    return [f.data["data"] for f in frames]


def test_sse_resumed_with_after_delivers_the_whole_backlog_once(
    api: AthenaProcess, rest: httpx.Client, backlog: Backlog
) -> None:
    before = events_of(rest, backlog.session)
    assert len(before) >= 3 * RUNS
    got = _sse_events(api, rest, backlog.session, params={"after": before[RESUME_AT]["id"]})
    _check_events(rest, backlog.session, before, got)


def test_sse_resumed_with_last_event_id_delivers_the_whole_backlog_once(
    api: AthenaProcess, rest: httpx.Client, backlog: Backlog
) -> None:
    before = events_of(rest, backlog.session)
    got = _sse_events(api, rest, backlog.session, headers={"Last-Event-ID": before[RESUME_AT]["id"]})
    _check_events(rest, backlog.session, before, got)


def test_sse_resumed_from_a_list_cursor_delivers_the_whole_backlog_once(
    api: AthenaProcess, rest: httpx.Client, backlog: Backlog
) -> None:
    """A ListEvents cursor is also a resume point: the one after the first RESUME_AT + 1 events."""
    before = events_of(rest, backlog.session)
    page = ok_data(rest.get("/api/v1/events", params={"sessionId": backlog.session, "limit": RESUME_AT + 1}))
    assert page["events"] == before[: RESUME_AT + 1]
    got = _sse_events(api, rest, backlog.session, params={"after": page["nextCursor"]})
    _check_events(rest, backlog.session, before, got)


def test_grpc_stream_resumed_delivers_the_whole_backlog_once(
    rest: httpx.Client, channel: grpc.Channel, backlog: Backlog
) -> None:
    before = events_of(rest, backlog.session)
    stub = events_pb2_grpc.EventServiceStub(channel)
    call = stub.StreamEvents(
        events_pb2.StreamEventsRequest(session_id=backlog.session, after=before[RESUME_AT]["id"]), timeout=120
    )
    got: list[dict[str, Any]] = []
    sentinel: str | None = None
    try:
        for message in call:
            got.append(message_to_json(message.event))
            if sentinel is None:
                sentinel = _run(rest, backlog.session, "sentinel")["runId"]
            if got[-1]["type"] == "run.completed" and got[-1].get("runId") == sentinel:
                break
    finally:
        call.cancel()
    _check_events(rest, backlog.session, before, got)


def _check_entries(rest: httpx.Client, b: Backlog, before: list[dict[str, Any]], got: list[dict[str, Any]]) -> None:
    after = _transcript(rest, b)
    assert after[: len(before)] == before
    sentinel = after[len(before) :]
    assert [(e["role"], e["content"]) for e in sentinel[:1]] == [("user", "sentinel")] and len(sentinel) == 2
    expected = before[RESUME_AT + 1 :] + sentinel
    ids = [e["id"] for e in got]
    missing = [e["id"] for e in expected if e["id"] not in set(ids)]
    assert not missing, f"{len(missing)} transcript entries never arrived, from {missing[0]}"
    assert len(ids) == len(set(ids)), "an entry arrived twice"
    assert got == expected


def test_transcript_sse_resumed_delivers_the_whole_backlog_once(
    api: AthenaProcess, rest: httpx.Client, backlog: Backlog
) -> None:
    before = _transcript(rest, backlog)
    assert len(before) == 2 * len({e["runId"] for e in before}) >= 2 * RUNS
    sentinel: list[str] = []

    def open_sentinel() -> None:
        sentinel.append(_run(rest, backlog.session, "sentinel")["runId"])

    def done(frames: list[Frame]) -> bool:
        last = frames[-1].data["data"]
        return bool(sentinel) and last.get("runId") == sentinel[0] and last["role"] == "assistant"

    frames = read_frames(
        f"{api.rest_url}/api/v1/sessions/{backlog.session}/transcript/stream",
        until=done,
        headers={"Last-Event-ID": before[RESUME_AT]["id"]},
        on_first=open_sentinel,
    )
    assert {f.event for f in frames} == {"transcript.entry"}
    assert all(f.id == f.data["data"]["id"] for f in frames)
    _check_entries(rest, backlog, before, [f.data["data"] for f in frames])


def test_transcript_grpc_stream_resumed_delivers_the_whole_backlog_once(
    rest: httpx.Client, channel: grpc.Channel, backlog: Backlog
) -> None:
    before = _transcript(rest, backlog)
    stub = sessions_pb2_grpc.SessionServiceStub(channel)
    call = stub.StreamTranscript(
        sessions_pb2.StreamTranscriptRequest(session_id=backlog.session, after=before[RESUME_AT]["id"]), timeout=120
    )
    got: list[dict[str, Any]] = []
    sentinel: str | None = None
    try:
        for message in call:
            got.append(message_to_json(message.entry))
            if sentinel is None:
                sentinel = _run(rest, backlog.session, "sentinel")["runId"]
            if got[-1].get("runId") == sentinel and got[-1]["role"] == "assistant":
                break
    finally:
        call.cancel()
    _check_entries(rest, backlog, before, got)
