"""The compiled message -> JSON encoder (athena_client/message_json.py) and the orjson `dumps` against the
paths they replace, kept here verbatim as the references: every message type of the contract, filled at
random (seeded) with every field kind and edge values, must give the same value, key order and types
included, and `dumps` the same bytes. A kitchen-sink message built here covers the field kinds the
contract does not use yet (64-bit integers, floats, bytes, maps with integer and bool keys, wrappers,
Timestamp, Duration, Any, closed enums, ...)."""

from __future__ import annotations

import enum
import importlib
import json
import math
import pkgutil
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from google.protobuf import (
    any_pb2,
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    empty_pb2,
    field_mask_pb2,
    json_format,
    message_factory,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

import athena.v1
from athena.v1 import options_pb2, runs_pb2
from athena_client import contract, message_json, rest_data

# ---- the replaced paths, verbatim ---------------------------------------------------------------------


def old_js_numbers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: old_js_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [old_js_numbers(v) for v in value]
    return value


def old_dumps(value: Any) -> str:
    return json.dumps(old_js_numbers(value), separators=(",", ":"), ensure_ascii=False)


def old_message_to_json(message: Message, *, defaults: bool = True) -> dict[str, Any]:
    data = json_format.MessageToDict(message, always_print_fields_with_no_presence=defaults)
    contract._walk(message.DESCRIPTOR, data, outgoing=True)
    return data


def old_field_json(message: Message, path: str) -> Any:
    if not path:
        return old_message_to_json(message)
    *parents, last = path.split(".")
    for name in parents:
        if not message.HasField(name):
            return None
        message = getattr(message, name)
    field = message.DESCRIPTOR.fields_by_name[last]
    if field.has_presence and not message.HasField(last):
        return None
    data = old_message_to_json(message)
    if field.is_repeated:
        empty: Any = {} if field.message_type is not None and field.message_type.GetOptions().map_entry else []
        return data.get(field.json_name, empty)
    return data.get(field.json_name)


def exact(value: Any) -> str:
    """A text that differs whenever two values differ in key order, int vs float, NaN, ... (== would not)."""
    return json.dumps(value, ensure_ascii=False)


def outcome(fn: Any, *args: Any, **kwargs: Any) -> tuple[str, str]:
    try:
        return "value", exact(fn(*args, **kwargs))
    except Exception as err:
        return "error", type(err).__name__


# ---- the contract's message types -----------------------------------------------------------------------


def _contract_messages() -> list[Descriptor]:
    found: dict[str, Descriptor] = {}

    def visit(descriptor: Descriptor) -> None:
        if descriptor.full_name in found or descriptor.GetOptions().map_entry:
            return
        found[descriptor.full_name] = descriptor
        for nested in descriptor.nested_types:
            visit(nested)
        for field in descriptor.fields:
            if field.message_type is not None:
                visit(field.message_type)

    for info in pkgutil.iter_modules(athena.v1.__path__):
        if info.name.endswith("_pb2"):
            module = importlib.import_module(f"athena.v1.{info.name}")
            for descriptor in module.DESCRIPTOR.message_types_by_name.values():
                visit(descriptor)
    return [found[name] for name in sorted(found)]


CONTRACT_MESSAGES = _contract_messages()


# ---- a kitchen sink of field kinds the contract does not use (yet) ---------------------------------------

_SINK_FILE = "tests/message_json_sink.proto"


def _sink_pool_file() -> None:
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(_SINK_FILE)
        return
    except KeyError:
        pass
    F = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name=_SINK_FILE, package="athena.test.sink", syntax="proto3")
    proto.dependency.extend(
        [
            "athena/v1/options.proto",
            "google/protobuf/any.proto",
            "google/protobuf/duration.proto",
            "google/protobuf/empty.proto",
            "google/protobuf/field_mask.proto",
            "google/protobuf/struct.proto",
            "google/protobuf/timestamp.proto",
            "google/protobuf/wrappers.proto",
        ]
    )
    color = proto.enum_type.add(name="Color")
    for name, number, json_value in [("COLOR_UNSPECIFIED", 0, ""), ("COLOR_RED", 1, "red"), ("COLOR_BLUE", 2, "")]:
        value = color.value.add(name=name, number=number)
        if json_value:
            value.options.Extensions[options_pb2.json_value] = json_value
    sink = proto.message_type.add(name="Sink")
    sink.oneof_decl.add(name="choice")  # real oneofs come before the synthetic ones of `optional` fields
    scalars = {
        "i32": F.TYPE_INT32,
        "i64": F.TYPE_INT64,
        "u32": F.TYPE_UINT32,
        "u64": F.TYPE_UINT64,
        "s32": F.TYPE_SINT32,
        "s64": F.TYPE_SINT64,
        "f32": F.TYPE_FIXED32,
        "f64": F.TYPE_FIXED64,
        "sf32": F.TYPE_SFIXED32,
        "sf64": F.TYPE_SFIXED64,
        "fl": F.TYPE_FLOAT,
        "db": F.TYPE_DOUBLE,
        "bo": F.TYPE_BOOL,
        "st": F.TYPE_STRING,
        "by": F.TYPE_BYTES,
    }
    number = 0

    def add(name: str, kind: int, label: int = F.LABEL_OPTIONAL, type_name: str = "", **extra: Any) -> Any:
        nonlocal number
        number += 1
        if type_name:
            extra["type_name"] = type_name
        return sink.field.add(name=name, number=number, type=kind, label=label, **extra)

    # Declared out of number order on purpose: MessageToDict prints set fields in number order, then the
    # unset ones in declaration order.
    add("late_first", F.TYPE_STRING).number = 500
    for name, kind in scalars.items():
        add(name, kind)
        add(f"rep_{name}", kind, F.LABEL_REPEATED)
        add(f"opt_{name}", kind, proto3_optional=True, oneof_index=len(sink.oneof_decl))
        sink.oneof_decl.add(name=f"_opt_{name}")
    add("color", F.TYPE_ENUM, type_name=".athena.test.sink.Color")
    add("rep_color", F.TYPE_ENUM, F.LABEL_REPEATED, ".athena.test.sink.Color")
    add("child", F.TYPE_MESSAGE, type_name=".athena.test.sink.Sink")
    add("children", F.TYPE_MESSAGE, F.LABEL_REPEATED, ".athena.test.sink.Sink")
    for wkt in [
        "Any",
        "Duration",
        "Empty",
        "FieldMask",
        "Struct",
        "Value",
        "ListValue",
        "Timestamp",
        "DoubleValue",
        "FloatValue",
        "Int64Value",
        "UInt64Value",
        "Int32Value",
        "UInt32Value",
        "BoolValue",
        "StringValue",
        "BytesValue",
    ]:
        add(f"wk_{wkt.lower()}", F.TYPE_MESSAGE, type_name=f".google.protobuf.{wkt}")
    add("rep_struct", F.TYPE_MESSAGE, F.LABEL_REPEATED, ".google.protobuf.Struct")
    add("rep_value", F.TYPE_MESSAGE, F.LABEL_REPEATED, ".google.protobuf.Value")
    add("rep_timestamp", F.TYPE_MESSAGE, F.LABEL_REPEATED, ".google.protobuf.Timestamp")
    add("null", F.TYPE_ENUM, type_name=".google.protobuf.NullValue")
    oneof = 0
    add("pick_text", F.TYPE_STRING, oneof_index=oneof)
    add("pick_color", F.TYPE_ENUM, type_name=".athena.test.sink.Color", oneof_index=oneof)
    add("pick_child", F.TYPE_MESSAGE, type_name=".athena.test.sink.Sink", oneof_index=oneof)
    add("pick_struct", F.TYPE_MESSAGE, type_name=".google.protobuf.Struct", oneof_index=oneof)
    maps = {
        "m_str_str": (F.TYPE_STRING, F.TYPE_STRING, ""),
        "m_i32_i64": (F.TYPE_INT32, F.TYPE_INT64, ""),
        "m_i64_db": (F.TYPE_INT64, F.TYPE_DOUBLE, ""),
        "m_u64_by": (F.TYPE_UINT64, F.TYPE_BYTES, ""),
        "m_bool_fl": (F.TYPE_BOOL, F.TYPE_FLOAT, ""),
        "m_str_color": (F.TYPE_STRING, F.TYPE_ENUM, ".athena.test.sink.Color"),
        "m_str_sink": (F.TYPE_STRING, F.TYPE_MESSAGE, ".athena.test.sink.Sink"),
        "m_s32_value": (F.TYPE_SINT32, F.TYPE_MESSAGE, ".google.protobuf.Value"),
        "m_str_struct": (F.TYPE_STRING, F.TYPE_MESSAGE, ".google.protobuf.Struct"),
        "m_str_ts": (F.TYPE_STRING, F.TYPE_MESSAGE, ".google.protobuf.Timestamp"),
    }
    for name, (key, value_kind, type_name) in maps.items():
        entry_name = "".join(part.title() for part in name.split("_")) + "Entry"
        entry = sink.nested_type.add(name=entry_name)
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=key, label=F.LABEL_OPTIONAL)
        value_field = entry.field.add(name="value", number=2, type=value_kind, label=F.LABEL_OPTIONAL)
        if type_name:
            value_field.type_name = type_name
        add(name, F.TYPE_MESSAGE, F.LABEL_REPEATED, f".athena.test.sink.Sink.{entry_name}")
    pool.Add(proto)

    # proto2: closed enums, explicit defaults, presence on every singular field.
    legacy = descriptor_pb2.FileDescriptorProto(
        name="tests/message_json_legacy.proto", package="athena.test.sink", syntax="proto2"
    )
    level = legacy.enum_type.add(name="Level")
    level.value.add(name="LEVEL_LOW", number=1)
    level.value.add(name="LEVEL_HIGH", number=2)
    old = legacy.message_type.add(name="Legacy")
    old.field.add(name="level", number=1, type=F.TYPE_ENUM, label=F.LABEL_OPTIONAL, type_name=".athena.test.sink.Level")
    old.field.add(name="count", number=2, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL, default_value="5")
    old.field.add(name="ratio", number=3, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL, default_value="2.5")
    old.field.add(
        name="levels", number=4, type=F.TYPE_ENUM, label=F.LABEL_REPEATED, type_name=".athena.test.sink.Level"
    )
    old.field.add(name="name", number=5, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL, default_value="x")
    pool.Add(legacy)


