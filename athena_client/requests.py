"""A request message from keyword arguments, as the generated service clients take them.

`build(CreateRunRequest, None, {"session_id": "s1", "metadata": {"k": "v"}})` is the message a caller
would otherwise assemble by hand. Values keep their Python types (str, int, bool, float, bytes); an enum
takes its number or its contract spelling (`"followup"`, or the value name); a message field takes the
message or its JSON form as a dict; repeated and map fields take any iterable or mapping.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from athena_client.contract import enum_by_json, json_to_message

M = TypeVar("M", bound=Message)


def _enum(enum: EnumDescriptor, value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{where} takes an enum value, not a bool")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        by_json = enum_by_json(enum)
        if value in by_json:
            return by_json[value]
        if value in enum.values_by_name:
            return int(enum.values_by_name[value].number)
        raise ValueError(f"{where}: {value!r} is not one of {sorted(by_json)}")
    raise TypeError(f"{where} takes an enum value or its name, not {type(value).__name__}")


def _message(field: FieldDescriptor, value: Any, target: Message, where: str) -> None:
    if isinstance(value, Message):
        target.CopyFrom(value)
    elif target.DESCRIPTOR.full_name.startswith("google.protobuf."):
        json_format.ParseDict(value, target)  # Struct, Value, Timestamp...: their own JSON forms
    elif isinstance(value, Mapping):
        json_to_message(dict(value), target)
    else:
        raise TypeError(f"{where} takes a {target.DESCRIPTOR.name} or a dict, not {type(value).__name__}")


def _scalar(field: FieldDescriptor, value: Any, where: str) -> Any:
    if field.enum_type is not None:
        return _enum(field.enum_type, value, where)
    return value


def set_field(message: Message, field: Any, value: Any) -> None:
    """Assign `value` to `field` of `message` by the rules in the module docstring."""
    where = f"{message.DESCRIPTOR.name}.{field.name}"
    target: Any = getattr(message, field.name)
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        if not isinstance(value, Mapping):
            raise TypeError(f"{where} takes a mapping")
        value_field = entry.fields_by_name["value"]
        for key, item in value.items():
            if value_field.message_type is not None:
                _message(value_field, item, target[key], where)
            else:
                target[key] = _scalar(value_field, item, where)
    elif field.is_repeated:
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
            raise TypeError(f"{where} takes a list")
        for item in value:
            if field.message_type is not None:
                _message(field, item, target.add(), where)
            else:
                target.append(_scalar(field, item, where))
    elif field.message_type is not None:
        _message(field, value, target, where)
    else:
        setattr(message, field.name, _scalar(field, value, where))


def build(cls: type[M], request: M | None, fields: Mapping[str, Any]) -> M:
    """`request` itself, or a new `cls` from the keyword fields that are not None (proto names); both at
    once is a TypeError, so a call never silently drops one of them."""
    given = {name: value for name, value in fields.items() if value is not None}
    if request is not None:
        if given:
            raise TypeError(f"pass a {cls.__name__} or its fields as keywords, not both ({', '.join(given)})")
        if not isinstance(request, cls):
            raise TypeError(f"expected a {cls.__name__}, got {type(request).__name__}")
        return request
    message = cls()
    by_name = message.DESCRIPTOR.fields_by_name
    for name, value in given.items():
        field = by_name.get(name)
        if field is None:
            raise TypeError(f"{cls.__name__} has no field {name!r}")
        set_field(message, field, value)
    return message
