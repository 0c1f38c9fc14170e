"""The OpenAPI document the gateway serves: built from the descriptors and their comments, one operation
per route, schemas in protobuf-JSON spelling."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from google.protobuf.descriptor import Descriptor

from athena.v1 import events_pb2, runs_pb2
from athena_client.contract import (
    DEFAULT_MAX_CHARS,
    ERROR_CODES,
    field_bounds,
    method_access,
    rate_class_name,
    role_name,
)
from athena_gateway.app import create_app
from athena_gateway.openapi import build_openapi
from athena_gateway.routes import build_routes, route_table

REF = "#/components/schemas/"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return build_openapi()


def _schema(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return doc["components"]["schemas"][name]  # type: ignore[no-any-return]


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_document_shape_and_one_operation_per_route(doc: dict[str, Any]) -> None:
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] and doc["info"]["version"] == "v1"
    operations = {(verb.upper(), path): op for path, item in doc["paths"].items() for verb, op in item.items()}
    assert set(operations) == {(verb, path) for verb, path, _, _ in route_table()}
    for verb, path, service, method in route_table():
        op = operations[(verb, path)]
        assert op["operationId"] == method
        assert op["tags"] == [service.removeprefix("athena.v1.")]
        assert {"200", "4XX", "5XX"} <= set(op["responses"])  # 202 and the refusals: see the tests below
    assert len({op["operationId"] for op in operations.values()}) == len(operations)
    assert {tag["name"] for tag in doc["tags"]} == {
        service.removeprefix("athena.v1.") for _, _, service, _ in route_table()
    }


def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    refs = set(_refs(doc))
    assert refs
    for ref in refs:
        assert ref.startswith(REF) and ref.removeprefix(REF) in doc["components"]["schemas"], ref


def test_descriptions_come_from_proto_comments(doc: dict[str, Any]) -> None:
    create_run = doc["paths"]["/api/v1/runs"]["post"]
    assert create_run["summary"] == "Starts a run and waits for its result."
    assert create_run["description"].startswith("Starts a run and waits for its result. Errors: CONFIG_ERROR")
    assert doc["paths"]["/api/v1/runs/{run_id}/cancel".replace("run_id", "session_id")]["post"]["deprecated"] is True
    assert "deprecated" not in doc["paths"]["/api/v1/run-control/by-run/{run_id}/cancel"]["post"]
    tags = {tag["name"]: tag for tag in doc["tags"]}
    assert tags["EventService"]["description"].startswith("The control-plane event log.")


def test_message_schemas_use_json_names_types_and_presence(doc: dict[str, Any]) -> None:
    caps = _schema(doc, "GetCapabilitiesResponse")
    assert caps["properties"]["supportsA2ABus"] == {
        "type": "boolean",
        "description": "Whether an agent-to-agent message bus is connected.",
    }
    assert set(caps["required"]) == {
        "executionBackend",
        "stateStore",
        "supportsPods",
        "supportsCpuMemMetrics",
        "supportsA2ABus",
        "providers",
        "supportsSandbox",
    }
    policy = _schema(doc, "Policy")
    assert policy["properties"]["schemaVersion"]["type"] == "integer"
    assert policy["properties"]["schemaVersion"]["format"] == "int32"
    assert policy["properties"]["costBudgetDailyUsd"]["type"] == "number"
    assert "required" not in policy  # also a request part (PutPolicyRequest.policy): nothing is required
    event = _schema(doc, "Event")
    assert event["required"] == ["id", "traceId", "type", "createdAt"]  # not the optional or message fields
    assert event["properties"]["payload"]["type"] == "object"
    assert event["properties"]["payload"]["additionalProperties"] is True
    run_request = _schema(doc, "CreateRunRequest")
    metadata = runs_pb2.CreateRunRequest.DESCRIPTOR.fields_by_name["metadata"]
    assert run_request["properties"]["metadata"]["additionalProperties"] == {
        "type": "string",
        "maxLength": field_bounds(metadata).max_chars,
    }
    assert "required" not in run_request  # client-sent messages: the server validates and defaults
    assert "not-running" in _schema(doc, "CancelStatus")["enum"]
    assert "CANCEL_STATUS_UNSPECIFIED" not in _schema(doc, "CancelStatus")["enum"]
    assert _schema(doc, "CancelRunBySessionIdResponse")["properties"]["status"]["$ref"] == REF + "CancelStatus"
    memory_request = _schema(doc, "GetMemoryRequest")
    assert "from" in memory_request["properties"]


def test_error_envelope_lists_every_error_code(doc: dict[str, Any]) -> None:
    envelope = _schema(doc, "ErrorEnvelope")
    assert envelope["properties"]["ok"] == {"const": False}
    assert envelope["properties"]["error"] == {"$ref": REF + "ErrorBody"}
    body = _schema(doc, "ErrorBody")
    assert set(body["properties"]) == {"code", "message", "retryable", "traceId"}
    assert set(body["required"]) == {"code", "message", "retryable", "traceId"}
    assert _schema(doc, "ErrorCode")["enum"] == list(ERROR_CODES)
    error = doc["paths"]["/api/v1/capabilities"]["get"]["responses"]["4XX"]
    assert error["content"]["application/json"]["schema"] == {"$ref": REF + "ErrorEnvelope"}


def _data(doc: dict[str, Any], path: str, verb: str) -> dict[str, Any]:
    ok = doc["paths"][path][verb]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok["properties"]["ok"] == {"const": True}
    assert ok["required"] == ["ok", "data"]
    return ok["properties"]["data"]  # type: ignore[no-any-return]


def test_success_schemas_honour_response_body(doc: dict[str, Any]) -> None:
    assert _data(doc, "/api/v1/capabilities", "get") == {"$ref": REF + "GetCapabilitiesResponse"}
    assert _data(doc, "/api/v1/policy", "get") == {"oneOf": [{"$ref": REF + "Policy"}, {"type": "null"}]}
    assert _data(doc, "/api/v1/memory/search", "get") == {"type": "array", "items": {"$ref": REF + "MemoryHit"}}


def test_parameters_and_bodies(doc: dict[str, Any]) -> None:
    events = {p["name"]: p for p in doc["paths"]["/api/v1/events"]["get"]["parameters"]}
    assert {"cursor", "limit", "sessionId", "types", "createdAfter", "createdBefore", "traceId", "runId"} == set(events)
    types = field_bounds(events_pb2.ListEventsRequest.DESCRIPTOR.fields_by_name["types"])
    assert events["types"]["schema"] == {
        "type": "array",
        "items": {"type": "string", "maxLength": types.max_chars},
        "maxItems": types.max_items,
    }
    assert events["types"]["in"] == "query" and events["types"]["required"] is False
    assert events["limit"]["description"].startswith("Page size, default 50, clamped to 1..500.")
    get_run = doc["paths"]["/api/v1/runs/{run_id}"]["get"]
    [run_id] = get_run["parameters"]
    assert run_id["description"].startswith("The run id returned by CreateRun")
    max_chars = field_bounds(runs_pb2.GetRunRequest.DESCRIPTOR.fields_by_name["run_id"]).max_chars
    assert {k: v for k, v in run_id.items() if k != "description"} == {
        "name": "run_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "maxLength": max_chars},
    }
    cancel = doc["paths"]["/api/v1/run-control/by-run/{run_id}/cancel"]["post"]
    assert cancel["requestBody"]["content"]["application/json"]["schema"] == {"$ref": REF + "CancelRunByRunIdRequest"}
    assert [p["in"] for p in cancel["parameters"]] == ["path"]  # no query params when body is "*"
    # Idempotency-Key only where the contract says the RPC reads it.
    keyed = {
        (path, verb)
        for path, item in doc["paths"].items()
        for verb, op in item.items()
        if any(p["name"] == "Idempotency-Key" for p in op.get("parameters", []))
    }
    assert keyed == {
        ("/api/v1/runs", "post"),
        ("/api/v1/templates/{id}/run", "post"),
        ("/api/v1/a2a/messages", "post"),
        ("/api/v1/personas/run", "post"),
    }


def test_sse_routes_document_an_event_stream(doc: dict[str, Any]) -> None:
    stream = doc["paths"]["/api/v1/events/stream"]["get"]
    ok = stream["responses"]["200"]
    assert list(ok["content"]) == ["text/event-stream"]
    assert ok["content"]["text/event-stream"]["x-event-data"]["properties"]["data"] == {
        "oneOf": [{"$ref": REF + "Event"}, {"type": "null"}]
    }
    assert "Last-Event-ID" in [p["name"] for p in stream["parameters"] if p["in"] == "header"]


async def test_app_serves_the_document_and_swagger_ui() -> None:
    app = create_app("127.0.0.1:1")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
        response = await client.get("/openapi.json")
        assert response.status_code == 200
        assert response.json() == build_openapi()
        assert response.headers["x-trace-id"]
        docs = await client.get("/docs")
        assert docs.status_code == 200 and "swagger-ui" in docs.text and "/openapi.json" in docs.text
    assert app.openapi() == build_openapi()
    assert not any(path in ("/openapi.json", "/docs") for _, path, _, _ in route_table())


def test_accepted_responses_are_declared_by_the_contract(doc: dict[str, Any]) -> None:
    """202 appears exactly where the proto's `(athena.v1.accepted)` option says a route may answer it."""
    with_202 = {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if "202" in op["responses"]
    }
    assert with_202 == {
        ("POST", "/api/v1/runs"),
        ("POST", "/api/v1/templates/{id}/run"),
        ("POST", "/api/v1/workflows/run/{id}/resume"),
        ("POST", "/api/v1/a2a/messages"),
    }
    accepted = doc["paths"]["/api/v1/runs"]["post"]["responses"]["202"]
    assert accepted["description"].startswith("Accepted. With `wait: false`")
    assert accepted["content"] == doc["paths"]["/api/v1/runs"]["post"]["responses"]["200"]["content"]


