"""The OpenAPI document the gateway serves: built from the descriptors and their comments, one operation
per route, schemas in protobuf-JSON spelling."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from athena_client.contract import ERROR_CODES
from athena_gateway.app import create_app
from athena_gateway.openapi import build_openapi
from athena_gateway.routes import route_table

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
        assert set(op["responses"]) - {"202"} == {"200", "4XX", "5XX"}  # 202: see the test below
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
    assert run_request["properties"]["metadata"]["additionalProperties"] == {"type": "string"}
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
    assert events["types"]["schema"] == {"type": "array", "items": {"type": "string"}}
    assert events["types"]["in"] == "query" and events["types"]["required"] is False
    assert events["limit"]["description"] == "Page size, default 50, clamped to 1..500."
    get_run = doc["paths"]["/api/v1/runs/{run_id}"]["get"]
    assert get_run["parameters"] == [
        {
            "name": "run_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            "description": "The run id returned by CreateRun.",
        }
    ]
    cancel = doc["paths"]["/api/v1/run-control/by-run/{run_id}/cancel"]["post"]
    assert cancel["requestBody"]["content"]["application/json"]["schema"] == {"$ref": REF + "CancelRunByRunIdRequest"}
    assert [p["in"] for p in cancel["parameters"]] == ["path", "header"]  # no query params when body is "*"


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
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
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
    }
    accepted = doc["paths"]["/api/v1/runs"]["post"]["responses"]["202"]
    assert accepted["description"].startswith("Accepted. With `wait: false`")
    assert accepted["content"] == doc["paths"]["/api/v1/runs"]["post"]["responses"]["200"]["content"]
