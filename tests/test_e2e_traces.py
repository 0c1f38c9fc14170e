"""OpenTelemetry traces (issue 14), from real server processes exporting OTLP/HTTP to a receiver the test
runs: a REST run is one trace under the caller's `traceparent` (gateway span, RPC span, store and provider
spans), its `traceId` is that trace id everywhere, the gateway's span reaches a server behind `gateway
serve --upstream` as `traceparent`, and a server whose `OTEL_*` variables ask for no exporter sends nothing."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from athena.v1 import system_pb2, system_pb2_grpc
from athena_client.contract import TRACE_HEADER
from tests.support.events import events_of
from tests.support.otlp import Receiver, Span, otlp_receiver
from tests.support.processes import Served, free_port, running_api, serving, start, wait_rest_ready
from tests.support.shapes import error_of, new_session, ok_data

SERVICE = "athena-e2e"
SERVER, INTERNAL = 2, 1  # opentelemetry.proto.trace.v1.Span.SpanKind
HEX32 = re.compile(r"[0-9a-f]{32}")
CREATE_RUN = "athena.v1.RunService/CreateRun"
HTTP_ATTRIBUTES = ("http.request.method", "url.path", "http.route", "http.response.status_code")


def otel_env(receiver: Receiver, service: str = SERVICE) -> dict[str, str]:
    """Export to the receiver, batches sent every 50 ms instead of 5 s."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_SERVICE_NAME": service,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }


def caller_traceparent() -> tuple[str, str, str]:
    trace, span = os.urandom(16).hex(), os.urandom(8).hex()
    return trace, span, f"00-{trace}-{span}-01"


def create_run(rest: httpx.Client, session: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"sessionId": session, "input": "hello", "provider": "mock", "model": "default"}
    return rest.post("/api/v1/runs", json=body, headers=headers or {})


def the(spans: list[Span], **fields: object) -> Span:
    """The one span with these fields."""
    found = [s for s in spans if all(getattr(s, k) == v for k, v in fields.items())]
    assert len(found) == 1, (fields, [(s.service, s.name, s.parent) for s in spans])
    return found[0]


def ancestors(span: Span, spans: list[Span]) -> list[str]:
    by_id = {s.span_id: s for s in spans}
    chain, at = [], span
    while at.parent in by_id:
        at = by_id[at.parent]
        chain.append(at.name)
    return chain


def run_trace_arrived(
    trace_id: str, run_id: str, gateway_name: str = "POST /api/v1/runs"
) -> Callable[[list[Span]], bool]:
    """The run's request span (the last to end) and its provider attempt are in."""

    def done(spans: list[Span]) -> bool:
        names = {(s.name, s.attributes.get("athena.run_id")) for s in spans if s.trace_id == trace_id}
        return (gateway_name, None) in names and ("athena.provider.attempt", run_id) in names

    return done


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Receiver, Served]]:
    with otlp_receiver() as receiver, serving(tmp_path_factory.mktemp("traces"), otel_env(receiver)) as served:
        yield receiver, served


