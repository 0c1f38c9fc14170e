"""Runs end to end through REST and gRPC: the lifecycle, `wait: false`, run control (active runs, cancel by
run and by session), serial sessions (wait, lock timeout, interrupt, enqueue) and Idempotency-Key."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import httpx
import pytest

from athena.v1 import runs_pb2, runs_pb2_grpc
from tests.servers import AthenaProcess, start_api
from tests.shapes import assert_iso, error_of, new_session, ok_data

SLOW = {"mock.delayMs": "20000"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AthenaProcess]:
    p = start_api(tmp_path_factory.mktemp("runs"), env={"ATHENA_SESSION_LOCK_TIMEOUT_MS": "1500"})
    yield p
    p.stop()


@pytest.fixture(scope="module")
def client(server: AthenaProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.rest_url, timeout=60) as c:
        yield c


def start_in_thread(client: httpx.Client, body: dict[str, Any], **kw: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(client.post("/api/v1/runs", json=body, **kw)))
    t.start()
    return t, out


def wait_active(client: httpx.Client, session_id: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = ok_data(client.get("/api/v1/runs/active", params={"sessionId": session_id}))["items"]
        if items:
            return items[0]
        time.sleep(0.02)
    raise AssertionError(f"no active run in {session_id}")


def wait_status(client: httpx.Client, run_id: str, statuses: set[str], timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = ok_data(client.get(f"/api/v1/runs/{run_id}"))
        if run["status"] in statuses:
            return run
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} never reached {statuses}")


def events_of(client: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    return [
        e for e in ok_data(client.get("/api/v1/events", params={"limit": 500}))["events"] if e.get("runId") == run_id
    ]


def test_seed_3_run_then_the_run_resource_is_the_authority(client: httpx.Client) -> None:
    sid = new_session()
    data = ok_data(
        client.post("/api/v1/runs", json={"sessionId": sid, "input": "hello", "provider": "mock", "model": "default"})
    )
    assert {k: data[k] for k in ("sessionId", "output", "provider", "model")} == {
        "sessionId": sid,
        "output": "Echo: user: hello",
        "provider": "mock",
        "model": "default",
    }
    assert_iso(data["createdAt"])
    assert data["status"] == "succeeded"
    assert data["verificationStatus"] == "passed"
    assert data["evidenceCount"] == 0
    assert data["attempts"] == 1
    assert data["harnessProfileSnapshot"]["displayName"] == "Shadow Harness Profile"
    assert data["harnessProfileSnapshot"]["config"] == {
        "provider": "mock",
        "model": "default",
        "tools": ["shadow-directive"],
        "command": [],
    }
    assert data["harnessProfileId"].startswith("shadow-harness-")
    # The raw input is recorded as a shadow directive, listed with the directives.
    assert data["directiveId"]
    run = ok_data(client.get(f"/api/v1/runs/{data['runId']}"))
    assert run["status"] == "succeeded" and run["output"] == "Echo: user: hello"
    assert run["attempts"] == 1 and run["timeoutMs"] == 30000
    assert run["usage"] == {"inputTokens": 11, "outputTokens": 17, "totalTokens": 28}
    for key in ("createdAt", "startedAt", "finishedAt"):
        assert_iso(run[key])
    assert [e["type"] for e in events_of(client, data["runId"])] == ["run.created", "run.started", "run.completed"]


def test_wait_false_answers_202_with_the_run_then_it_finishes(client: httpx.Client) -> None:
    sid = new_session()
    resp = client.post("/api/v1/runs", json={"sessionId": sid, "input": "later", "wait": False})
    data = ok_data(resp, 202)
    assert data["status"] in ("running", "pending") and "output" not in data
    run = wait_status(client, data["runId"], {"succeeded"})
    assert run["output"] == "Echo: user: later"


def test_validation_errors(client: httpx.Client) -> None:
    sid = new_session()
    cases = [
        ({"sessionId": sid}, "runs.create requires either input or directiveId."),
        (
            {"sessionId": sid, "input": "x", "directiveId": "d"},
            "runs.create.input cannot be combined with directiveId.",
        ),
        (
            {"sessionId": sid, "input": "x", "harnessProfileId": "h", "provider": "mock"},
            "runs.create.provider/model cannot be combined with harnessProfileId.",
        ),
        (
            {"sessionId": sid, "directiveId": "nope"},
            "runs.create.directiveId must reference an existing directive. Received: nope.",
        ),
        (
            {"sessionId": sid, "input": "x", "harnessProfileId": "nope"},
            "runs.create.harnessProfileId must reference an existing harness profile. Received: nope.",
        ),
    ]
    for body, message in cases:
        assert error_of(client.post("/api/v1/runs", json=body), 400, "CONFIG_ERROR")["message"] == message
    error_of(
        client.post("/api/v1/runs", json={"sessionId": sid, "input": "x", "provider": "nope"}),
        404,
        "PROVIDER_NOT_FOUND",
    )
    error_of(client.get("/api/v1/runs/does-not-exist"), 404, "NOT_FOUND")
    # Nothing was created for the refused requests.
    assert ok_data(client.get("/api/v1/sessions/" + sid + "/transcript"))["items"] == []


def test_cancel_by_run_id_stops_the_run_within_a_second(server: AthenaProcess, client: httpx.Client) -> None:
    sid = new_session()
    t, out = start_in_thread(client, {"sessionId": sid, "input": "slow", "metadata": SLOW})
    active = wait_active(client, sid)
    assert active["pid"] == server.proc.pid
    assert set(active) == {"sessionId", "pid", "startedAt", "runId", "traceId"}
    run_id = active["runId"]
    requested = time.monotonic()
    data = ok_data(client.post(f"/api/v1/run-control/by-run/{run_id}/cancel", json={"reason": "operator cancel"}))
    assert data == {"runId": run_id, "status": "cancelled", "sessionId": sid}
    t.join(5)
    stopped = time.monotonic() - requested
    assert stopped < 1.0, stopped
    err = error_of(out[0], 409, "RUN_CANCELLED")
    assert err["message"] == "Run cancelled: operator cancel"
    run = ok_data(client.get(f"/api/v1/runs/{run_id}"))
    assert run["status"] == "cancelled" and run["error"]["code"] == "RUN_CANCELLED"
    # Idempotent: the run is no longer active, the request was consumed.
    again = ok_data(client.post(f"/api/v1/run-control/by-run/{run_id}/cancel", json={}))
    assert again == {"runId": run_id, "status": "not-running"}
    assert ok_data(client.get("/api/v1/runs/active", params={"runId": run_id}))["items"] == []
    assert ok_data(client.get("/api/v1/runs/cancel-requests", params={"runId": run_id}))["items"] == []
    types = [e["type"] for e in events_of(client, run_id)]
    assert types == ["run.created", "run.started", "run.cancel.requested", "run.cancelled", "run.cancel.requested"]
    # The session is free again.
    ok_data(client.post("/api/v1/runs", json={"sessionId": sid, "input": "after"}))


def test_seed_7_not_running_and_seed_6_cancel_by_session(client: httpx.Client) -> None:
    assert ok_data(client.post("/api/v1/run-control/by-run/missing_run/cancel", json={"reason": "x"})) == {
        "runId": "missing_run",
        "status": "not-running",
    }
    sid = new_session()
    assert ok_data(client.post(f"/api/v1/runs/{sid}/cancel", json={"reason": "operator cancel"})) == {
        "sessionId": sid,
        "status": "not-running",
    }
    t, out = start_in_thread(client, {"sessionId": sid, "input": "slow", "metadata": SLOW})
    wait_active(client, sid)
    assert ok_data(client.post(f"/api/v1/runs/{sid}/cancel", json={})) == {"sessionId": sid, "status": "cancelled"}
    t.join(5)
    assert error_of(out[0], 409, "RUN_CANCELLED")["message"] == "Run cancelled by API request."
    error_of(client.post("/api/v1/runs/bad id/cancel", json={}), 400, "CONFIG_ERROR")


def test_cancel_of_a_202_run_and_of_a_pending_run(client: httpx.Client) -> None:
    sid = new_session()
    first = ok_data(
        client.post("/api/v1/runs", json={"sessionId": sid, "input": "a", "metadata": SLOW, "wait": False}), 202
    )
    second = ok_data(client.post("/api/v1/runs", json={"sessionId": sid, "input": "b", "wait": False}), 202)
    assert second["status"] == "pending"
    # Cancelling the waiting run ends it without it ever running.
    ok_data(client.post(f"/api/v1/run-control/by-run/{second['runId']}/cancel", json={}))
    run = wait_status(client, second["runId"], {"cancelled"})
    assert "startedAt" not in run
    ok_data(client.post(f"/api/v1/run-control/by-run/{first['runId']}/cancel", json={}))
    wait_status(client, first["runId"], {"cancelled"}, timeout=2)
    transcript = ok_data(client.get(f"/api/v1/sessions/{sid}/transcript"))["items"]
    assert [(e["role"], e.get("isError", False)) for e in transcript] == [("user", False), ("assistant", True)]


def test_active_runs_pages_without_duplicates(client: httpx.Client) -> None:
    sessions = [new_session() for _ in range(3)]
    runs = [
        ok_data(client.post("/api/v1/runs", json={"sessionId": s, "input": "p", "metadata": SLOW, "wait": False}), 202)
        for s in sessions
    ]
    try:
        for s in sessions:
            wait_active(client, s)
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 1}
            if cursor:
                params["cursor"] = cursor
            page = ok_data(client.get("/api/v1/runs/active", params=params))
            seen += [i["runId"] for i in page["items"]]
            cursor = page.get("nextCursor")
            if not cursor:
                break
        mine = [r["runId"] for r in runs]
        assert len(seen) == len(set(seen))
        assert set(mine) <= set(seen)
        started = [i for i in seen if i in mine]
        assert len(started) == 3
        error_of(client.get("/api/v1/runs/active", params={"cursor": "!!"}), 400, "CONFIG_ERROR")
        error_of(client.get("/api/v1/runs/cancel-requests", params={"sessionId": "bad id"}), 400, "CONFIG_ERROR")
    finally:
        for r in runs:
            client.post(f"/api/v1/run-control/by-run/{r['runId']}/cancel", json={})


def test_runs_in_one_session_are_serial(client: httpx.Client) -> None:
    sid = new_session()
    body = {"sessionId": sid, "metadata": {"mock.delayMs": "300"}}
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda i: client.post("/api/v1/runs", json={**body, "input": f"n{i}"}), range(3)))
    outputs = {ok_data(r)["output"] for r in results}
    transcript = ok_data(client.get(f"/api/v1/sessions/{sid}/transcript"))["items"]
    assert [e["role"] for e in transcript] == ["user", "assistant"] * 3
    # Each run saw exactly the turns of the runs before it (the mock echoes its compiled context).
    for i in range(0, 6, 2):
        turns = [f"{e['role']}: {e['content']}" for e in transcript[: i + 1]]
        assert transcript[i + 1]["content"] == "Echo: " + "\n\n".join(turns)
    assert outputs == {transcript[i]["content"] for i in (1, 3, 5)}


def test_session_lock_timeout(client: httpx.Client) -> None:
    sid = new_session()
    first = ok_data(
        client.post("/api/v1/runs", json={"sessionId": sid, "input": "a", "metadata": SLOW, "wait": False}), 202
    )
    wait_active(client, sid)
    started = time.monotonic()
    err = error_of(client.post("/api/v1/runs", json={"sessionId": sid, "input": "b"}), 409, "SESSION_LOCK_TIMEOUT")
    assert 1.4 < time.monotonic() - started < 5
    assert sid in err["message"]
    ok_data(client.post(f"/api/v1/run-control/by-run/{first['runId']}/cancel", json={}))


def test_interrupt_cancels_the_active_run_first(client: httpx.Client) -> None:
    sid = new_session()
    t, out = start_in_thread(client, {"sessionId": sid, "input": "a", "metadata": SLOW})
    wait_active(client, sid)
    data = ok_data(
        client.post("/api/v1/runs", json={"sessionId": sid, "input": "b", "runningRunBehavior": "interrupt"})
    )
    assert data["output"].endswith("user: b")
    t.join(5)
    assert error_of(out[0], 409, "RUN_CANCELLED")["message"] == "Run cancelled: interrupted by a new run in the session"


def test_enqueue_puts_the_input_on_the_work_queue(client: httpx.Client) -> None:
    sid = new_session()
    first = ok_data(
        client.post("/api/v1/runs", json={"sessionId": sid, "input": "a", "metadata": SLOW, "wait": False}), 202
    )
    wait_active(client, sid)
    data = ok_data(
        client.post("/api/v1/runs", json={"sessionId": sid, "input": "later please", "runningRunBehavior": "enqueue"}),
        202,
    )
    assert "runId" not in data and "status" not in data
    assert data["queueDepth"] == 1
    assert data["queuedItem"]["payload"] == "later please" and data["queuedItem"]["mode"] == "followup"
    queue = ok_data(client.get(f"/api/v1/sessions/{sid}/work-queue"))
    assert [i["payload"] for i in queue["items"]] == ["later please"]
    assert queue["draining"] is False
    ok_data(client.post(f"/api/v1/run-control/by-run/{first['runId']}/cancel", json={}))
    # A free session runs at once even with `enqueue`.
    sid2 = new_session()
    assert (
        ok_data(client.post("/api/v1/runs", json={"sessionId": sid2, "input": "x", "runningRunBehavior": "enqueue"}))[
            "status"
        ]
        == "succeeded"
    )
    error_of(
        client.post("/api/v1/runs", json={"sessionId": sid2, "input": "x", "runningRunBehavior": "sideways"}),
        400,
        "CONFIG_ERROR",
    )


def test_idempotency_key_replays_the_first_answer(client: httpx.Client) -> None:
    sid = new_session()
    key = {"Idempotency-Key": f"k-{sid}"}
    body = {"sessionId": sid, "input": "once"}
    first = ok_data(client.post("/api/v1/runs", json=body, headers=key))
    again = ok_data(client.post("/api/v1/runs", json=body, headers=key))
    assert again == first
    transcript = ok_data(client.get(f"/api/v1/sessions/{sid}/transcript"))["items"]
    assert len(transcript) == 2
    err = error_of(
        client.post("/api/v1/runs", json={**body, "input": "twice"}, headers=key), 422, "IDEMPOTENCY_KEY_REUSED"
    )
    assert "different request" in err["message"]
    # Concurrent first requests with one key: one run, every caller gets its answer.
    sid2 = new_session()
    key2 = {"Idempotency-Key": f"k-{sid2}"}
    body2 = {"sessionId": sid2, "input": "race", "metadata": {"mock.delayMs": "200"}}
    with ThreadPoolExecutor(5) as pool:
        answers = [
            ok_data(r) for r in pool.map(lambda _: client.post("/api/v1/runs", json=body2, headers=key2), range(5))
        ]
    assert len({a["runId"] for a in answers}) == 1
    assert len(ok_data(client.get(f"/api/v1/sessions/{sid2}/transcript"))["items"]) == 2
    # A 202 is replayed as a 202.
    key3 = {"Idempotency-Key": f"k3-{sid2}"}
    body3 = {"sessionId": new_session(), "input": "bg", "wait": False}
    a = ok_data(client.post("/api/v1/runs", json=body3, headers=key3), 202)
    b = ok_data(client.post("/api/v1/runs", json=body3, headers=key3), 202)
    assert a["runId"] == b["runId"]


def test_grpc_create_get_cancel(server: AthenaProcess, client: httpx.Client) -> None:
    with grpc.insecure_channel(server.grpc_target) as ch:
        stub = runs_pb2_grpc.RunServiceStub(ch)
        sid = new_session()
        result = stub.CreateRun(runs_pb2.CreateRunRequest(session_id=sid, input="hi")).result
        assert result.output == "Echo: user: hi" and result.status == runs_pb2.RUN_STATUS_SUCCEEDED
        run = stub.GetRun(runs_pb2.GetRunRequest(run_id=result.run_id)).run
        assert run.status == runs_pb2.RUN_STATUS_SUCCEEDED
        slow = stub.CreateRun.future(runs_pb2.CreateRunRequest(session_id=sid, input="slow", metadata=SLOW))
        active = wait_active(client, sid)
        listed = stub.ListActiveRuns(runs_pb2.ListActiveRunsRequest(session_id=sid))
        assert [i.run_id for i in listed.items] == [active["runId"]]
        resp = stub.CancelRunByRunId(runs_pb2.CancelRunByRunIdRequest(run_id=active["runId"], reason="grpc"))
        assert resp.status == runs_pb2.CANCEL_STATUS_CANCELLED and resp.session_id == sid
        with pytest.raises(grpc.RpcError) as info:
            slow.result(timeout=5)
        assert info.value.code() == grpc.StatusCode.ABORTED


def test_a_caller_leaving_while_its_run_waits_ends_that_run(server: AthenaProcess, client: httpx.Client) -> None:
    """A gRPC deadline cancels the call while the run waits for its session: the run is recorded as
    cancelled (not left pending, which would hold the session), and the session stays usable."""
    sid = new_session()
    first = ok_data(
        client.post("/api/v1/runs", json={"sessionId": sid, "input": "a", "metadata": SLOW, "wait": False}), 202
    )
    wait_active(client, sid)
    with grpc.insecure_channel(server.grpc_target) as ch:
        with pytest.raises(grpc.RpcError) as info:
            runs_pb2_grpc.RunServiceStub(ch).CreateRun(
                runs_pb2.CreateRunRequest(session_id=sid, input="b"), timeout=0.3
            )
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    deadline = time.monotonic() + 5
    waiting: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        events = ok_data(client.get("/api/v1/events", params={"sessionId": sid, "types": "run.cancelled"}))["events"]
        waiting = [e for e in events if e["runId"] != first["runId"]]
        if waiting:
            break
        time.sleep(0.05)
    assert waiting, "the abandoned run was not ended"
    run = ok_data(client.get(f"/api/v1/runs/{waiting[0]['runId']}"))
    assert run["status"] == "cancelled" and run["error"]["message"] == "Run cancelled: the caller disconnected."
    ok_data(client.post(f"/api/v1/run-control/by-run/{first['runId']}/cancel", json={}))
    assert ok_data(client.post("/api/v1/runs", json={"sessionId": sid, "input": "c"}))["status"] == "succeeded"
