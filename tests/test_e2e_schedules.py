"""Schedules end to end (seed 002 #12-20): upserts, enable/disable, manual runs, ticks that fire each due
slot once and move the schedule past `at`, skipped slots of a still-running schedule, the schedule
timeout, logs, and exactly-once firing with two server processes on one PostgreSQL database, through
explicit ticks and through the background tickers."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from athena.v1 import schedules_pb2, schedules_pb2_grpc
from athena_server.timefmt import iso
from tests.support.events import events_of
from tests.support.pages import every_item
from tests.support.postgres import servers_on_one_database
from tests.support.processes import AthenaProcess, Served, serving
from tests.support.runs import wait_status
from tests.support.shapes import assert_iso, error_of, ms, new_session, ok_data
from tests.support.waiting import wait_until

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
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    # The background ticker is off here: these tests drive time with explicit ticks.
    with serving(tmp_path_factory.mktemp("schedules"), env={"ATHENA_SCHEDULE_TICK_SECONDS": "0"}) as s:
        yield s


@pytest.fixture(scope="module")
def server(served: Served) -> AthenaProcess:
    return served.process


def delete_every_schedule(client: httpx.Client) -> None:
    for task in every_item(client, "/api/v1/schedules"):
        ok_data(client.delete(f"/api/v1/schedules/{task['id']}"))


@pytest.fixture
def client(served: Served) -> Iterator[httpx.Client]:
    """The module server with no schedule, before and after the test (whatever it left, even when it failed):
    a tick fires every due schedule of the server and counts the rest, so no test may see another's."""
    delete_every_schedule(served.rest)
    yield served.rest
    delete_every_schedule(served.rest)


def create(client: httpx.Client, sid: str, **fields: Any) -> dict[str, Any]:
    body = {"id": sid, "sessionId": new_session(), "input": f"scheduled {sid}", "everyMinutes": 5, **fields}
    return ok_data(client.post("/api/v1/schedules", json=body))


def tick(client: httpx.Client, at: int) -> dict[str, Any]:
    return ok_data(client.post("/api/v1/schedules/tick", json={"at": iso(at)}))


def logs(client: httpx.Client, sid: str, **params: Any) -> list[dict[str, Any]]:
    return ok_data(client.get(f"/api/v1/schedules/{sid}/logs", params=params))


def test_seed_tick_with_nothing_due(client: httpx.Client) -> None:
    # No schedule exists (the fixture removed every other test's), so the seed's exact answer.
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
    resp = client.post("/api/v1/schedules/tick", json={"at": iso(t0)})
    first = ok_data(resp)
    [fired] = [r for r in first["run"] if r["id"] == "ticked"]
    assert (fired["status"], fired["slotAt"]) == ("ok", iso(t0))
    # This tick's own events: the firing, in the schedule's session, and the tick itself, under its trace.
    [triggered] = events_of(client, created["sessionId"], "schedule.run.triggered")
    assert triggered["payload"] == {"id": "ticked", "status": "ok", "slotAt": iso(t0)}
    assert triggered["runId"] == fired["runId"] and triggered["traceId"] == resp.headers["x-trace-id"]
    tick_events = ok_data(
        client.get("/api/v1/events", params={"traceId": resp.headers["x-trace-id"], "types": "schedule.tick.executed"})
    )["events"]
    assert [e["payload"] for e in tick_events] == [{"at": iso(t0), "run": 1, "skipped": first["skipped"]}]
    assert ms(ok_data(client.get("/api/v1/schedules/ticked"))["nextRunAt"]) == t0 + 5 * MINUTE
    # The same instant again, and any instant before the next slot, fires nothing.
    assert "ticked" not in [r["id"] for r in tick(client, t0)["run"]]
    assert "ticked" not in [r["id"] for r in tick(client, t0 + 5 * MINUTE - 1)["run"]]
    # Late by more than two intervals: one run (missed slots are coalesced), then the first slot after at.
    late = tick(client, t0 + 12 * MINUTE)
    assert [r["slotAt"] for r in late["run"] if r["id"] == "ticked"] == [iso(t0 + 5 * MINUTE)]
    task = ok_data(client.get("/api/v1/schedules/ticked"))
    [late_run] = [r for r in late["run"] if r["id"] == "ticked"]
    assert ms(task["nextRunAt"]) == t0 + 15 * MINUTE and task["lastRunAt"] == late_run["finishedAt"]
    assert late["skipped"] == len(every_item(client, "/api/v1/schedules")) - len(late["run"])
    history = logs(client, "ticked")
    assert [e["slotAt"] for e in history] == [iso(t0 + 5 * MINUTE), iso(t0)]  # newest first
    older = logs(client, "ticked", after=history[0]["id"])
    assert [e["id"] for e in older] == [history[1]["id"]]
    assert [e["id"] for e in logs(client, "ticked", limit=1)] == [history[0]["id"]]
    error_of(client.get("/api/v1/schedules/ticked/logs", params={"after": "nope"}), 400, "CONFIG_ERROR")
    slots = [e["payload"]["slotAt"] for e in events_of(client, created["sessionId"], "schedule.run.triggered")]
    assert slots == [iso(t0), iso(t0 + 5 * MINUTE)]
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
    # The manual run lasts until the test cancels it, so the schedule is certainly running meanwhile.
    created = create(client, "slow", startNow=True, metadata={"mock.delayMs": "60000"})
    manual: list[httpx.Response] = []
    t = threading.Thread(target=lambda: manual.append(client.post("/api/v1/schedules/slow/run", json={})))
    t.start()
    wait_until(lambda: ok_data(client.get("/api/v1/schedules/slow"))["running"], "the schedule to be running")
    slot = ms(created["nextRunAt"])
    [skipped] = [r for r in tick(client, slot)["run"] if r["id"] == "slow"]
    assert skipped["status"] == "already-running" and skipped["slotAt"] == iso(slot) and "runId" not in skipped
    again = ok_data(client.post("/api/v1/schedules/slow/run", json={}))
    assert again["status"] == "already-running"
    # End the manual run: cancel the run in the schedule's session, once it is running there.
    wait_until(
        lambda: ok_data(client.get("/api/v1/runs/active", params={"sessionId": created["sessionId"]}))["items"],
        "the manual run to be active",
    )
    ok_data(client.post(f"/api/v1/runs/{created['sessionId']}/cancel", json={}))
    t.join(60)
    assert not t.is_alive()
    result = ok_data(manual[0])
    assert (result["status"], result["errorCode"]) == ("failed", "RUN_CANCELLED")
    wait_status(client, result["runId"], "cancelled")
    statuses = [e["status"] for e in logs(client, "slow")]
    assert statuses == ["failed", "already-running", "already-running"]
    # The skipped slot is consumed: the schedule moved past it.
    assert ms(ok_data(client.get("/api/v1/schedules/slow"))["nextRunAt"]) > slot
    assert ok_data(client.get("/api/v1/schedules/slow"))["running"] is False
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


