"""Opaque page cursors: base64url (no padding) of a small JSON keyset, or of a decimal number.

Keyset cursors survive inserts between pages without duplicates or gaps. Decimal cursors are the
original's offsets, still accepted where the contract says legacy clients may send them.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from athena_server.errors import config_error


def encode(payload: dict[str, Any] | int) -> str:
    text = str(payload) if isinstance(payload, int) else json.dumps(payload, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_text(cursor: str) -> str | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def decode_number(cursor: str, context: str) -> int:
    """A decimal cursor (an offset or a sequence number)."""
    text = _decode_text(cursor)
    if text is None or not text.isdigit():
        raise config_error(f"{context}.cursor is invalid.")
    return int(text)


def decode_keyset(cursor: str, kind: str, context: str) -> dict[str, Any] | int:
    """A keyset dict of the given kind, or an int for a legacy offset cursor."""
    text = _decode_text(cursor)
    if text is not None and text.isdigit():
        return int(text)
    try:
        data = json.loads(text) if text is not None else None
    except ValueError:
        data = None
    if not isinstance(data, dict) or data.get("kind") != kind:
        raise config_error(f"{context}.cursor is invalid.")
    return data
