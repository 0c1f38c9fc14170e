"""Keyset pagination over a descending composite key, shared by the newest-first run-control lists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_


def newest_first(
    query: Select[Any], columns: Sequence[ColumnElement[Any]], before: Sequence[Any] | None, limit: int, offset: int
) -> Select[Any]:
    """`query` ordered by `columns` descending, strictly after the key `before` (a tuple matching the
    columns), or skipping `offset` rows for the original's legacy offset cursors."""
    query = query.order_by(*(c.desc() for c in columns)).limit(limit).offset(offset)
    if before is None:
        return query
    clauses = []
    for i, column in enumerate(columns):
        equal = [columns[j] == before[j] for j in range(i)]
        clauses.append(and_(*equal, column < before[i]))
    return query.where(or_(*clauses))