_sink_pool_file()
SINK: Any = message_factory.GetMessageClass(descriptor_pool.Default().FindMessageTypeByName("athena.test.sink.Sink"))
LEGACY: Any = message_factory.GetMessageClass(
    descriptor_pool.Default().FindMessageTypeByName("athena.test.sink.Legacy")
)


# ---- random contents -----------------------------------------------------------------------------------

STRINGS = [
    "",
    "a",
    "hello world",
    "0",
    "é",
    "日本語",
    "😀 emoji",
    "\u2028\u2029",
    "\x00\x01\x1f\x7f",
    '"quoted" \\ / back',
    "\n\r\t\b\f",
    "\ufeff\ufffd",
    "B",
    "_",
    "aa",
    "10",
    "9",
]
INT32 = [0, 1, -1, 7, 2**31 - 1, -(2**31), 100, 2**24 + 1]
UINT32 = [0, 1, 2**32 - 1, 2**31]
INT64 = [0, 1, -1, 2**53, 2**53 + 1, 2**63 - 1, -(2**63), -(2**53) - 1]
UINT64 = [0, 1, 2**64 - 1, 2**53 + 1]
DOUBLES = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    1e-7,
    1e21,
    1e16,
    0.1 + 0.2,
    2.0**53,
    2.0**53 - 1,
    -(2.0**53),
    2.0**60,
    5e-324,
    1.7976931348623157e308,
    123456.789,
    math.nan,
    math.inf,
    -math.inf,
]
FLOATS = [0.0, -0.0, 1.0, 0.1, 0.9, 3.4028234663852886e38, 1e-7, 16777217.0, 1.5, math.nan, math.inf, -math.inf]
STRUCT_KEYS = ["a", "B", "b", "_", "é", "10", "9", "", "日本", "z", "aa", "A"]


