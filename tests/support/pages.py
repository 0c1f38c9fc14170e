"""Reading a whole cursor-paged list the way a client does: every page, following `nextCursor`. A test that
looks for what it created in a list other tests also write to reads all of it, never only the first page."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.shapes import ok_data


def every_item(
    client: httpx.Client,
    path: str,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    key: str = "items",
) -> list[dict[str, Any]]:
    """All items of the list at `path` (`key` names the page's list: `items`, or `events`), in list order."""
    query: dict[str, Any] = {"limit": 500, **(params or {})}
    items: list[dict[str, Any]] = []
    while True:
        page = ok_data(client.get(path, params=query, headers=headers))
        items += page[key]
        if not page.get("nextCursor"):
            return items
        query["cursor"] = page["nextCursor"]
