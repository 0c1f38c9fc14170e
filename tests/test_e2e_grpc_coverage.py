"""gRPC coverage of RPCs whose behaviour was tested only over REST (issue 12): on a server of the module's
own (so global lists hold only what this module made), each read answers over gRPC exactly the JSON REST
answers, and that JSON holds what the test made."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.processes import Served, serving
from tests.support.shapes import new_session, ok_data
from tests.support.transports import grpc_data, rest_data
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(tmp_path_factory.mktemp("grpc-coverage")) as s:
        yield s


@pytest.fixture(scope="module")
def made(served: Served) -> dict[str, Any]:
    """One run, one schedule, one A2A message: what the reads below must show."""
    session = new_session()
    run = ok_data(served.rest.post("/api/v1/runs", json={"sessionId": session, "input": "hi"}))
    schedule = ok_data(
        served.rest.post("/api/v1/schedules", json={"id": "cov", "sessionId": session, "input": "s", "everyMinutes": 5})
    )
    source = new_session()
    message = ok_data(
        served.rest.post(
            "/api/v1/a2a/messages", json={"fromSessionId": source, "toSessionId": new_session(), "input": "m"}
        ),
        202,
    )
    wait_until(
        lambda: ok_data(served.rest.get(f"/api/v1/a2a/messages/{message['id']}"))["status"] == "delivered",
        "the message to be delivered (so reads of it do not race its delivery)",
    )
    return {"session": session, "run": run, "schedule": schedule, "source": source, "message": message}


def _both(served: Served, name: str, **fields: Any) -> Any:
    over_rest = rest_data(served.rest, name, None, 200, **fields)
    over_grpc = grpc_data(served.channel, name, None, **fields)
    assert over_grpc == over_rest, name
    return over_rest


def test_list_events(served: Served, made: dict[str, Any]) -> None:
    data = _both(served, "EventService.ListEvents", sessionId=made["session"], types=["run.completed"])
    assert [e["runId"] for e in data["events"]] == [made["run"]["runId"]]


def test_list_sessions(served: Served, made: dict[str, Any]) -> None:
    data = _both(served, "SessionService.ListSessions", limit=500)
    assert made["session"] in [s["id"] for s in data["items"]]


def test_list_schedules_enable_disable(served: Served, made: dict[str, Any]) -> None:
    data = _both(served, "ScheduleService.ListSchedules", limit=500)
    assert "cov" in [s["id"] for s in data["items"]]
    off = grpc_data(served.channel, "ScheduleService.DisableSchedule", None, id="cov")
    assert ok_data(served.rest.get("/api/v1/schedules/cov"))["enabled"] is False
    on = grpc_data(served.channel, "ScheduleService.EnableSchedule", None, id="cov")
    assert ok_data(served.rest.get("/api/v1/schedules/cov"))["enabled"] is True
    assert off != on


def test_update_schedule_over_grpc(served: Served, made: dict[str, Any]) -> None:
    body = {"id": "cov-upd", "sessionId": made["session"], "input": "a", "everyMinutes": 5}
    ok_data(served.rest.post("/api/v1/schedules", json=body))
    updated = grpc_data(served.channel, "ScheduleService.UpdateSchedule", None, **{**body, "input": "b"})
    assert updated == ok_data(served.rest.get("/api/v1/schedules/cov-upd"))
    assert updated["input"] == "b"


def test_tick_schedules_over_grpc(served: Served) -> None:
    data = grpc_data(served.channel, "ScheduleService.TickSchedules", None)
    assert isinstance(data, dict)


def test_work_queue(served: Served, made: dict[str, Any]) -> None:
    # An empty queue's `updatedAt` is the time of the read, so it is left out of the comparison.
    data = rest_data(served.rest, "WorkService.GetWorkQueue", None, 200, sessionId=made["session"])
    over_grpc = grpc_data(served.channel, "WorkService.GetWorkQueue", None, sessionId=made["session"])
    assert {k: v for k, v in over_grpc.items() if k != "updatedAt"} == {
        k: v for k, v in data.items() if k != "updatedAt"
    }
    assert set(over_grpc) == set(data)
    assert (data["sessionId"], data["items"], data["draining"]) == (made["session"], [], False)


def test_list_workflows_and_create_over_grpc(served: Served) -> None:
    assert _both(served, "WorkflowService.ListWorkflows", limit=500)["items"] == []


def test_list_a2a_messages(served: Served, made: dict[str, Any]) -> None:
    data = _both(served, "A2aService.ListA2aMessages", fromSessionId=made["source"])
    assert [m["id"] for m in data["items"]] == [made["message"]["id"]]


def test_list_cancel_requests(served: Served) -> None:
    assert isinstance(_both(served, "RunService.ListCancelRequests", limit=500), dict)


def test_cancel_by_session_over_grpc(served: Served) -> None:
    session = new_session()
    rest = rest_data(served.rest, "RunService.CancelRunBySessionId", None, 200, sessionId=session)
    assert grpc_data(served.channel, "RunService.CancelRunBySessionId", None, sessionId=session) == rest


def test_capabilities_policy_fleet(served: Served) -> None:
    assert _both(served, "SystemService.GetCapabilities")
    _both(served, "PolicyService.GetPolicy")
    fleet = _both(served, "FleetService.GetFleetSummary")
    assert {"total", "running", "pending", "succeeded", "failed", "cancelled"} <= set(fleet)


@pytest.mark.parametrize("name", ["SystemService.GetHealth", "SystemService.GetAdminHealth"])
def test_health(served: Served, name: str) -> None:
    data = grpc_data(served.channel, name, None)
    assert data["status"] == "ok"
    assert set(data) == set(rest_data(served.rest, name, None, 200))


def test_readiness(served: Served) -> None:
    data = grpc_data(served.channel, "SystemService.GetReadiness", None)
    assert data["status"] == "ready" and [c["name"] for c in data["checks"]] == ["store"]
    assert set(data) == set(rest_data(served.rest, "SystemService.GetReadiness", None, 200))
