"""Pages that fit the transport: a list answer stops early once its items pass a byte budget.

Why: gRPC clients refuse messages over 4 MB by default (the REST gateway is one of them), so a page of 500
large items (transcript turns, directives of a long input, workflow definitions) would fail after the server
did all the work, and the REST caller would get a 500 with no way to page around it. A page therefore holds
at most `limit` items and stops before the item that would take it past PAGE_BYTES of serialized items; it
always holds at least one item (one item is bounded by the request size it came from, or by what a provider
answered). The cursor of a cut page continues exactly after its last item, so nothing is skipped or repeated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from google.protobuf.message import Message

R = TypeVar("R")
M = TypeVar("M", bound=Message)

# 1 MiB of items: a quarter of gRPC's 4 MB default, leaving room for one oversized item and the envelope.
PAGE_BYTES = 1 << 20


@dataclass(frozen=True)
class Page(Generic[R, M]):
    items: list[M]
    # The row the next page continues after; None when nothing follows.
    last: R | None


def fill(rows: Sequence[R], limit: int, message: Callable[[R], M], budget: int = PAGE_BYTES) -> Page[R, M]:
    """The messages of the first rows that fit `limit` and `budget`, and the row the next page continues
    after. Fetch `limit + 1` rows: the extra one only says whether more exist. Messages are built lazily,
    so rows past the cut cost nothing. Answers without a cursor (a queue's head, a transcript window) use
    the items alone: what was cut is read by the next call."""
    items: list[M] = []
    total = 0
    for row in rows[:limit]:
        item = message(row)
        size = item.ByteSize()
        if items and total + size > budget:
            break
        items.append(item)
        total += size
    more = len(rows) > len(items)
    return Page(items, rows[len(items) - 1] if more and items else None)
