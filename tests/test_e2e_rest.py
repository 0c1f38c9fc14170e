"""The /api/v1 surface over REST against a real `athena api serve`, with seed 002's exact shapes."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.support.pages import every_item
from tests.support.shapes import assert_iso, error_of, new_session, ok_data


def run(rest: httpx.Client, session: str, text: str = "hello", **extra: str) -> dict:
    body = {"sessionId": session, "input": text, "provider": "mock", "model": "default", **extra}
    return ok_data(rest.post("/api/v1/runs", json=body))


# -- core and health (seed 002 #1, #2) ---------------------------------------------------------------


def test_capabilities_seed_shape(rest: httpx.Client) -> None:
    data = ok_data(rest.get("/api/v1/capabilities"))
    assert data == {
        "executionBackend": "local",
        "stateStore": "sqlite",
        "supportsPods": False,
        "supportsCpuMemMetrics": False,
        "supportsA2ABus": True,
        "providers": ["command", "mock", "openai"],
        "supportsSandbox": False,
    }


@pytest.mark.parametrize("path", ["/api/v1/admin/health", "/api/v1/health"])
def test_health_seed_shape(rest: httpx.Client, path: str) -> None:
    data = ok_data(rest.get(path))
    assert set(data) == {"status", "now"}
    assert data["status"] == "ok"
    assert_iso(data["now"])


def test_readiness_checks_the_store(rest: httpx.Client) -> None:
    data = ok_data(rest.get("/api/v1/readiness"))
    assert data["status"] == "ready"
    assert [c["name"] for c in data["checks"]] == ["store"]
    assert data["checks"][0]["status"] == "ok"
    assert data["checks"][0]["latencyMs"] >= 0


def test_every_response_carries_a_trace_id(rest: httpx.Client) -> None:
    a = rest.get("/api/v1/capabilities").headers["x-trace-id"]
    b = rest.get("/api/v1/capabilities").headers["x-trace-id"]
    assert a != b
    uuid.UUID(a)


# -- runs (seed 002 #3) -------------------------------------------------------------------------------


def test_create_run_seed_example(rest: httpx.Client) -> None:
    session = new_session()
    data = run(rest, session)
    assert {k: data[k] for k in ("sessionId", "output", "provider", "model")} == {
        "sessionId": session,
        "output": "Echo: user: hello",
        "provider": "mock",
        "model": "default",
    }
    assert_iso(data["createdAt"])
    uuid.UUID(data["runId"])
    assert data["usage"] == {"inputTokens": 11, "outputTokens": 17, "totalTokens": 28}
    # The seed's fields, then the additive ones (each a true value for this run).
    assert set(data) == {"sessionId", "output", "provider", "model", "createdAt", "runId", "usage"} | {
        "status",
        "directiveId",
        "harnessProfileId",
        "harnessProfileSnapshot",
        "verificationStatus",
        "verificationFailures",
        "evidenceCount",
        "attempts",
        "traceId",
        "finishedAt",
    }


def test_later_turns_echo_the_compiled_context(rest: httpx.Client) -> None:
    session = new_session()
    run(rest, session, "hello")
    second = run(rest, session, "again")
    assert second["output"] == "Echo: user: hello\n\nassistant: Echo: user: hello\n\nuser: again"


def test_run_is_persisted_and_readable(rest: httpx.Client) -> None:
    session = new_session()
    created = run(rest, session)
    got = ok_data(rest.get(f"/api/v1/runs/{created['runId']}"))
    assert got["runId"] == created["runId"]
    assert got["sessionId"] == session
    assert got["status"] == "succeeded"
    assert got["output"] == "Echo: user: hello"
    assert got["input"] == "hello"
    assert got["usage"] == created["usage"]
    for key in ("createdAt", "startedAt", "finishedAt"):
        assert_iso(got[key])
    assert got["createdAt"] <= got["startedAt"] <= got["finishedAt"]
    assert "error" not in got
    uuid.UUID(got["traceId"])


def test_unknown_run_is_not_found(rest: httpx.Client) -> None:
    error_of(rest.get("/api/v1/runs/no-such-run"), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"input": "hi"}, "sessionId must be a non-empty string"),
        ({"sessionId": "  ", "input": "hi"}, "sessionId must be a non-empty string"),
        ({"sessionId": "bad id!", "input": "hi"}, "Invalid sessionId 'bad id!'"),
        ({"sessionId": "s1"}, "requires either input or directiveId"),
        ({"sessionId": "s1", "input": "   "}, "requires either input or directiveId"),
        ({"sessionId": 5, "input": "hi"}, "sessionId"),
        ({"sessionId": "s1", "input": "hi", "metadata": {"k": " "}}, "metadata.k must be a non-empty string"),
    ],
)
def test_create_run_validation(rest: httpx.Client, body: dict, fragment: str) -> None:
    err = error_of(rest.post("/api/v1/runs", json=body), 400, "CONFIG_ERROR")
    assert fragment in err["message"]


def test_unknown_provider(rest: httpx.Client) -> None:
    err = error_of(
        rest.post("/api/v1/runs", json={"sessionId": new_session(), "input": "x", "provider": "nope"}),
        404,
        "PROVIDER_NOT_FOUND",
    )
    assert err["message"] == "No usable provider found in order: nope"


# -- sessions and transcripts (seed 002 #7 sessions, #6 transcript, #7 work-queue) ---------------------


def test_session_listed_with_seed_shape(rest: httpx.Client) -> None:
    session = new_session()
    run(rest, session)
    mine = [s for s in every_item(rest, "/api/v1/sessions") if s["id"] == session]
    assert len(mine) == 1
    s = mine[0]
    assert set(s) == {"id", "transcriptPath", "provider", "model", "createdAt", "updatedAt"}
    assert s["transcriptPath"] == f"/api/v1/sessions/{session}/transcript"
    assert (s["provider"], s["model"]) == ("mock", "default")
    assert_iso(s["createdAt"])
    assert s["createdAt"] <= s["updatedAt"]


def test_transcript_seed_shape_and_tail_semantics(rest: httpx.Client) -> None:
    session = new_session()
    for text in ("one", "two", "three"):
        run(rest, session, text)
    items = ok_data(rest.get(f"/api/v1/sessions/{session}/transcript"))["items"]
    assert [(e["role"], e["content"]) for e in items][:2] == [("user", "one"), ("assistant", "Echo: user: one")]
    assert len(items) == 6
    user = items[0]
    assert set(user) == {"id", "role", "content", "createdAt", "runId"}
    assert_iso(user["createdAt"])
    data = ok_data(rest.get(f"/api/v1/sessions/{session}/transcript", params={"limit": 2}))
    assert set(data) == {"items"}
    assert [e["id"] for e in data["items"]] == [e["id"] for e in items[-2:]]
    after = ok_data(rest.get(f"/api/v1/sessions/{session}/transcript", params={"after": items[1]["id"], "limit": 2}))
    assert [e["id"] for e in after["items"]] == [e["id"] for e in items[2:4]]
    unknown = ok_data(rest.get(f"/api/v1/sessions/{session}/transcript", params={"after": "nope", "limit": 1}))
    assert [e["id"] for e in unknown["items"]] == [items[-1]["id"]]


def test_transcript_of_unknown_session_is_empty(rest: httpx.Client) -> None:
    assert ok_data(rest.get(f"/api/v1/sessions/{new_session()}/transcript")) == {"items": []}


def test_transcript_rejects_bad_session_id(rest: httpx.Client) -> None:
    error_of(rest.get("/api/v1/sessions/bad%20id/transcript"), 400, "CONFIG_ERROR")


def test_work_queue_empty_state(rest: httpx.Client) -> None:
    session = new_session()
    data = ok_data(rest.get(f"/api/v1/sessions/{session}/work-queue"))
    assert set(data) == {"schemaVersion", "sessionId", "items", "draining", "updatedAt"}
    assert (data["schemaVersion"], data["sessionId"], data["items"], data["draining"]) == (1, session, [], False)
    assert_iso(data["updatedAt"])


# -- bad input that never reaches an RPC -----------------------------------------------------------------


def test_unknown_route_is_404_envelope(rest: httpx.Client) -> None:
    error_of(rest.get("/api/v1/nope"), 404, "NOT_FOUND")
    error_of(rest.get("/elsewhere"), 404, "NOT_FOUND")


def test_wrong_method_is_404_envelope(rest: httpx.Client) -> None:
    error_of(rest.delete("/api/v1/capabilities"), 404, "NOT_FOUND")


def test_body_over_limit_is_413(rest: httpx.Client) -> None:
    big = b'{"sessionId":"' + new_session().encode() + b'","input":"' + b"x" * 1_000_000 + b'"}'
    err = error_of(
        rest.post("/api/v1/runs", content=big, headers={"content-type": "application/json"}), 413, "PAYLOAD_TOO_LARGE"
    )
    assert err["message"] == "request.body exceeds 1000000 bytes."


def test_body_at_limit_is_accepted(rest: httpx.Client) -> None:
    prefix = b'{"sessionId":"' + new_session().encode() + b'","input":"'
    body = prefix + b"x" * (1_000_000 - len(prefix) - 2) + b'"}'
    assert len(body) == 1_000_000
    resp = rest.post("/api/v1/runs", content=body, headers={"content-type": "application/json"})
    # Reaches the server, which answers on its own terms (the input alone overflows the context window).
    error_of(resp, 413, "CONTEXT_OVERFLOW")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "request.body must contain valid JSON."),
        (b"[1, 2]", "request.body must be a JSON object."),
        (b'"text"', "request.body must be a JSON object."),
    ],
)
def test_malformed_bodies_are_config_errors(rest: httpx.Client, content: bytes, message: str) -> None:
    resp = rest.post("/api/v1/runs", content=content, headers={"content-type": "application/json"})
    assert error_of(resp, 400, "CONFIG_ERROR")["message"] == message


def test_empty_body_is_an_empty_object(rest: httpx.Client) -> None:
    err = error_of(rest.post("/api/v1/runs", content=b"  "), 400, "CONFIG_ERROR")
    assert "sessionId" in err["message"]
