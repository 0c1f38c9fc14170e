"""OpenTelemetry traces, configured from the standard `OTEL_*` environment variables when a process
starts, and off (no SDK loaded, no span built) when none asks for an exporter.

Off is the default and must cost nothing on the run path: every instrumented site checks the module-level
`ENABLED` flag before it builds a name or an attribute, rather than relying on the API's no-op tracer
(which still allocates a span object and walks the context per call).

Athena's trace id (`traceId` on runs, events, errors and the `x-trace-id` header) is the OTel trace id of
the request's spans whenever Athena minted it or the caller sent `traceparent`: a span started for a trace
id Athena already holds gets exactly that id (`_AthenaIds` hands it to the SDK through `_wanted`), so the
spans and the records agree without a parent span that does not exist. A caller's free-form `x-trace-id`
that is not 32 hex digits or a UUID cannot be an OTel id: the spans get a fresh one and carry the caller's
value as `athena.trace_id`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from opentelemetry import context as context_api
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger("athena")

# True once `configure` installed an SDK tracer provider with an exporter; read by every instrumented site.
ENABLED = False
# The attribute a span carries when Athena's trace id (the caller's `x-trace-id`) is not its OTel trace id.
ATHENA_TRACE_ATTR = "athena.trace_id"
# The attribute naming the contract error code a span ended with.
ERROR_CODE_ATTR = "athena.error_code"
# The exporters `OTEL_TRACES_EXPORTER` may name here (the OTLP one speaks HTTP/protobuf).
EXPORTERS = ("otlp", "console")
OTLP_PROTOCOL = "http/protobuf"
DEFAULT_SERVICE = "athena"

_tracer: trace.Tracer = trace.NoOpTracer()
_provider: TracerProvider | None = None
# The trace id the next root span must have (an id Athena already gave the request), None: a random one.
_wanted: ContextVar[int | None] = ContextVar("athena_otel_wanted_trace_id", default=None)


def exporter_names(env: Mapping[str, str]) -> list[str]:
    """The span exporters the standard variables ask for; empty: tracing stays off. Unlike the
    specification's default (`otlp`), an unset `OTEL_TRACES_EXPORTER` exports only when an OTLP endpoint
    is set, so a server started without any `OTEL_*` variable never loads the SDK."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    raw = env.get("OTEL_TRACES_EXPORTER", "").strip()
    if not raw:
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        return _check_protocol(["otlp"], env) if endpoint and endpoint.strip() else []
    names = list(dict.fromkeys(name.strip().lower() for name in raw.split(",") if name.strip()))
    if "none" in names:
        return []
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        raise ValueError(f"OTEL_TRACES_EXPORTER: unknown exporter {unknown[0]!r} (use {', '.join(EXPORTERS)} or none)")
    return _check_protocol(names, env)


def _check_protocol(names: list[str], env: Mapping[str, str]) -> list[str]:
    """The OTLP exporter installed speaks HTTP/protobuf only (no gRPC exporter: it would pull a second
    gRPC stack into the exporting thread); another protocol asked for is refused, not silently changed."""
    if "otlp" in names:
        protocol = (
            env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or ""
        ).strip()
        if protocol and protocol != OTLP_PROTOCOL:
            raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL: only {OTLP_PROTOCOL} is supported, not {protocol!r}")
    return names


