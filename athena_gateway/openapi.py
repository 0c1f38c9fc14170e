"""The OpenAPI 3.1 document, built from the same route table as the handlers and described with the proto
comments (read from `contract.binpb`, the descriptor set generated with source info), so the document
cannot drift from what the gateway serves.

Access comes from the contract too: each operation names its required role and rate class
(`x-athena-required-role`, `x-athena-rate-class`, and a line of its description), lists the credentials
that may carry the caller (`security`: none for Public RPCs) and the refusals it can answer (401, 403,
429, and 415 where it takes a body).

Bounds: every message a request can contain states the bounds the server enforces (`field_bounds`:
`maxLength`, `maxItems`, `maxProperties`, `propertyNames`), and so do query and path parameters. Messages
a request shares with responses (`Policy`, `HarnessConfig`, the workflow definition) carry them too: one
schema per message keeps references simple, and what the server sends back in them is what it accepted
within those bounds (the one field it writes itself, `Policy.updatedAt`, is a short timestamp).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from athena.v1 import errors_pb2, options_pb2
from athena_client.contract import (
    API_TOKEN_HEADER,
    DEFAULT_IDENTITY_HEADER,
    HEADER_MAX_CHARS,
    IDEMPOTENCY_HEADER,
    enum_json_values,
    field_bounds,
    method_access,
    rate_class_name,
    role_name,
)
from athena_client.proto_comments import proto_comments
from athena_gateway.guard import STATE_CHANGING_METHODS
from athena_gateway.routes import RouteSpec, build_routes

_PREFIX = "athena.v1."
_REF = "#/components/schemas/"
_JSON = "application/json"

_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    # Protobuf JSON writes 64-bit integers as strings.
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_SINT64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string"},
    "google.protobuf.Empty": {"type": "object"},
}


def _summary(comment: str) -> str:
    first = comment.split("\n\n")[0].replace("\n", " ")
    cut = first.find(". ")
    return first if cut < 0 else first[: cut + 1]


def _with_description(schema: dict[str, Any], description: str | None) -> dict[str, Any]:
    return {**schema, "description": description} if description else schema


def _messages_under(roots: Iterable[Descriptor]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        message = todo.pop()
        if message.full_name in seen:
            continue
        seen.add(message.full_name)
        todo.extend(f.message_type for f in message.fields if f.message_type is not None)
    return seen


class _Schemas:
    """Component schemas, created on first reference. Messages only ever sent by clients list no
    `required` fields (the server fills defaults and names what is missing); messages the server writes
    list every field without presence, since protobuf JSON always prints those."""

    def __init__(self, comments: dict[str, str], request_messages: set[str]) -> None:
        self.comments = comments
        self.request_messages = request_messages
        self.components: dict[str, Any] = {}

    def ref(self, descriptor: Descriptor | EnumDescriptor) -> dict[str, Any]:
        name = descriptor.full_name.removeprefix(_PREFIX)
        if name not in self.components:
            self.components[name] = {}  # placeholder, so recursive messages terminate
            if isinstance(descriptor, EnumDescriptor):
                self.components[name] = self._enum(descriptor)
            else:
                self.components[name] = self._message(descriptor)
        return {"$ref": _REF + name}

    def _enum(self, enum: EnumDescriptor) -> dict[str, Any]:
        return _with_description({"type": "string", "enum": enum_json_values(enum)}, self.comments.get(enum.full_name))

    def _message(self, message: Descriptor) -> dict[str, Any]:
        bounded = message.full_name in self.request_messages
        properties = {
            f.json_name: _with_description(self.field(f, bounded), self.comments.get(f"{message.full_name}.{f.name}"))
            for f in message.fields
        }
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if message.full_name not in self.request_messages:
            required = [f.json_name for f in message.fields if not f.has_presence]
            if required:
                schema["required"] = required
        return _with_description(schema, self.comments.get(message.full_name))

    def value(self, field: FieldDescriptor) -> dict[str, Any]:
        """The schema of one value of `field` (an element, for repeated fields)."""
        if field.enum_type is not None:
            return self.ref(field.enum_type)
        if field.message_type is not None:
            if field.message_type.full_name.startswith("google.protobuf."):
                return dict(_WELL_KNOWN.get(field.message_type.full_name, {}))
            return self.ref(field.message_type)
        return dict(_SCALARS[field.type])

    def field(self, field: FieldDescriptor, bounded: bool = False) -> dict[str, Any]:
        """The schema of `field`; `bounded` adds the bounds the server enforces on request fields."""
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            schema = {"type": "object", "additionalProperties": self.value(field.message_type.fields_by_name["value"])}
        elif field.is_repeated:
            schema = {"type": "array", "items": self.value(field)}
        else:
            schema = self.value(field)
        return _bounded(schema, field) if bounded else schema


def _bounded(schema: dict[str, Any], field: FieldDescriptor) -> dict[str, Any]:
    """`schema` of a request field with its `field_bounds` as JSON Schema keywords."""
    bounds = field_bounds(field)
    schema = dict(schema)
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        schema["maxProperties"] = bounds.max_items
        if bounds.max_chars is not None:
            schema["additionalProperties"] = {**schema["additionalProperties"], "maxLength": bounds.max_chars}
        if bounds.max_key_chars is not None:
            schema["propertyNames"] = {"maxLength": bounds.max_key_chars}
    elif field.is_repeated:
        schema["maxItems"] = bounds.max_items
        if bounds.max_chars is not None:
            schema["items"] = {**schema["items"], "maxLength": bounds.max_chars}
    elif bounds.max_chars is not None:
        schema["maxLength"] = bounds.max_chars
    return schema


def _response_field(spec: RouteSpec) -> FieldDescriptor:
    message = spec.method.output_type
    *parents, last = spec.response_body.split(".")
    for name in parents:
        parent = message.fields_by_name[name].message_type
        assert parent is not None, f"{spec.method.full_name}: response_body {spec.response_body!r} crosses a scalar"
        message = parent
    return message.fields_by_name[last]


def _data_schema(spec: RouteSpec, schemas: _Schemas) -> dict[str, Any]:
    if not spec.response_body:
        return schemas.ref(spec.method.output_type)
    field = _response_field(spec)
    schema = schemas.field(field)
    return {"oneOf": [schema, {"type": "null"}]} if field.has_presence else schema


def _envelope(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["ok", "data"],
        "properties": {"ok": {"const": True}, "data": data},
    }


def _parameters(spec: RouteSpec, schemas: _Schemas) -> list[dict[str, Any]]:
    request = spec.method.input_type.full_name
    params: list[dict[str, Any]] = []
    for field in spec.path_fields():
        params.append(
            _with_description(
                {"name": field.name, "in": "path", "required": True, "schema": schemas.field(field, bounded=True)},
                schemas.comments.get(f"{request}.{field.name}"),
            )
        )
    for field in spec.query_fields():
        if field.message_type is not None:
            continue  # not expressible as a query parameter; the gateway ignores it too
        param: dict[str, Any] = {"name": field.json_name, "in": "query", "required": False}
        param["schema"] = schemas.field(field, bounded=True)
        if field.is_repeated:
            param.update(style="form", explode=True)
        params.append(_with_description(param, schemas.comments.get(f"{request}.{field.name}")))
    if spec.sse is not None and spec.sse.resume_field:
        params.append(
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": False,
                "schema": schemas.field(spec.method.input_type.fields_by_name[spec.sse.resume_field], bounded=True),
                "description": f"Resume after this id; overrides the `{spec.sse.resume_field}` query parameter.",
            }
        )
    if spec.method.GetOptions().Extensions[options_pb2.idempotency_key]:
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": HEADER_MAX_CHARS[IDEMPOTENCY_HEADER]},
                "description": "A retry with the same key and body replays the first answer.",
            }
        )
    return params


def _operation(spec: RouteSpec, schemas: _Schemas, operation_id: str) -> dict[str, Any]:
    comment = schemas.comments.get(spec.method.full_name, "")
    op: dict[str, Any] = {"operationId": operation_id, "tags": [spec.service.name]}
    if comment:
        op.update(summary=_summary(comment), description=comment)
    if spec.method.GetOptions().deprecated:
        op["deprecated"] = True
    params = _parameters(spec, schemas)
    if params:
        op["parameters"] = params
    if spec.body:
        body_schema = (
            schemas.ref(spec.method.input_type)
            if spec.body == "*"
            else schemas.field(spec.method.input_type.fields_by_name[spec.body], bounded=True)
        )
        op["requestBody"] = {"required": False, "content": {_JSON: {"schema": body_schema}}}
    if spec.sse is not None:
        event = f"`{spec.sse.event_field}`" if spec.sse.event_field else f"`{spec.sse.event_name}`"
        ok = {
            "description": (
                f"Server-sent events. First frame `retry: {spec.sse.retry_ms}`; then per message `id:` "
                f"(`{spec.sse.id_field}`), `event:` ({event}) and `data:` with the success envelope "
                "(`x-event-data`); `: heartbeat` comments while idle; a failure ends the stream with "
                "`event: error` whose data is the error envelope."
            ),
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string"},
                    "x-event-data": _envelope(_data_schema(spec, schemas)),
                }
            },
        }
    else:
        ok = {
            "description": "Success envelope.",
            "content": {_JSON: {"schema": _envelope(_data_schema(spec, schemas))}},
        }
    error = {"description": "Error envelope.", "content": {_JSON: {"schema": {"$ref": _REF + "ErrorEnvelope"}}}}
    op["responses"] = {"200": ok, **_refusals(spec, error), "4XX": error, "5XX": error}
    if spec.accepted:
        op["responses"]["202"] = {"description": f"Accepted. {spec.accepted}", "content": ok["content"]}
    _add_access(op, spec)
    return op


# The credentials that may carry the caller (any one of them), by security scheme name.
_CREDENTIAL_SCHEMES = ("bearerAuth", "apiToken", "identityHeader")


def _security_schemes(identity_header: str) -> dict[str, Any]:
    return {
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token (`athena auth new-token`) or a JWT: `Authorization: Bearer <token>`.",
        },
        "apiToken": {
            "type": "apiKey",
            "in": "header",
            "name": API_TOKEN_HEADER,
            "description": "An API token in its own header.",
        },
        "identityHeader": {
            "type": "apiKey",
            "in": "header",
            "name": identity_header,
            "description": (
                "The caller's identity, set by a trusted proxy (trusted-header auth, `ATHENA_AUTH_IDENTITY_HEADER`)."
            ),
        },
    }


def _add_access(op: dict[str, Any], spec: RouteSpec) -> None:
    """The role and rate class the RPC declares, and the credentials that may carry the caller."""
    access = method_access(spec.method)
    role = role_name(access.role)
    public = access.role == options_pb2.ROLE_PUBLIC
    line = (
        f"Required role: `{role}` (no credentials needed)."
        if public
        else f"Required role: `{role}` or above (when auth is on)."
    )
    op["description"] = f"{op['description']}\n\n{line}" if op.get("description") else line
    op["security"] = [] if public else [{name: []} for name in _CREDENTIAL_SCHEMES]
    op["x-athena-required-role"] = role
    op["x-athena-rate-class"] = rate_class_name(access.rate_class)


_RATE_HEADERS = {
    "Retry-After": "Seconds to wait before retrying.",
    "X-RateLimit-Limit": "RATE_LIMITED: requests allowed per window of the rate class.",
    "X-RateLimit-Remaining": "RATE_LIMITED: requests left in the window (0).",
    "X-RateLimit-Reset": "RATE_LIMITED: Unix time (seconds) the window refills.",
}


def _refusals(spec: RouteSpec, error: dict[str, Any]) -> dict[str, Any]:
    """The refusals an operation can answer before it runs: auth, role, origin, rate, media type."""
    access = method_access(spec.method)
    out: dict[str, Any] = {}
    if access.role != options_pb2.ROLE_PUBLIC:
        out["401"] = {
            **error,
            "description": "Auth is on and the caller is not authenticated: AUTH_TOKEN_MISSING, "
            "AUTH_TOKEN_INVALID or AUTH_IDENTITY_MISSING.",
        }
    forbidden = []
    if access.role != options_pb2.ROLE_PUBLIC:
        forbidden.append(f"AUTHZ_DENIED: the caller's role is below `{role_name(access.role)}`")
    if spec.http_method in STATE_CHANGING_METHODS:
        forbidden.append("ORIGIN_NOT_ALLOWED: a browser page of another origin (not in `ATHENA_CORS_ORIGINS`)")
    if forbidden:
        out["403"] = {**error, "description": "; ".join(forbidden) + "."}
    if spec.body:
        out["415"] = {**error, "description": "UNSUPPORTED_MEDIA_TYPE: a body that is not `application/json`."}
    if access.rate_class != options_pb2.RATE_CLASS_EXEMPT:
        out["429"] = {
            **error,
            "description": (
                f"RATE_LIMITED: the caller spent its `{rate_class_name(access.rate_class)}` rate limit "
                "(or a policy refused the run). `Retry-After` says when to retry."
            ),
            "headers": {
                name: {"description": text, "schema": {"type": "integer"}} for name, text in _RATE_HEADERS.items()
            },
        }
    return out


def build_openapi(
    routes: Iterable[RouteSpec] | None = None, *, identity_header: str = DEFAULT_IDENTITY_HEADER
) -> dict[str, Any]:
    """The whole document; `routes` defaults to the gateway's route table, `identity_header` is the
    trusted identity header's configured name."""
    specs = list(build_routes() if routes is None else routes)
    comments = proto_comments()
    schemas = _Schemas(comments, _messages_under(s.method.input_type for s in specs))
    schemas.components["ErrorEnvelope"] = {
        "type": "object",
        "description": comments.get("athena.v1.ErrorCode", ""),
        "required": ["ok", "error"],
        "properties": {"ok": {"const": False}, "error": schemas.ref(errors_pb2.ErrorBody.DESCRIPTOR)},
    }
    paths: dict[str, dict[str, Any]] = {}
    seen_ids: dict[str, int] = {}
    for spec in specs:
        count = seen_ids[spec.method.name] = seen_ids.get(spec.method.name, 0) + 1
        operation_id = spec.method.name if count == 1 else f"{spec.method.name}{count}"
        paths.setdefault(spec.path, {})[spec.http_method.lower()] = _operation(spec, schemas, operation_id)
    tags = []
    for service in dict.fromkeys(s.service for s in specs):
        tags.append(_with_description({"name": service.name}, comments.get(service.full_name)))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Athena control plane API",
            "version": "v1",
            "description": (
                "REST/JSON view of the athena.v1 gRPC contract. Every answer is an envelope: "
                '`{"ok": true, "data": ...}` or `{"ok": false, "error": {code, message, retryable, traceId}}`; '
                "the `x-trace-id` response header carries the trace id. Request bodies are JSON "
                "(`Content-Type: application/json`, else 415) with no duplicate keys and finite numbers; the "
                "`Host` must be one the server is configured to serve (else 400 HOST_NOT_ALLOWED); a "
                "state-changing request from a browser page needs an allowed `Origin` (else 403 "
                "ORIGIN_NOT_ALLOWED). Forwarded headers (`Authorization`, `x-athena-api-token`, the identity "
                "header, `Idempotency-Key`, `traceparent`, `tracestate`) are bounded and must be printable ASCII."
            ),
        },
        "tags": tags,
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "securitySchemes": _security_schemes(identity_header),
        },
    }
