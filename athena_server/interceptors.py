"""One interceptor for every RPC: trace id, header bounds, the access gate (identity, role, rate limit),
request bounds, error mapping, access log, request metrics. The order matters: headers are bounded before
the gate reads them, and callers are authenticated before their requests are examined (a 401 before a 400).

Errors: an AthenaError becomes the gRPC status its code names in the contract, with a
`google.rpc.ErrorInfo{reason=<code>, domain="athena.dev", metadata={retryable, traceId}}` detail, which
the gateway turns into the REST envelope. An RPC the contract has but this server does not implement
yet (the generated base servicer raises NotImplementedError) becomes NOT_IMPLEMENTED. Anything else is
logged with its stack and answered INTERNAL_ERROR with only the trace id on the wire.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_interceptor import AsyncServerInterceptor
from grpc_status import rpc_status

from athena_client.contract import (
    ERROR_CODES_BY_NUMBER,
    ERROR_DOMAIN,
    ERROR_META_RETRY_AFTER,
    ERROR_META_RETRYABLE,
    ERROR_META_TRACE_ID,
    HEADER_MAX_CHARS,
    HTTP_STATUS_HEADER,
    TRACE_HEADER,
)
from athena_server import otel
from athena_server.access.caller import ANONYMOUS, AuthzDenied, set_caller
from athena_server.access.gate import Gate
from athena_server.bounds import check_headers, check_message, rpc_name, valid_trace_id
from athena_server.errors import AthenaError, ErrorCode, not_implemented
from athena_server.metrics import ABORTED, CANCELLED, GRPC, OK, REST, Metrics
from athena_server.tracing import http_status, new_trace_id, set_http_status, set_trace_id, traceparent_trace_id

log = logging.getLogger("athena.server")
access_log = logging.getLogger("athena.access")


TRACEPARENT = "traceparent"
# The W3C headers an RPC's span is parented on (when tracing is on).
_PROPAGATED = frozenset({TRACEPARENT, "tracestate", "baggage"})


def _trace_from(metadata: Iterable[tuple[str, str | bytes]]) -> str:
    """The request's trace id: the caller's `x-trace-id` (free-form, contract), else the trace id of its
    W3C `traceparent`, else a new one (32 hex, an OTel trace id)."""
    parent: str | bytes | None = None
    for key, value in metadata:
        if key == TRACE_HEADER and isinstance(value, str) and valid_trace_id(value):
            return value
        if key == TRACEPARENT:
            parent = value
    if isinstance(parent, str):
        return traceparent_trace_id(parent) or new_trace_id()
    return new_trace_id()


def _rpc_span(method_name: str, metadata: Iterable[tuple[str, str | bytes]], trace: str, context: Any) -> Any:
    """The RPC's server span: a child of the active span (the in-process gateway's request), else of the
    caller's `traceparent`; a root carries the request's trace id (otel.start_span)."""
    carrier = {k: v for k, v in metadata if k in _PROPAGATED and isinstance(v, str)}
    service, _, method = method_name[1:].rpartition("/")
    attributes = {
        "rpc.system": "grpc",
        "rpc.service": service,
        "rpc.method": method,
        "athena.transport": transport_of(context),
    }
    return otel.start_span(
        method_name[1:],
        kind=otel.SpanKind.SERVER,
        parent=otel.parent_from(carrier),
        athena_trace_id=trace,
        attributes=attributes,
    )


def _end_rpc_span(span: Any, code: grpc.StatusCode, error: BaseException | None = None) -> None:
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    otel.end_span(span, error)


def as_athena_error(exc: BaseException, method_name: str, trace: str) -> AthenaError:
    if isinstance(exc, AthenaError):
        return exc
    if isinstance(exc, NotImplementedError):
        return not_implemented(method_name.rsplit("/", 1)[-1])
    log.error("unhandled error in %s (trace %s)", method_name, trace, exc_info=exc)
    return AthenaError(ErrorCode.ERROR_CODE_INTERNAL_ERROR, f"Internal error (trace id {trace}).")


def to_grpc_status(err: AthenaError, trace: str) -> grpc.Status:
    """The status of an Athena error: its code's gRPC code, an ErrorInfo naming the code, and a RetryInfo
    when the refusal says when to retry (rate limits, policy refusals)."""
    info = ERROR_CODES_BY_NUMBER[err.code]
    detail = any_pb2.Any()
    detail.Pack(
        error_details_pb2.ErrorInfo(
            reason=info.code,
            domain=ERROR_DOMAIN,
            metadata={
                ERROR_META_RETRYABLE: "true" if err.retryable else "false",
                ERROR_META_TRACE_ID: trace,
                **err.metadata,
            },
        )
    )
    details = [detail]
    retry_after = err.metadata.get(ERROR_META_RETRY_AFTER)
    if retry_after is not None and retry_after.isdigit():
        retry = any_pb2.Any()
        retry.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=int(retry_after))))
        details.append(retry)
    code = grpc.StatusCode[info.grpc_code]
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=err.message, details=details))


# The transport of a call, by the type of its context: the in-process gateway's LocalContext is REST.
_TRANSPORTS: dict[type, str] = {}


def transport_of(context: Any) -> str:
    kind = type(context)
    transport = _TRANSPORTS.get(kind)
    if transport is None:
        from athena_gateway.inprocess import IN_PROCESS_PEER

        transport = _TRANSPORTS[kind] = REST if context.peer() == IN_PROCESS_PEER else GRPC
    return transport


class AthenaServerInterceptor(AsyncServerInterceptor):
    def __init__(self, gate: Gate | None = None, metrics: Metrics | None = None) -> None:
        self.gate = gate
        self.metrics = metrics or Metrics()
        # Every header the server reads, with its bound (the identity header's name is configurable).
        self.header_limits = {**HEADER_MAX_CHARS, **(gate.header_limits if gate is not None else {})}

    async def intercept(
        self, method: Callable[..., Any], request_or_iterator: Any, context: grpc.aio.ServicerContext, method_name: str
    ) -> Any:
        metadata = tuple(context.invocation_metadata() or ())
        trace = _trace_from(metadata)
        set_trace_id(trace)
        set_http_status(None)
        set_caller(ANONYMOUS)
        span = token = None
        if otel.ENABLED:
            span = _rpc_span(method_name, metadata, trace, context)
            token = otel.attach(span)
        start = time.perf_counter()
        try:
            check_headers(metadata, self.header_limits)
            if self.gate is not None:
                await self.gate.admit(method_name, context, metadata)
            if isinstance(request_or_iterator, Message):  # unary and server-streaming requests
                check_message(request_or_iterator, rpc_name(method_name))
            response = method(request_or_iterator, context)
            if hasattr(response, "__aiter__"):  # the span stays active in the stream's task, which ends it
                token = None
                return self._stream(response, context, method_name, trace, start, span)
            result = await response
        except Exception as exc:
            await self._abort(context, exc, method_name, trace, start, span)
        finally:
            if token is not None:  # an in-process call returns to the gateway's request span
                otel.detach(token)
        status = http_status()
        extra = ((HTTP_STATUS_HEADER, str(status)),) if status is not None else ()
        context.set_trailing_metadata(((TRACE_HEADER, trace), *extra))
        self._log(method_name, "OK", trace, start)
        self._count(context, method_name, OK, start)
        if span is not None:
            _end_rpc_span(span, grpc.StatusCode.OK)
        return result

    async def _stream(
        self,
        responses: AsyncIterator[Any],
        context: grpc.aio.ServicerContext,
        method_name: str,
        trace: str,
        start: float,
        span: Any = None,
    ) -> AsyncIterator[Any]:
        subscribers = self.metrics.stream_subscribers(method_name[1:], transport_of(context))
        subscribers.inc()
        ended = False
        try:
            async for item in responses:
                yield item
            ended = True
        except Exception as exc:
            ended = True
            await self._abort(context, exc, method_name, trace, start, span)
        finally:
            subscribers.dec()
            if not ended:  # the client left (or the server is stopping): the stream did not end, it was cut
                self._count(context, method_name, CANCELLED, start)
                if span is not None:
                    _end_rpc_span(span, grpc.StatusCode.CANCELLED)
        self._log(method_name, "OK", trace, start)
        self._count(context, method_name, OK, start)
        if span is not None:
            _end_rpc_span(span, grpc.StatusCode.OK)

    async def _abort(
        self,
        context: grpc.aio.ServicerContext,
        exc: Exception,
        method_name: str,
        trace: str,
        start: float,
        span: Any = None,
    ) -> None:
        if isinstance(exc, grpc.aio.AbortError):
            self._count(context, method_name, ABORTED, start)
            if span is not None:  # the handler aborted with a status of its own: it is on the context
                otel.end_span(span, exc)
            raise exc
        if isinstance(exc, AuthzDenied) and not exc.recorded and self.gate is not None:
            await self.gate.record_denied(exc)  # raised by domain code (a check on the request's content)
        err = as_athena_error(exc, method_name, trace)
        status = to_grpc_status(err, trace)
        self._log(method_name, f"{status.code.name}/{err.code_name}", trace, start)
        self._count(context, method_name, err.code_name, start)
        if span is not None:
            _end_rpc_span(span, status.code, err)
        await context.abort(
            status.code, status.details, trailing_metadata=(*status.trailing_metadata, (TRACE_HEADER, trace))
        )

    def _count(self, context: Any, method_name: str, code: str, start: float) -> None:
        """athena_rpc_requests_total and the duration histogram; `rpc` is the method's full name."""
        rpc, transport = method_name[1:], transport_of(context)
        self.metrics.rpc_requests(rpc, transport, code).inc()
        self.metrics.rpc_seconds(rpc, transport).observe(time.perf_counter() - start)

    @staticmethod
    def _log(method_name: str, outcome: str, trace: str, start: float) -> None:
        access_log.info("%s %s %.1fms trace=%s", method_name, outcome, (time.perf_counter() - start) * 1000, trace)