def _text(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return rng.choice(STRINGS)
    return "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0x80, 0xD800), 0x1F600])) for _ in range(5))


def _json_tree(rng: random.Random, depth: int) -> Any:
    """A Python value a Struct holds: no NaN or infinity (json_format refuses those)."""
    roll = rng.random()
    if depth <= 0 or roll < 0.5:
        return rng.choice(
            [None, True, False, _text(rng), rng.choice(INT32), rng.choice([d for d in DOUBLES if math.isfinite(d)])]
        )
    if roll < 0.75:
        return [_json_tree(rng, depth - 1) for _ in range(rng.randrange(4))]
    return {rng.choice(STRUCT_KEYS): _json_tree(rng, depth - 1) for _ in range(rng.randrange(5))}


def _struct(rng: random.Random, target: Any) -> None:
    tree = _json_tree(rng, 3)
    target.update(tree if isinstance(tree, dict) else {"k": tree})


def _value(rng: random.Random, target: Any) -> None:
    tree = _json_tree(rng, 3)
    if tree is None:
        target.null_value = struct_pb2.NULL_VALUE
    elif isinstance(tree, bool):
        target.bool_value = tree
    elif isinstance(tree, str):
        target.string_value = tree
    elif isinstance(tree, (int, float)):
        target.number_value = tree
    elif isinstance(tree, list):
        target.list_value.extend(tree)
    else:
        target.struct_value.update(tree)


def _scalar(rng: random.Random, field: Any) -> Any:
    kind = field.type
    if field.enum_type is not None:
        numbers = [v.number for v in field.enum_type.values]
        if not field.enum_type.is_closed and rng.random() < 0.15:
            return rng.choice([99, -3, 2**31 - 1])  # unknown to the contract: open enums keep it
        return rng.choice(numbers)
    if kind == FieldDescriptor.TYPE_STRING:
        return _text(rng)
    if kind == FieldDescriptor.TYPE_BYTES:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(6)))
    if kind == FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if kind == FieldDescriptor.TYPE_DOUBLE:
        return rng.choice(DOUBLES)
    if kind == FieldDescriptor.TYPE_FLOAT:
        return rng.choice(FLOATS)
    if kind in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
        return rng.choice(INT64)
    if kind in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return rng.choice(UINT64)
    if kind in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return rng.choice(UINT32)
    return rng.choice(INT32)


