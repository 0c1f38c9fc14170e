"""The REST envelope: `{"ok": true, "data": ...}` and `{"ok": false, "error": {...}}`, and the choice of
what becomes `data` (the whole response message, or the field the rule's `response_body` names)."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.message import Message
from starlette.responses import Response

from athena_client.contract import message_to_json
from athena_gateway.errors import GatewayError

JSON_MEDIA_TYPE = "application/json; charset=utf-8"


_EXACT_INT = 2**53


def _js_numbers(value: Any) -> Any:
    """Integral doubles as integers, as JavaScript (the original) and the seeds write them: protobuf keeps
    every `double` and every number inside a `Struct` as a float, which Python would print as `1.0`."""
    if isinstance(value, float) and value.is_integer() and abs(value) < _EXACT_INT:
        return int(value)
    if isinstance(value, dict):
        return {k: _js_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_js_numbers(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """Compact JSON, non-ASCII kept as is (the seeds' payloads are UTF-8 text)."""
    return json.dumps(_js_numbers(value), separators=(",", ":"), ensure_ascii=False)


def field_json(message: Message, path: str) -> Any:
    """The protobuf JSON of the field at `path` (dotted proto names), or of the whole message when `path`
    is empty. An unset message or `optional` field is `null` (the seed's `GET /api/v1/policy` before the
    first PUT), a repeated field is always a list and a map always an object."""
    if not path:
        return message_to_json(message)
    *parents, last = path.split(".")
    for name in parents:
        if not message.HasField(name):
            return None
        message = getattr(message, name)
    field = message.DESCRIPTOR.fields_by_name[last]
    if field.has_presence and not message.HasField(last):
        return None
    # Serialise the parent, not the field alone, so enum spellings come from the same walk as elsewhere.
    data = message_to_json(message)
    if field.is_repeated:
        empty: Any = {} if field.message_type is not None and field.message_type.GetOptions().map_entry else []
        return data.get(field.json_name, empty)
    return data.get(field.json_name)


def success_body(data: Any) -> str:
    return dumps({"ok": True, "data": data})


def error_body(err: GatewayError, trace_id: str) -> str:
    return dumps(
        {
            "ok": False,
            "error": {"code": err.code, "message": err.message, "retryable": err.retryable, "traceId": trace_id},
        }
    )


def success_response(data: Any, status: int = 200) -> Response:
    return Response(success_body(data), status_code=status, media_type=JSON_MEDIA_TYPE)


def error_response(err: GatewayError, trace_id: str) -> Response:
    return Response(
        error_body(err, trace_id), status_code=err.http_status, media_type=JSON_MEDIA_TYPE, headers=err.headers
    )
