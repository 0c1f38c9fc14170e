"""The fast JSON -> request-message parser against the slow path it stands in for.

`parse_request` either returns exactly the message `json_to_message` builds (same bytes, same fields) or
declines, and it must decline whenever the slow path raises, so the client's CONFIG_ERROR text still comes
from the slow path. Checked over every request message of the contract (and a synthetic message holding
every field kind the contract does not use yet) with seeded random bodies, well-typed and ill-typed."""

from __future__ import annotations

import copy
import json
import math
import random
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, struct_pb2, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from athena.v1 import options_pb2, runs_pb2
from athena_client.contract import UNRECOGNIZED_ENUM, json_to_message, services
from athena_client.message_parse import parse_request
from athena_gateway.errors import GatewayError
from athena_gateway.routes import build_routes
from athena_gateway.transcode import build_request

# ---- the messages -----------------------------------------------------------------------------------------


def _request_types() -> list[Descriptor]:
    found = {m.input_type.full_name: m.input_type for s in services() for m in s.methods}
    return [found[k] for k in sorted(found)]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _kitchen() -> Descriptor:
    """A proto3 message with every field kind and quirk the contract lacks (64-bit and unsigned integers,
    float, bytes, a real oneof, maps of messages / enums / int keys, well-known types, recursion, a custom
    json_name), added once to the default pool."""
    pool = descriptor_pool.Default()
    assert timestamp_pb2.Timestamp.DESCRIPTOR and struct_pb2.Struct.DESCRIPTOR  # the dependencies, loaded
    try:
        return pool.FindMessageTypeByName("athena.test.fastparse.Kitchen")
    except KeyError:
        pass
    f = descriptor_pb2.FileDescriptorProto(
        name="athena/test/fastparse.proto",
        package="athena.test.fastparse",
        syntax="proto3",
        dependency=["google/protobuf/struct.proto", "google/protobuf/timestamp.proto", "athena/v1/options.proto"],
    )
    color = f.enum_type.add(name="Color")
    for number, name, spelling in [(0, "COLOR_UNSPECIFIED", ""), (1, "COLOR_RED", "red"), (2, "COLOR_BLUE", "")]:
        value = color.value.add(name=name, number=number)
        if spelling:
            value.options.Extensions[options_pb2.json_value] = spelling
    inner = f.message_type.add(name="Inner")
    inner.field.add(name="note", number=1, type=FieldDescriptor.TYPE_STRING, json_name="note")
    inner.field.add(name="level", number=2, type=FieldDescriptor.TYPE_INT32, json_name="level")
    k = f.message_type.add(name="Kitchen")
    T = FieldDescriptor
    scalars = [
        ("text", T.TYPE_STRING),
        ("big_int", T.TYPE_INT64),
        ("small_uint", T.TYPE_UINT32),
        ("big_uint", T.TYPE_UINT64),
        ("zig", T.TYPE_SINT32),
        ("fixed", T.TYPE_FIXED64),
        ("single", T.TYPE_FLOAT),
        ("real", T.TYPE_DOUBLE),
        ("flag", T.TYPE_BOOL),
        ("blob", T.TYPE_BYTES),
        ("count", T.TYPE_INT32),
    ]
    number = 0

    def add(name: str, kind: int, **kw: Any) -> descriptor_pb2.FieldDescriptorProto:
        nonlocal number
        number += 1
        json_name = kw.pop("json_name", None) or _camel(name)
        return k.field.add(name=name, number=number, type=kind, json_name=json_name, **kw)

    rep = T.LABEL_REPEATED
    for name, kind in scalars:
        add(name, kind)
        add(f"many_{name}", kind, label=rep)
    add("color", T.TYPE_ENUM, type_name=".athena.test.fastparse.Color")
    add("colors", T.TYPE_ENUM, type_name=".athena.test.fastparse.Color", label=rep)
    add("child", T.TYPE_MESSAGE, type_name=".athena.test.fastparse.Kitchen")
    add("children", T.TYPE_MESSAGE, type_name=".athena.test.fastparse.Kitchen", label=rep)
    add("child_node", T.TYPE_MESSAGE, type_name=".athena.test.fastparse.Kitchen")
    add("inner_msg", T.TYPE_MESSAGE, type_name=".athena.test.fastparse.Inner")
    add("inner_list", T.TYPE_MESSAGE, type_name=".athena.test.fastparse.Inner", label=rep)
    add("extra", T.TYPE_MESSAGE, type_name=".google.protobuf.Struct")
    add("any_value", T.TYPE_MESSAGE, type_name=".google.protobuf.Value")
    add("at", T.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp")
    add("renamed", T.TYPE_STRING, json_name="other")
    k.oneof_decl.add(name="choice")  # a real oneof first: synthetic ones (proto3 `optional`) come last
    add("pick_text", T.TYPE_STRING, oneof_index=0)
    add("pick_num", T.TYPE_INT32, oneof_index=0)
    add("pick_inner", T.TYPE_MESSAGE, type_name=".athena.test.fastparse.Inner", oneof_index=0)
    optionals = [("opt_count", T.TYPE_INT32, ""), ("opt_text", T.TYPE_STRING, ""), ("opt_color", T.TYPE_ENUM, "Color")]
    for name, kind, type_name in optionals:
        oneof_index = len(k.oneof_decl)
        k.oneof_decl.add(name=f"_{name}")
        full = f".athena.test.fastparse.{type_name}" if type_name else ""
        add(name, kind, oneof_index=oneof_index, proto3_optional=True, **({"type_name": full} if full else {}))
    maps = [
        ("labels", T.TYPE_STRING, T.TYPE_STRING, ""),
        ("counts", T.TYPE_STRING, T.TYPE_INT64, ""),
        ("weights", T.TYPE_STRING, T.TYPE_DOUBLE, ""),
        ("by_id", T.TYPE_INT32, T.TYPE_STRING, ""),
        ("switches", T.TYPE_BOOL, T.TYPE_STRING, ""),
        ("paints", T.TYPE_STRING, T.TYPE_ENUM, ".athena.test.fastparse.Color"),
        ("kids", T.TYPE_STRING, T.TYPE_MESSAGE, ".athena.test.fastparse.Inner"),
    ]
    for name, key_kind, value_kind, value_type in maps:
        entry_name = "".join(p.capitalize() for p in name.split("_")) + "Entry"
        entry = k.nested_type.add(name=entry_name)
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, type=key_kind, json_name="key")
        value_field = entry.field.add(name="value", number=2, type=value_kind, json_name="value")
        if value_type:
            value_field.type_name = value_type
        add(name, T.TYPE_MESSAGE, label=rep, type_name=f".athena.test.fastparse.Kitchen.{entry_name}")
    pool.Add(f)
    return pool.FindMessageTypeByName("athena.test.fastparse.Kitchen")


