"""A response message as the REST API's `data`, and back.

The gateway writes `data` with `field_json` and `dumps`; the SDK's REST transport reads it back with
`message_from_data`, and the CLI prints `--output json` with the same two functions, so all three agree to
the byte.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import orjson
from google.protobuf.message import Message

from athena_client.contract import json_to_message
from athena_client.message_json import js_numbers, to_json

__all__ = ["dumps", "field_json", "js_numbers", "message_from_data"]

M = TypeVar("M", bound=Message)

_EXACT_INT = 2**53
_INFINITY = float("inf")
# Types orjson writes exactly as json.dumps does (subclasses excluded: bool is not a subclass here).
_LEAVES = frozenset({str, int, bool, type(None)})


class _NotPlain(Exception):
    """A value orjson might write differently from json.dumps (a subclass, a tuple, another type)."""


def _float_text(value: float) -> orjson.Fragment:
    """A float as json.dumps writes it: repr, and NaN/Infinity as JavaScript spells them (orjson: null)."""
    if value != value:
        return orjson.Fragment(b"NaN")
    if value == _INFINITY:
        return orjson.Fragment(b"Infinity")
    if value == -_INFINITY:
        return orjson.Fragment(b"-Infinity")
    return orjson.Fragment(float.__repr__(value).encode())


def _for_orjson(value: Any) -> Any:
    """`js_numbers(value)` with the remaining floats pre-written; `value` itself when nothing changes (a
    `field_json` value has no floats left, so it is only read). _NotPlain for what only json.dumps is sure
    to write as before."""
    kind = type(value)
    if kind in _LEAVES:
        return value
    if kind is dict:
        changed = None
        for key, item in value.items():
            if type(item) in _LEAVES:  # most values: checked here rather than by a call
                continue
            new = _for_orjson(item)
            if new is not item:
                if changed is None:
                    changed = dict(value)
                changed[key] = new
        return value if changed is None else changed
    if kind is list:
        copy = None
        for i, item in enumerate(value):
            if type(item) in _LEAVES:
                continue
            new = _for_orjson(item)
            if new is not item:
                if copy is None:
                    copy = list(value)
                copy[i] = new
        return value if copy is None else copy
    if kind is float:
        if value.is_integer() and abs(value) < _EXACT_INT:
            return int(value)
        return _float_text(value)
    raise _NotPlain


def dumps(value: Any) -> str:
    """Compact JSON, non-ASCII kept as is (the seeds' payloads are UTF-8 text).

    Written by orjson (a tenth of json.dumps's cost), which escapes strings as json.dumps does with
    `ensure_ascii=False`; floats are pre-written as json.dumps writes them. What orjson refuses (integers
    beyond 64 bits, lone surrogates, non-string keys, nesting deeper than 255) or might write otherwise
    (subclasses, tuples, other types) goes through json.dumps as before, errors included."""
    try:
        return orjson.dumps(_for_orjson(value)).decode()
    except (_NotPlain, orjson.JSONEncodeError, RecursionError):
        return json.dumps(js_numbers(value), separators=(",", ":"), ensure_ascii=False)


def field_json(message: Message, path: str) -> Any:
    """The protobuf JSON of the field at `path` (dotted proto names), or of the whole message when `path`
    is empty. An unset message or `optional` field is `null` (the seed's `GET /api/v1/policy` before the
    first PUT), a repeated field is always a list and a map always an object. Numbers are as `js_numbers`
    makes them, which is what `dumps` writes."""
    if not path:
        return to_json(message, js=True)
    *parents, last = path.split(".")
    for name in parents:
        if not message.HasField(name):
            return None
        message = getattr(message, name)
    field = message.DESCRIPTOR.fields_by_name[last]
    if field.has_presence and not message.HasField(last):
        return None
    # Serialise the parent, not the field alone, so enum spellings come from the same walk as elsewhere.
    data = to_json(message, js=True)
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
