"""Per-request trace ids and spans, and the last line of defence for unexpected gateway faults.

A request's trace id is its caller's W3C `traceparent` trace id, else a new one (32 hex: an OTel trace
id). With tracing on (athena_server/otel.py) the request has a server span, parented on the caller's
`traceparent` and active while the app runs, so the RPC span of an in-process call is its child (and
`GrpcUpstream` sends it on as `traceparent`); the request's trace id is that span's. The span is
FastAPI's own (its built-in telemetry starts one, outside this middleware, once a tracer provider is
installed); this middleware starts one only when no span is active, so a request never has two.

A pure ASGI middleware rather than FastAPI's `@app.middleware("http")`, which would buffer streaming
responses and hide client disconnects from the SSE writer. It sits outside the exception handlers, so
404s, error envelopes and event streams all leave with the `x-trace-id` header.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from athena_client import contract
from athena_gateway.envelope import error_response
from athena_gateway.errors import internal_error
from athena_server import otel
from athena_server.tracing import new_trace_id, traceparent_trace_id

TRACE_HEADER = contract.TRACE_HEADER.encode()
# W3C trace context echoed back, each up to its bound: an over-long one is refused, not repeated.
ECHOED_HEADERS = {name.encode(): contract.HEADER_MAX_CHARS[name] for name in ("traceparent", "tracestate")}
TRACEPARENT = b"traceparent"
# The W3C headers a request's span is parented on.
_PROPAGATED = frozenset({TRACEPARENT, b"tracestate", b"baggage"})

log = logging.getLogger("athena.gateway")


def trace_id_of(request: Request) -> str:
    """The trace id TraceMiddleware gave this request."""
    return str(request.scope["state"]["trace_id"])


class TraceMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        echoed = [
            (name, value)
            for name, value in scope["headers"]
            if name in ECHOED_HEADERS and len(value) <= ECHOED_HEADERS[name]
        ]
        parent = next((value for name, value in echoed if name == TRACEPARENT), None)
        trace_id = (parent is not None and traceparent_trace_id(parent.decode("latin-1"))) or new_trace_id()
        span = None
        if otel.ENABLED:
            active = otel.active_span()
            if active is not None:
                trace_id = otel.trace_hex(active)
            else:
                span = _request_span(scope, trace_id)
        scope.setdefault("state", {})["trace_id"] = trace_id
        extra = [(TRACE_HEADER, trace_id.encode()), *echoed]
        started = False
        status = 500

        async def send_traced(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        token = otel.attach(span) if span is not None else None
        try:
            await self.app(scope, receive, send_traced)
        except ClientDisconnect:
            return  # nobody is left to answer
        except Exception:
            log.exception("unhandled gateway error (trace %s)", trace_id)
            if started:
                raise
            await error_response(internal_error(trace_id), trace_id)(scope, receive, send_traced)
        finally:
            if span is not None:
                otel.detach(token)
                _end_request_span(span, scope, status if started else None)


def _request_span(scope: Scope, trace_id: str) -> Any:
    """The request's server span, a child of the caller's `traceparent` (else a root whose trace id is
    `trace_id`)."""
    carrier = {name.decode(): value.decode("latin-1") for name, value in scope["headers"] if name in _PROPAGATED}
    method = scope["method"]
    attributes = {"http.request.method": method, "url.path": scope["path"], "url.scheme": scope.get("scheme", "http")}
    return otel.start_span(
        method,
        kind=otel.SpanKind.SERVER,
        parent=otel.parent_from(carrier),
        athena_trace_id=trace_id,
        attributes=attributes,
    )


def _end_request_span(span: Any, scope: Scope, status: int | None) -> None:
    """Named after the route template the router matched (`POST /api/v1/runs`), with the answer's status;
    a 5xx (or no answer) marks it failed."""
    route = getattr(scope.get("route"), "path", None)
    if route is not None:
        span.update_name(f"{scope['method']} {route}")
        span.set_attribute("http.route", route)
    if status is not None:
        span.set_attribute("http.response.status_code", status)
    if status is None or status >= 500:
        span.set_status(otel.Status(otel.StatusCode.ERROR))
    span.end()
