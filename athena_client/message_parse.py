"""A fast JSON dict -> request message parser, exact by construction: it handles only what it is certain to
parse exactly as `contract.json_to_message` does, and declines everything else.

Why: the gateway builds every request message from the client's JSON. `json_to_message` copies the dict,
walks it to translate enum spellings, then runs `json_format.ParseDict`, which re-discovers the descriptor
of every field on every call: 15-30 µs of the event loop for a three-field `CreateRunRequest`. Here
each request descriptor is compiled once into a table of key -> setter, and a well-typed body costs a dict
lookup, a type check and a `setattr` per field.

Why "declines" rather than "reports errors": the slow path's error messages are the client's CONFIG_ERROR
text, and edge cases (nulls in lists, floats in integer fields, two spellings of one field, enum numbers,
strings for numbers, well-known types...) have behaviour only ParseDict defines. So `parse_request` returns
None for anything outside the plain well-typed shape, and the caller runs the slow path from scratch on the
original (never mutated) dict; that path then produces exactly the message or error it produces today.

What the fast path accepts (each exactly as `_walk` + ParseDict treat it):
- string fields: a `str` without surrogate code points; bool: a `bool`; integer fields: an `int` (not
  bool) within the type's range, or a plain decimal string (`-?[0-9]+`, as ParseDict's `int()` reads it);
  double: a finite `float`, or an `int` (ParseDict stores `float(value)`).
- enums, keyed by their json_name: a `str`: the `(athena.v1.json_value)` spelling or the value name, and
  any other spelling becomes UNRECOGNIZED_ENUM (-1), as `_walk` does. Open enums only.
- messages as dicts (present even when empty, as ParseDict's `SetInParent`), repeated fields as lists,
  `map<string, scalar>` fields as dicts; null leaves a field unset, as ParseDict's `ClearField` does on a
  fresh message; unknown keys are ignored (except `[...]`, which ParseDict reads as an extension name).
- either spelling of a field name, json_name winning as in ParseDict, except where `_walk` would not
  translate enums under the proto spelling (then it declines), or both spellings are sent (ParseDict
  applies both, in order).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from athena_client.contract import UNRECOGNIZED_ENUM, _enum_maps

# ParseDict's recursion limit is 100 nested messages; stay well inside it.
_MAX_DEPTH = 64
# Any surrogate code point: ParseDict refuses unpaired ones and the runtime refuses to encode paired ones.
_SURROGATE = re.compile("[\ud800-\udfff]")
# Integer strings whose `int()` value is certainly what ParseDict computes (no spaces, `+`, `_`, or digits
# of other scripts, all of which `int()` also takes).
_DECIMAL = re.compile(r"-?[0-9]{1,25}", re.ASCII)
_WELL_KNOWN_PREFIX = "google.protobuf."

_INT32 = (-(2**31), 2**31 - 1)
_UINT32 = (0, 2**32 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_UINT64 = (0, 2**64 - 1)
_INT_RANGES: dict[int, tuple[int, int]] = {
    FieldDescriptor.TYPE_INT32: _INT32,
    FieldDescriptor.TYPE_SINT32: _INT32,
    FieldDescriptor.TYPE_SFIXED32: _INT32,
    FieldDescriptor.TYPE_UINT32: _UINT32,
    FieldDescriptor.TYPE_FIXED32: _UINT32,
    FieldDescriptor.TYPE_INT64: _INT64,
    FieldDescriptor.TYPE_SINT64: _INT64,
    FieldDescriptor.TYPE_SFIXED64: _INT64,
    FieldDescriptor.TYPE_UINT64: _UINT64,
    FieldDescriptor.TYPE_FIXED64: _UINT64,
}
# A double beyond this magnitude is not certain to convert without OverflowError.
_DOUBLE_INT_LIMIT = 2**1000


class _Decline(Exception):
    """The input is outside what the fast path handles identically: run the slow path."""


# A scalar's JSON value -> the value to store; raises _Decline.
Convert = Callable[[Any], Any]
# (message, JSON value, depth) -> None; stores the value in the message or raises _Decline.
Setter = Callable[[Message, Any, int], None]
# The whole JSON object of the message -> None; raises _Decline when the key may not be handled alone.
Check = Callable[[dict[str, Any]], None]
# One JSON key of a message: the field's attribute, how to store a value (None for a singular string field,
# the most common kind, which `_fill` stores itself to save two calls), and what to check first (or None).
Entry = tuple[str, Setter | None, Check | None]


@dataclass
class _Plan:
    """One message type, compiled: each JSON key it knows (both spellings of a field name) -> Entry.
    `supported` is False for types whose every input is the slow path's (well-known types, map entries, and
    a oneof named like a field, which ParseDict's bookkeeping of seen names confuses)."""

    message_class: type[Message]
    entries: dict[str, Entry] = field(default_factory=dict)
    supported: bool = True


def _decline(*_: Any) -> None:
    raise _Decline


