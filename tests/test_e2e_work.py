"""Session work queues end to end (seed 002 #7, #10, #11): enqueue modes and de-duplication, draining in
order (followup alone, consecutive collect items merged), a failing run stopping the drain, one drain per
session at a time, and a drain cut short by SIGKILL losing no item."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from athena.v1 import work_pb2, work_pb2_grpc
from tests.support.events import events_of
from tests.support.processes import AthenaProcess, Served, running_api, serving
from tests.support.runs import wait_active, wait_status
from tests.support.shapes import assert_iso, error_of, new_session, ok_data
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(tmp_path_factory.mktemp("work"), env={"ATHENA_SESSION_LOCK_TIMEOUT_MS": "120000"}) as s:
        yield s


@pytest.fixture(scope="module")
def server(served: Served) -> AthenaProcess:
    return served.process


@pytest.fixture(scope="module")
def client(served: Served) -> httpx.Client:
    return served.rest


def enqueue(client: httpx.Client, sid: str, payload: str, mode: str) -> dict[str, Any]:
    return ok_data(client.post("/api/v1/work/enqueue", json={"sessionId": sid, "payload": payload, "mode": mode}))


def queue(client: httpx.Client, sid: str) -> dict[str, Any]:
    return ok_data(client.get(f"/api/v1/sessions/{sid}/work-queue"))


def user_inputs(client: httpx.Client, sid: str) -> list[str]:
    entries = ok_data(client.get(f"/api/v1/sessions/{sid}/transcript"))["items"]
    return [e["content"] for e in entries if e["role"] == "user"]


def test_seed_enqueue_and_drain_shapes(client: httpx.Client) -> None:
    sid = new_session()
    state = enqueue(client, sid, "follow-up task", "followup")
    assert set(state) == {"schemaVersion", "sessionId", "items", "draining", "updatedAt"}
    assert (state["schemaVersion"], state["sessionId"], state["draining"]) == (1, sid, False)
    [item] = state["items"]
    assert set(item) == {"id", "sessionId", "payload", "mode", "createdAt"}
    assert (item["sessionId"], item["payload"], item["mode"]) == (sid, "follow-up task", "followup")
    assert_iso(item["createdAt"])
    assert queue(client, sid) == state

    drained = ok_data(client.post(f"/api/v1/work/{sid}/drain", json={"provider": "mock", "model": "default"}))
    assert drained == {"status": "ok", "drainedItems": 1, "queueDepthBefore": 1, "queueDepthAfter": 0}
    after = queue(client, sid)
    assert (after["items"], after["draining"]) == ([], False)
    assert user_inputs(client, sid) == ["follow-up task"]
    [event] = events_of(client, sid, "work.drained")
    assert event["payload"] == {"status": "ok", "drainedItems": 1, "queueDepthBefore": 1, "queueDepthAfter": 0}


def test_enqueue_validation(client: httpx.Client) -> None:
    err = error_of(
        client.post("/api/v1/work/enqueue", json={"sessionId": "s1", "payload": "x", "mode": "later"}),
        400,
        "CONFIG_ERROR",
    )
    assert err["message"] == "work.enqueue.mode must be 'followup' or 'collect'."
    error_of(client.post("/api/v1/work/enqueue", json={"sessionId": "s1", "payload": "x"}), 400, "CONFIG_ERROR")
    error_of(client.post("/api/v1/work/enqueue", json={"payload": "x", "mode": "collect"}), 400, "CONFIG_ERROR")
    error_of(client.post("/api/v1/work/enqueue", json={"sessionId": "s1", "mode": "collect"}), 400, "CONFIG_ERROR")


def test_duplicate_payload_and_mode_is_a_no_op(client: httpx.Client) -> None:
    sid = new_session()
    first = enqueue(client, sid, "same", "followup")
    time.sleep(0.01)  # on purpose: time passes, so a touched updatedAt would differ
    again = enqueue(client, sid, "same", "followup")
    assert again == first  # same item, updatedAt untouched
    other_mode = enqueue(client, sid, "same", "collect")
    assert [(i["payload"], i["mode"]) for i in other_mode["items"]] == [("same", "followup"), ("same", "collect")]
    assert [e["payload"]["queueDepth"] for e in events_of(client, sid, "work.enqueued")] == [1, 2]


def test_drain_runs_followups_alone_and_merges_consecutive_collects(client: httpx.Client) -> None:
    sid = new_session()
    queued = [("f1", "followup"), ("c1", "collect"), ("c2", "collect"), ("f2", "followup"), ("c3", "collect")]
    for payload, mode in queued:
        enqueue(client, sid, payload, mode)
    drained = ok_data(client.post(f"/api/v1/work/{sid}/drain", json={}))
    assert drained == {"status": "ok", "drainedItems": 5, "queueDepthBefore": 5, "queueDepthAfter": 0}
    assert user_inputs(client, sid) == ["f1", "c1\n\nc2", "f2", "c3"]
    # Each batch is an ordinary run with its lifecycle events, in order.
    completed = events_of(client, sid, "run.completed")
    assert len(completed) == 4 and len({e["runId"] for e in completed}) == 4


def test_failing_run_stops_the_drain_and_keeps_the_rest_queued(client: httpx.Client) -> None:
    sid = new_session()
    enqueue(client, sid, "first", "followup")
    enqueue(client, sid, "a" * 20_000, "collect")  # each fits alone; merged they overflow the context
    enqueue(client, sid, "b" * 20_000, "collect")
    enqueue(client, sid, "third", "followup")
    err = error_of(client.post(f"/api/v1/work/{sid}/drain", json={}), 413, "CONTEXT_OVERFLOW")
    assert "context" in err["message"].lower()
    state = queue(client, sid)
    assert [i["payload"][:5] for i in state["items"]] == ["aaaaa", "bbbbb", "third"]
    assert state["draining"] is False
    # The refused run was decided before anything was stored; the item after it never ran.
    assert user_inputs(client, sid) == ["first"]
    [event] = events_of(client, sid, "work.drained")
    assert event["payload"]["status"] == "failed" and event["payload"]["drainedItems"] == 1
    assert event["payload"]["queueDepthAfter"] == 3
    assert event["payload"]["error"]["code"] == "CONTEXT_OVERFLOW"


def test_an_item_that_can_never_fit_the_context_is_refused_when_queued(client: httpx.Client) -> None:
    sid = new_session()
    err = error_of(
        client.post("/api/v1/work/enqueue", json={"sessionId": sid, "payload": "x" * 31_000, "mode": "followup"}),
        413,
        "CONTEXT_OVERFLOW",
    )
    assert "context" in err["message"].lower()
    assert queue(client, sid)["items"] == []


def test_second_drain_of_a_session_answers_already_draining(client: httpx.Client, server: AthenaProcess) -> None:
    sid = new_session()
    # A run holds the session until the test cancels it, so the drain's run waits for its turn while the
    # drain is under way.
    hold = {"sessionId": sid, "input": "hold", "wait": False, "metadata": {"mock.delayMs": "60000"}}
    blocker = ok_data(client.post("/api/v1/runs", json=hold), 202)
    wait_active(client, sid)
    enqueue(client, sid, "later", "followup")
    first: list[httpx.Response] = []
    t = threading.Thread(target=lambda: first.append(client.post(f"/api/v1/work/{sid}/drain", json={})))
    t.start()
    wait_until(lambda: queue(client, sid)["draining"], "the first drain to be under way")
    second = ok_data(client.post(f"/api/v1/work/{sid}/drain", json={}))
    assert second == {"status": "already-draining", "drainedItems": 0, "queueDepthBefore": 1, "queueDepthAfter": 1}
    # gRPC callers get the same answer.
    with grpc.insecure_channel(server.grpc_target) as ch:
        resp = work_pb2_grpc.WorkServiceStub(ch).DrainWork(work_pb2.DrainWorkRequest(session_id=sid))
    assert resp.status == work_pb2.DRAIN_STATUS_ALREADY_DRAINING and resp.queue_depth_before == 1
    ok_data(client.post(f"/api/v1/run-control/by-run/{blocker['runId']}/cancel", json={}))
    t.join(60)
    assert not t.is_alive()
    assert ok_data(first[0])["drainedItems"] == 1
    wait_status(client, blocker["runId"], "cancelled")
    assert user_inputs(client, sid) == ["hold", "later"]


def test_drain_over_grpc(server: AthenaProcess) -> None:
    sid = new_session()
    with grpc.insecure_channel(server.grpc_target) as ch:
        stub = work_pb2_grpc.WorkServiceStub(ch)
        stub.EnqueueWork(work_pb2.EnqueueWorkRequest(session_id=sid, payload="a", mode=work_pb2.WORK_MODE_COLLECT))
        stub.EnqueueWork(work_pb2.EnqueueWorkRequest(session_id=sid, payload="b", mode=work_pb2.WORK_MODE_COLLECT))
        resp = stub.DrainWork(work_pb2.DrainWorkRequest(session_id=sid))
        assert (resp.status, resp.drained_items, resp.queue_depth_before, resp.queue_depth_after) == (
            work_pb2.DRAIN_STATUS_OK,
            2,
            2,
            0,
        )
        with pytest.raises(grpc.RpcError) as exc:
            stub.DrainWork(work_pb2.DrainWorkRequest(session_id=""))
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_drain_killed_mid_run_loses_no_item(workdir: Path) -> None:
    sid = new_session()
    with running_api(workdir) as p, httpx.Client(base_url=p.rest_url, timeout=60) as client:
        ok_data(
            client.post(
                "/api/v1/runs",
                json={"sessionId": sid, "input": "hold", "wait": False, "metadata": {"mock.delayMs": "60000"}},
            ),
            202,
        )
        enqueue(client, sid, "one", "collect")
        enqueue(client, sid, "two", "collect")
        threading.Thread(target=lambda: _quietly(client.post, f"/api/v1/work/{sid}/drain", json={})).start()
        wait_until(lambda: queue(client, sid)["draining"], "the drain to be under way")
        # The drain's run exists (its run.created is logged) and waits for the session.
        wait_until(lambda: len(events_of(client, sid, "run.created")) == 2, "the drain's run to be created")
        p.stop(signal.SIGKILL)
    with running_api(workdir) as p, httpx.Client(base_url=p.rest_url, timeout=60) as client:
        state = queue(client, sid)
        assert state["draining"] is False
        assert [i["payload"] for i in state["items"]] == ["one", "two"]
        drained = ok_data(client.post(f"/api/v1/work/{sid}/drain", json={}))
        assert drained == {"status": "ok", "drainedItems": 2, "queueDepthBefore": 2, "queueDepthAfter": 0}
        assert user_inputs(client, sid) == ["hold", "one\n\ntwo"]


def _quietly(call: Any, *args: Any, **kwargs: Any) -> None:
    try:
        call(*args, **kwargs)
    except httpx.HTTPError:
        pass


def test_draining_a_session_never_used_drains_nothing(client: httpx.Client) -> None:
    sid = new_session()
    assert ok_data(client.post(f"/api/v1/work/{sid}/drain", json={})) == {
        "status": "ok",
        "drainedItems": 0,
        "queueDepthBefore": 0,
        "queueDepthAfter": 0,
    }
    assert queue(client, sid)["items"] == []
