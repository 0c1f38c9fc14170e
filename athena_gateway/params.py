"""Query and path parameters: each scalar read strictly, by a parser chosen once per field at start-up.

Why each rule (the original read numbers like JavaScript's parseInt, so `limit=abc` silently meant "no
limit given" and `limit=12abc` meant 12; a typo then went unnoticed):
- Integers: optional sign and digits, surrounding whitespace allowed, else CONFIG_ERROR
  `<param> must be an integer.` A value beyond the field's type (int32 for every limit) is clamped to it,
  so `limit=99999999999999999999` is just a big limit, clamped by the server like `limit=1000`. Zero and
  negative values are passed on: the server clamps page sizes to 1..500, as the seeds say.
- Floats: a finite decimal number, else `<param> must be a finite number.` (`inf`, `nan` and overflow
  are refused: no field means anything by them).
- Booleans: `true`, `false`, `1`, `0` in any case, else `<param> must be true or false.`
- Strings and enums pass as sent (the server validates enum spellings and names the field).
- A singular parameter given twice (in either spelling of its name) is `<param> must be given once.`:
  which copy wins is a guess a client should not have to make. Repeated fields take repeated parameters
  and comma-separated lists; empty items are skipped.
- Unknown parameters are ignored, as the original did.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

from athena_gateway.errors import config_error

# ASCII only: `\d` and `\s` would also take other scripts' digits and spaces, which int() then accepts.
_INT = re.compile(r"[ \t\r\n]*([+-]?)0*([0-9]+)[ \t\r\n]*", re.ASCII)
_FLOAT = re.compile(r"[ \t\r\n]*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t\r\n]*", re.ASCII)
_BOOLS = {"true": True, "1": True, "false": False, "0": False}
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: _INT32,
    FieldDescriptor.TYPE_SINT32: _INT32,
    FieldDescriptor.TYPE_SFIXED32: _INT32,
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_INT64: _INT64,
    FieldDescriptor.TYPE_SINT64: _INT64,
    FieldDescriptor.TYPE_SFIXED64: _INT64,
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_FLOAT_TYPES = {FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT}
_MAX_DIGITS = 20  # more than any 64-bit value has: longer ones are clamped without converting them

# (parameter name as sent, its text) -> the field's JSON value
Parse = Callable[[str, str], Any]


def _integer(low: int, high: int) -> Parse:
    def parse(name: str, text: str) -> Any:
        match = _INT.fullmatch(text)
        if match is None:
            raise config_error(f"{name} must be an integer.")
        sign, digits = match.groups()
        if len(digits) > _MAX_DIGITS:
            return low if sign == "-" else high
        return min(max(int(sign + digits), low), high)

    return parse


def _float(name: str, text: str) -> Any:
    if _FLOAT.fullmatch(text) is None or not math.isfinite(value := float(text)):
        raise config_error(f"{name} must be a finite number.")
    return value


def _bool(name: str, text: str) -> Any:
    value = _BOOLS.get(text.strip().lower())
    if value is None:
        raise config_error(f"{name} must be true or false.")
    return value


def _text(name: str, text: str) -> Any:
    return text  # strings, bytes (base64) and enums (their JSON spelling; the contract translates it)


def scalar_parser(field: FieldDescriptor) -> Parse:
    """How a query or path string becomes the JSON value of `field` (of one item, when repeated)."""
    if field.type in _INT_RANGES:
        return _integer(*_INT_RANGES[field.type])
    if field.type in _FLOAT_TYPES:
        return _float
    if field.type == FieldDescriptor.TYPE_BOOL:
        return _bool
    return _text


@dataclass(frozen=True)
class Param:
    """One request field that a query or path parameter fills."""

    json_name: str
    repeated: bool
    parse: Parse


def params_by_name(fields: Iterable[FieldDescriptor]) -> dict[str, Param]:
    """Both spellings of each scalar field's name; message-typed fields never come from a query string."""
    lookup: dict[str, Param] = {}
    for field in fields:
        if field.message_type is None:
            param = Param(field.json_name, field.is_repeated, scalar_parser(field))
            lookup[field.json_name] = lookup[field.name] = param
    return lookup


def query_json(params: Mapping[str, Param], items: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Query parameters as a protobuf-JSON dict keyed by json_name; unknown parameters are ignored."""
    out: dict[str, Any] = {}
    for key, text in items:
        param = params.get(key)
        if param is None:
            continue
        if param.repeated:
            values = out.setdefault(param.json_name, [])
            values.extend(param.parse(key, part) for raw in text.split(",") if (part := raw.strip()))
        elif param.json_name in out:
            raise config_error(f"{param.json_name} must be given once.")
        else:
            out[param.json_name] = param.parse(key, text)
    return out
