"""Per-request trace ids, and the last line of defence for unexpected gateway faults.

A pure ASGI middleware rather than FastAPI's `@app.middleware("http")`, which would buffer streaming
responses and hide client disconnects from the SSE writer. It sits outside the exception handlers, so
404s, error envelopes and event streams all leave with the `x-trace-id` header.
"""

from __future__ import annotations

import logging
import uuid

from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from athena_client import contract
from athena_gateway.envelope import error_response
from athena_gateway.errors import internal_error

TRACE_HEADER = contract.TRACE_HEADER.encode()
# W3C trace context echoed back, each up to its bound: an over-long one is refused, not repeated.
ECHOED_HEADERS = {name.encode(): contract.HEADER_MAX_CHARS[name] for name in ("traceparent", "tracestate")}

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
        trace_id = str(uuid.uuid4())
        scope.setdefault("state", {})["trace_id"] = trace_id
        extra = [(TRACE_HEADER, trace_id.encode())]
        extra += [
            (name, value)
            for name, value in scope["headers"]
            if name in ECHOED_HEADERS and len(value) <= ECHOED_HEADERS[name]
        ]
        started = False

        async def send_traced(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        try:
            await self.app(scope, receive, send_traced)
        except ClientDisconnect:
            return  # nobody is left to answer
        except Exception:
            log.exception("unhandled gateway error (trace %s)", trace_id)
            if started:
                raise
            await error_response(internal_error(trace_id), trace_id)(scope, receive, send_traced)
