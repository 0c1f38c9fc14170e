"""Per-request context: the trace id (set by the interceptor, read by domain code for events) and the
REST status a successful answer should carry when it is not 200."""

from __future__ import annotations

import uuid
from contextvars import ContextVar

_trace_id: ContextVar[str | None] = ContextVar("athena_trace_id", default=None)
# The id `trace_id()` minted for work outside a request, kept apart from a request's (set_trace_id), so log
# lines name only a trace something asked for: the start-up lines are not stamped with one minted there.
_minted_trace_id: ContextVar[str | None] = ContextVar("athena_minted_trace_id", default=None)


def set_trace_id(trace_id: str) -> None:
    _trace_id.set(trace_id)


def trace_id() -> str:
    """The request's trace id; work outside a request gets a fresh one (the same one for the rest of it)."""
    current = _trace_id.get()
    if current is None:
        current = _minted_trace_id.get()
        if current is None:
            current = str(uuid.uuid4())
            _minted_trace_id.set(current)
    return current


def current_trace_id() -> str | None:
    """The trace id of the request (or a2a delivery) being handled, None outside one; never mints one (the
    log formatter asks for every record)."""
    return _trace_id.get()


_http_status: ContextVar[int | None] = ContextVar("athena_http_status", default=None)


def set_http_status(status: int | None) -> None:
    """Ask the gateway to answer this request with `status` (e.g. 202 for accepted work)."""
    _http_status.set(status)


def http_status() -> int | None:
    return _http_status.get()
