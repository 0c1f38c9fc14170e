"""Protobuf message -> the contract's JSON value, compiled once per message type.

`contract.message_to_json` used to be json_format.MessageToDict, which re-derives every field's handling
from its descriptor on every call, then `contract._walk` over the result for the `json_value` enum
spellings and the sorted map/Struct keys: about 70 µs for a mock run's `RunResult`, the largest item of
the gateway's CPU per request. Here each message type is turned, on first use, into a `_Plan`: a table
from field descriptor to (JSON name, converter), and the defaults to print for fields without presence,
so encoding a message is one `ListFields()` and one converter call per set field (about 13 µs).

The value is the slow path's exactly, key order included: the set fields in `ListFields()` order, then
the unset fields without presence in declaration order, as MessageToDict orders them. The slow path
still does what the plans do not reproduce themselves: a top-level `google.protobuf.*` message, fields of
well-known types other than Struct, Value, ListValue, Timestamp, Duration, FieldMask and the wrappers
(Any, Empty, ...), extensions, and the errors (a NaN or infinite number in a `Value`, an unknown number
of a closed enum), which json_format then raises as before.

With `js=True` the value is `js_numbers` of it (integral doubles as integers), which is what the REST
`data` and the CLI print.
"""

from __future__ import annotations

import base64
import math
import threading
from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor_pool, json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, EnumValueDescriptor, FieldDescriptor
from google.protobuf.internal.type_checkers import ToShortestFloat
from google.protobuf.message import Message

from athena_client.contract import _enum_maps, _walk

Converter = Callable[[Any], Any]

# js_numbers: doubles below this magnitude are exact as JavaScript numbers, so integral ones print as ints.
_EXACT_INT = 2**53
_NAN = "NaN"
_INFINITY = "Infinity"
_NEG_INFINITY = "-Infinity"

_WELL_KNOWN_PREFIX = "google.protobuf."
_WRAPPERS_FILE = "google/protobuf/wrappers.proto"
_STRING_FORM_TYPES = frozenset({"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"})
_INT64_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    }
)


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


class _Delegate(Exception):
    """Raised by a plan that meets what only json_format reproduces exactly; the caller re-encodes the
    whole message through the slow path (which then raises json_format's own error, if any)."""


def _reference(message: Message, *, defaults: bool = True, js: bool = False) -> dict[str, Any]:
    """The slow path: json_format plus the contract's walk. Used for what plans do not cover."""
    data = json_format.MessageToDict(message, always_print_fields_with_no_presence=defaults)
    _walk(message.DESCRIPTOR, data, outgoing=True)
    return js_numbers(data) if js else data


# ---- scalars ------------------------------------------------------------------------------------------


def _non_finite(value: float) -> str:
    if math.isnan(value):
        return _NAN
    return _INFINITY if value > 0 else _NEG_INFINITY


def _double_js(value: float) -> Any:
    if value.is_integer() and abs(value) < _EXACT_INT:
        return int(value)
    return value if math.isfinite(value) else _non_finite(value)


def _double_plain(value: float) -> Any:
    return value if math.isfinite(value) else _non_finite(value)


def _float_js(value: float) -> Any:
    return _double_js(ToShortestFloat(value)) if math.isfinite(value) else _non_finite(value)


def _float_plain(value: float) -> Any:
    return ToShortestFloat(value) if math.isfinite(value) else _non_finite(value)


def _bytes(value: bytes) -> str:
    return base64.b64encode(value).decode("utf-8")


def _null(_value: Any) -> None:
    return None


def _printed_name(value: EnumValueDescriptor) -> str:
    """The spelling json_format prints before the walk translates it: the value's name, unless protobuf's
    `(pb.enumvalue.json)` option (not in the default pool today) renames it, which json_format honours."""
    try:
        extension: Any = descriptor_pool.Default().FindExtensionByName("pb.enumvalue.json")
    except KeyError:
        return value.name
    options = value.GetOptions()
    if options.HasExtension(extension):
        return str(options.Extensions[extension].string)
    return value.name


