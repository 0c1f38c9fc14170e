"""Retention through a real server: a sweep every 0.3 s, the history age 30 days and an event age of 3 s.
Records 40 days old are written straight into the server's SQLite file while it runs (WAL allows it): they
disappear, while new ones and an active run's stay; `events.pruned` counts what went; and a resume or list
cursor from a pruned event id is refused with EVENT_CURSOR_EXPIRED, over REST (SSE and list) and gRPC."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from athena.v1 import events_pb2, events_pb2_grpc
from athena_client.vocab import ErrorCode, EventType, RunStatus
from athena_server.storage.retention import TABLES
from tests.support.grpc_errors import error_info
from tests.support.processes import Served, serving
from tests.support.runs import wait_status
from tests.support.shapes import error_of, new_session, ok_data, unique
from tests.support.waiting import wait_until

DAY_MS = 86_400_000
EXPIRED = "EVENT_CURSOR_EXPIRED"
ENV = {
    "ATHENA_RETENTION_SWEEP_SECONDS": "0.3",
    "ATHENA_RUN_HISTORY_RETENTION_DAYS": "30",
    "ATHENA_EVENT_RETENTION_DAYS": str(3 / 86_400),
    "ATHENA_RETENTION_BATCH_ROWS": "2",
}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serving(tmp_path, env=ENV) as s:
        yield s


def _db(served: Served) -> sqlite3.Connection:
    conn = sqlite3.connect(served.process.workdir / ".athena" / "athena.db", timeout=30, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def _write_old_history(served: Served, old_session: str, old_run: str, active_session: str) -> None:
    """Records 40 days old: an ended run with evidence, an idle session with a transcript, a schedule log and
    a policy rejection; and the active run's session and a transcript entry of it made to look just as old."""
    at = int(time.time() * 1000) - 40 * DAY_MS
    db = _db(served)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "INSERT INTO runs (id, session_id, status, provider, model, input, trace_id, created_at_ms, "
            "started_at_ms, finished_at_ms, attempts, evidence_count, timeout_ms) "
            "VALUES (?, ?, ?, 'mock', 'default', 'x', 't', ?, ?, ?, 1, 1, 0)",
            (old_run, old_session, RunStatus.SUCCEEDED, at, at, at),
        )
        db.execute(
            "INSERT INTO evidence (run_id, label, type, content, created_at_ms) VALUES (?, 'l', 'text', 'c', ?)",
            (old_run, at),
        )
        db.execute(
            "INSERT INTO sessions (id, provider, model, created_at_ms, updated_at_ms) "
            "VALUES (?, 'mock', 'default', ?, ?)",
            (old_session, at, at),
        )
        for sid in (old_session, old_session, active_session):
            db.execute(
                "INSERT INTO transcript_entries (id, session_id, role, content, is_error, created_at_ms) "
                "VALUES (?, ?, 'user', 'old', 0, ?)",
                (unique("entry"), sid, at),
            )
        db.execute("UPDATE sessions SET updated_at_ms = ? WHERE id = ?", (at, active_session))
        db.execute(
            "INSERT INTO schedule_logs (id, schedule_id, session_id, started_at_ms, finished_at_ms, status) "
            "VALUES (?, ?, ?, ?, ?, 'ok')",
            (unique("log"), unique("sched"), old_session, at, at),
        )
        db.execute(
            "INSERT INTO policy_rejections (created_at_ms, session_id, active_runs, max_concurrent_runs, reason) "
            "VALUES (?, ?, 1, 1, 'x')",
            (at, old_session),
        )
        db.execute("COMMIT")
    finally:
        db.close()


def _rows(served: Served, sql: str, *args: Any) -> int:
    db = _db(served)
    try:
        return int(db.execute(sql, args).fetchone()[0])
    finally:
        db.close()


