"""A response message as the REST API's `data`, and back.

The gateway writes `data` with `field_json` and `dumps`; the SDK's REST transport reads it back with
`message_from_data`, and the CLI prints `--output json` with the same two functions, so all three agree to
the byte.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from google.protobuf.message import Message

from athena_client.contract import json_to_message, message_to_json

M = TypeVar("M", bound=Message)

_EXACT_INT = 2**53


def js_numbers(value: Any) -> Any:
    """Integral doubles as integers, as JavaScript (the original) and the seeds write them: protobuf keeps
    every `double` and every number inside a `Struct` as a float, which Python would print as `1.0`."""
    if isinstance(value, float) and value.is_integer() and abs(value) < _EXACT_INT:
        return int(value)
    if isinstance(value, dict):
        return {k: js_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [js_numbers(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """Compact JSON, non-ASCII kept as is (the seeds' payloads are UTF-8 text)."""
    return json.dumps(js_numbers(value), separators=(",", ":"), ensure_ascii=False)


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


def message_from_data(data: Any, path: str, message: M) -> M:
    """The inverse of `field_json`: fill `message` from a REST `data` value that holds the field at `path`
    (or the whole message when `path` is empty). Fields this client does not know are ignored, so an older
    SDK reads a newer server's answers."""
    if path:
        json_names = []
        descriptor: Any = message.DESCRIPTOR
        for name in path.split("."):
            field = descriptor.fields_by_name[name]
            json_names.append(field.json_name)
            descriptor = field.message_type
        if data is None:
            return message
        for json_name in reversed(json_names):
            data = {json_name: data}
    if not isinstance(data, dict):
        raise ValueError(f"REST data for {message.DESCRIPTOR.name} is not an object")
    return json_to_message(data, message)