def _well_known(rng: random.Random, target: Any) -> bool:
    """Fill a well-known type in place; False when `target` is not one."""
    name = target.DESCRIPTOR.full_name
    if name == "google.protobuf.Struct":
        _struct(rng, target)
    elif name == "google.protobuf.Value":
        _value(rng, target)
    elif name == "google.protobuf.ListValue":
        target.extend([_json_tree(rng, 2) for _ in range(rng.randrange(4))])
    elif name == "google.protobuf.Timestamp":
        target.FromNanoseconds(rng.choice([0, 1, 1_700_000_000_123_000_000, 1_700_000_000_000_000_001]))
    elif name == "google.protobuf.Duration":
        target.FromNanoseconds(rng.choice([0, -1_500_000_000, 3_000_000_001]))
    elif name == "google.protobuf.FieldMask":
        target.paths.extend(rng.sample(["a", "b_c", "d.e_f"], rng.randrange(3)))
    elif name == "google.protobuf.Empty":
        pass
    elif name == "google.protobuf.Any":
        inner = runs_pb2.Usage(input_tokens=rng.choice(INT32))
        target.Pack(inner if rng.random() < 0.5 else struct_pb2.Value(number_value=1.0))
    elif target.DESCRIPTOR.file.name == "google/protobuf/wrappers.proto":
        target.value = _scalar(rng, target.DESCRIPTOR.fields_by_name["value"])
    else:
        return False
    return True


def fill(rng: random.Random, message: Message, depth: int = 3) -> Message:
    """Set a random selection of `message`'s fields to random contents (recursing `depth` levels)."""
    if _well_known(rng, message):
        return message
    for field in message.DESCRIPTOR.fields:
        if rng.random() < 0.35:
            continue
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
            target = getattr(message, field.name)
            for _ in range(rng.randrange(4)):
                key = _scalar(rng, key_field)
                if value_field.message_type is not None:
                    if depth > 0:
                        fill(rng, target[key], depth - 1)
                else:
                    target[key] = _scalar(rng, value_field)
        elif field.is_repeated:
            target = getattr(message, field.name)
            for _ in range(rng.randrange(4)):
                if field.message_type is not None:
                    if depth > 0:
                        fill(rng, target.add(), depth - 1)
                else:
                    target.append(_scalar(rng, field))
        elif field.message_type is not None:
            if depth > 0 or rng.random() < 0.5:
                child = getattr(message, field.name)
                child.SetInParent()  # set, possibly empty
                if depth > 0:
                    fill(rng, child, depth - 1)
        elif rng.random() < 0.15:
            setattr(message, field.name, field.default_value)  # explicitly set to its default
        else:
            setattr(message, field.name, _scalar(rng, field))
    return message


def samples(descriptor: Any, count: int, seed: int, depths: int = 4) -> Iterator[Message]:
    cls = message_factory.GetMessageClass(descriptor)
    rng = random.Random(f"{descriptor.full_name}/{seed}")
    yield cls()
    for i in range(count):
        yield fill(rng, cls(), depth=i % depths)


