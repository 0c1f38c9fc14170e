"""Time as the API writes it: integer epoch milliseconds in storage, `toISOString()` text on the wire.

Milliseconds keep keyset cursors exact and sort the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def iso(ms: int) -> str:
    """`2026-02-16T15:00:00.000Z`, as JavaScript's `Date.prototype.toISOString()`."""
    return _second(ms // 1000) + f"{ms % 1000:03d}Z"


@functools.lru_cache(maxsize=4096)
def _second(seconds: int) -> str:
    """The text up to the milliseconds: a run's timestamps mostly share their second, and formatting a
    datetime costs more than the rest of writing the instant."""
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.")


def parse_iso(text: str) -> int | None:
    """Epoch ms of an ISO 8601 instant, or None when it is not one. A value without offset is UTC."""
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    # In integers: `timestamp() * 1000` is a float and truncated 1.001 s to 1,000 ms.
    return (dt - _EPOCH) // _ONE_MS