def _operations(doc: dict[str, Any]) -> list[tuple[Any, dict[str, Any]]]:
    """(route spec, its operation) for every route."""
    return [(spec, doc["paths"][spec.path][spec.http_method.lower()]) for spec in build_routes()]


def test_operations_state_their_required_role_and_rate_class(doc: dict[str, Any]) -> None:
    credentials = [{"bearerAuth": []}, {"apiToken": []}, {"identityHeader": []}]
    for spec, op in _operations(doc):
        access = method_access(spec.method)
        role = role_name(access.role)
        assert op["x-athena-required-role"] == role
        assert op["x-athena-rate-class"] == rate_class_name(access.rate_class)
        if role == "Public":
            assert op["security"] == []
            assert op["description"].endswith("Required role: `Public` (no credentials needed).")
        else:
            assert op["security"] == credentials
            assert op["description"].endswith(f"Required role: `{role}` or above (when auth is on).")
    put_policy = doc["paths"]["/api/v1/policy"]["put"]
    assert (put_policy["x-athena-required-role"], put_policy["x-athena-rate-class"]) == ("Admin", "write")
    assert doc["paths"]["/api/v1/health"]["get"]["x-athena-rate-class"] == "exempt"
    assert doc["paths"]["/api/v1/runs"]["post"]["x-athena-rate-class"] == "run-start"


