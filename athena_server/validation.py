"""Request validation shared by the domain services; messages follow `<context>.<field> must ...`."""

from __future__ import annotations

import re

from athena_server.errors import config_error
from athena_server.timefmt import parse_iso

SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")
DEFAULT_PAGE_LIMIT = 50
DEFAULT_TAIL_LIMIT = 100
MAX_LIMIT = 500


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


def optional_instant(value: str, context: str, field: str) -> int | None:
    if not value.strip():
        return None
    ms = parse_iso(value)
    if ms is None:
        raise config_error(f"{context}.{field} must be a valid ISO datetime.")
    return ms
