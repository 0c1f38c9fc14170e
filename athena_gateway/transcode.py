"""HTTP request -> proto request, following the rule: the body (for `body: "*"`), then query parameters,
then path parameters, path winning. The gateway only rejects what can never become a request message
(oversized, malformed or non-object bodies, JSON of the wrong type); every other check is the server's,
so gRPC and REST callers get the same answer."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from athena_client.contract import json_to_message
from athena_gateway.errors import GatewayError, config_error
from athena_gateway.routes import RouteSpec, query_lookup

MAX_BODY_BYTES = 1_000_000

_LEADING_INT = re.compile(r"\s*([+-]?\d+)")
_LEADING_FLOAT = re.compile(r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")
_INT_TYPES = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED32,
    FieldDescriptor.TYPE_SFIXED64,
}
_FLOAT_TYPES = {FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT}
_BOOLS = {"true": True, "1": True, "false": False, "0": False}


def _too_large() -> GatewayError:
    return GatewayError("PAYLOAD_TOO_LARGE", f"request.body exceeds {MAX_BODY_BYTES} bytes.")


async def read_body(headers: Mapping[str, str], chunks: AsyncIterator[bytes]) -> dict[str, Any]:
    """The JSON object in the body. The declared length is checked before reading and the running total
    while reading, so an oversized body is never buffered whole."""
    declared = headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise config_error("content-length must be a non-negative integer.")
        if int(declared) > MAX_BODY_BYTES:
            raise _too_large()
    raw = bytearray()
    async for chunk in chunks:
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise _too_large()
    if not raw.strip():
        return {}
    try:
        data = json.loads(bytes(raw))
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise config_error("request.body must contain valid JSON.") from None
    if not isinstance(data, dict):
        raise config_error("request.body must be a JSON object.")
    return data


def _scalar(field: FieldDescriptor, text: str) -> Any:
    """One query/path string as the JSON value of `field`, or None to leave the field unset. Numbers are
    read like JavaScript's parseInt/parseFloat, as the original did: `limit=abc` means no limit given."""
    if field.type in _INT_TYPES:
        match = _LEADING_INT.match(text)
        return int(match.group(1)) if match else None
    if field.type in _FLOAT_TYPES:
        match = _LEADING_FLOAT.match(text)
        return float(match.group(1)) if match else None
    if field.type == FieldDescriptor.TYPE_BOOL:
        return _BOOLS.get(text.strip().lower())
    return text  # strings, bytes (base64) and enums (their JSON spelling; contract translates it)


def query_to_json(fields: Iterable[FieldDescriptor], items: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Query parameters as a protobuf-JSON dict keyed by json_name. A parameter is matched by the field's
    json name or proto name; repeated fields take repeated parameters and comma-separated lists; singular
    fields take the first occurrence; unknown parameters and message-typed fields are ignored."""
    return _query_json(query_lookup(fields), items)


def _query_json(by_name: Mapping[str, FieldDescriptor], items: Iterable[tuple[str, str]]) -> dict[str, Any]:
    values: dict[str, list[str]] = {}
    for key, value in items:
        if key in by_name:
            values.setdefault(by_name[key].json_name, []).append(value)
    out: dict[str, Any] = {}
    for json_name, texts in values.items():
        field = by_name[json_name]
        if field.is_repeated:
            parts = [part.strip() for text in texts for part in text.split(",") if part.strip()]
            converted = [_scalar(field, part) for part in parts]
            out[json_name] = [v for v in converted if v is not None]
        else:
            value = _scalar(field, texts[0])
            if value is not None:
                out[json_name] = value
    return out


def _put(data: dict[str, Any], field: FieldDescriptor, value: Any) -> None:
    """Set `field` in a JSON dict, dropping the other spelling of its name so ParseDict sees one key."""
    data.pop(field.name, None)
    data.pop(field.json_name, None)
    data[field.json_name] = value


async def build_request(
    spec: RouteSpec,
    headers: Mapping[str, str],
    query: Iterable[tuple[str, str]],
    path_params: Mapping[str, str],
    body: AsyncIterator[bytes],
) -> Message:
    """The request message for one HTTP request (headers with lowercase names)."""
    request_type = spec.method.input_type
    data: dict[str, Any] = {}
    if spec.body == "*":
        data = await read_body(headers, body)
    elif spec.body:
        data[request_type.fields_by_name[spec.body].json_name] = await read_body(headers, body)
    by_name = request_type.fields_by_name
    for json_name, value in _query_json(spec.query_lookup, query).items():
        _put(data, spec.fields_by_json_name[json_name], value)
    if spec.sse is not None and spec.sse.resume_field and "last-event-id" in headers:
        _put(data, by_name[spec.sse.resume_field], headers["last-event-id"])
    for name, text in path_params.items():
        field = by_name[name]
        _put(data, field, _scalar(field, text))
    message = message_factory.GetMessageClass(request_type)()
    try:
        return json_to_message(data, message)
    except json_format.ParseError as exc:
        raise config_error(str(exc)) from None
    except (AttributeError, TypeError, ValueError) as exc:
        # A JSON shape the contract helpers cannot walk (say, a list where a map is expected).
        raise config_error(f"request does not match {request_type.name}: {exc}") from None