def test_security_schemes_name_the_credentials(doc: dict[str, Any]) -> None:
    schemes = doc["components"]["securitySchemes"]
    assert set(schemes) == {"bearerAuth", "apiToken", "identityHeader"}
    assert (schemes["bearerAuth"]["type"], schemes["bearerAuth"]["scheme"]) == ("http", "bearer")
    assert {k: schemes["apiToken"][k] for k in ("type", "in", "name")} == {
        "type": "apiKey",
        "in": "header",
        "name": "x-athena-api-token",
    }
    assert schemes["identityHeader"]["name"] == "x-athena-identity"
    custom = build_openapi(identity_header="x-user")
    assert custom["components"]["securitySchemes"]["identityHeader"]["name"] == "x-user"


def test_refusals_are_documented_where_they_can_happen(doc: dict[str, Any]) -> None:
    envelope = {"$ref": REF + "ErrorEnvelope"}
    for spec, op in _operations(doc):
        access = method_access(spec.method)
        responses = op["responses"]
        public = role_name(access.role) == "Public"
        state_changing = spec.http_method in ("POST", "PUT", "PATCH", "DELETE")
        assert ("401" in responses) is not public, spec.path
        assert ("403" in responses) is (not public or state_changing), spec.path
        assert ("415" in responses) is bool(spec.body), spec.path
        assert ("429" in responses) is (rate_class_name(access.rate_class) != "exempt"), spec.path
        for status in ("401", "403", "415", "429"):
            if status in responses:
                assert responses[status]["content"]["application/json"]["schema"] == envelope
        if "429" in responses:
            assert set(responses["429"]["headers"]) == {
                "Retry-After",
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
            }
    run = doc["paths"]["/api/v1/runs"]["post"]["responses"]
    assert run["403"]["description"].startswith(
        "AUTHZ_DENIED: the caller's role is below `Operator`; ORIGIN_NOT_ALLOWED"
    )
    assert run["415"]["description"].startswith("UNSUPPORTED_MEDIA_TYPE")
    assert "415" not in doc["paths"]["/api/v1/schedules/{id}"]["delete"]["responses"]  # no body