# ---- scalars ------------------------------------------------------------------------------------------


def _string(value: Any) -> Any:
    if type(value) is not str or (not value.isascii() and _SURROGATE.search(value)):
        raise _Decline
    return value


def _bool(value: Any) -> Any:
    if type(value) is not bool:
        raise _Decline
    return value


def _integer(low: int, high: int) -> Convert:
    def convert(value: Any) -> Any:
        if type(value) is not int:
            if type(value) is not str or not _DECIMAL.fullmatch(value):
                raise _Decline
            value = int(value)
        if not low <= value <= high:
            raise _Decline
        return value

    return convert


def _double(value: Any) -> Any:
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):
            raise _Decline
        return value
    if kind is int and -_DOUBLE_INT_LIMIT < value < _DOUBLE_INT_LIMIT:
        return float(value)
    raise _Decline


def _enum(enum: EnumDescriptor) -> Convert:
    # `_walk`: a json_value spelling becomes its value name, a value name stays, anything else becomes -1;
    # ParseDict then reads the name as its number and -1 (an open enum's unknown number) as -1. The
    # translation table is the one `_walk` uses, so the two cannot drift apart.
    _, from_json = _enum_maps(enum)
    numbers = {value.name: value.number for value in enum.values}
    numbers.update({spelling: enum.values_by_name[name].number for spelling, name in from_json.items()})

    def convert(value: Any) -> Any:
        # Not a str: ParseDict reads numbers (and int()-able floats and bools) its own way. A surrogate:
        # `_walk`'s lookup in the descriptor's name table fails to encode it.
        if type(value) is not str or (not value.isascii() and _SURROGATE.search(value)):
            raise _Decline
        return numbers.get(value, UNRECOGNIZED_ENUM)

    return convert


def _scalar(field: FieldDescriptor) -> Convert | None:
    """The converter of one scalar field (of each item, when repeated); None for kinds left to ParseDict:
    bytes (base64), float (range-checked, then rounded), closed enums and google.protobuf.NullValue."""
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return _string
    if kind == FieldDescriptor.TYPE_BOOL:
        return _bool
    if kind in _INT_RANGES:
        return _integer(*_INT_RANGES[kind])
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return _double
    enum = field.enum_type
    if enum is not None and not enum.is_closed and not enum.full_name.startswith(_WELL_KNOWN_PREFIX):
        return _enum(enum)
    return None


# ---- fields -------------------------------------------------------------------------------------------


def _scalar_setter(name: str, convert: Convert) -> Setter:
    def set_scalar(message: Message, value: Any, depth: int) -> None:
        setattr(message, name, convert(value))

    return set_scalar


def _repeated_scalar_setter(name: str, convert: Convert) -> Setter:
    def set_items(message: Message, value: Any, depth: int) -> None:
        if type(value) is not list:
            raise _Decline
        getattr(message, name).extend([convert(item) for item in value])  # a null item: converters decline

    return set_items


def _map_setter(name: str, convert: Convert) -> Setter:
    def set_entries(message: Message, value: Any, depth: int) -> None:
        if type(value) is not dict:
            raise _Decline
        entries = getattr(message, name)
        for key, item in value.items():
            entries[_string(key)] = convert(item)

    return set_entries


def _message_setter(name: str, plan: _Plan) -> Setter:
    def set_message(message: Message, value: Any, depth: int) -> None:
        if type(value) is not dict:
            raise _Decline
        sub = getattr(message, name)
        sub.SetInParent()  # `{}` makes the field present, as in ParseDict
        _fill(plan, sub, value, depth + 1)

    return set_message


def _repeated_message_setter(name: str, plan: _Plan) -> Setter:
    def set_items(message: Message, value: Any, depth: int) -> None:
        if type(value) is not list:
            raise _Decline
        items = getattr(message, name)
        for item in value:
            if type(item) is not dict:
                raise _Decline
            _fill(plan, items.add(), item, depth + 1)

    return set_items


def _setter(field: FieldDescriptor, building: dict[Descriptor, _Plan]) -> Setter | None:
    """How the fast path stores `field`; None when only ParseDict may (well-known types, maps of messages,
    enums or non-string keys, and the scalar kinds `_scalar` leaves out)."""
    sub = field.message_type
    if sub is None:
        convert = _scalar(field)
        if convert is None:
            return None
        return (
            _repeated_scalar_setter(field.name, convert) if field.is_repeated else _scalar_setter(field.name, convert)
        )
    if sub.full_name.startswith(_WELL_KNOWN_PREFIX):
        return None
    if sub.GetOptions().map_entry:
        key, value = sub.fields_by_name["key"], sub.fields_by_name["value"]
        if key.type != FieldDescriptor.TYPE_STRING or value.message_type is not None or value.enum_type is not None:
            return None  # `_walk` rewrites enum and message map values; int and bool keys are strings in JSON
        convert = _scalar(value)
        return None if convert is None else _map_setter(field.name, convert)
    plan = _plan(sub, building)
    return _repeated_message_setter(field.name, plan) if field.is_repeated else _message_setter(field.name, plan)


