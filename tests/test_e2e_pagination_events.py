"""Pagination and the event log against a fresh server, so counts and ids are exact."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import AthenaProcess, running_api, serving
from tests.support.shapes import assert_iso, error_of, ok_data

SESSIONS = 23


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AthenaProcess, httpx.Client, list[dict]]]:
    with serving(Path(tmp_path_factory.mktemp("fresh"))) as served:
        client = served.rest
        runs = []
        for i in range(SESSIONS):
            body = {"sessionId": f"page-{i:02d}", "input": f"n{i}", "provider": "mock"}
            resp = client.post("/api/v1/runs", json=body)
            runs.append({"trace": resp.headers["x-trace-id"], **ok_data(resp)})
        yield served.process, client, runs


def _all_sessions(client: httpx.Client, limit: int) -> tuple[list[str], int]:
    ids: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, object] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        data = ok_data(client.get("/api/v1/sessions", params=params))
        pages += 1
        assert len(data["items"]) <= limit
        ids.extend(s["id"] for s in data["items"])
        cursor = data.get("nextCursor")
        if not cursor:
            return ids, pages


def test_sessions_keyset_pages_have_no_duplicates_or_gaps(fresh) -> None:
    _, client, _ = fresh
    ids, pages = _all_sessions(client, 5)
    assert pages == 5
    # Most recently updated first: the last session run is first.
    assert ids == [f"page-{i:02d}" for i in reversed(range(SESSIONS))]


def test_sessions_cursor_is_the_seed_keyset_form(fresh) -> None:
    _, client, _ = fresh
    data = ok_data(client.get("/api/v1/sessions", params={"limit": 1}))
    raw = data["nextCursor"]
    decoded = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    s = data["items"][0]
    assert decoded == f'{{"kind":"sessions","updatedAt":"{s["updatedAt"]}","id":"{s["id"]}"}}'
    assert "=" not in raw


def test_sessions_legacy_offset_cursor(fresh) -> None:
    _, client, _ = fresh
    offset = base64.urlsafe_b64encode(b"20").decode().rstrip("=")
    data = ok_data(client.get("/api/v1/sessions", params={"cursor": offset, "limit": 10}))
    assert [s["id"] for s in data["items"]] == ["page-02", "page-01", "page-00"]
    assert "nextCursor" not in data


@pytest.mark.parametrize(
    ("limit", "count"), [("0", 1), ("-3", 1), ("1", 1), ("1000", SESSIONS), ("99999999999999999999", SESSIONS)]
)
def test_limit_is_clamped(fresh, limit: str, count: int) -> None:
    _, client, _ = fresh
    data = ok_data(client.get("/api/v1/sessions", params={"limit": limit}))
    assert len(data["items"]) == count


@pytest.mark.parametrize("limit", ["abc", "null", "1.5", "12abc", ""])
def test_limit_that_is_not_an_integer_is_400(fresh, limit: str) -> None:
    _, client, _ = fresh
    err = error_of(client.get("/api/v1/sessions", params={"limit": limit}), 400, "CONFIG_ERROR")
    assert err["message"] == "limit must be an integer."


@pytest.mark.parametrize("path", ["/api/v1/sessions", "/api/v1/events"])
@pytest.mark.parametrize("cursor", ["!!!", "eyJub3QiOiJrZXlzZXQifQ", "bm90LWEtbnVtYmVy"])
def test_invalid_cursor_is_400(fresh, path: str, cursor: str) -> None:
    _, client, _ = fresh
    err = error_of(client.get(path, params={"cursor": cursor}), 400, "CONFIG_ERROR")
    assert "cursor is invalid" in err["message"]


def test_events_seed_shape_and_causal_order(fresh) -> None:
    _, client, runs = fresh
    data = ok_data(client.get("/api/v1/events", params={"limit": 500}))
    events = data["events"]
    assert "nextCursor" not in data
    assert len(events) == 3 * SESSIONS
    assert [e["id"] for e in events] == [f"evt_{i}" for i in range(1, 3 * SESSIONS + 1)]
    first = events[0]
    assert set(first) == {"id", "traceId", "type", "createdAt", "sessionId", "payload", "runId"}
    assert first["type"] == "run.created"
    assert first["payload"] == {"provider": "mock", "model": "default", "directiveId": first["payload"]["directiveId"]}
    assert_iso(first["createdAt"])
    for i, r in enumerate(runs):
        mine = events[3 * i : 3 * i + 3]
        assert [e["type"] for e in mine] == ["run.created", "run.started", "run.completed"]
        assert {e["runId"] for e in mine} == {r["runId"]}
        assert {e["traceId"] for e in mine} == {r["trace"]}
        assert {e["sessionId"] for e in mine} == {r["sessionId"]}
    assert events[2]["payload"] == {
        "provider": "mock",
        "model": "default",
        "directiveId": first["payload"]["directiveId"],
        "usage": runs[0]["usage"],
        "attempts": 1,
    }


def test_events_pages_follow_the_cursor(fresh) -> None:
    _, client, _ = fresh
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 7}
        if cursor:
            params["cursor"] = cursor
        data = ok_data(client.get("/api/v1/events", params=params))
        seen.extend(e["id"] for e in data["events"])
        cursor = data.get("nextCursor")
        if not cursor:
            break
    assert seen == [f"evt_{i}" for i in range(1, 3 * SESSIONS + 1)]
    first = ok_data(client.get("/api/v1/events", params={"limit": 1}))
    assert first["nextCursor"] == "MQ"


def test_events_filters(fresh) -> None:
    _, client, runs = fresh
    by_session = ok_data(client.get("/api/v1/events", params={"sessionId": "page-03"}))["events"]
    assert [e["type"] for e in by_session] == ["run.created", "run.started", "run.completed"]
    by_type = ok_data(client.get("/api/v1/events", params={"types": "run.created,run.completed", "limit": 500}))
    assert len(by_type["events"]) == 2 * SESSIONS
    assert {e["type"] for e in by_type["events"]} == {"run.created", "run.completed"}
    all_events = ok_data(client.get("/api/v1/events", params={"limit": 500}))["events"]
    pivot = all_events[30]["createdAt"]
    after = ok_data(client.get("/api/v1/events", params={"createdAfter": pivot, "limit": 500}))["events"]
    before = ok_data(client.get("/api/v1/events", params={"createdBefore": pivot, "limit": 500}))["events"]
    assert all(e["createdAt"] >= pivot for e in after) and all(e["createdAt"] <= pivot for e in before)
    # Inclusive bounds: together they cover everything, overlapping exactly on the pivot instant.
    assert {e["id"] for e in after} | {e["id"] for e in before} == {e["id"] for e in all_events}
    by_trace = ok_data(client.get("/api/v1/events", params={"traceId": runs[5]["trace"]}))["events"]
    assert [e["runId"] for e in by_trace] == [runs[5]["runId"]] * 3


@pytest.mark.parametrize("param", ["createdAfter", "createdBefore"])
def test_events_reject_invalid_instants(fresh, param: str) -> None:
    _, client, _ = fresh
    err = error_of(client.get("/api/v1/events", params={param: "yesterday"}), 400, "CONFIG_ERROR")
    assert err["message"] == f"events.list.{param} must be a valid ISO datetime."


def test_limit_is_clamped_to_500_end_to_end(tmp_path: Path) -> None:
    """More than 500 events exist; `limit=1000` answers 500 and a cursor to the rest."""
    from concurrent.futures import ThreadPoolExecutor

    with running_api(tmp_path) as p:
        with httpx.Client(base_url=p.rest_url, timeout=60) as client, ThreadPoolExecutor(max_workers=8) as pool:
            runs = 170  # 510 events
            list(
                pool.map(
                    lambda i: ok_data(client.post("/api/v1/runs", json={"sessionId": f"m{i}", "input": "x"})),
                    range(runs),
                )
            )
            first = ok_data(client.get("/api/v1/events", params={"limit": 1000}))
            assert len(first["events"]) == 500
            rest = ok_data(client.get("/api/v1/events", params={"limit": 1000, "cursor": first["nextCursor"]}))
            assert len(rest["events"]) == 3 * runs - 500
            assert "nextCursor" not in rest
            ids = [e["id"] for e in first["events"] + rest["events"]]
            assert ids == [f"evt_{i}" for i in range(1, 3 * runs + 1)]
