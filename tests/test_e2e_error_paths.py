"""The refusals a user can provoke on RPCs that had no error-path test (issue 12), over both transports:
the exact Athena code, message, HTTP status and gRPC status for each; and the answers these RPCs give to
ids that name nothing (which are not errors)."""

from __future__ import annotations

from typing import Any

import grpc
import httpx
import pytest

from tests.support.rpc_calls import call_grpc, call_rest, method_named, request_of
from tests.support.shapes import error_of, new_session, ok_data, unique

BAD_ID = "bad id!"
SESSION_PATTERN = "Invalid sessionId 'bad id!'. Allowed pattern: ^[A-Za-z0-9._-]+$"

# (RPC, request fields, code, message, HTTP status, gRPC status)
CASES: list[tuple[str, dict[str, Any], str, str, int, str]] = [
    (
        "SessionService.StreamTranscript",
        {"sessionId": "s-none-zz", "after": "nope"},
        "CONFIG_ERROR",
        "sessions.transcript.stream.after must be an entry id of session 's-none-zz'; list GET "
        "/api/v1/sessions/s-none-zz/transcript to resume from an entry that exists.",
        400,
        "INVALID_ARGUMENT",
    ),
    (
        "SessionService.StreamTranscript",
        {"sessionId": BAD_ID},
        "CONFIG_ERROR",
        SESSION_PATTERN,
        400,
        "INVALID_ARGUMENT",
    ),
    (
        "WorkflowService.ListWorkflows",
        {"cursor": "garbage!"},
        "CONFIG_ERROR",
        "workflows.list.cursor is invalid.",
        400,
        "INVALID_ARGUMENT",
    ),
    ("WorkService.GetWorkQueue", {"sessionId": BAD_ID}, "CONFIG_ERROR", SESSION_PATTERN, 400, "INVALID_ARGUMENT"),
    (
        "ScheduleService.UpdateSchedule",
        {"id": BAD_ID, "input": "x", "sessionId": "s1", "everyMinutes": 1},
        "CONFIG_ERROR",
        "schedules.update.id must match ^[A-Za-z0-9._-]+$. Received: bad id!.",
        400,
        "INVALID_ARGUMENT",
    ),
    (
        "ScheduleService.DeleteSchedule",
        {"id": BAD_ID},
        "CONFIG_ERROR",
        "schedules.delete.id must match ^[A-Za-z0-9._-]+$. Received: bad id!.",
        400,
        "INVALID_ARGUMENT",
    ),
    (
        "EventService.StreamEvents",
        {"after": "garbage!"},
        "CONFIG_ERROR",
        "events.stream.after must be an event id or an events cursor.",
        400,
        "INVALID_ARGUMENT",
    ),
    ("EventService.StreamEvents", {"sessionId": BAD_ID}, "CONFIG_ERROR", SESSION_PATTERN, 400, "INVALID_ARGUMENT"),
]


@pytest.mark.parametrize(("name", "fields", "code", "message", "http", "status"), CASES)
def test_refusal_is_the_same_over_both_transports(
    rest: httpx.Client,
    channel: grpc.Channel,
    name: str,
    fields: dict[str, Any],
    code: str,
    message: str,
    http: int,
    status: str,
) -> None:
    method = method_named(name)
    got = call_rest(rest, method, request_of(method, **fields), {})
    assert (got.code, got.message, got.status) == (code, message, http)
    path = f"/{method.containing_service.full_name}/{method.name}"
    assert call_grpc(channel, method, request_of(method, **fields), {}).code == code
    # The gRPC status and details, read directly from the call.
    unary = not method.server_streaming
    request = request_of(method, **fields)
    with pytest.raises(grpc.RpcError) as caught:
        if unary:
            channel.unary_unary(path, request_serializer=lambda m: m.SerializeToString())(request, timeout=30)
        else:
            call = channel.unary_stream(path, request_serializer=lambda m: m.SerializeToString())(request, timeout=30)
            next(iter(call))
    assert (caught.value.code().name, caught.value.details()) == (status, message)


def test_a_resume_point_beyond_the_newest_event_is_refused(rest: httpx.Client, channel: grpc.Channel) -> None:
    ok_data(rest.post("/api/v1/runs", json={"sessionId": new_session(), "input": "x"}))  # the store has events
    method = method_named("EventService.StreamEvents")
    request = request_of(method, after="evt_999999999")
    got = call_rest(rest, method, request, {})
    assert (got.code, got.status) == ("CONFIG_ERROR", 400)
    assert got.message.startswith(
        "events.stream.after 'evt_999999999' is beyond the newest event (the newest event is evt_"
    )
    assert got.message.endswith("); list GET /api/v1/events to resume from an event that exists.")
    assert call_grpc(channel, method, request, {}).code == "CONFIG_ERROR"


def test_an_empty_run_id_cannot_be_cancelled(rest: httpx.Client, channel: grpc.Channel) -> None:
    """REST has no route for an empty path segment (404 NOT_FOUND); gRPC names the field."""
    err = error_of(rest.post("/api/v1/run-control/by-run//cancel", json={}), 404, "NOT_FOUND")
    assert err["message"] == "Not found: POST /api/v1/run-control/by-run//cancel"
    method = method_named("RunService.CancelRunByRunId")
    got = call_grpc(channel, method, request_of(method, runId=""), {})
    assert (got.code, got.message) == ("CONFIG_ERROR", "runs.cancel.runId must be a non-empty string.")


@pytest.mark.parametrize("run_id", ["00000000-0000-0000-0000-000000000000", "not-a-run"])
def test_cancelling_a_run_that_is_not_running_says_so(rest: httpx.Client, channel: grpc.Channel, run_id: str) -> None:
    data = ok_data(rest.post(f"/api/v1/run-control/by-run/{run_id}/cancel", json={}))
    assert data == {"runId": run_id, "status": "not-running"}
    method = method_named("RunService.CancelRunByRunId")
    assert call_grpc(channel, method, request_of(method, runId=run_id), {}).code is None


def test_the_work_queue_of_an_unknown_session_is_empty(rest: httpx.Client) -> None:
    session = new_session()
    data = ok_data(rest.get(f"/api/v1/sessions/{session}/work-queue"))
    assert (data["sessionId"], data["items"], data["draining"]) == (session, [], False)


def test_list_integers_must_be_integers(rest: httpx.Client) -> None:
    err = error_of(rest.get("/api/v1/workflows", params={"limit": "abc"}), 400, "CONFIG_ERROR")
    assert err["message"] == "limit must be an integer."


def test_deleting_an_unknown_schedule(rest: httpx.Client) -> None:
    """Observed: `removed` is true for an id that named no schedule (reported: it reads as if one was)."""
    sid = unique("sch")
    data = ok_data(rest.delete(f"/api/v1/schedules/{sid}"))
    assert data["id"] == sid
    error_of(rest.get(f"/api/v1/schedules/{sid}"), 404, "NOT_FOUND")
