"""Waiting on runs, and the exact peak concurrency of a set of runs, read from the store the way a client does."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx

from tests.support.pages import every_item
from tests.support.shapes import ok_data
from tests.support.waiting import wait_until

#: The events that end a run that had started (a run refused before it started has no run.started).
RUN_ENDED = ("run.completed", "run.failed", "run.cancelled")


def wait_status(client: httpx.Client, run_id: str, *statuses: str) -> dict[str, Any]:
    """The run once its status is one of `statuses`."""

    def reached() -> dict[str, Any]:  # empty (falsy) until then
        run: dict[str, Any] = ok_data(client.get(f"/api/v1/runs/{run_id}"))
        return run if run["status"] in statuses else {}

    return wait_until(reached, f"run {run_id} to become {'/'.join(statuses)}")


def wait_active(client: httpx.Client, session_id: str) -> dict[str, Any]:
    """The session's active run (the one holding it), once there is one."""

    def active() -> dict[str, Any]:  # empty (falsy) until then
        items = ok_data(client.get("/api/v1/runs/active", params={"sessionId": session_id}))["items"]
        return dict(items[0]) if items else {}

    return wait_until(active, f"an active run in session {session_id}")


def all_events(client: httpx.Client, *types: str, run_id: str | None = None) -> list[dict[str, Any]]:
    """Every event of the log (optionally only `types`, only one run's), oldest first, across every page,
    filtered by the server. Without `run_id` only for a test's own server: on a shared one, read a session's
    events with `tests.support.events.events_of`."""
    params: dict[str, Any] = {"limit": 500}
    if types:
        params["types"] = ",".join(types)
    if run_id is not None:
        params["runId"] = run_id
    return every_item(client, "/api/v1/events", params, key="events")


def run_events(client: httpx.Client, run_id: str, *types: str) -> list[str]:
    """The types of one run's events, in log order (including those not tied to a session)."""
    return [e["type"] for e in all_events(client, *types, run_id=run_id)]


def peak_concurrency(events: Iterable[dict[str, Any]], run_ids: Iterable[str] | None = None) -> int:
    """The most runs that were running at once, exactly: the event log is totally ordered, so walk the
    run.started (+1) and run-ending (-1) events in log order (`events` as listed, oldest first) and take the
    maximum. `run_ids` limits the walk to those runs; an ending of a run never started is not counted."""
    wanted = None if run_ids is None else set(run_ids)
    running: set[str] = set()
    peak = 0
    for event in events:
        run_id = event.get("runId")
        if not run_id or (wanted is not None and run_id not in wanted):
            continue
        if event["type"] == "run.started":
            running.add(run_id)
            peak = max(peak, len(running))
        elif event["type"] in RUN_ENDED:
            running.discard(run_id)
    return peak