# ---- random bodies ----------------------------------------------------------------------------------------

_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_STRINGS = ["", "s1", "hello", "mock", "héllo wörld", "日本語", "😀 emoji", "a\u0000b", "line\nbreak", "x" * 300]
# Values of the wrong type, or of the right type that only the slow path may judge.
_NASTY: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2**31,
    -(2**31) - 1,
    2**32,
    2**63,
    2**64,
    10**400,
    1.5,
    5.0,
    -0.0,
    1e39,
    math.nan,
    math.inf,
    -math.inf,
    "",
    "5",
    "-5",
    " 5",
    "+5",
    "1_0",
    "5.0",
    "1e3",
    "\u0663",
    "NaN",
    "Infinity",
    "-Infinity",
    "nan",
    "true",
    "abc",
    "red",
    "COLOR_RED",
    "\ud800",
    "x\udc00",
    "\ud83d\ude00",
    "2024-01-02T03:04:05Z",
    [],
    [None],
    ["x"],
    [1],
    [{}],
    [[]],
    {},
    {"a": None},
    {"a": 1},
    {"a": "b"},
    {"": ""},
    {"5": "x"},
    {"true": "x"},
]
_UNKNOWN_KEYS = [
    "unknownKey",
    "zzz",
    "SESSIONID",
    "_opt_count",
    "choice",
    "@type",
    "[athena.v1.nope]",
    "[x",
    "[]",
    "\ud800",
    "k\udfff",
    "é",
]


def _enum_spellings(field: FieldDescriptor) -> list[str]:
    enum = field.enum_type
    assert enum is not None
    spellings = [v.name for v in enum.values]
    spellings += [s for v in enum.values if (s := v.GetOptions().Extensions[options_pb2.json_value])]
    return [*spellings, "not-a-value", "", "unspecified", spellings[0].lower()]


