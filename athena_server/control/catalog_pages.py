"""Cursor pages over the catalog tables (directives, harness profiles, run templates, workflows): newest
first, keyset on the insertion sequence, so records created between pages never cause duplicates or gaps."""

from __future__ import annotations

from athena_server import cursors


def decode(cursor: str, kind: str, context: str) -> tuple[int | None, int]:
    """(the sequence to continue before, an offset): a keyset cursor, or a legacy offset cursor. Both are
    checked integers the store holds (`cursors.decode_keyset`); anything else is `<context>.cursor is
    invalid.`"""
    if not cursor:
        return None, 0
    position = cursors.decode_keyset(cursor, kind, context, {"seq": "number"})
    if isinstance(position, int):
        return None, position
    return int(position["seq"]), 0


def encode(kind: str, seq: int) -> str:
    return cursors.encode({"kind": kind, "seq": seq})
