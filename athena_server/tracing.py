"""Per-request context: the trace id (set by the interceptor, read by domain code for events) and the
REST status a successful answer should carry when it is not 200.

A trace id Athena mints is an OpenTelemetry trace id (32 lowercase hex digits), and a caller's W3C
`traceparent` gives the request its trace id, so `traceId` on runs, events and errors is the trace id
of the request's spans (athena_server/otel.py). A caller's own `x-trace-id` stays free-form (contract).
"""

from __future__ import annotations

import os
import re
from contextvars import ContextVar

_trace_id: ContextVar[str | None] = ContextVar("athena_trace_id", default=None)
# The id `trace_id()` minted for work outside a request, kept apart from a request's (set_trace_id), so log
# lines name only a trace something asked for: the start-up lines are not stamped with one minted there.
_minted_trace_id: ContextVar[str | None] = ContextVar("athena_minted_trace_id", default=None)


# W3C trace context, version 00 (and the future versions' leading fields): version-traceid-parentid-flags.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16


def new_trace_id() -> str:
    """A fresh trace id: 128 random bits as 32 lowercase hex digits, a valid OTel trace id."""
    return os.urandom(16).hex()


def traceparent_trace_id(traceparent: str) -> str | None:
    """The trace id of a valid W3C `traceparent` header, None for a malformed one (which is ignored, as the
    specification asks, and the request gets a trace id of its own)."""
    match = _TRACEPARENT.fullmatch(traceparent)
    if match is None:
        return None
    version, trace, span, _flags, rest = match.groups()
    if version == "ff" or trace == _ZERO_TRACE or span == _ZERO_SPAN or (version == "00" and rest):
        return None
    return trace


def set_trace_id(trace_id: str) -> None:
    _trace_id.set(trace_id)


def trace_id() -> str:
    """The request's trace id; work outside a request gets a fresh one (the same one for the rest of it)."""
    current = _trace_id.get()
    if current is None:
        current = _minted_trace_id.get()
        if current is None:
            current = new_trace_id()
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
