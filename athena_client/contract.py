"""Descriptor-driven helpers shared by the server, the gateway and the SDK.

Everything here is read from the generated descriptors, so the proto files stay the one source of truth
for error codes, their HTTP and gRPC statuses, and the JSON spelling of enum values. Protobuf JSON would
spell `CancelStatus.CANCEL_STATUS_NOT_RUNNING` as its value name; the seeds spell it `"not-running"`, so
both conversions below translate through the `(athena.v1.json_value)` option.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

import athena.v1
from athena.v1 import errors_pb2, options_pb2

M = TypeVar("M", bound=Message)

# The server <-> gateway wire agreement, beside the error table it goes with.
# gRPC metadata and HTTP header carrying the request's trace id, both ways.
TRACE_HEADER = "x-trace-id"
# Trailing metadata of a successful call whose REST answer is not 200 (e.g. "202" for accepted work).
HTTP_STATUS_HEADER = "x-athena-http-status"
# google.rpc.ErrorInfo on every Athena error status: `reason` is the code (a key of ERROR_CODES),
# `domain` is ERROR_DOMAIN, and metadata carries these keys.
ERROR_DOMAIN = "athena.dev"
ERROR_META_RETRYABLE = "retryable"  # "true" or "false"
ERROR_META_TRACE_ID = "traceId"
ERROR_META_RETRY_AFTER = "retryAfterSeconds"  # refusals that may succeed later: whole seconds
# RATE_LIMITED: the limit of the bucket, what is left of it, and the Unix time (s) it refills; the gateway
# sends them as X-RateLimit-Limit / -Remaining / -Reset.
ERROR_META_RATE_LIMIT = "rateLimitLimit"
ERROR_META_RATE_REMAINING = "rateLimitRemaining"
ERROR_META_RATE_RESET = "rateLimitReset"

# Request headers the server reads from gRPC metadata (the gateway forwards them from HTTP), each with the
# longest value it may have: the server refuses longer ones with CONFIG_ERROR naming the header, and the
# gateway refuses them before forwarding, so no value reaches gRPC's 8 KiB metadata limit. The identity
# header's name is configurable (`ATHENA_AUTH_IDENTITY_HEADER`) and takes IDENTITY_HEADER_MAX_CHARS.
IDEMPOTENCY_HEADER = "idempotency-key"
AUTHORIZATION_HEADER = "authorization"
API_TOKEN_HEADER = "x-athena-api-token"
DEFAULT_IDENTITY_HEADER = "x-athena-identity"
# Set by the gateway: the HTTP client's address, which the server uses (from trusted peers only) as the
# rate-limit key of unauthenticated callers.
CLIENT_ADDRESS_HEADER = "x-athena-client-address"
IDENTITY_HEADER_MAX_CHARS = 256
HEADER_MAX_CHARS: dict[str, int] = {
    IDEMPOTENCY_HEADER: 255,
    AUTHORIZATION_HEADER: 4096,
    API_TOKEN_HEADER: 256,
    "traceparent": 512,
    "tracestate": 512,
    TRACE_HEADER: 64,
    CLIENT_ADDRESS_HEADER: 64,
}

# The largest request both transports accept: the REST body in bytes, the gRPC message's serialized size (a
# JSON body is never smaller than the message it becomes). gRPC itself refuses messages over the server's
# `grpc.max_receive_message_length` (server.py) before Athena sees them.
MAX_REQUEST_BYTES = 1_000_000
# The refusals both sides word alike (the gateway checks before forwarding, the server for gRPC callers).
PAYLOAD_TOO_LARGE_MESSAGE = f"request.body exceeds {MAX_REQUEST_BYTES} bytes."


def header_too_long(name: str, limit: int) -> str:
    return f"header '{name}' must be at most {limit} characters."


def header_repeated(name: str) -> str:
    return f"header '{name}' must be sent once."


# Messages whose JSON form is special-cased by protobuf; never walked for enum values.
_WELL_KNOWN_PREFIX = "google.protobuf."


@dataclass(frozen=True)
class ErrorCodeInfo:
    """One row of the error table: the wire code and the statuses both transports answer with."""

    number: int
    code: str
    http_status: int
    grpc_code: str


def _error_table() -> dict[str, ErrorCodeInfo]:
    table: dict[str, ErrorCodeInfo] = {}
    for value in errors_pb2.ErrorCode.DESCRIPTOR.values:
        opts = value.GetOptions()
        if value.number == 0:
            continue
        code = opts.Extensions[options_pb2.json_value]
        table[code] = ErrorCodeInfo(
            number=value.number,
            code=code,
            http_status=opts.Extensions[options_pb2.http_status],
            grpc_code=opts.Extensions[options_pb2.grpc_code],
        )
    return table


ERROR_CODES: dict[str, ErrorCodeInfo] = _error_table()
ERROR_CODES_BY_NUMBER: dict[int, ErrorCodeInfo] = {info.number: info for info in ERROR_CODES.values()}


@functools.cache
def services() -> tuple[ServiceDescriptor, ...]:
    """Every service in the `athena.v1` package, by full name. Importing each `*_pb2` module also registers
    its descriptors (and the custom options they use) in the default pool."""
    found: dict[str, ServiceDescriptor] = {}
    names = sorted({m.name for m in pkgutil.iter_modules(athena.v1.__path__) if m.name.endswith("_pb2")})
    for name in names:
        module = importlib.import_module(f"athena.v1.{name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            found[service.full_name] = service
    return tuple(found[k] for k in sorted(found))


# ---- access: the role and rate class each RPC declares -------------------------------------------------


@dataclass(frozen=True)
class MethodAccess:
    """What `(athena.v1.required_role)` and `(athena.v1.rate_class)` say of one RPC."""

    role: int  # an `athena.v1.Role` value
    rate_class: int  # an `athena.v1.RateClass` value


def method_access(method: MethodDescriptor) -> MethodAccess:
    """The declared access of `method`; ValueError when it declares no role or no rate class, so a new RPC
    cannot be served without a decision on who may call it."""
    opts = method.GetOptions()
    role = opts.Extensions[options_pb2.required_role]
    rate_class = opts.Extensions[options_pb2.rate_class]
    if role == options_pb2.ROLE_UNSPECIFIED:
        raise ValueError(f"{method.full_name} declares no (athena.v1.required_role)")
    if rate_class == options_pb2.RATE_CLASS_UNSPECIFIED:
        raise ValueError(f"{method.full_name} declares no (athena.v1.rate_class)")
    return MethodAccess(role, rate_class)


def role_name(role: int) -> str:
    """ "Viewer", "Operator", "Admin" or "Public"."""
    return enum_to_json(options_pb2.Role.DESCRIPTOR, role)


def rate_class_name(rate_class: int) -> str:
    """ "read", "run-start", "write" or "exempt"."""
    return enum_to_json(options_pb2.RateClass.DESCRIPTOR, rate_class)


# ---- bounds of request fields -----------------------------------------------------------------------

# What a request field that declares no `(athena.v1.limit)` may hold: identifier-sized strings and short
# lists. Free text (inputs, payloads, templates) declares its own, larger bound.
DEFAULT_MAX_CHARS = 128
DEFAULT_MAX_ITEMS = 100


@dataclass(frozen=True)
class FieldBounds:
    """The effective bounds of one request field."""

    # Longest string (the field itself, each item of a repeated string, each value of a string map), in
    # code points; None for fields without strings.
    max_chars: int | None
    # Most items (repeated) or entries (map); None for singular fields.
    max_items: int | None
    # Longest map key, in code points; None unless the field is a map with string keys.
    max_key_chars: int | None = None


def _holds_string(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_STRING


def field_bounds(field: FieldDescriptor) -> FieldBounds:
    """The bounds the server enforces on `field` of a request message: its `(athena.v1.limit)` option
    where set, otherwise the defaults."""
    limit = field.GetOptions().Extensions[options_pb2.limit]
    message = field.message_type
    if message is not None and message.GetOptions().map_entry:
        key, value = message.fields_by_name["key"], message.fields_by_name["value"]
        return FieldBounds(
            max_chars=(limit.max_chars or DEFAULT_MAX_CHARS) if _holds_string(value) else None,
            max_items=limit.max_items or DEFAULT_MAX_ITEMS,
            max_key_chars=DEFAULT_MAX_CHARS if _holds_string(key) else None,
        )
    return FieldBounds(
        max_chars=(limit.max_chars or DEFAULT_MAX_CHARS) if _holds_string(field) else None,
        max_items=(limit.max_items or DEFAULT_MAX_ITEMS) if field.is_repeated else None,
    )


def error_code(number: int) -> str:
    """The wire string of an `ErrorCode` value, e.g. `ERROR_CODE_CONFIG_ERROR` -> "CONFIG_ERROR"."""
    return ERROR_CODES_BY_NUMBER[number].code


@functools.cache
def _enum_maps(enum: EnumDescriptor) -> tuple[dict[str, str], dict[str, str]]:
    to_json: dict[str, str] = {}
    from_json: dict[str, str] = {}
    for value in enum.values:
        json_value = value.GetOptions().Extensions[options_pb2.json_value]
        if json_value:
            to_json[value.name] = json_value
            from_json[json_value] = value.name
    return to_json, from_json


def enum_json_values(enum: EnumDescriptor) -> list[str]:
    """The JSON strings an enum accepts (for OpenAPI), excluding the unspecified zero value."""
    to_json, _ = _enum_maps(enum)
    return [to_json.get(v.name, v.name) for v in enum.values if v.number != 0]


def enum_by_json(enum: EnumDescriptor) -> dict[str, int]:
    """JSON spelling -> enum number, for code that stores the spelling (the run status column, say)."""
    return {enum_to_json(enum, v.number): v.number for v in enum.values if v.number != 0}


def enum_to_json(enum: EnumDescriptor, number: int) -> str:
    to_json, _ = _enum_maps(enum)
    name = enum.values_by_number[number].name
    return to_json.get(name, name)


# What an unknown enum spelling in a request parses to (proto3 enums are open, so it survives the parse).
UNRECOGNIZED_ENUM = -1


# Well-known types whose JSON is free-form objects: their keys, like a map field's, are sorted on the way
# out. protobuf's C implementation iterates maps (a Struct is one) in an order that differs from process to
# process, and a client comparing answers byte for byte (the CLI's `-o json` against REST) needs one order.
_JSON_VALUE_TYPES = frozenset({"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"})


def _sorted_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(v) for v in value]
    return value


def _walk(descriptor: Any, data: dict[str, Any], outgoing: bool) -> None:
    """Translate enum values in `data` (a protobuf-JSON dict of `descriptor`) in place."""
    for field in descriptor.fields:
        key = field.json_name
        if key not in data or data[key] is None:
            continue
        if field.enum_type is not None:
            to_json, from_json = _enum_maps(field.enum_type)
            table = to_json if outgoing else from_json
            names = field.enum_type.values_by_name

            def translate(v: Any, table: dict[str, str] = table, names: Any = names) -> Any:
                if not isinstance(v, str):
                    return v
                v = table.get(v, v)
                # Incoming, a spelling the contract does not know becomes a number no value has, so the
                # server's validation names the field instead of the default silently applying.
                return v if outgoing or v in names else UNRECOGNIZED_ENUM

            if field.is_repeated:
                if isinstance(data[key], list):
                    data[key] = [translate(v) for v in data[key]]
            else:
                data[key] = translate(data[key])
        elif field.message_type is not None:
            sub = field.message_type
            if sub.full_name.startswith(_WELL_KNOWN_PREFIX):
                if outgoing and sub.full_name in _JSON_VALUE_TYPES:
                    data[key] = _sorted_keys(data[key])
                continue
            if sub.GetOptions().map_entry:
                if not isinstance(data[key], dict):
                    continue  # wrong shape: ParseDict reports it as a ParseError naming the field
                value_field = sub.fields_by_name["value"]
                if value_field.message_type is not None or value_field.enum_type is not None:
                    wrapper = {k: {"value": v} for k, v in data[key].items()}
                    for item in wrapper.values():
                        _walk(sub, item, outgoing)
                    data[key] = {k: item["value"] for k, item in wrapper.items()}
                if outgoing:
                    data[key] = dict(sorted(data[key].items()))
            elif field.is_repeated and isinstance(data[key], list):
                for item in data[key]:
                    if isinstance(item, dict):
                        _walk(sub, item, outgoing)
            elif isinstance(data[key], dict):
                _walk(sub, data[key], outgoing)


def message_to_json(message: Message, *, defaults: bool = True) -> dict[str, Any]:
    """Protobuf JSON with the seeds' conventions: fields without presence always printed (unless `defaults`
    is False: then only fields that are set, which is what a client sends), `optional` and message fields
    omitted when unset, enum values in their `json_value` spelling, map and Struct keys sorted."""
    # Compiled per message type (message_json builds on this module, hence the import here): the same
    # value as json_format.MessageToDict followed by `_walk(..., outgoing=True)`, at a fifth of the cost.
    from athena_client.message_json import to_json

    return to_json(message, defaults=defaults)


def json_to_message(data: dict[str, Any], message: M) -> M:
    """Parse seed-style JSON into `message`. Unknown fields and unknown enum strings are ignored (they
    reach the server as unset, and the server's validation names the field), as the original did."""
    data = dict(data)
    _walk(message.DESCRIPTOR, data, outgoing=False)
    json_format.ParseDict(data, message, ignore_unknown_fields=True)
    return message