def test_a_rest_run_is_one_trace_under_the_callers_span(traced: tuple[Receiver, Served]) -> None:
    receiver, served = traced
    trace_id, caller_span, traceparent = caller_traceparent()
    session = new_session()
    response = create_run(served.rest, session, {"traceparent": traceparent})
    run = ok_data(response)
    run_id = run["runId"]

    # Athena's trace id is the caller's OTel trace id, on the answer, the run and its events.
    assert response.headers[TRACE_HEADER] == trace_id
    assert run["traceId"] == trace_id
    assert ok_data(served.rest.get(f"/api/v1/runs/{run_id}"))["traceId"] == trace_id
    events = events_of(served.rest, session, run_id=run_id)
    assert events
    assert {e["traceId"] for e in events} == {trace_id}

    spans = [s for s in receiver.wait_for(run_trace_arrived(trace_id, run_id)) if s.trace_id == trace_id]
    assert {s.service for s in spans} == {SERVICE}
    gateway = the(spans, name="POST /api/v1/runs")
    assert (gateway.kind, gateway.parent) == (SERVER, caller_span)
    # One request span (FastAPI's built-in one; the gateway adds none beside it), with the HTTP conventions.
    assert {k: gateway.attributes.get(k) for k in HTTP_ATTRIBUTES} == {
        "http.request.method": "POST",
        "url.path": "/api/v1/runs",
        "http.route": "/api/v1/runs",
        "http.response.status_code": 200,
    }
    rpc = the(spans, name=CREATE_RUN)
    assert (rpc.kind, rpc.parent) == (SERVER, gateway.span_id)
    assert rpc.attributes == {
        "rpc.system": "grpc",
        "rpc.service": "athena.v1.RunService",
        "rpc.method": "CreateRun",
        "athena.transport": "rest",
        "rpc.grpc.status_code": 0,
    }
    writes = [s for s in spans if s.name == "athena.store.write" and s.parent == rpc.span_id]
    assert writes
    assert all(s.kind == INTERNAL and s.attributes["db.system.name"] == "sqlite" for s in writes)
    assert all(s.attributes["athena.store.group_size"] >= 1 for s in writes)
    provider = the(spans, name="athena.provider.attempt")
    assert provider.attributes == {"athena.provider": "mock", "athena.run_id": run_id, "athena.attempt": 1}
    assert ancestors(provider, spans)[-2:] == [CREATE_RUN, "POST /api/v1/runs"]
    assert all(s.status_code == 0 for s in spans)  # STATUS_CODE_UNSET: nothing failed


def test_a_run_without_trace_headers_gets_a_new_otel_trace_id(traced: tuple[Receiver, Served]) -> None:
    receiver, served = traced
    session = new_session()
    response = create_run(served.rest, session)
    run = ok_data(response)
    trace_id = response.headers[TRACE_HEADER]
    assert HEX32.fullmatch(trace_id)
    assert run["traceId"] == trace_id
    assert {e["traceId"] for e in events_of(served.rest, session, run_id=run["runId"])} == {trace_id}
    spans = [s for s in receiver.wait_for(run_trace_arrived(trace_id, run["runId"])) if s.trace_id == trace_id]
    gateway = the(spans, name="POST /api/v1/runs")
    assert gateway.parent == ""  # a root
    assert the(spans, name=CREATE_RUN).parent == gateway.span_id


def test_an_error_span_names_the_contract_code(traced: tuple[Receiver, Served]) -> None:
    receiver, served = traced
    response = served.rest.get("/api/v1/runs/no-such-run")
    error = error_of(response, 404, "NOT_FOUND")
    trace_id = response.headers[TRACE_HEADER]
    assert error["traceId"] == trace_id
    spans = receiver.wait_for(lambda s: any(x.trace_id == trace_id and x.name.startswith("GET ") for x in s))
    rpc = the([s for s in spans if s.trace_id == trace_id], name="athena.v1.RunService/GetRun")
    assert rpc.attributes["athena.error_code"] == "NOT_FOUND"
    assert rpc.attributes["rpc.grpc.status_code"] == grpc.StatusCode.NOT_FOUND.value[0]
    assert rpc.status_code == 2  # STATUS_CODE_ERROR


