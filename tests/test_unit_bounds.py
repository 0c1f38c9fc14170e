"""Unit tests of the request bounds, cursors, byte-bounded pages and the context pre-check (no I/O)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from google.protobuf import message_factory, struct_pb2
from google.protobuf.descriptor import FieldDescriptor
from grpc_health.v1 import health_pb2

from athena.v1 import directives_pb2, runs_pb2, schedules_pb2, workflows_pb2
from athena_client.contract import (
    HEADER_MAX_CHARS,
    IDEMPOTENCY_HEADER,
    TRACE_HEADER,
    field_bounds,
)
from athena_gateway.routes import build_routes
from athena_server import bounds, cursors, validation
from athena_server.control import pages
from athena_server.control.schedule_slots import LAST_SLOT_MS, MINUTE_MS, Cadence, parse_cron
from athena_server.engine.context import MAX_CONTEXT_CHARS, check_input
from athena_server.errors import AthenaError
from athena_server.storage import tables


def refused(message: Any, rpc: str = "createRun") -> tuple[str, str]:
    with pytest.raises(AthenaError) as exc:
        bounds.check_message(message, rpc)
    return exc.value.code_name, exc.value.message


def config(message: Any, rpc: str = "createRun") -> str:
    code, text = refused(message, rpc)
    assert code == "CONFIG_ERROR"
    return text


# ---- the contract's bounds ------------------------------------------------------------------------


def test_every_request_type_compiles() -> None:
    """A request field of a type without a sensible default bound (Struct, Any) fails here, not in a call."""
    for spec in build_routes():
        assert isinstance(bounds._request_checks(message_factory.GetMessageClass(spec.method.input_type)), tuple)


def test_unboundable_request_field_types_are_refused_at_compile_time() -> None:
    with pytest.raises(TypeError):
        bounds._checks(struct_pb2.Struct.DESCRIPTOR)


def _bound(message: Any, path: str) -> int:
    descriptor = message.DESCRIPTOR
    field: FieldDescriptor | None = None
    for name in path.split("."):
        field = descriptor.fields_by_name[name]
        descriptor = field.message_type
    assert field is not None
    chars = field_bounds(field).max_chars
    assert chars is not None
    return chars


@pytest.mark.parametrize(
    ("message", "path", "column"),
    [
        (runs_pb2.CreateRunRequest, "session_id", tables.sessions.c.id),
        (runs_pb2.CreateRunRequest, "provider", tables.runs.c.provider),
        (runs_pb2.CreateRunRequest, "model", tables.runs.c.model),
        (runs_pb2.CreateRunRequest, "directive_id", tables.runs.c.directive_id),
        (runs_pb2.CreateRunRequest, "harness_profile_id", tables.runs.c.harness_profile_id),
        (runs_pb2.CancelRunByRunIdRequest, "run_id", tables.events.c.run_id),
        (schedules_pb2.CreateScheduleRequest, "id", tables.schedules.c.id),
        (schedules_pb2.CreateScheduleRequest, "session_id", tables.schedules.c.session_id),
        (schedules_pb2.CreateScheduleRequest, "cron", tables.schedules.c.cron),
        (schedules_pb2.UpdateScheduleRequest, "cron", tables.schedules.c.cron),
        (workflows_pb2.WorkflowStep, "id", tables.workflow_steps.c.step_id),
    ],
)
def test_client_set_values_fit_their_columns(message: Any, path: str, column: Any) -> None:
    """What a client sets and the server stores fits the column on PostgreSQL, which refuses (a 500) what
    SQLite silently keeps."""
    assert _bound(message, path) <= int(column.type.length)


def test_headers_fit_their_columns() -> None:
    def width(column: Any) -> int:
        return int(column.type.length)

    assert HEADER_MAX_CHARS[TRACE_HEADER] <= width(tables.runs.c.trace_id)
    assert HEADER_MAX_CHARS[TRACE_HEADER] <= width(tables.events.c.trace_id)
    assert HEADER_MAX_CHARS[IDEMPOTENCY_HEADER] <= width(tables.idempotency_keys.c.key)


def test_free_text_fits_the_request_bound() -> None:
    assert _bound(runs_pb2.CreateRunRequest, "input") == bounds.MAX_REQUEST_BYTES
    assert _bound(runs_pb2.CreateRunRequest, "metadata") == 1024


# ---- messages -------------------------------------------------------------------------------------


def test_valid_requests_pass() -> None:
    bounds.check_message(
        runs_pb2.CreateRunRequest(
            session_id="s" * 128, input="line one\n\tline two" * 100, metadata={"k" * 128: "v\n" * 512}
        ),
        "createRun",
    )


def test_strings_name_the_field_by_json_path() -> None:
    assert (
        config(runs_pb2.CreateRunRequest(session_id="s" * 129)) == "createRun.sessionId must be at most 128 characters."
    )
    assert (
        config(runs_pb2.CreateRunRequest(directive_id="d" * 65))
        == "createRun.directiveId must be at most 64 characters."
    )
    assert config(runs_pb2.CreateRunRequest(model="a\nb")) == "createRun.model must not contain control characters."
    assert config(runs_pb2.CreateRunRequest(model="a\x85b")) == "createRun.model must not contain control characters."
    assert (
        config(runs_pb2.CreateRunRequest(input="a\x00b")) == "createRun.input must not contain NUL characters (U+0000)."
    )
    # Non-ASCII identifiers are not control characters; their meaning is the domain's to check.
    bounds.check_message(runs_pb2.CreateRunRequest(model="modèle-ü"), "createRun")


def test_maps_bound_entries_keys_and_values() -> None:
    many = {f"k{i}": "v" for i in range(101)}
    assert config(runs_pb2.CreateRunRequest(metadata=many)) == "createRun.metadata must have at most 100 entries."
    key = runs_pb2.CreateRunRequest(metadata={"k" * 129: "v"})
    assert config(key) == "createRun.metadata keys must be at most 128 characters."
    assert (
        config(runs_pb2.CreateRunRequest(metadata={"a\tb": "v"}))
        == "createRun.metadata keys must not contain control characters."
    )
    value = runs_pb2.CreateRunRequest(metadata={"agent": "v" * 1025})
    assert config(value) == "createRun.metadata.agent must be at most 1024 characters."


def test_repeated_fields_and_nested_messages() -> None:
    refs = directives_pb2.CreateDirectiveRequest(context_refs=["r"] * 101)
    assert config(refs, "createDirective") == "createDirective.contextRefs must have at most 100 items."
    refs = directives_pb2.CreateDirectiveRequest(context_refs=["ok", "r" * 2049])
    assert config(refs, "createDirective") == "createDirective.contextRefs[1] must be at most 2048 characters."
    steps = [workflows_pb2.WorkflowStep(id=f"s{i}") for i in range(4)]
    steps[3].id = "x" * 129
    wf = workflows_pb2.CreateWorkflowRequest(definition=workflows_pb2.WorkflowDefinition(steps=steps))
    assert config(wf, "createWorkflow") == "createWorkflow.definition.steps[3].id must be at most 128 characters."
    too_many = workflows_pb2.WorkflowDefinition(steps=[workflows_pb2.WorkflowStep(id="s")] * 201)
    assert (
        config(workflows_pb2.CreateWorkflowRequest(definition=too_many), "createWorkflow")
        == "createWorkflow.definition.steps must have at most 200 items."
    )
    meta = workflows_pb2.WorkflowStep(id="s", execution=workflows_pb2.WorkflowStepExecution(metadata={"m": "x" * 1025}))
    deep = workflows_pb2.CreateWorkflowRequest(definition=workflows_pb2.WorkflowDefinition(steps=[meta]))
    assert (
        config(deep, "createWorkflow")
        == "createWorkflow.definition.steps[0].execution.metadata.m must be at most 1024 characters."
    )


def test_request_size_comes_first() -> None:
    big = runs_pb2.CreateRunRequest(session_id="s" * 500, input="x" * bounds.MAX_REQUEST_BYTES)
    assert refused(big) == ("PAYLOAD_TOO_LARGE", "request.body exceeds 1000000 bytes.")
    fits = runs_pb2.CreateRunRequest(session_id="s", input="x" * (bounds.MAX_REQUEST_BYTES - 10))
    assert fits.ByteSize() <= bounds.MAX_REQUEST_BYTES
    bounds.check_message(fits, "createRun")


def test_other_services_only_get_the_size_bound() -> None:
    bounds.check_message(health_pb2.HealthCheckRequest(service="x" * 1000), "check")


def test_rpc_names() -> None:
    assert bounds.rpc_name("/athena.v1.RunService/CreateRun") == "createRun"
    assert bounds.rpc_name("/athena.v1.EventService/StreamEvents") == "streamEvents"


# ---- headers --------------------------------------------------------------------------------------


def test_headers_within_their_bounds() -> None:
    bounds.check_headers(((IDEMPOTENCY_HEADER, "k" * 255), (TRACE_HEADER, "0af7651916cd43dd8448eb211c80319c")))
    bounds.check_headers(((TRACE_HEADER, ""), ("user-agent", "x" * 5000), ("x-bin", b"\x00")))
    with pytest.raises(AthenaError) as exc:
        bounds.check_headers(((IDEMPOTENCY_HEADER, "k" * 256),))
    assert exc.value.message == "header 'idempotency-key' must be at most 255 characters."
    with pytest.raises(AthenaError) as exc:
        bounds.check_headers(((TRACE_HEADER, "t" * 65),))
    assert exc.value.message == "header 'x-trace-id' must be at most 64 characters."
    with pytest.raises(AthenaError) as exc:
        bounds.check_headers(((TRACE_HEADER, "has space"),))
    assert exc.value.message == "header 'x-trace-id' must match [A-Za-z0-9._:-]{1,64}."


def test_trace_ids_kept_or_minted() -> None:
    assert bounds.valid_trace_id("6f1c0e34-5b7a-4c55-9d0e-6b4f3a2e1d00")
    assert not bounds.valid_trace_id("x" * 65)
    assert not bounds.valid_trace_id("a\nb")
    assert not bounds.valid_trace_id("")


# ---- cursors --------------------------------------------------------------------------------------


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _keyset(**values: Any) -> str:
    return _b64(json.dumps(values))


@pytest.mark.parametrize(
    "cursor",
    [
        "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ",  # 9999999999999999999999999, the cursor
        _b64(str(2**53 + 1)),
        _b64("-1"),
        _b64("²"),  # a Unicode digit: str.isdigit() says yes, int() says no
        "A" * (cursors.MAX_CURSOR_CHARS + 1),
    ],
)
def test_numbers_beyond_the_store_are_invalid(cursor: str) -> None:
    with pytest.raises(AthenaError) as exc:
        cursors.decode_number(cursor, "events.list")
    assert exc.value.message == "events.list.cursor is invalid."
    with pytest.raises(AthenaError) as exc:
        cursors.decode_keyset(cursor, "directives", "directives.list", {"seq": "number"})
    assert exc.value.message == "directives.list.cursor is invalid."


def test_largest_number_is_accepted() -> None:
    assert cursors.decode_number(_b64(str(2**53)), "x") == 2**53
    assert cursors.decode_keyset(_b64(str(2**53)), "directives", "x", {"seq": "number"}) == 2**53


@pytest.mark.parametrize(
    "cursor",
    [
        _keyset(kind="directives", seq=-1),
        _keyset(kind="directives", seq=True),
        _keyset(kind="directives", seq=1.5),
        _keyset(kind="directives", seq="1"),
        _keyset(kind="directives", seq=2**63),
        _keyset(kind="directives"),
        _keyset(kind="workflows", seq=1),
        _b64("[1]"),
        _b64("[" * 400 + "]" * 400),
    ],
)
def test_keyset_numbers_have_their_type_and_range(cursor: str) -> None:
    with pytest.raises(AthenaError) as exc:
        cursors.decode_keyset(cursor, "directives", "directives.list", {"seq": "number"})
    assert exc.value.message == "directives.list.cursor is invalid."


@pytest.mark.parametrize(
    "cursor",
    [
        _keyset(kind="sessions", updatedAt="yesterday", id="s1"),
        _keyset(kind="sessions", updatedAt="9999-12-31T23:59:59-14:00", id="s1"),
        _keyset(kind="sessions", updatedAt="0001-01-01T00:00:00+14:00", id="s1"),
        _keyset(kind="sessions", updatedAt=12, id="s1"),
        _keyset(kind="sessions", updatedAt="2026-02-16T15:00:01.000Z", id=""),
        _keyset(kind="sessions", updatedAt="2026-02-16T15:00:01.000Z", id="a\x00b"),
        _keyset(kind="sessions", updatedAt="2026-02-16T15:00:01.000Z", id=7),
        _keyset(kind="sessions", updatedAt="2026-02-16T15:00:01.000Z", id="s" * 201),
    ],
)
def test_keyset_instants_and_ids_have_their_type_and_range(cursor: str) -> None:
    fields: dict[str, cursors.KeyField] = {"updatedAt": "instant", "id": "text"}
    with pytest.raises(AthenaError) as exc:
        cursors.decode_keyset(cursor, "sessions", "sessions.list", fields)
    assert exc.value.message == "sessions.list.cursor is invalid."


def test_issued_cursors_fit_the_bound() -> None:
    longest = cursors.encode(
        {
            "kind": "active",
            "startedAt": "2026-02-16T15:00:01.000Z",
            "sessionId": "s" * cursors.MAX_KEY_CHARS,
            "runId": "r" * 64,
            "pid": 2**31,
        }
    )
    assert len(longest) <= cursors.MAX_CURSOR_CHARS


# ---- instants, context ----------------------------------------------------------------------------


def test_instants_the_api_can_write_back() -> None:
    assert validation.instant_ms("2026-02-16T15:00:00.123Z") == 1771254000123
    assert validation.instant_ms("9999-12-31T23:59:59.999Z") == validation.MAX_INSTANT_MS
    assert validation.instant_ms("9999-12-31T23:59:59-14:00") is None
    assert validation.instant_ms("0001-01-01T00:00:00+14:00") is None
    with pytest.raises(AthenaError) as exc:
        validation.optional_instant("9999-12-31T23:59:59-01:00", "schedules.tick", "at")
    assert exc.value.message == "schedules.tick.at must be a valid ISO datetime."


def test_context_pre_check() -> None:
    check_input("x" * (MAX_CONTEXT_CHARS - len("user: ")))
    with pytest.raises(AthenaError) as exc:
        check_input("x" * (MAX_CONTEXT_CHARS - len("user: ") + 1))
    assert exc.value.code_name == "CONTEXT_OVERFLOW"
    assert (
        exc.value.message == f"Context of {MAX_CONTEXT_CHARS + 1} chars exceeds the limit of {MAX_CONTEXT_CHARS} chars."
    )


def test_schedule_slots_stay_within_the_calendar_the_api_writes() -> None:
    late = validation.MAX_INSTANT_MS - 10 * MINUTE_MS
    assert Cadence(every_minutes=2**31 - 1).first_after(late) == LAST_SLOT_MS
    assert Cadence(every_minutes=5).next_slot(late, validation.MAX_INSTANT_MS) == LAST_SLOT_MS
    assert Cadence(cron="0 0 1 1 *").first_after(late) == LAST_SLOT_MS
    assert Cadence(every_minutes=5).first_after(0) == 5 * MINUTE_MS


def test_a_cron_expression_that_never_matches_is_refused() -> None:
    with pytest.raises(AthenaError) as exc:
        parse_cron("0 0 30 2 *", "schedules.create")
    assert exc.value.message == "schedules.create.cron never matches a date. Received: 0 0 30 2 *."
    assert parse_cron(" 0  0 29 2 * ", "schedules.create") == "0 0 29 2 *"


# ---- pages bounded by bytes -----------------------------------------------------------------------


def _entry(i: int, size: int) -> runs_pb2.RunError:
    return runs_pb2.RunError(code=str(i), message="x" * size)


def test_pages_stop_at_the_byte_budget_and_continue_after_the_last_item() -> None:
    rows = list(range(10))
    page = pages.fill(rows, 9, lambda i: _entry(i, 300), budget=1000)  # ~306 bytes each: 3 fit
    assert [m.code for m in page.items] == ["0", "1", "2"]
    assert page.last == 2
    # Paging on from each `last` delivers every row exactly once.
    seen: list[str] = []
    start = 0
    while True:
        chunk = rows[start : start + 10]
        page = pages.fill(chunk, 9, lambda i: _entry(i, 300), budget=1000)
        seen += [m.code for m in page.items]
        if page.last is None:
            break
        start = page.last + 1
    assert seen == [str(i) for i in range(10)]


def test_a_page_holds_at_least_one_item() -> None:
    page = pages.fill([0, 1], 1, lambda i: _entry(i, 5000), budget=1000)
    assert len(page.items) == 1 and page.last == 0
    page = pages.fill([0], 1, lambda i: _entry(i, 5000), budget=1000)
    assert len(page.items) == 1 and page.last is None


def test_small_pages_follow_the_limit() -> None:
    page = pages.fill(list(range(6)), 5, lambda i: _entry(i, 1))
    assert len(page.items) == 5 and page.last == 4
    page = pages.fill(list(range(5)), 5, lambda i: _entry(i, 1))
    assert len(page.items) == 5 and page.last is None
    assert pages.fill([], 5, lambda i: _entry(i, 1)) == pages.Page([], None)
