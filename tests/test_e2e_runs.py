"""Runs end to end through REST and gRPC: the lifecycle, `wait: false`, run control (active runs, cancel by
run and by session), serial sessions (wait, lock timeout, interrupt, enqueue) and Idempotency-Key."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import httpx
import pytest

from athena.v1 import runs_pb2, runs_pb2_grpc
from tests.support.events import events_of
from tests.support.processes import AthenaProcess, Served, serving
from tests.support.runs import run_events, wait_active, wait_status
from tests.support.shapes import assert_iso, error_of, new_session, ok_data
from tests.support.waiting import wait_until

SLOW = {"mock.delayMs": "20000"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(tmp_path_factory.mktemp("runs"), env={"ATHENA_SESSION_LOCK_TIMEOUT_MS": "1500"}) as s:
        yield s


@pytest.fixture(scope="module")
def server(served: Served) -> AthenaProcess:
    return served.process


@pytest.fixture(scope="module")
def client(served: Served) -> httpx.Client:
    return served.rest


def start_in_thread(client: httpx.Client, body: dict[str, Any], **kw: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(client.post("/api/v1/runs", json=body, **kw)))
    t.start()
    return t, out


def finished(t: threading.Thread) -> None:
    """The request thread has its answer (the join's timeout only bounds a hang)."""
    t.join(60)
    assert not t.is_alive(), "the request never returned"


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
    assert run_events(client, data["runId"]) == ["run.created", "run.started", "run.completed"]


def test_wait_false_answers_202_with_the_run_then_it_finishes(client: httpx.Client) -> None:
    sid = new_session()
    resp = client.post("/api/v1/runs", json={"sessionId": sid, "input": "later", "wait": False})
    data = ok_data(resp, 202)
    assert data["status"] in ("running", "pending") and "output" not in data
    run = wait_status(client, data["runId"], "succeeded")
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


def test_cancel_by_run_id_stops_the_running_run(server: AthenaProcess, client: httpx.Client) -> None:
    sid = new_session()
    t, out = start_in_thread(client, {"sessionId": sid, "input": "slow", "metadata": SLOW})
    active = wait_active(client, sid)
    assert active["pid"] == server.proc.pid
    assert set(active) == {"sessionId", "pid", "startedAt", "runId", "traceId"}
    run_id = active["runId"]
    data = ok_data(client.post(f"/api/v1/run-control/by-run/{run_id}/cancel", json={"reason": "operator cancel"}))
    assert data == {"runId": run_id, "status": "cancelled", "sessionId": sid}
    # The run (a 20 s mock call) was stopped, not left to finish: its caller gets RUN_CANCELLED.
    finished(t)
    err = error_of(out[0], 409, "RUN_CANCELLED")
    assert err["message"] == "Run cancelled: operator cancel"
    run = ok_data(client.get(f"/api/v1/runs/{run_id}"))
    assert run["status"] == "cancelled" and run["error"]["code"] == "RUN_CANCELLED"
    # Idempotent: the run is no longer active, the request was consumed.
    again = ok_data(client.post(f"/api/v1/run-control/by-run/{run_id}/cancel", json={}))
    assert again == {"runId": run_id, "status": "not-running"}
    assert ok_data(client.get("/api/v1/runs/active", params={"runId": run_id}))["items"] == []
    assert ok_data(client.get("/api/v1/runs/cancel-requests", params={"runId": run_id}))["items"] == []
    types = run_events(client, run_id)
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
    finished(t)
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
    run = wait_status(client, second["runId"], "cancelled")
    assert "startedAt" not in run
    ok_data(client.post(f"/api/v1/run-control/by-run/{first['runId']}/cancel", json={}))
    wait_status(client, first["runId"], "cancelled")
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
    holder = wait_active(client, sid)
    err = error_of(client.post("/api/v1/runs", json={"sessionId": sid, "input": "b"}), 409, "SESSION_LOCK_TIMEOUT")
    assert sid in err["message"]
    # The second run gave up waiting while the first still held the session: the first is untouched.
    assert holder["runId"] == first["runId"]
    assert wait_active(client, sid)["runId"] == first["runId"]
    assert run_events(client, first["runId"]) == ["run.created", "run.started"]
    ok_data(client.post(f"/api/v1/run-control/by-run/{first['runId']}/cancel", json={}))


def test_interrupt_cancels_the_active_run_first(client: httpx.Client) -> None:
    sid = new_session()
    t, out = start_in_thread(client, {"sessionId": sid, "input": "a", "metadata": SLOW})
    first = wait_active(client, sid)["runId"]
    data = ok_data(
        client.post("/api/v1/runs", json={"sessionId": sid, "input": "b", "runningRunBehavior": "interrupt"})
    )
    assert data["output"].endswith("user: b")
    finished(t)
    assert error_of(out[0], 409, "RUN_CANCELLED")["message"] == "Run cancelled: interrupted by a new run in the session"
    # The log shows the order: the running run ended before the new one started.
    ordered = [(e["type"], e["runId"]) for e in events_of(client, sid, "run.started", "run.cancelled", "run.completed")]
    second = data["runId"]
    assert ordered == [
        ("run.started", first),
        ("run.cancelled", first),
        ("run.started", second),
        ("run.completed", second),
    ]


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
    """A gRPC caller that leaves while its run waits for its session: the run is recorded as cancelled (not
    left pending, which would hold the session), and the session stays usable. The caller leaves once its
    run exists (its run.created is in the log), so the run is certainly waiting when the call ends."""
    sid = new_session()
    first = ok_data(
        client.post("/api/v1/runs", json={"sessionId": sid, "input": "a", "metadata": SLOW, "wait": False}), 202
    )
    wait_active(client, sid)
    with grpc.insecure_channel(server.grpc_target) as ch:
        call = runs_pb2_grpc.RunServiceStub(ch).CreateRun.future(runs_pb2.CreateRunRequest(session_id=sid, input="b"))
        [created] = wait_until(
            lambda: [e for e in events_of(client, sid, "run.created") if e["runId"] != first["runId"]],
            "the second run to be created",
        )
        assert ok_data(client.get(f"/api/v1/runs/{created['runId']}"))["status"] == "pending"
        call.cancel()
        with pytest.raises(grpc.FutureCancelledError):
            call.result(timeout=60)
    run = wait_status(client, created["runId"], "cancelled")
    assert run["error"]["message"] == "Run cancelled: the caller disconnected."
    assert run_events(client, created["runId"]) == ["run.created", "run.cancelled"]
    assert wait_active(client, sid)["runId"] == first["runId"]
    ok_data(client.post(f"/api/v1/run-control/by-run/{first['runId']}/cancel", json={}))
    assert ok_data(client.post("/api/v1/runs", json={"sessionId": sid, "input": "c"}))["status"] == "succeeded"