def _reaches_enum(descriptor: Descriptor, seen: set[str]) -> bool:
    """Whether a message of this type may hold enum fields, at any depth."""
    if descriptor.full_name in seen:
        return False  # being explored higher up the stack, which looks at every field
    seen.add(descriptor.full_name)
    for f in descriptor.fields:
        if f.enum_type is not None:
            return True
        if f.message_type is not None and _reaches_enum(f.message_type, seen):
            return True
    return False


def _absent(keys: tuple[str, ...]) -> Check:
    """Declines when any of `keys` is also in the object: ParseDict would apply both keys in turn (the
    second spelling of one field, or a second member of a oneof), which only it does exactly."""

    def check(data: dict[str, Any]) -> None:
        for key in keys:
            if key in data:
                raise _Decline

    return check


# ---- messages -----------------------------------------------------------------------------------------

_DECLINED: Entry = ("", _decline, _decline)  # declines even for null
# Finished plans only: a plan is published once it and every plan it refers to are complete, so another
# thread never parses with a half-built table (a race merely compiles a type twice, with the same result).
_PLANS: dict[Descriptor, _Plan] = {}


def _plan(descriptor: Descriptor, building: dict[Descriptor, _Plan] | None = None) -> _Plan:
    """The compiled plan of a message type; `building` holds the plans of the compilation in progress."""
    plan = _PLANS.get(descriptor)
    if plan is not None:
        return plan
    if building is None:
        building = {}
        plan = _compile(descriptor, building)
        _PLANS.update(building)
        return plan
    plan = building.get(descriptor)
    return _compile(descriptor, building) if plan is None else plan


def _compile(descriptor: Descriptor, building: dict[Descriptor, _Plan]) -> _Plan:
    plan = _Plan(message_factory.GetMessageClass(descriptor))
    building[descriptor] = plan  # before the fields, so recursive types find it
    fields = descriptor.fields
    spellings = {f.name for f in fields} | {f.json_name for f in fields}
    if (
        descriptor.full_name.startswith(_WELL_KNOWN_PREFIX)
        or descriptor.GetOptions().map_entry
        # ParseDict tracks seen keys and seen oneof names in one list, so they can collide
        or any(oneof.name in spellings for oneof in descriptor.oneofs)
    ):
        plan.supported = False
        return plan
    by_json: dict[str, Entry] = {}
    by_name: dict[str, Entry] = {}
    for f in fields:
        plain = f.type == FieldDescriptor.TYPE_STRING and not f.is_repeated
        setter = None if plain else _setter(f, building)
        oneof = f.containing_oneof
        rivals: tuple[str, ...] = ()
        if oneof is not None and len(oneof.fields) > 1:
            rivals = tuple(k for other in oneof.fields if other is not f for k in {other.name, other.json_name})
        if setter is None and not plain:
            by_json[f.json_name] = by_name[f.name] = _DECLINED
            continue
        by_json[f.json_name] = (f.name, setter, _absent(rivals) if rivals else None)
        if f.name != f.json_name:
            # `_walk` only translates enums under json names: under the proto name ParseDict alone decides.
            reaches = f.enum_type is not None or (f.message_type is not None and _reaches_enum(f.message_type, set()))
            by_name[f.name] = _DECLINED if reaches else (f.name, setter, _absent((f.json_name, *rivals)))
    plan.entries = {**by_name, **by_json}  # a json_name wins over a proto name spelled alike, as in ParseDict
    return plan


def _fill(plan: _Plan, message: Message, data: dict[Any, Any], depth: int) -> None:
    if not plan.supported or depth > _MAX_DEPTH:
        raise _Decline
    entries = plan.entries
    for key, value in data.items():
        entry = entries.get(key)
        if entry is None:
            if type(key) is not str or key.startswith("[") or (not key.isascii() and _SURROGATE.search(key)):
                # ParseDict reads `[...]` as an extension name, and fails on non-str keys and on keys its
                # descriptor's name table cannot encode.
                raise _Decline
            continue  # unknown fields are ignored
        name, setter, check = entry
        if check is not None:
            check(data)
        if value is None:
            continue  # null: ParseDict clears the field, which on a fresh message leaves it unset
        if setter is not None:
            setter(message, value, depth)
        elif type(value) is str and (value.isascii() or not _SURROGATE.search(value)):
            setattr(message, name, value)
        else:
            raise _Decline


def parse_request(descriptor: Descriptor, data: Any) -> Message | None:
    """The message `contract.json_to_message(data, <new message>)` returns, or None when the fast path
    does not handle `data` (the caller then runs that slow path). `data` is never modified."""
    if type(data) is not dict:
        return None
    plan = _plan(descriptor)
    message = plan.message_class()
    try:
        _fill(plan, message, data, 1)
    except Exception:  # _Decline, or anything unforeseen: the slow path decides, errors included
        return None
    return message