def test_grpc_callers_trace_ids(traced: tuple[Receiver, Served]) -> None:
    """A free-form `x-trace-id` stays Athena's id and rides on a span with an id of its own; a UUID or 32
    hex one is the span's trace id; a `traceparent` alone gives both."""
    receiver, served = traced
    stub = system_pb2_grpc.SystemServiceStub(served.channel)
    request = system_pb2.GetCapabilitiesRequest()
    free_form, as_uuid = f"trace_{os.urandom(4).hex()}", "3F2504E0-4F89-41D3-9A0C-0305E82C3301"
    parent_trace, parent_span, traceparent = caller_traceparent()
    answers = {}
    for metadata in ((TRACE_HEADER, free_form),), ((TRACE_HEADER, as_uuid),), (("traceparent", traceparent),):
        _, call = stub.GetCapabilities.with_call(request, metadata=metadata, timeout=30)
        answers[metadata[0][1]] = dict(call.trailing_metadata())[TRACE_HEADER]
    assert answers == {free_form: free_form, as_uuid: as_uuid, traceparent: parent_trace}

    name = "athena.v1.SystemService/GetCapabilities"

    def arrived(spans: list[Span]) -> bool:
        return sum(1 for s in spans if s.name == name and s.attributes["athena.transport"] == "grpc") >= 3

    rpcs = [s for s in receiver.wait_for(arrived) if s.name == name]
    tagged = the(rpcs, attributes={**rpcs_attributes(), "athena.trace_id": free_form})
    assert HEX32.fullmatch(tagged.trace_id) and tagged.parent == ""
    by_uuid = the(rpcs, trace_id=as_uuid.replace("-", "").lower())
    assert (by_uuid.parent, by_uuid.attributes) == ("", {**rpcs_attributes(), "athena.trace_id": as_uuid})
    child = the(rpcs, trace_id=parent_trace)
    assert (child.parent, child.attributes) == (parent_span, rpcs_attributes())


def rpcs_attributes() -> dict[str, object]:
    return {
        "rpc.system": "grpc",
        "rpc.service": "athena.v1.SystemService",
        "rpc.method": "GetCapabilities",
        "athena.transport": "grpc",
        "rpc.grpc.status_code": 0,
    }


def test_the_gateway_span_parents_the_upstream_servers_rpc(tmp_path: Path) -> None:
    with otlp_receiver() as receiver, running_api(tmp_path, otel_env(receiver)) as api:
        port = free_port()
        gateway = start(
            ["gateway", "serve", "--port", str(port), "--upstream", api.grpc_target],
            tmp_path,
            otel_env(receiver, "athena-gateway-e2e"),
            "gw",
        )
        gateway.rest_port = port
        try:
            wait_rest_ready(gateway)
            trace_id, caller_span, traceparent = caller_traceparent()
            with httpx.Client(base_url=gateway.rest_url, timeout=60) as rest:
                response = create_run(rest, new_session(), {"traceparent": traceparent})
        finally:
            gateway.stop()
        run = ok_data(response)
        assert (response.headers[TRACE_HEADER], run["traceId"]) == (trace_id, trace_id)
        spans = [s for s in receiver.wait_for(run_trace_arrived(trace_id, run["runId"])) if s.trace_id == trace_id]
        edge = the(spans, name="POST /api/v1/runs")
        assert (edge.service, edge.parent) == ("athena-gateway-e2e", caller_span)
        rpc = the(spans, name=CREATE_RUN)
        assert (rpc.service, rpc.parent, rpc.attributes["athena.transport"]) == (SERVICE, edge.span_id, "grpc")
        assert ancestors(the(spans, name="athena.provider.attempt"), spans)[-2:] == [CREATE_RUN, "POST /api/v1/runs"]


@pytest.mark.parametrize("off", [{"OTEL_TRACES_EXPORTER": "none"}, {"OTEL_SDK_DISABLED": "true"}])
def test_no_exporter_asked_for_sends_no_spans(tmp_path: Path, off: dict[str, str]) -> None:
    """Stopping the server flushes whatever a tracer provider would hold, so an empty receiver after the
    stop means nothing was traced; the run's trace id is still an OTel-shaped one."""
    with otlp_receiver() as receiver:
        with serving(tmp_path, {**otel_env(receiver), **off}) as served:
            response = create_run(served.rest, new_session())
            assert HEX32.fullmatch(ok_data(response)["traceId"])
            process = served.process
        # serving() stopped it
        assert "traces: exporting" not in process.log()
        assert receiver.received() == []