def _bounds_keywords(schema: dict[str, Any]) -> dict[str, Any]:
    keywords = ("maxLength", "maxItems", "maxProperties", "propertyNames")
    found = {k: schema[k] for k in keywords if k in schema}
    for nested in ("items", "additionalProperties"):
        if isinstance(schema.get(nested), dict) and "maxLength" in schema[nested]:
            found[f"{nested}.maxLength"] = schema[nested]["maxLength"]
    return found


def _expected_bounds(field: Any) -> dict[str, Any]:
    bounds = field_bounds(field)
    expected: dict[str, Any] = {}
    is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
    if is_map:
        expected["maxProperties"] = bounds.max_items
        if bounds.max_chars is not None:
            expected["additionalProperties.maxLength"] = bounds.max_chars
        if bounds.max_key_chars is not None:
            expected["propertyNames"] = {"maxLength": bounds.max_key_chars}
    elif field.is_repeated:
        expected["maxItems"] = bounds.max_items
        if bounds.max_chars is not None:
            expected["items.maxLength"] = bounds.max_chars
    elif bounds.max_chars is not None:
        expected["maxLength"] = bounds.max_chars
    return expected


def _reachable(roots: list[Descriptor]) -> dict[str, Descriptor]:
    seen: dict[str, Descriptor] = {}
    todo = list(roots)
    while todo:
        message = todo.pop()
        if message.full_name in seen or message.full_name.startswith("google.protobuf."):
            continue
        seen[message.full_name] = message
        todo.extend(f.message_type for f in message.fields if f.message_type is not None)
    return seen


def test_request_schemas_carry_the_servers_bounds(doc: dict[str, Any]) -> None:
    requests = _reachable([spec.method.input_type for spec in build_routes()])
    responses = _reachable([spec.method.output_type for spec in build_routes()])
    schemas = doc["components"]["schemas"]
    for name, message in requests.items():
        if message.GetOptions().map_entry or name.removeprefix("athena.v1.") not in schemas:
            continue  # a request read only from the query and path: its parameters are checked below
        properties = schemas[name.removeprefix("athena.v1.")]["properties"]
        for field in message.fields:
            assert _bounds_keywords(properties[field.json_name]) == _expected_bounds(field), (name, field.name)
    # Messages only ever written by the server state no bounds; shared ones (Policy, HarnessConfig) do.
    for name in set(responses) - set(requests):
        schema = schemas.get(name.removeprefix("athena.v1."))
        if schema is not None:  # absent: only a field of it is `data` (response_body)
            for prop in schema["properties"].values():
                assert not _bounds_keywords(prop), name
    for spec, op in _operations(doc):
        params = {p["name"]: p for p in op.get("parameters", ()) if p["in"] in ("path", "query")}
        fields = spec.method.input_type.fields_by_name
        for field in [*spec.path_fields(), *(f for f in spec.query_fields() if f.message_type is None)]:
            param = params[field.name if field.name in spec.path_params else field.json_name]
            assert _bounds_keywords(param["schema"]) == _expected_bounds(fields[field.name]), (spec.path, field.name)
    assert schemas["HarnessConfig"]["properties"]["provider"]["maxLength"] == DEFAULT_MAX_CHARS
    idempotency = next(p for p in doc["paths"]["/api/v1/runs"]["post"]["parameters"] if p["name"] == "Idempotency-Key")
    assert idempotency["schema"] == {"type": "string", "maxLength": 255}
    stream = {p["name"]: p for p in doc["paths"]["/api/v1/events/stream"]["get"]["parameters"]}
    assert stream["Last-Event-ID"]["schema"] == stream["after"]["schema"]


async def test_app_serves_the_configured_identity_header() -> None:
    app = create_app("127.0.0.1:1", identity_header="x-user")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://localhost") as client:
        document = (await client.get("/openapi.json")).json()
    assert document == build_openapi(identity_header="x-user")
    assert document["components"]["securitySchemes"]["identityHeader"]["name"] == "x-user"
