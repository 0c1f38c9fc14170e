"""The current request's trace id, set by the interceptor and read by domain code for events."""

from __future__ import annotations

import uuid
from contextvars import ContextVar

_trace_id: ContextVar[str | None] = ContextVar("athena_trace_id", default=None)


def set_trace_id(trace_id: str) -> None:
    _trace_id.set(trace_id)


def trace_id() -> str:
    """The request's trace id; work outside a request gets a fresh one."""
    current = _trace_id.get()
    if current is None:
        current = str(uuid.uuid4())
        _trace_id.set(current)
    return current
