"""Reading the event log the way a client does: every page, filtered by the server."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.pages import every_item


def events_of(client: httpx.Client, session_id: str, *types: str, run_id: str | None = None) -> list[dict[str, Any]]:
    """All events of a session (optionally only `types`, only one run's), oldest first, across every page:
    a test never reads only the first page of a log other tests also write to."""
    params: dict[str, Any] = {"sessionId": session_id, "limit": 500}
    if types:
        params["types"] = ",".join(types)
    events = every_item(client, "/api/v1/events", params, key="events")
    return [e for e in events if run_id is None or e.get("runId") == run_id]