def same_as_before(message: Message) -> None:
    for defaults in (True, False):
        assert outcome(message_json.to_json, message, defaults=defaults) == outcome(
            old_message_to_json, message, defaults=defaults
        )
        assert outcome(contract.message_to_json, message, defaults=defaults) == outcome(
            old_message_to_json, message, defaults=defaults
        )
    assert outcome(message_json.to_json, message, js=True) == outcome(
        lambda m: old_js_numbers(old_message_to_json(m)), message
    )
    assert outcome(lambda m: rest_data.dumps(rest_data.field_json(m, "")), message) == outcome(
        lambda m: old_dumps(old_field_json(m, "")), message
    )


# ---- the encoder -----------------------------------------------------------------------------------------


def test_the_contract_has_messages() -> None:
    names = {d.full_name for d in CONTRACT_MESSAGES}
    assert {"athena.v1.RunResult", "athena.v1.CreateRunResponse", "google.protobuf.Struct"} <= names
    assert len(names) > 100


@pytest.mark.parametrize("descriptor", CONTRACT_MESSAGES, ids=lambda d: d.full_name)
def test_every_contract_message_encodes_as_before(descriptor: Descriptor) -> None:
    for message in samples(descriptor, 25, seed=1):
        same_as_before(message)


@pytest.mark.parametrize("descriptor", CONTRACT_MESSAGES, ids=lambda d: d.full_name)
def test_field_json_of_every_field_as_before(descriptor: Descriptor) -> None:
    for message in samples(descriptor, 6, seed=2):
        for field in descriptor.fields:
            paths = [field.name]
            if field.message_type is not None and not field.is_repeated:
                paths += [f"{field.name}.{sub.name}" for sub in field.message_type.fields]
            for path in paths:
                new = outcome(lambda m, p=path: rest_data.dumps(rest_data.field_json(m, p)), message)
                assert new == outcome(lambda m, p=path: old_dumps(old_field_json(m, p)), message), path
                got, want = rest_data.field_json(message, path), old_field_json(message, path)
                assert got == want or (exact(got) == exact(want)), path  # equal, NaN aside


def test_kitchen_sink_encodes_as_before() -> None:
    for message in samples(SINK.DESCRIPTOR, 300, seed=3, depths=3):  # deeper sinks only grow wider
        same_as_before(message)


def test_proto2_legacy_encodes_as_before() -> None:
    for message in samples(LEGACY.DESCRIPTOR, 50, seed=4):
        same_as_before(message)


def test_out_of_number_order_declaration_keeps_messagetodict_order() -> None:
    message = SINK(late_first="z", st="s", i32=3)
    assert list(message_json.to_json(message))[:3] == ["i32", "st", "lateFirst"]
    same_as_before(message)


def test_non_finite_value_in_struct_fails_as_before() -> None:
    for number in (math.nan, math.inf, -math.inf):
        message = SINK()
        message.wk_struct.update({"x": {"y": [1, number]}})
        assert outcome(message_json.to_json, message)[0] == "error"
        same_as_before(message)
        message = SINK()
        message.m_s32_value[1].number_value = number
        assert outcome(message_json.to_json, message)[0] == "error"
        same_as_before(message)


def test_edge_values_one_by_one() -> None:
    """Each edge value alone in each field it fits, so no other field's value can mask a difference."""
    for field in SINK.DESCRIPTOR.fields:
        if field.message_type is not None or field.is_repeated:
            continue
        pool = {
            FieldDescriptor.TYPE_DOUBLE: DOUBLES,
            FieldDescriptor.TYPE_FLOAT: FLOATS,
            FieldDescriptor.TYPE_INT64: INT64,
            FieldDescriptor.TYPE_SINT64: INT64,
            FieldDescriptor.TYPE_SFIXED64: INT64,
            FieldDescriptor.TYPE_UINT64: UINT64,
            FieldDescriptor.TYPE_FIXED64: UINT64,
            FieldDescriptor.TYPE_STRING: STRINGS,
        }.get(field.type, [])
        assert isinstance(pool, list)
        for value in pool:
            message = SINK()
            setattr(message, field.name, value)
            same_as_before(message)