def test_concurrent_ticks_on_two_processes_fire_each_slot_once(postgres_cluster: str, tmp_path: Path) -> None:
    """60 one-minute slots of 3 schedules, each tick sent to both processes at the same moment."""
    with servers_on_one_database(postgres_cluster, tmp_path, env={"ATHENA_SCHEDULE_TICK_SECONDS": "0"}) as (a, b):
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


#: How many slots each every-second schedule must have fired before the background test stops them.
SLOTS_EACH = 3


def test_background_tickers_on_two_processes_fire_each_slot_once(postgres_cluster: str, tmp_path: Path) -> None:
    """Real time: every-second cron schedules ticked by both processes' background tickers. The test waits
    until every schedule fired a few slots (however long the machine takes), stops them, and then checks
    that no slot fired twice."""
    env = {"ATHENA_SCHEDULE_TICK_SECONDS": "0.1"}
    with servers_on_one_database(postgres_cluster, tmp_path, env=env) as (a, b):
        with httpx.Client(base_url=a.rest_url, timeout=60) as ca, httpx.Client(base_url=b.rest_url, timeout=60) as cb:
            ids = [f"sec{i}" for i in range(10)]
            for i, sid in enumerate(ids):
                client = ca if i % 2 else cb
                create(client, sid, everyMinutes=None, cron="* * * * * *")

            def fired_enough() -> bool:
                return all(sum(e["status"] == "ok" for e in logs(ca, sid, limit=500)) >= SLOTS_EACH for sid in ids)

            wait_until(fired_enough, f"every schedule to fire {SLOTS_EACH} slots", interval=0.2)
            for sid in ids:
                ok_data(ca.post(f"/api/v1/schedules/{sid}/disable", json={}))
            wait_until(
                lambda: not any(ok_data(ca.get(f"/api/v1/schedules/{sid}"))["running"] for sid in ids),
                "the last runs to finish",
            )
            for sid in ids:
                entries = all_logs(ca, sid)
                # A second firing of a slot would show as a second entry for it (or one without its slot).
                slots = Counter(e.get("slotAt") for e in entries)
                assert all(n == 1 for n in slots.values()), slots.most_common(3)
                assert all(s is not None and ms(s) % 1000 == 0 for s in slots)
                assert {e["status"] for e in entries} <= {"ok", "already-running"}
                assert sum(e["status"] == "ok" for e in entries) >= SLOTS_EACH


def all_logs(client: httpx.Client, sid: str) -> list[dict[str, Any]]:
    """Every log entry of a schedule, newest first, paging with `after` (the last entry's id)."""
    entries: list[dict[str, Any]] = []
    while True:
        page = logs(client, sid, limit=500, **({"after": entries[-1]["id"]} if entries else {}))
        if not page:
            return entries
        entries += page
