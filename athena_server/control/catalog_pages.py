"""Cursor pages over the catalog tables (directives, harness profiles, run templates): newest first,
keyset on the insertion sequence, so records created between pages never cause duplicates or gaps."""

from __future__ import annotations

from athena_server import cursors
from athena_server.errors import config_error


def decode(cursor: str, kind: str, context: str) -> tuple[int | None, int]:
    """(the sequence to continue before, an offset): a keyset cursor, or a legacy offset cursor."""
    if not cursor:
        return None, 0
    position = cursors.decode_keyset(cursor, kind, context)
    if isinstance(position, int):
        return None, position
    seq = position.get("seq")
    if not isinstance(seq, int) or seq < 0:
        raise config_error(f"{context}.cursor is invalid.")
    return seq, 0


def encode(kind: str, seq: int) -> str:
    return cursors.encode({"kind": kind, "seq": seq})