def _good_scalar(field: FieldDescriptor, rng: random.Random) -> Any:
    kind = field.type
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        return rng.choice([0, 1, low, high, rng.randint(low, high), rng.randint(-1000, 1000) if low else 7])
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return rng.choice([0.0, -0.0, 1.5, 0.1, rng.uniform(-1e6, 1e6), 3, 1e300, -(2**70)])
    if kind == FieldDescriptor.TYPE_BOOL:
        return rng.choice([True, False])
    if kind == FieldDescriptor.TYPE_ENUM:
        return rng.choice(_enum_spellings(field))
    return rng.choice(_STRINGS) if rng.random() < 0.7 else "".join(rng.choices("abcé _-", k=rng.randint(0, 12)))


def _good_value(field: FieldDescriptor, rng: random.Random, depth: int) -> Any:
    """A value of the field's own JSON type (well-known types get plausible values of theirs)."""
    sub = field.message_type
    if sub is not None and sub.GetOptions().map_entry:
        value_field = sub.fields_by_name["value"]
        keys = ["a", "b", "é", "", "5", "true", rng.choice(_STRINGS)]
        return {rng.choice(keys): _good_item(value_field, rng, depth + 1) for _ in range(rng.randint(0, 3))}
    if field.is_repeated:
        return [_good_item(field, rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return _good_item(field, rng, depth)


def _good_item(field: FieldDescriptor, rng: random.Random, depth: int) -> Any:
    sub = field.message_type
    if sub is None:
        return _good_scalar(field, rng)
    if sub.full_name == "google.protobuf.Timestamp":
        return "2024-01-02T03:04:05Z"
    if sub.full_name.startswith("google.protobuf."):
        return {"k": [1, "two", None, {"x": True}]}
    return _body(sub, rng, depth + 1, nasty=0.0)


def _body(descriptor: Descriptor, rng: random.Random, depth: int, nasty: float, proto_names: float = 0.0) -> Any:
    """A JSON object for `descriptor`: each field present at random, spelled by json_name (or, with
    probability `proto_names`, by its proto name), with a nasty value with probability `nasty`."""
    data: dict[str, Any] = {}
    if depth > 4:
        return data
    fields = list(descriptor.fields)
    rng.shuffle(fields)
    presence = min(0.6, 4 / max(1, len(fields)))  # a few fields of a big message, so some bodies are plain
    for f in fields:
        if rng.random() > presence:
            continue
        key = f.name if rng.random() < proto_names else f.json_name
        roll = rng.random()
        if roll < nasty:
            data[key] = rng.choice(_NASTY)
        elif roll < nasty * 1.5 and f.message_type is not None:
            data[key] = _body(f.message_type, rng, depth + 1, nasty=0.5)  # an error one level down
        elif roll < nasty * 1.7 and f.is_repeated:
            data[key] = [_good_item(f, rng, depth + 1), rng.choice(_NASTY)]
        else:
            data[key] = None if rng.random() < 0.05 else _good_value(f, rng, depth)
    if nasty and rng.random() < 0.2:
        data[rng.choice(_UNKNOWN_KEYS)] = rng.choice(_NASTY)
    if nasty and rng.random() < 0.1 and descriptor.fields:
        f = rng.choice(descriptor.fields)  # both spellings of one name
        data[f.name] = data[f.json_name] = _good_value(f, rng, depth)
    return data


# ---- the comparison ---------------------------------------------------------------------------------------


def _slow(descriptor: Descriptor, data: Any) -> Message | tuple[type[BaseException], str]:
    """What the slow path gives: the message, or its exception's type and text (it mutates nested dicts,
    so it gets a copy)."""
    try:
        return json_to_message(copy.deepcopy(data), message_factory.GetMessageClass(descriptor)())
    except Exception as exc:
        return type(exc), str(exc)


def _combined(descriptor: Descriptor, data: Any) -> Message | tuple[type[BaseException], str]:
    """The fast path with its fallback, as `build_request` runs them."""
    fast = parse_request(descriptor, data)
    return fast if fast is not None else _slow(descriptor, data)


def _check(descriptor: Descriptor, data: Any) -> bool:
    """Asserts the fast path agrees with the slow path on `data`; whether it handled it."""
    before = repr(data)
    fast = parse_request(descriptor, data)
    assert repr(data) == before, "the fast path modified its input"
    expected = _slow(descriptor, data)
    if fast is None:
        assert _combined(descriptor, data) == expected
        return False
    assert isinstance(expected, Message), f"fast path accepted {data!r}; the slow path raises {expected!r}"
    assert fast.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True), data
    assert fast.ListFields() == expected.ListFields(), data
    assert fast == expected
    return True


_REQUESTS = _request_types()
_ALL = [*_REQUESTS, _kitchen()]


def test_the_contract_has_request_messages() -> None:
    assert len(_REQUESTS) > 50
    assert runs_pb2.CreateRunRequest.DESCRIPTOR in _REQUESTS


@pytest.mark.parametrize("descriptor", _ALL, ids=lambda d: d.name)
def test_well_typed_bodies_are_parsed_fast_and_identically(descriptor: Descriptor) -> None:
    """Json names, values of the field's type (unknown enum spellings and nulls included), unknown keys:
    the common case, which the fast path must take (or it saves nothing) and get exactly right."""
    rng = random.Random(f"good:{descriptor.full_name}")
    handled = 0
    for case in range(60):
        data = _body(descriptor, rng, 1, nasty=0.0)
        if case % 3 == 0:
            data[rng.choice(_UNKNOWN_KEYS[:5])] = rng.choice(_NASTY)
        handled += _check(descriptor, data)
    if descriptor.full_name.startswith("athena.v1."):
        assert handled == 60  # every request field kind of the contract has a fast path
    else:
        assert handled > 0  # the kitchen also holds kinds left to the slow path


@pytest.mark.parametrize("descriptor", _ALL, ids=lambda d: d.name)
def test_any_body_gives_the_slow_paths_message_or_error(descriptor: Descriptor) -> None:
    """Ill-typed values at any depth, both spellings of field names, unknown and extension-like keys:
    the same message or the same exception type and text as the slow path."""
    rng = random.Random(f"any:{descriptor.full_name}")
    handled = failed = 0
    for _ in range(250):
        data = _body(descriptor, rng, 1, nasty=rng.choice([0.05, 0.2, 0.5]), proto_names=rng.choice([0.0, 0.3, 1.0]))
        handled += _check(descriptor, data)
        failed += not isinstance(_slow(descriptor, data), Message)
    assert handled > 0
    if descriptor.fields:
        assert failed > 0  # the generator does reach the slow path's errors


def test_every_nasty_value_in_every_field() -> None:
    """Each nasty value alone in each field (and as a list item, and as a map value) of every message, and
    each unknown key alone."""
    for descriptor in _ALL:
        for unknown in _UNKNOWN_KEYS:
            _check(descriptor, {unknown: 1})
            _check(descriptor, {unknown: None})
        for f in descriptor.fields:
            for key in {f.name, f.json_name}:
                for value in _NASTY:
                    _check(descriptor, {key: value})
                    _check(descriptor, {key: [value]})
                    _check(descriptor, {key: {"k": value}})


def test_non_objects_are_declined() -> None:
    descriptor = runs_pb2.CreateRunRequest.DESCRIPTOR
    for data in [None, [], "x", 5, [("sessionId", "s1")]]:
        assert parse_request(descriptor, data) is None
    assert parse_request(descriptor, {5: "x"}) is None
    assert _check(descriptor, {"sessionId": "s1", 5: "x"}) is False


def test_create_run_examples() -> None:
    d = runs_pb2.CreateRunRequest.DESCRIPTOR
    body = {"sessionId": "s1", "input": "hello", "provider": "mock"}
    assert parse_request(d, body) == runs_pb2.CreateRunRequest(session_id="s1", input="hello", provider="mock")
    queue = {"sessionId": "s1", "runningRunBehavior": "queue", "metadata": {"b": "2", "a": "1"}, "wait": False}
    assert _check(d, queue)
    message = parse_request(d, queue)
    assert isinstance(message, runs_pb2.CreateRunRequest) and message.HasField("wait") and not message.wait
    unknown = parse_request(d, {"runningRunBehavior": "sideways"})
    assert isinstance(unknown, runs_pb2.CreateRunRequest) and unknown.running_run_behavior == UNRECOGNIZED_ENUM
    # Proto names of non-enum fields are taken; an enum under its proto name is ParseDict's alone (`_walk`
    # does not translate it), and so are both spellings at once.
    assert _check(d, {"session_id": "s1", "harness_profile_id": "h"})
    assert not _check(d, {"running_run_behavior": "queue"})
    assert not _check(d, {"sessionId": "a", "session_id": "b"})
    # What only the slow path reports.
    for bad in [{"sessionId": 5}, {"wait": "true"}, {"metadata": []}, {"metadata": {"a": 1}}, {"[x.y]": 1}]:
        assert not isinstance(_slow(d, bad), Message)
        assert parse_request(d, bad) is None


def test_kitchen_kinds_taken_fast() -> None:
    d = _kitchen()
    cases: list[dict[str, Any]] = [
        {"bigInt": "-9223372036854775808", "bigUint": 2**64 - 1, "smallUint": "4294967295", "zig": -5},
        {"real": 3, "manyReal": [1, 2.5, -0.0], "count": 2**31 - 1, "manyCount": [0, -1]},
        {"color": "red", "colors": ["red", "COLOR_BLUE", "nope", ""], "optColor": "COLOR_RED"},
        {"child": {"child": {"text": "deep"}}, "children": [{}, {"flag": True}], "innerMsg": {}},
        {"inner_msg": {"note": "proto name, no enums below"}, "inner_list": [{"level": 3}]},
        {"other": "custom json_name", "optCount": 0, "optText": ""},
        {"labels": {"a": "b", "": ""}, "counts": {"x": "12", "y": -3}, "weights": {"w": 1}},
        {"pickText": "only member"},
        {"pickInner": {}},
        {"pickText": None, "text": None, "child": None, "labels": None, "colors": None},
    ]
    for data in cases:
        assert _check(d, data), data
    message = parse_request(d, {"innerMsg": {}})
    assert message is not None and message.HasField("inner_msg")


def test_kitchen_kinds_left_to_the_slow_path() -> None:
    d = _kitchen()
    cases: list[dict[str, Any]] = [
        {"single": 1.5},
        {"blob": "aGk="},
        {"extra": {"a": 1}},
        {"extra": None},
        {"anyValue": None},
        {"at": "2024-01-02T03:04:05Z"},
        {"byId": {"5": "x"}},
        {"switches": {"true": "x"}},
        {"paints": {"a": "red"}},
        {"kids": {"a": {}}},
        {"pickText": "a", "pickNum": 1},
        {"pickText": None, "pickNum": 1},
        {"count": 1.0},
        {"count": True},
        {"count": " 5"},
        {"bigInt": "+5"},
        {"real": "1.5"},
        {"real": math.nan},
        {"color": 1},
        {"opt_color": "red"},
        {"child_node": {"text": "enums below: `_walk` does not look under a proto name"}},
        {"child": {"colors": ["red"]}, "children": [{"color": "red"}], "text": "ok", "other": "\ud800"},
        {"manyText": ["a", None]},
        {"children": [None]},
        {"children": ["abc"]},
    ]
    for data in cases:
        assert not _check(d, data), data
    deep: dict[str, Any] = {}
    for _ in range(80):
        deep = {"child": deep}
    assert not _check(d, deep)


def test_well_known_types_are_declined() -> None:
    assert parse_request(struct_pb2.Struct.DESCRIPTOR, {"a": 1}) is None
    assert parse_request(struct_pb2.Value.DESCRIPTOR, {}) is None


# ---- through the gateway ----------------------------------------------------------------------------------


class _Body:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def __aiter__(self) -> _Body:
        self.sent = False
        return self

    async def __anext__(self) -> bytes:
        if self.sent:
            raise StopAsyncIteration
        self.sent = True
        return self.raw


async def test_build_request_answers_as_before() -> None:
    """The gateway's message, or its CONFIG_ERROR text, is the slow path's for fast and slow bodies."""
    spec = next(s for s in build_routes() if (s.http_method, s.path) == ("POST", "/api/v1/runs"))
    headers = {"content-type": "application/json"}
    bodies = [
        b'{"sessionId":"s1","input":"hello","provider":"mock"}',
        b'{"sessionId":"s1","metadata":{"k":"v"},"wait":true,"runningRunBehavior":"queue"}',
        b'{"sessionId": 5}',
        b'{"sessionId":"s1","wait":"yes"}',
        b'{"metadata":{"a":[1]}}',
        b'{"running_run_behavior":"queue"}',
    ]
    for raw in bodies:
        expected = _slow(spec.method.input_type, json.loads(raw))
        try:
            got: Any = await build_request(spec, headers, [], {}, _Body(raw))
        except GatewayError as exc:
            assert not isinstance(expected, Message)
            assert exc.code == "CONFIG_ERROR"
            assert str(expected[1])[:200] in exc.message
        else:
            assert isinstance(expected, Message)
            assert got.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)