def _enum_converter(enum: EnumDescriptor) -> Converter:
    """Number -> the `json_value` spelling (else the value name); an unknown number of an open enum stays
    a number, as json_format leaves it and the walk does not touch it."""
    if enum.full_name == "google.protobuf.NullValue":
        return _null
    to_json, _ = _enum_maps(enum)
    printed = {number: _printed_name(value) for number, value in enum.values_by_number.items()}
    table = {number: to_json.get(name, name) for number, name in printed.items()}
    if not enum.is_closed:
        return lambda number: table.get(number, number)

    def closed(number: int) -> str:
        name = table.get(number)
        if name is None:
            raise _Delegate  # json_format raises SerializeToJsonError for it
        return name

    return closed


# ---- Struct, Value, ListValue: keys sorted at every depth, as the walk's `_sorted_keys` does -------------


class _JsonValues:
    """Encoders of the free-form well-known types, for one `js_numbers` setting."""

    def __init__(self, js: bool) -> None:
        self._number = _double_js if js else _double_plain

    def value(self, message: Any) -> Any:
        kind = message.WhichOneof("kind")
        if kind == "string_value":
            return message.string_value
        if kind == "number_value":
            number = message.number_value
            if not math.isfinite(number):
                raise _Delegate  # json_format refuses it (it would parse back as a string)
            return self._number(number)
        if kind == "bool_value":
            return message.bool_value
        if kind == "struct_value":
            return self.struct(message.struct_value)
        if kind == "list_value":
            return self.list_value(message.list_value)
        return None  # null_value, or no kind at all

    def struct(self, message: Any) -> dict[str, Any]:
        value = self.value
        return {key: value(item) for key, item in sorted(message.fields.items())}

    def list_value(self, message: Any) -> list[Any]:
        value = self.value
        return [value(item) for item in message.values]


_JSON_VALUES = {True: _JsonValues(js=True), False: _JsonValues(js=False)}


# ---- plans ----------------------------------------------------------------------------------------------


class _Plan:
    """How to encode one message type: converters by field, then the defaults printed when unset."""

    __slots__ = ("defaults", "fields")

    def __init__(self) -> None:
        self.fields: dict[FieldDescriptor, tuple[str, Converter | None]] = {}
        # (JSON name, value, factory): the factory (list or dict) makes a fresh container per message.
        self.defaults: tuple[tuple[str, Any, Callable[[], Any] | None], ...] = ()

    def encode(self, message: Any) -> dict[str, Any]:
        js: dict[str, Any] = {}
        fields = self.fields
        for field, value in message.ListFields():
            entry = fields.get(field)
            if entry is None:
                raise _Delegate  # an extension
            name, convert = entry
            js[name] = value if convert is None else convert(value)
        for name, value, factory in self.defaults:
            if name not in js:
                js[name] = value if factory is None else factory()
        return js


_PlanKey = tuple[Descriptor, bool, bool]
_PLANS: dict[_PlanKey, _Plan] = {}
# Plans being built (under _LOCK), published to _PLANS together once the outermost one is complete, so no
# other thread ever runs a plan whose nested (possibly recursive) plans are still empty.
_COMPILING: dict[_PlanKey, _Plan] = {}
_LOCK = threading.RLock()


def _plan(descriptor: Descriptor, defaults: bool, js: bool) -> _Plan:
    key = (descriptor, defaults, js)
    plan = _PLANS.get(key)
    if plan is None:
        with _LOCK:
            plan = _PLANS.get(key) or _compile(key)
    return plan


def _compile(key: _PlanKey) -> _Plan:
    outermost = not _COMPILING
    try:
        plan = _COMPILING.get(key)
        if plan is None:
            # Registered before it is filled, so a recursive type's fields find it.
            plan = _COMPILING[key] = _Plan()
            _fill(plan, *key)
        if outermost:
            _PLANS.update(_COMPILING)
    finally:
        if outermost:
            _COMPILING.clear()
    return plan


