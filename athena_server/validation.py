"""Request validation shared by the domain services; messages follow `<context>.<field> must ...`."""

from __future__ import annotations

import re

from athena_server.errors import config_error
from athena_server.timefmt import parse_iso

SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")
DEFAULT_PAGE_LIMIT = 50
DEFAULT_TAIL_LIMIT = 100
MAX_LIMIT = 500
# The instants the wire format can write (`toISOString()` form, years 0001..9999), in epoch ms: an instant
# outside would be accepted here and fail later when written back (a 500).
MIN_INSTANT_MS = -62_135_596_800_000
MAX_INSTANT_MS = 253_402_300_799_999


def session_id(value: str, context: str) -> str:
    value = value.strip()
    if not value:
        raise config_error(f"{context}.sessionId must be a non-empty string.")
    if not SESSION_ID_PATTERN.match(value):
        raise config_error(f"Invalid sessionId '{value}'. Allowed pattern: {SESSION_ID_PATTERN.pattern}")
    return value


def optional_session_id(value: str, context: str) -> str | None:
    return session_id(value, context) if value.strip() else None


def page_limit(value: int | None, default: int = DEFAULT_PAGE_LIMIT) -> int:
    """Clamp to 1..500; an absent limit takes the route's default (50 for pages, 100 for tails)."""
    if value is None:
        return default
    return max(1, min(MAX_LIMIT, value))


def instant_ms(value: str) -> int | None:
    """Epoch ms of an ISO 8601 instant the API can also write back (years 0001..9999 UTC), else None."""
    try:
        ms = parse_iso(value)
    except (OverflowError, ValueError):
        return None
    return ms if ms is not None and MIN_INSTANT_MS <= ms <= MAX_INSTANT_MS else None


def optional_instant(value: str, context: str, field: str) -> int | None:
    if not value.strip():
        return None
    ms = instant_ms(value)
    if ms is None:
        raise config_error(f"{context}.{field} must be a valid ISO datetime.")
    return ms