def test_well_known_top_level_messages_as_before() -> None:
    rng = random.Random(5)
    for cls in (
        struct_pb2.Struct,
        struct_pb2.Value,
        struct_pb2.ListValue,
        timestamp_pb2.Timestamp,
        duration_pb2.Duration,
        empty_pb2.Empty,
        field_mask_pb2.FieldMask,
        any_pb2.Any,
        wrappers_pb2.Int64Value,
        wrappers_pb2.DoubleValue,
    ):
        for _ in range(10):
            message = cls()
            _well_known(rng, message)
            for defaults in (True, False):
                assert outcome(message_json.to_json, message, defaults=defaults) == outcome(
                    old_message_to_json, message, defaults=defaults
                )


def test_encoded_values_are_fresh() -> None:
    """Callers may change what they get (the walk did): defaults must not be shared between calls."""
    first = message_json.to_json(runs_pb2.RunResult())
    first["verificationFailures"].append("x")
    assert message_json.to_json(runs_pb2.RunResult())["verificationFailures"] == []


def test_plans_compiled_by_many_threads_at_once() -> None:
    """Nested and recursive plans are published only once complete: no thread sees a half-built one."""
    messages = [fill(random.Random(seed), SINK(), 3) for seed in range(8)]
    want = [outcome(old_message_to_json, m) for m in messages]
    message_json._PLANS.clear()
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda m: outcome(message_json.to_json, m), messages * 4))
    assert got == want * 4


# ---- dumps -----------------------------------------------------------------------------------------------


class Small(enum.IntEnum):
    ONE = 1


class Text(str):
    pass


def _lone_surrogate() -> str:
    return "\ud800"


TRICKY: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**53,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    -(2**63),
    -(2**63) - 1,
    2**100,
    -(2**100),
    *DOUBLES,
    0.1 + 0.2,
    1e-7,
    1e21,
    1e22,
    100.0,
    -0.0,
    "".join(chr(c) for c in range(0, 0x800)),
    "".join(chr(c) for c in range(0xE000, 0x10000)),
    "\U0001f600\U00010000\U0010ffff",
    "\u2028\u2029\u0085\u00a0",
    _lone_surrogate(),
    "a\udc00b",
    {"k": _lone_surrogate()},
    {_lone_surrogate(): 1},
    {1: "int key"},
    {1.5: "float key", True: "bool key", None: "none key"},
    {Text("sub"): 1},
    Text("str subclass"),
    Small.ONE,
    {"e": Small.ONE},
    (1, 1.0, {"a": 2.0}),
    (1e-7, math.nan, 1e21, [0.1 + 0.2]),
    [1, (2.0,)],
    {"nested": [{"a": 1.0, "b": [0.5, 2.0**60, {"c": -0.0}]}, [], {}]},
    {"z": 1, "a": 2, "m": {"y": 1, "b": 2}},
    [[[[[[[[[[1.0]]]]]]]]]],
]


def _deep(levels: int) -> Any:
    value: Any = 1.5
    for i in range(levels):
        value = [value] if i % 2 else {"d": value}
    return value


@pytest.mark.parametrize("value", [*TRICKY, _deep(254), _deep(256), _deep(300)], ids=repr)
def test_dumps_writes_the_bytes_json_dumps_did(value: Any) -> None:
    assert outcome(rest_data.dumps, value) == outcome(old_dumps, value)
    if outcome(old_dumps, value)[0] == "value":
        assert rest_data.dumps(value) == old_dumps(value)


def test_dumps_refuses_what_json_refused() -> None:
    for value in [object(), {"a": {1, 2}}, b"bytes", [complex(1, 2)]]:
        with pytest.raises(TypeError):
            old_dumps(value)
        with pytest.raises(TypeError):
            rest_data.dumps(value)
    cycle: list[Any] = []
    cycle.append(cycle)
    assert outcome(rest_data.dumps, cycle) == outcome(old_dumps, cycle)


def test_dumps_does_not_change_its_argument() -> None:
    value = {"a": 1.0, "b": [2.0, 0.5], "c": {"d": math.nan}}
    before = exact(value)
    rest_data.dumps(value)
    assert exact(value) == before


def test_dumps_of_random_trees() -> None:
    rng = random.Random(6)
    for _ in range(2000):
        tree = _json_tree(rng, 4)
        value = {"ok": True, "data": tree} if rng.random() < 0.5 else tree
        assert rest_data.dumps(value) == old_dumps(value)


def test_dumps_of_every_character() -> None:
    text = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF)
    assert rest_data.dumps({"t": text, text[:50]: 1}) == old_dumps({"t": text, text[:50]: 1})