def test_old_records_go_new_and_active_ones_stay_and_pruned_ids_cannot_be_resumed(served: Served) -> None:
    rest, channel = served.rest, served.channel
    # A finished run (kept 30 days; its events only 3 s) and an active one (everything kept while it runs).
    done_session, active_session = new_session(), new_session()
    done = ok_data(rest.post("/api/v1/runs", json={"sessionId": done_session, "input": "x"}))
    first = ok_data(rest.get("/api/v1/events", params={"runId": done["runId"], "limit": 1}))
    first_id, cursor = first["events"][0]["id"], first["nextCursor"]
    body = {"sessionId": active_session, "input": "slow", "wait": False, "metadata": {"mock.delayMs": "120000"}}
    active = ok_data(rest.post("/api/v1/runs", json=body), 202)
    wait_status(rest, active["runId"], RunStatus.RUNNING)
    active_events = [e["id"] for e in ok_data(rest.get("/api/v1/events", params={"runId": active["runId"]}))["events"]]
    assert len(active_events) >= 2

    # Follow `events.pruned` live (each is itself pruned 3 s later), then age some history.
    pruned = events_pb2_grpc.EventServiceStub(channel).StreamEvents(
        events_pb2.StreamEventsRequest(types=[EventType.EVENTS_PRUNED]), timeout=120
    )
    pruned.initial_metadata()
    old_session, old_run = new_session(), unique("run")
    _write_old_history(served, old_session, old_run, active_session)
    history = ("runs", "evidence", "sessions", "transcriptEntries", "scheduleLogs", "policyRejections")
    totals = dict.fromkeys(TABLES, 0)
    try:
        for response in pruned:
            payload = json_format.MessageToDict(response.event.payload)
            assert set(payload["deleted"]) == set(TABLES)
            for table, n in payload["deleted"].items():
                totals[table] += int(n)
            if all(totals[t] for t in history):
                break
    finally:
        pruned.cancel()
    assert {t: totals[t] for t in history} == {
        "runs": 1,
        "evidence": 1,
        "sessions": 1,
        "transcriptEntries": 2,
        "scheduleLogs": 1,
        "policyRejections": 1,
    }

    # The old history is gone; the finished run, both sessions in use and the active run's records stay.
    error_of(rest.get(f"/api/v1/runs/{old_run}"), 404, "NOT_FOUND")
    assert _rows(served, "SELECT count(*) FROM transcript_entries WHERE session_id = ?", old_session) == 0
    assert ok_data(rest.get(f"/api/v1/runs/{done['runId']}"))["status"] == RunStatus.SUCCEEDED
    assert len(ok_data(rest.get(f"/api/v1/sessions/{done_session}/transcript"))["items"]) == 2
    assert _rows(served, "SELECT count(*) FROM sessions WHERE id = ?", active_session) == 1
    assert _rows(served, "SELECT count(*) FROM transcript_entries WHERE session_id = ?", active_session) >= 1

    # The finished run's events age out (3 s); the list cursor naming its first event is then refused.
    def refused() -> dict[str, Any] | None:
        resp = rest.get("/api/v1/events", params={"cursor": cursor})
        return error_of(resp, 410, EXPIRED) if resp.status_code == 410 else None

    err = wait_until(refused, "the finished run's events pruned", timeout=60)
    assert err["retryable"] is False
    assert err["message"].startswith(
        f"events.list.cursor '{cursor}' is older than the retained events (events up to evt_"
    )
    assert err["message"].endswith(
        "were deleted by retention); list GET /api/v1/events without a cursor to start again from the oldest "
        "retained event."
    )
    # Batches of 2 rows: the run's later events may go a batch after the first.
    wait_until(
        lambda: ok_data(rest.get("/api/v1/events", params={"runId": done["runId"]}))["events"] == [],
        "every event of the finished run pruned",
    )
    kept = [e["id"] for e in ok_data(rest.get("/api/v1/events", params={"runId": active["runId"]}))["events"]]
    assert kept[: len(active_events)] == active_events

    # A REST SSE resume from the pruned id: the error envelope with the code's HTTP status.
    resp = rest.get("/api/v1/events/stream", headers={"Last-Event-ID": first_id})
    err = error_of(resp, 410, EXPIRED)
    assert err["message"].startswith(f"events.stream.after '{first_id}' is older than the retained events")
    resp = rest.get("/api/v1/events/stream", params={"after": first_id})
    error_of(resp, 410, EXPIRED)

    # The same over gRPC: OUT_OF_RANGE with the code as the ErrorInfo reason.
    call = events_pb2_grpc.EventServiceStub(channel).StreamEvents(
        events_pb2.StreamEventsRequest(after=first_id), timeout=60
    )
    with pytest.raises(grpc.RpcError) as caught:
        next(iter(call))
    assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert error_info(caught.value).reason == ErrorCode.EVENT_CURSOR_EXPIRED
    assert caught.value.details().startswith(f"events.stream.after '{first_id}' is older than the retained events")

    ok_data(rest.post(f"/api/v1/run-control/by-run/{active['runId']}/cancel", json={"reason": "done"}))
