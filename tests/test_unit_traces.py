"""Traces in-process (issue 14): which `OTEL_*` settings turn tracing on, how trace ids are minted and read
from `traceparent`/`x-trace-id`, and the spans the store, the provider attempts and the log lines get.
Spans go to the SDK's in-memory exporter through a tracer provider of the test's own (the process-wide one
is never installed here, so the off state is what the rest of the suite runs with)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from sqlalchemy import Connection, text

from athena_server import otel
from athena_server.engine.execution import Attempts, call_with_retries
from athena_server.engine.providers import ProviderRequest, ProviderResult
from athena_server.errors import AthenaError, ErrorCode
from athena_server.interceptors import _trace_from
from athena_server.logs import JsonFormatter
from athena_server.storage.store import Store
from athena_server.tracing import new_trace_id, traceparent_trace_id

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{SPAN}-01"


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Tracing on, into memory, for this test only."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=otel._id_generator())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(otel, "_tracer", provider.get_tracer("test"))
    monkeypatch.setattr(otel, "ENABLED", True)
    yield exporter
    provider.shutdown()


def hex_ids(span: ReadableSpan) -> tuple[str, str, str]:
    """(trace id, span id, parent span id or "")."""
    context = span.get_span_context()
    assert context is not None
    parent = format(span.parent.span_id, "016x") if span.parent is not None else ""
    return format(context.trace_id, "032x"), format(context.span_id, "016x"), parent


# -- configuration ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, []),
        ({"OTEL_SERVICE_NAME": "x"}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, []),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "Console, otlp,console"}, ["console", "otlp"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, []),
        ({"OTEL_TRACES_EXPORTER": "otlp,none"}, []),
        ({"OTEL_SDK_DISABLED": "TRUE", "OTEL_TRACES_EXPORTER": "otlp"}, []),
        ({"OTEL_SDK_DISABLED": "false", "OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, ["console"]),
    ],
)
def test_which_variables_turn_tracing_on(env: dict[str, str], names: list[str]) -> None:
    assert otel.exporter_names(env) == names


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"OTEL_TRACES_EXPORTER": "zipkin"},
            "OTEL_TRACES_EXPORTER: unknown exporter 'zipkin' (use otlp, console or none)",
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
            "OTEL_EXPORTER_OTLP_PROTOCOL: only http/protobuf is supported, not 'grpc'",
        ),
    ],
)
def test_variables_athena_cannot_honour_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as exc:
        otel.exporter_names(env)
    assert str(exc.value) == message


def test_nothing_is_configured_without_otel_variables() -> None:
    assert otel.configure(env={}) is False
    assert otel.ENABLED is False
    assert type(trace.get_tracer_provider()) is trace.ProxyTracerProvider
    assert otel.current_span_id() is None


# -- trace ids ------------------------------------------------------------------------------------------


def test_minted_trace_ids_are_otel_trace_ids() -> None:
    minted = {new_trace_id() for _ in range(100)}
    assert len(minted) == 100
    assert all(re.fullmatch(r"[0-9a-f]{32}", t) for t in minted)


@pytest.mark.parametrize(
    ("header", "trace_id"),
    [
        (TRACEPARENT, TRACE),
        (f"01-{TRACE}-{SPAN}-00-future-field", TRACE),  # a later version may add fields
        (f"00-{TRACE}-{SPAN}-01-extra", None),  # version 00 has exactly four
        (f"ff-{TRACE}-{SPAN}-01", None),
        (f"00-{'0' * 32}-{SPAN}-01", None),
        (f"00-{TRACE}-{'0' * 16}-01", None),
        (f"00-{TRACE.upper()}-{SPAN}-01", None),
        (f"00-{TRACE[:-1]}-{SPAN}-01", None),
        ("00-abc-def-01", None),
        ("", None),
    ],
)
def test_traceparent_trace_id(header: str, trace_id: str | None) -> None:
    assert traceparent_trace_id(header) == trace_id


@pytest.mark.parametrize(
    ("athena_id", "otel_id"),
    [
        (TRACE, int(TRACE, 16)),
        (TRACE.upper(), int(TRACE, 16)),
        ("3f2504e0-4f89-41d3-9a0c-0305e82c3301", 0x3F2504E04F8941D39A0C0305E82C3301),
        ("trace_123", None),
        ("0" * 32, None),
        ("g" * 32, None),
        (TRACE + "0", None),
        ("3f2504e0_4f89_41d3_9a0c_0305e82c3301", None),
    ],
)
def test_which_athena_trace_ids_are_otel_ones(athena_id: str, otel_id: int | None) -> None:
    assert otel.otel_trace_id(athena_id) == otel_id


def test_the_rpcs_trace_id_comes_from_x_trace_id_then_traceparent() -> None:
    assert _trace_from([("x-trace-id", "trace_123"), ("traceparent", TRACEPARENT)]) == "trace_123"
    assert _trace_from([("traceparent", TRACEPARENT), ("x-trace-id", "trace_123")]) == "trace_123"
    assert _trace_from([("traceparent", TRACEPARENT)]) == TRACE
    # An invalid x-trace-id is refused by the header bounds later; here it does not count.
    assert _trace_from([("x-trace-id", "not a trace"), ("traceparent", TRACEPARENT)]) == TRACE
    for metadata in ([], [("traceparent", "00-abc-def-01")], [("traceparent", b"binary")]):
        assert re.fullmatch(r"[0-9a-f]{32}", _trace_from(metadata))


# -- spans ---------------------------------------------------------------------------------------------


def test_a_root_span_takes_the_requests_trace_id(spans: InMemorySpanExporter) -> None:
    otel.start_span("minted", athena_trace_id=TRACE).end()
    otel.start_span("uuid", athena_trace_id="3F2504E0-4F89-41D3-9A0C-0305E82C3301").end()
    otel.start_span("free-form", athena_trace_id="trace_123").end()
    minted, by_uuid, free = spans.get_finished_spans()
    assert hex_ids(minted)[0::2] == (TRACE, "")
    assert minted.attributes == {}
    assert hex_ids(by_uuid)[0] == "3f2504e04f8941d39a0c0305e82c3301"
    assert by_uuid.attributes == {otel.ATHENA_TRACE_ATTR: "3F2504E0-4F89-41D3-9A0C-0305E82C3301"}
    assert hex_ids(free)[0] != TRACE and dict(free.attributes or {}) == {otel.ATHENA_TRACE_ATTR: "trace_123"}


def test_a_span_is_parented_on_traceparent_or_on_the_active_span(spans: InMemorySpanExporter) -> None:
    remote = otel.start_span("remote", parent=otel.parent_from({"traceparent": TRACEPARENT}), athena_trace_id="t1")
    remote.end()
    assert otel.parent_from({"traceparent": TRACEPARENT}) is not None
    with otel.span("outer") as outer:
        assert otel.parent_from({"traceparent": TRACEPARENT}) is None  # the active span wins
        inner = otel.start_span("inner", parent=otel.parent_from({}))
        inner.end()
        assert otel.current_span_id() == format(outer.get_span_context().span_id, "016x")
    assert otel.current_span_id() is None
    done = {s.name: hex_ids(s) for s in spans.get_finished_spans()}
    assert done["remote"][0::2] == (TRACE, SPAN)
    assert spans.get_finished_spans()[0].attributes == {otel.ATHENA_TRACE_ATTR: "t1"}
    assert done["inner"][0::2] == (done["outer"][0], done["outer"][1])
    assert done["outer"][2] == ""


def test_a_failed_block_names_the_contract_code(spans: InMemorySpanExporter) -> None:
    with pytest.raises(AthenaError), otel.span("fails"):
        raise AthenaError(ErrorCode.ERROR_CODE_PROVIDER_ERROR, "boom", retryable=True)
    (failed,) = spans.get_finished_spans()
    assert failed.attributes == {otel.ERROR_CODE_ATTR: "PROVIDER_ERROR"}
    assert (failed.status.status_code, failed.status.description) == (StatusCode.ERROR, "PROVIDER_ERROR")


def test_inject_replaces_the_callers_traceparent(spans: InMemorySpanExporter) -> None:
    metadata = (("x-trace-id", "t"), ("traceparent", TRACEPARENT))
    with otel.span("gateway") as gateway:
        sent = dict(otel.inject(metadata))
    ids = gateway.get_span_context()
    assert sent == {"x-trace-id": "t", "traceparent": f"00-{ids.trace_id:032x}-{ids.span_id:016x}-01"}
    assert otel.inject(metadata) == metadata  # no active span: nothing to send on


async def test_each_store_transaction_is_a_span_under_its_caller(store: Store, spans: InMemorySpanExporter) -> None:
    def fails(conn: Connection) -> None:
        raise AthenaError(ErrorCode.ERROR_CODE_SESSION_LOCK_TIMEOUT, "no")

    with otel.span("rpc", athena_trace_id=TRACE):
        assert await store.write(lambda conn: conn.execute(text("SELECT 1")).scalar_one()) == 1
        assert await store.read(lambda conn: conn.execute(text("SELECT 2")).scalar_one()) == 2
        with pytest.raises(AthenaError):
            await store.write(fails)
    write, read, failed, rpc = spans.get_finished_spans()
    names = [s.name for s in (write, read, failed, rpc)]
    assert names == ["athena.store.write", "athena.store.read", "athena.store.write", "rpc"]
    rpc_id = hex_ids(rpc)[1]
    assert {hex_ids(s)[0::2] for s in (write, read, failed)} == {(TRACE, rpc_id)}
    assert write.attributes == {"db.system.name": "sqlite", "athena.store.group_size": 1}
    assert read.attributes == {"db.system.name": "sqlite"}
    assert failed.attributes == {
        "db.system.name": "sqlite",
        "athena.store.group_size": 1,
        "athena.error_code": "SESSION_LOCK_TIMEOUT",
    }
    assert failed.status.status_code == StatusCode.ERROR


class Flaky:
    name = "flaky"

    def __init__(self) -> None:
        self.calls = 0

    async def complete(self, request: ProviderRequest) -> ProviderResult:
        self.calls += 1
        if self.calls == 1:
            raise AthenaError(ErrorCode.ERROR_CODE_PROVIDER_ERROR, "try again", retryable=True)
        return ProviderResult(output="ok", model=request.model, input_tokens=1, output_tokens=1)


async def test_each_provider_attempt_is_a_span(spans: InMemorySpanExporter) -> None:
    request = ProviderRequest(run_id="r1", session_id="s", model="m", prompt="p", input="i")
    with otel.span("run"):
        result = await call_with_retries(Flaky(), request, retry_budget=1, attempts=Attempts())
    assert result.output == "ok"
    first, second, run = spans.get_finished_spans()
    assert (first.name, second.name) == ("athena.provider.attempt", "athena.provider.attempt")
    base = {"athena.provider": "flaky", "athena.run_id": "r1"}
    assert first.attributes == {**base, "athena.attempt": 1, otel.ERROR_CODE_ATTR: "PROVIDER_ERROR"}
    assert second.attributes == {**base, "athena.attempt": 2}
    assert (first.status.status_code, second.status.status_code) == (StatusCode.ERROR, StatusCode.UNSET)
    assert {hex_ids(s)[2] for s in (first, second)} == {hex_ids(run)[1]}


def test_json_log_lines_name_the_active_span(spans: InMemorySpanExporter) -> None:
    record = logging.LogRecord("athena", logging.INFO, __file__, 1, "hello", None, None)
    assert "spanId" not in json.loads(JsonFormatter().format(record))
    with otel.span("work") as work:
        line = json.loads(JsonFormatter().format(record))
    assert line["spanId"] == format(work.get_span_context().span_id, "016x")
