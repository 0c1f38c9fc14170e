"""Assertions on the seed JSON shapes (the `{ok, data}` and `{ok, error}` envelopes) and unique ids."""

from __future__ import annotations

import re
import uuid
from typing import Any

from athena_server.timefmt import parse_iso

ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def assert_iso(value: Any) -> None:
    assert isinstance(value, str) and ISO_MS.match(value), value


def ms(value: str) -> int:
    """Milliseconds since the epoch of an ISO timestamp the API returned (which must parse)."""
    parsed = parse_iso(value)
    assert parsed is not None, value
    return parsed


def ok_data(resp: Any, status: int = 200) -> Any:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"ok", "data"}, body
    assert body["ok"] is True
    return body["data"]


def error_of(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["ok"] is False, body
    err = body["error"]
    assert set(err) == {"code", "message", "retryable", "traceId"}, err
    assert err["code"] == code, err
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["retryable"], bool)
    assert err["traceId"] == resp.headers["x-trace-id"]
    uuid.UUID(err["traceId"])
    return err


def unique(prefix: str) -> str:
    """An id no other test uses, so a test reads only what it created, whatever ran before it."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def new_session() -> str:
    return unique("s")