def _id_generator() -> Any:
    """Random ids, except a root span's trace id when the request already has one (`_wanted`); built here
    because the SDK's base class exists only once the SDK is imported."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class AthenaIds(RandomIdGenerator):
        def generate_trace_id(self) -> int:
            wanted = _wanted.get()
            return wanted if wanted is not None else super().generate_trace_id()

        def is_trace_id_random(self) -> bool:
            return False  # a caller's id may be anything

    return AthenaIds()


def configure(service: str = DEFAULT_SERVICE, env: Mapping[str, str] | None = None) -> bool:
    """Install a tracer provider exporting to what the `OTEL_*` variables ask for (OTLP over HTTP with a
    batching processor; `console` prints each span as it ends, for debugging); the service name is
    `OTEL_SERVICE_NAME` (or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`), else `service`. The sampler
    follows `OTEL_TRACES_SAMPLER`. False, and nothing loaded, when no exporter is asked for. ValueError
    names a variable Athena cannot honour."""
    global ENABLED, _provider, _tracer
    names = exporter_names(os.environ if env is None else env)
    if not names:
        return False
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service}))
    provider = TracerProvider(resource=resource, id_generator=_id_generator())
    for name in names:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        else:
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    _provider, _tracer, ENABLED = provider, provider.get_tracer("athena"), True
    log.info("traces: exporting to %s", ", ".join(names))
    return True


def shutdown() -> None:
    """Export the spans still buffered and stop the exporters (at the end of `serve`)."""
    global ENABLED, _provider
    if _provider is not None:
        provider, _provider = _provider, None
        ENABLED = False
        provider.shutdown()


def otel_trace_id(athena_trace_id: str) -> int | None:
    """The OTel trace id an Athena trace id stands for: 32 hex digits or a UUID (any case) as its 128 bits;
    None for anything else (a free-form caller's id) and for the invalid all-zero id."""
    text = athena_trace_id.replace("-", "") if len(athena_trace_id) == 36 else athena_trace_id
    if len(text) != 32:
        return None
    try:
        value = int(text, 16)
    except ValueError:
        return None
    return value or None


def trace_hex(span: Span) -> str:
    return format(span.get_span_context().trace_id, "032x")


def current_span_id() -> str | None:
    """The active span's id (16 hex digits), None when tracing is off or no span is active."""
    if not ENABLED:
        return None
    context = trace.get_current_span().get_span_context()
    return format(context.span_id, "016x") if context.is_valid else None


def active_span() -> Span | None:
    """The span active in this context, None when there is none."""
    current = trace.get_current_span()
    return current if current.get_span_context().is_valid else None


def parent_from(carrier: Mapping[str, str]) -> context_api.Context | None:
    """The context of an incoming request: the current one when a span is already active (the in-process
    gateway's request span), else the W3C `traceparent`/`tracestate` the caller sent (None: a root)."""
    if trace.get_current_span().get_span_context().is_valid:
        return None  # start_span uses the current context
    if "traceparent" not in carrier:
        return context_api.Context()
    return propagate.extract(carrier, context=context_api.Context())


def start_span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: context_api.Context | None = None,
    athena_trace_id: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Span:
    """A span (not made current); when it is a root and `athena_trace_id` is an OTel-shaped id, that id is
    its trace id. An Athena id that is not, as written, the span's trace id (free-form, a UUID, or a
    caller's `x-trace-id` beside a `traceparent` of another trace) is kept as `athena.trace_id`, so the
    trace can be found from the id on the records."""
    wanted = otel_trace_id(athena_trace_id) if athena_trace_id else None
    token = _wanted.set(wanted)
    try:
        span = _tracer.start_span(name, context=parent, kind=kind, attributes=attributes)
    finally:
        _wanted.reset(token)
    if athena_trace_id and athena_trace_id != trace_hex(span):  # free-form, a UUID, or not the parent's trace
        span.set_attribute(ATHENA_TRACE_ATTR, athena_trace_id)
    return span


def end_span(span: Span, error: BaseException | None = None) -> None:
    """End `span`, marked failed with the error's contract code (`code_name`) or type when there is one."""
    if error is not None:
        fail(span, error)
    span.end()


def fail(span: Span, error: BaseException) -> None:
    code = getattr(error, "code_name", None)
    if code is not None:
        span.set_attribute(ERROR_CODE_ATTR, str(code))
    span.set_status(Status(StatusCode.ERROR, str(code or type(error).__name__)))


@contextlib.contextmanager
def ending(current: Span | None) -> Iterator[None]:
    """End an already started span (None: tracing is off) when the block ends, failed by what escapes it:
    for spans started before the block, such as a store transaction's, started where it was asked for."""
    if current is None:
        yield
        return
    try:
        yield
    except BaseException as exc:
        end_span(current, exc)
        raise
    end_span(current)


@contextlib.contextmanager
def span(
    name: str, attributes: Mapping[str, Any] | None = None, *, athena_trace_id: str | None = None
) -> Iterator[Span]:
    """A current span around a block (a provider attempt, a schedule tick), failed by what escapes it."""
    current = start_span(name, athena_trace_id=athena_trace_id, attributes=attributes)
    token = context_api.attach(trace.set_span_in_context(current))
    try:
        yield current
    except BaseException as exc:
        fail(current, exc)
        raise
    finally:
        context_api.detach(token)
        current.end()


def attach(current: Span) -> object:
    """Make `current` the active span of this context; the token is for `detach`."""
    return context_api.attach(trace.set_span_in_context(current))


def detach(token: object) -> None:
    context_api.detach(token)  # type: ignore[arg-type]


def inject(metadata: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """gRPC metadata with the active span's `traceparent`/`tracestate` in place of the caller's, so a
    server behind `gateway serve --upstream` parents its spans on the gateway's request span."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if not carrier:
        return metadata
    return (*((k, v) for k, v in metadata if k not in carrier), *carrier.items())
