"""Schedules end to end (seed 002 #12-20): upserts, enable/disable, manual runs, ticks that fire each due
slot once and move the schedule past `at`, skipped slots of a still-running schedule, the schedule
timeout, logs, and exactly-once firing with two server processes on one PostgreSQL database, through
explicit ticks and through the background tickers."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from athena.v1 import schedules_pb2, schedules_pb2_grpc
from athena_server.timefmt import iso, parse_iso
from tests.postgres import servers_on_one_database
from tests.servers import AthenaProcess, start_api
from tests.shapes import assert_iso, error_of, new_session, ok_data

MINUTE = 60_000
TASK_KEYS = {
    "schemaVersion",
    "id",
    "sessionId",
    "input",
    "everyMinutes",
    "enabled",
    "running",
    "createdAt",
    "updatedAt",
    "nextRunAt",
    "metadata",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AthenaProcess]:
    # The background ticker is off here: these tests drive time with explicit ticks.
    p = start_api(tmp_path_factory.mktemp("schedules"), env={"ATHENA_SCHEDULE_TICK_SECONDS": "0"})
    yield p
    p.stop()


@pytest.fixture(scope="module")
def client(server: AthenaProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.rest_url, timeout=60) as c:
        yield c


def ms(value: str) -> int:
    parsed = parse_iso(value)
    assert parsed is not None, value
    return parsed


def create(client: httpx.Client, sid: str, **fields: Any) -> dict[str, Any]:
    body = {"id": sid, "sessionId": new_session(), "input": f"scheduled {sid}", "everyMinutes": 5, **fields}
    return ok_data(client.post("/api/v1/schedules", json=body))


def tick(client: httpx.Client, at: int) -> dict[str, Any]:
    return ok_data(client.post("/api/v1/schedules/tick", json={"at": iso(at)}))


def logs(client: httpx.Client, sid: str, **params: Any) -> list[dict[str, Any]]:
    return ok_data(client.get(f"/api/v1/schedules/{sid}/logs", params=params))


def test_seed_tick_with_nothing_due(client: httpx.Client) -> None:
    # First in the module: no schedule exists yet, so the seed's exact answer.
    body = {"at": "2026-02-16T15:00:00.000Z", "provider": "mock", "model": "default"}
    assert ok_data(client.post("/api/v1/schedules/tick", json=body)) == {
        "at": "2026-02-16T15:00:00.000Z",
        "run": [],
        "skipped": 0,
    }


def test_seed_create_update_get_list_delete(client: httpx.Client) -> None:
    seed = {"id": "job1", "sessionId": "s1", "input": "scheduled input", "everyMinutes": 5, "enabled": True}
    task = ok_data(client.post("/api/v1/schedules", json={**seed, "startNow": False}))
    assert set(task) == TASK_KEYS
    assert (task["schemaVersion"], task["id"], task["sessionId"], task["input"]) == (1, "job1", "s1", "scheduled input")
    assert (task["everyMinutes"], task["enabled"], task["running"], task["metadata"]) == (5, True, False, {})
    for key in ("createdAt", "updatedAt", "nextRunAt"):
        assert_iso(task[key])
    assert ms(task["nextRunAt"]) == ms(task["updatedAt"]) + 5 * MINUTE

    put = {
        "sessionId": "s1",
        "input": "updated scheduled input",
        "everyMinutes": 10,
        "enabled": True,
        "startNow": False,
    }
    updated = ok_data(client.put("/api/v1/schedules/job1", json=put))
    assert (updated["input"], updated["everyMinutes"], updated["createdAt"]) == (
        "updated scheduled input",
        10,
        task["createdAt"],
    )
    assert ms(updated["nextRunAt"]) == ms(updated["updatedAt"]) + 10 * MINUTE
    assert ok_data(client.get("/api/v1/schedules/job1")) == updated
    listed = ok_data(client.get("/api/v1/schedules"))
    assert updated in listed["items"] and "nextCursor" not in listed

    assert ok_data(client.delete("/api/v1/schedules/job1")) == {"id": "job1", "removed": True}
    assert ok_data(client.delete("/api/v1/schedules/job1")) == {"id": "job1", "removed": False}
    error_of(client.get("/api/v1/schedules/job1"), 404, "NOT_FOUND")
    error_of(client.post("/api/v1/schedules/job1/run", json={}), 404, "NOT_FOUND")
    error_of(client.get("/api/v1/schedules/job1/logs"), 404, "NOT_FOUND")


def test_list_pages_by_cursor_without_duplicates(client: httpx.Client) -> None:
    ids = [f"page-{i}" for i in range(5)]
    for sid in ids:
        create(client, sid)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = ok_data(client.get("/api/v1/schedules", params=params))
        seen += [t["id"] for t in page["items"]]
        cursor = page.get("nextCursor")
        if cursor is None:
            break
    assert [s for s in seen if s in ids] == ids and len(seen) == len(set(seen))
    error_of(client.get("/api/v1/schedules", params={"cursor": "!!"}), 400, "CONFIG_ERROR")
    for sid in ids:
        ok_data(client.delete(f"/api/v1/schedules/{sid}"))


def test_enable_and_disable(client: httpx.Client) -> None:
    created = create(client, "toggle", startNow=True)
    assert created["nextRunAt"] == created["updatedAt"]  # startNow: due at once
    disabled = ok_data(client.post("/api/v1/schedules/toggle/disable", json={}))
    assert set(disabled) == {"id", "updated", "schedule"} and (disabled["id"], disabled["updated"]) == ("toggle", True)
    assert disabled["schedule"]["enabled"] is False
    assert ms(disabled["schedule"]["nextRunAt"]) == ms(disabled["schedule"]["updatedAt"]) + 5 * MINUTE
    # A disabled schedule is never due.
    assert "toggle" not in [r["id"] for r in tick(client, ms(created["nextRunAt"]) + 60 * MINUTE)["run"]]
    enabled = ok_data(client.post("/api/v1/schedules/toggle/enable", json={}))
    assert enabled["updated"] is True and enabled["schedule"]["enabled"] is True
    assert ok_data(client.post("/api/v1/schedules/nope/enable", json={})) == {"id": "nope", "updated": False}
    assert ok_data(client.post("/api/v1/schedules/nope/disable", json={})) == {"id": "nope", "updated": False}
    ok_data(client.delete("/api/v1/schedules/toggle"))


def test_manual_run_runs_even_when_disabled_and_restarts_the_cadence(client: httpx.Client) -> None:
    created = create(client, "manual", enabled=False)
    result = ok_data(client.post("/api/v1/schedules/manual/run", json={"provider": "mock", "model": "default"}))
    assert set(result) == {"id", "sessionId", "status", "startedAt", "finishedAt", "runId"}
    assert (result["id"], result["sessionId"], result["status"]) == ("manual", created["sessionId"], "ok")
    run = ok_data(client.get(f"/api/v1/runs/{result['runId']}"))
    assert run["status"] == "succeeded" and run["input"] == "scheduled manual"
    assert run["metadata"] == {"scheduleId": "manual"}
    task = ok_data(client.get("/api/v1/schedules/manual"))
    assert task["lastRunAt"] == result["finishedAt"] and task["running"] is False
    assert ms(task["nextRunAt"]) == ms(result["finishedAt"]) + 5 * MINUTE
    [entry] = logs(client, "manual")
    assert set(entry) == {"id", "scheduleId", "sessionId", "startedAt", "finishedAt", "status", "runId"}
    assert (entry["scheduleId"], entry["status"], entry["runId"]) == ("manual", "ok", result["runId"])
    error_of(client.post("/api/v1/schedules/manual/run", json={"provider": "nope"}), 404, "PROVIDER_NOT_FOUND")


def test_tick_fires_each_due_slot_once_and_moves_past_at(client: httpx.Client) -> None:
    created = create(client, "ticked", startNow=True)
    t0 = ms(created["nextRunAt"])
    first = tick(client, t0)
    [fired] = [r for r in first["run"] if r["id"] == "ticked"]
    assert (fired["status"], fired["slotAt"]) == ("ok", iso(t0))
    assert ms(ok_data(client.get("/api/v1/schedules/ticked"))["nextRunAt"]) == t0 + 5 * MINUTE
    # The same instant again, and any instant before the next slot, fires nothing.
    assert "ticked" not in [r["id"] for r in tick(client, t0)["run"]]
    assert "ticked" not in [r["id"] for r in tick(client, t0 + 5 * MINUTE - 1)["run"]]
    # Late by more than two intervals: one run (missed slots are coalesced), then the first slot after at.
    late = tick(client, t0 + 12 * MINUTE)
    assert [r["slotAt"] for r in late["run"] if r["id"] == "ticked"] == [iso(t0 + 5 * MINUTE)]
    task = ok_data(client.get("/api/v1/schedules/ticked"))
    assert ms(task["nextRunAt"]) == t0 + 15 * MINUTE and task["lastRunAt"] == late["run"][0]["finishedAt"]
    assert late["skipped"] == len(ok_data(client.get("/api/v1/schedules", params={"limit": 500}))["items"]) - len(
        late["run"]
    )
    history = logs(client, "ticked")
    assert [e["slotAt"] for e in history] == [iso(t0 + 5 * MINUTE), iso(t0)]  # newest first
    older = logs(client, "ticked", after=history[0]["id"])
    assert [e["id"] for e in older] == [history[1]["id"]]
    assert [e["id"] for e in logs(client, "ticked", limit=1)] == [history[0]["id"]]
    error_of(client.get("/api/v1/schedules/ticked/logs", params={"after": "nope"}), 400, "CONFIG_ERROR")
    kinds = [e["type"] for e in ok_data(client.get("/api/v1/events", params={"limit": 500}))["events"]]
    assert "schedule.tick.executed" in kinds and "schedule.run.triggered" in kinds
    ok_data(client.delete("/api/v1/schedules/ticked"))


def test_cron_schedule(client: httpx.Client) -> None:
    task = create(client, "cron", everyMinutes=None, cron="*/15 * * * *")
    assert task["cron"] == "*/15 * * * *" and task["everyMinutes"] == 0
    next_at = ms(task["nextRunAt"])
    assert next_at % (15 * MINUTE) == 0 and 0 < next_at - ms(task["updatedAt"]) <= 15 * MINUTE
    fired = tick(client, next_at + 31 * MINUTE)
    assert [r["slotAt"] for r in fired["run"] if r["id"] == "cron"] == [iso(next_at)]
    assert ms(ok_data(client.get("/api/v1/schedules/cron"))["nextRunAt"]) == next_at + 45 * MINUTE
    ok_data(client.delete("/api/v1/schedules/cron"))


def test_a_running_schedule_skips_its_slot_and_logs_it(client: httpx.Client) -> None:
    created = create(client, "slow", startNow=True, metadata={"mock.delayMs": "1500"})
    manual: list[httpx.Response] = []
    t = threading.Thread(target=lambda: manual.append(client.post("/api/v1/schedules/slow/run", json={})))
    t.start()
    deadline = time.monotonic() + 10
    while not ok_data(client.get("/api/v1/schedules/slow"))["running"]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    slot = ms(created["nextRunAt"])
    [skipped] = [r for r in tick(client, slot)["run"] if r["id"] == "slow"]
    assert skipped["status"] == "already-running" and skipped["slotAt"] == iso(slot) and "runId" not in skipped
    again = ok_data(client.post("/api/v1/schedules/slow/run", json={}))
    assert again["status"] == "already-running"
    t.join(30)
    assert ok_data(manual[0])["status"] == "ok"
    statuses = [e["status"] for e in logs(client, "slow")]
    assert statuses == ["ok", "already-running", "already-running"]
    # The skipped slot is consumed: the schedule moved past it.
    assert ms(ok_data(client.get("/api/v1/schedules/slow"))["nextRunAt"]) > slot
    ok_data(client.delete("/api/v1/schedules/slow"))


def test_schedule_runs_use_the_schedule_timeout(client: httpx.Client) -> None:
    create(client, "timeout", metadata={"mock.delayMs": "3000"})
    ok_data(client.put("/api/v1/policy", json={"schemaVersion": 1, "defaultScheduleTimeoutMs": 200}))
    try:
        result = ok_data(client.post("/api/v1/schedules/timeout/run", json={}))
    finally:
        ok_data(client.put("/api/v1/policy", json={"schemaVersion": 1}))
    assert (result["status"], result["errorCode"]) == ("failed", "SCHEDULE_TIMEOUT")
    assert "200ms" in result["error"]
    run = ok_data(client.get(f"/api/v1/runs/{result['runId']}"))
    assert run["status"] == "timed-out" and run["error"]["code"] == "SCHEDULE_TIMEOUT"
    # A failed manual run leaves the schedule where it was: still due at its slot.
    assert "lastRunAt" not in ok_data(client.get("/api/v1/schedules/timeout"))
    ok_data(client.delete("/api/v1/schedules/timeout"))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"id": "bad id!", "sessionId": "s1", "input": "x", "everyMinutes": 5}, "schedules.create.id must match"),
        ({"id": "a", "sessionId": "s1", "input": "x", "everyMinutes": 0}, "everyMinutes must be a positive integer"),
        ({"id": "a", "sessionId": "s1", "input": "x"}, "everyMinutes must be a positive integer"),
        ({"id": "a", "sessionId": "s1", "input": " ", "everyMinutes": 5}, "schedules.create.input must be"),
        ({"id": "a", "input": "x", "everyMinutes": 5}, "schedules.create.sessionId must be"),
        ({"id": "a", "sessionId": "s1", "input": "x", "everyMinutes": 5, "cron": "* * * * *"}, "not both"),
        ({"id": "a", "sessionId": "s1", "input": "x", "cron": "61 * * * *"}, "schedules.create.cron must be"),
        ({"id": "a", "sessionId": "s1", "input": "x", "everyMinutes": "five"}, ""),
    ],
)
def test_create_validation(client: httpx.Client, body: dict[str, Any], message: str) -> None:
    err = error_of(client.post("/api/v1/schedules", json=body), 400, "CONFIG_ERROR")
    assert message in err["message"]


def test_tick_validation(client: httpx.Client) -> None:
    error_of(client.post("/api/v1/schedules/tick", json={"at": "yesterday"}), 400, "CONFIG_ERROR")
    error_of(client.post("/api/v1/schedules/tick", json={"provider": "nope"}), 404, "PROVIDER_NOT_FOUND")


def test_schedules_over_grpc(server: AthenaProcess) -> None:
    with grpc.insecure_channel(server.grpc_target) as ch:
        stub = schedules_pb2_grpc.ScheduleServiceStub(ch)
        created = stub.CreateSchedule(
            schedules_pb2.CreateScheduleRequest(id="grpc", session_id=new_session(), input="g", every_minutes=1)
        ).schedule
        assert created.every_minutes == 1 and created.enabled
        result = stub.RunSchedule(schedules_pb2.RunScheduleRequest(id="grpc")).result
        assert result.status == schedules_pb2.SCHEDULE_RUN_STATUS_OK
        logged = stub.ListScheduleLogs(schedules_pb2.ListScheduleLogsRequest(id="grpc")).logs
        assert [entry.run_id for entry in logged] == [result.run_id]
        with pytest.raises(grpc.RpcError) as exc:
            stub.GetSchedule(schedules_pb2.GetScheduleRequest(id="missing"))
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND
        assert stub.DeleteSchedule(schedules_pb2.DeleteScheduleRequest(id="grpc")).removed


# -- exactly once across processes -------------------------------------------------------------------


def test_concurrent_ticks_on_two_processes_fire_each_slot_once(tmp_path: Path) -> None:
    """60 one-minute slots of 3 schedules, each tick sent to both processes at the same moment."""
    with servers_on_one_database(tmp_path, env={"ATHENA_SCHEDULE_TICK_SECONDS": "0"}) as (a, b):
        with httpx.Client(base_url=a.rest_url, timeout=60) as ca, httpx.Client(base_url=b.rest_url, timeout=60) as cb:
            t0 = ms(create(ca, "x0", everyMinutes=1, startNow=True)["nextRunAt"])
            for sid in ("x1", "x2"):
                ok_data(
                    ca.post(
                        "/api/v1/schedules",
                        json={"id": sid, "sessionId": new_session(), "input": sid, "everyMinutes": 1, "startNow": True},
                    )
                )
            # Each tick is a minute after the previous one and past all three schedules' current slot.
            fired_per_slot: list[int] = []
            with ThreadPoolExecutor(2) as pool:
                for k in range(61):
                    at = t0 + k * MINUTE + 60_000  # past every schedule's start
                    answers = list(pool.map(lambda c, at=at: tick(c, at), (ca, cb)))
                    fired_per_slot.append(sum(len(r["run"]) for r in answers))
                    assert all(r["status"] == "ok" for ans in answers for r in ans["run"])
            assert fired_per_slot == [3] * 61
            for sid in ("x0", "x1", "x2"):
                entries = logs(ca, sid, limit=500)
                slots = [e["slotAt"] for e in entries]
                assert len(entries) == 61 and len(set(slots)) == 61


def test_background_tickers_on_two_processes_fire_each_slot_once(tmp_path: Path) -> None:
    """Real time: every-second cron schedules ticked by both processes' background tickers."""
    env = {"ATHENA_SCHEDULE_TICK_SECONDS": "0.1"}
    with servers_on_one_database(tmp_path, env=env) as (a, b):
        with httpx.Client(base_url=a.rest_url, timeout=60) as ca, httpx.Client(base_url=b.rest_url, timeout=60) as cb:
            ids = [f"sec{i}" for i in range(10)]
            for i, sid in enumerate(ids):
                client = ca if i % 2 else cb
                create(client, sid, everyMinutes=None, cron="* * * * * *")
            time.sleep(7)
            for sid in ids:
                ok_data(ca.post(f"/api/v1/schedules/{sid}/disable", json={}))
            deadline = time.monotonic() + 10
            while any(ok_data(ca.get(f"/api/v1/schedules/{sid}"))["running"] for sid in ids):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            total = 0
            for sid in ids:
                entries = logs(ca, sid, limit=500)
                # A second firing of a slot would show as a second entry for it (or one without its slot).
                slots = Counter(e.get("slotAt") for e in entries)
                assert all(n == 1 for n in slots.values()), slots.most_common(3)
                assert all(s is not None and ms(s) % 1000 == 0 for s in slots)
                assert {e["status"] for e in entries} <= {"ok", "already-running"}
                total += len(entries)
            assert total >= 50, total
