"""Time as the API writes it: integer epoch milliseconds in storage, `toISOString()` text on the wire.

Milliseconds keep keyset cursors exact and sort the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso(ms: int) -> str:
    """`2026-02-16T15:00:00.000Z`, as JavaScript's `Date.prototype.toISOString()`."""
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_iso(text: str) -> int | None:
    """Epoch ms of an ISO 8601 instant, or None when it is not one. A value without offset is UTC."""
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)
