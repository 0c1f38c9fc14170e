"""Keyset pagination over a composite key: the one way every list pages (newest first for logs and
catalogs, oldest first for schedules)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_


def newest_first(
    query: Select[Any], columns: Sequence[ColumnElement[Any]], before: Sequence[Any] | None, limit: int, offset: int
) -> Select[Any]:
    """`query` ordered by `columns` descending, strictly after the key `before` (a tuple matching the
    columns), or skipping `offset` rows for the original's legacy offset cursors."""
    return _page(query, columns, before, limit, offset, descending=True)


def oldest_first(
    query: Select[Any], columns: Sequence[ColumnElement[Any]], after: Sequence[Any] | None, limit: int
) -> Select[Any]:
    """`query` ordered by `columns` ascending, strictly after the key `after`."""
    return _page(query, columns, after, limit, 0, descending=False)


def _page(
    query: Select[Any],
    columns: Sequence[ColumnElement[Any]],
    key: Sequence[Any] | None,
    limit: int,
    offset: int,
    *,
    descending: bool,
) -> Select[Any]:
    query = query.order_by(*(c.desc() if descending else c.asc() for c in columns)).limit(limit).offset(offset)
    if key is None:
        return query
    # (a, b) past (ka, kb): a beyond ka, or a equal and b beyond kb, and so on for longer keys.
    clauses = []
    for i, column in enumerate(columns):
        equal = [columns[j] == key[j] for j in range(i)]
        clauses.append(and_(*equal, column < key[i] if descending else column > key[i]))
    return query.where(or_(*clauses))