def _fill(plan: _Plan, descriptor: Descriptor, defaults: bool, js: bool) -> None:
    fields: dict[FieldDescriptor, tuple[str, Converter | None]] = {}
    unset: list[tuple[str, Any, Callable[[], Any] | None]] = []
    for field in descriptor.fields:
        convert = _field_converter(field, defaults, js)
        fields[field] = (field.json_name, convert)
        if defaults and not field.has_presence:
            if _map_entry(field) is not None:
                unset.append((field.json_name, None, dict))
            elif field.is_repeated:
                unset.append((field.json_name, None, list))
            else:
                default = field.default_value
                unset.append((field.json_name, default if convert is None else convert(default), None))
    plan.fields = fields
    plan.defaults = tuple(unset)


def _map_entry(field: FieldDescriptor) -> Descriptor | None:
    """The entry type of a map field, else None."""
    message = field.message_type
    return message if message is not None and message.GetOptions().map_entry else None


def _field_converter(field: FieldDescriptor, defaults: bool, js: bool) -> Converter | None:
    entry = _map_entry(field)
    if entry is not None:
        return _map_converter(entry, defaults, js)
    convert = _single_converter(field, defaults, js)
    if not field.is_repeated:
        return convert
    if convert is None:
        return list
    return lambda values: [convert(v) for v in values]


def _map_converter(entry: Descriptor, defaults: bool, js: bool) -> Converter:
    """Keys as json_format spells them (str(), bools as true/false), sorted as strings like the walk."""
    key_type = entry.fields_by_name["key"].type
    convert = _single_converter(entry.fields_by_name["value"], defaults, js)
    if key_type == FieldDescriptor.TYPE_STRING:
        if convert is None:
            return lambda items: dict(sorted(items.items()))
        return lambda items: {k: convert(v) for k, v in sorted(items.items())}

    def key_text(key: Any) -> str:
        if isinstance(key, bool):
            return "true" if key else "false"
        return str(key)

    if convert is None:
        return lambda items: dict(sorted((key_text(k), v) for k, v in items.items()))
    return lambda items: dict(sorted((key_text(k), convert(v)) for k, v in items.items()))


def _single_converter(field: FieldDescriptor, defaults: bool, js: bool) -> Converter | None:
    """One value of `field` (an item, for a repeated field); None when the value is its own JSON."""
    if field.message_type is not None:
        return _message_converter(field.message_type, defaults, js)
    if field.enum_type is not None:
        return _enum_converter(field.enum_type)
    kind = field.type
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return _double_js if js else _double_plain
    if kind == FieldDescriptor.TYPE_FLOAT:
        return _float_js if js else _float_plain
    if kind in _INT64_TYPES:
        return str
    if kind == FieldDescriptor.TYPE_BYTES:
        return _bytes
    return None  # string, bool and the 32-bit integers


def _message_converter(descriptor: Descriptor, defaults: bool, js: bool) -> Converter:
    name = descriptor.full_name
    if not name.startswith(_WELL_KNOWN_PREFIX):
        return _plan(descriptor, defaults, js).encode
    values = _JSON_VALUES[js]
    if name == "google.protobuf.Struct":
        return values.struct
    if name == "google.protobuf.Value":
        return values.value
    if name == "google.protobuf.ListValue":
        return values.list_value
    if name in _STRING_FORM_TYPES:
        return lambda message: message.ToJsonString()
    if descriptor.file.name == _WRAPPERS_FILE:
        inner = _single_converter(descriptor.fields_by_name["value"], defaults, js)
        if inner is None:
            return lambda message: message.value
        return lambda message: inner(message.value)
    # Any, Empty and the rest: json_format's own output; the walk does not enter well-known types.
    return lambda message: _well_known(message, defaults, js)


def _well_known(message: Message, defaults: bool, js: bool) -> Any:
    data = json_format.MessageToDict(message, always_print_fields_with_no_presence=defaults)
    return js_numbers(data) if js else data


# ---- entry point ----------------------------------------------------------------------------------------


def to_json(message: Message, *, defaults: bool = True, js: bool = False) -> dict[str, Any]:
    """`contract.message_to_json(message, defaults=defaults)`, and with `js` also `js_numbers` of it."""
    descriptor: Any = message.DESCRIPTOR
    if descriptor.full_name.startswith(_WELL_KNOWN_PREFIX):
        return _reference(message, defaults=defaults, js=js)
    try:
        return _plan(descriptor, defaults, js).encode(message)
    except _Delegate:
        return _reference(message, defaults=defaults, js=js)
