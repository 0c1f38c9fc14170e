"""Opaque page cursors: base64url (no padding) of a small JSON keyset, or of a decimal number.

Keyset cursors survive inserts between pages without duplicates or gaps. Decimal cursors are the
original's offsets (and the sequence cursors of events and rejections), still accepted where the contract
says legacy clients may send them.

A cursor comes from the client, so everything in it is checked before it reaches a query: its length, that
numbers are integers the stores hold (0..MAX_NUMBER: far above any sequence or epoch millisecond, exact as a
JSON number, and within SQLite's and PostgreSQL's 64-bit integers), and that each keyset field has its type.
Any failure is CONFIG_ERROR `<context>.cursor is invalid.`: a store error (a 500) is never the answer.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from athena_server.errors import AthenaError, config_error
from athena_server.validation import MAX_INSTANT_MS, MIN_INSTANT_MS, instant_ms

# Longer than any cursor the server issues (keysets carry ids of at most 200 characters).
MAX_CURSOR_CHARS = 512
# The largest number a cursor may carry: 2**53, exact in JSON and far below the stores' 64-bit integers.
MAX_NUMBER = 2**53
# The widest text column a keyset compares against (session and schedule ids).
MAX_KEY_CHARS = 200
_DIGITS = re.compile(r"[0-9]{1,16}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# What a keyset field holds: a non-negative integer, an ISO instant (returned as epoch ms), or an id.
KeyField = Literal["number", "instant", "text"]


def encode(payload: dict[str, Any] | int) -> str:
    text = str(payload) if isinstance(payload, int) else json.dumps(payload, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def invalid(context: str) -> AthenaError:
    return config_error(f"{context}.cursor is invalid.")


def _decode_text(cursor: str) -> str | None:
    if len(cursor) > MAX_CURSOR_CHARS:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def number(text: str) -> int | None:
    """A decimal number in 0..MAX_NUMBER written with ASCII digits, or None."""
    if not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if value <= MAX_NUMBER else None


def decode_number(cursor: str, context: str) -> int:
    """A decimal cursor (an offset or a sequence number)."""
    text = _decode_text(cursor)
    value = number(text) if text is not None else None
    if value is None:
        raise invalid(context)
    return value


def _field(value: Any, kind: KeyField) -> Any:
    """The checked value of one keyset field, or None when it does not hold its kind."""
    if kind == "number":
        # bool is an int in Python, not a number in a keyset.
        ok = type(value) is int and 0 <= value <= MAX_NUMBER
        return value if ok else None
    if kind == "instant":
        ms = instant_ms(value) if isinstance(value, str) and len(value) <= 64 else None
        return ms if ms is not None and MIN_INSTANT_MS <= ms <= MAX_INSTANT_MS else None
    ok = isinstance(value, str) and 0 < len(value) <= MAX_KEY_CHARS and not _CONTROL.search(value)
    return value if ok else None


def decode_keyset(cursor: str, kind: str, context: str, fields: Mapping[str, KeyField]) -> dict[str, Any] | int:
    """The keyset of the given kind, one checked value per name in `fields` (instants as epoch ms; other
    keys in the cursor are ignored), or an int for a legacy offset cursor."""
    text = _decode_text(cursor)
    if text is None:
        raise invalid(context)
    if text.isascii() and text.isdigit():
        offset = number(text)
        if offset is None:
            raise invalid(context)
        return offset
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict) or data.get("kind") != kind:
        raise invalid(context)
    out: dict[str, Any] = {}
    for name, field_kind in fields.items():
        value = _field(data.get(name), field_kind)
        if value is None:
            raise invalid(context)
        out[name] = value
    return out
