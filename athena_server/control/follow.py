"""Follows an append-only, sequence-numbered table: backlog first, then rows as they commit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from sqlalchemy import Connection

from athena_server.storage.store import Store

T = TypeVar("T")
PAGE = 500

# fetch(conn, after_seq, up_to_seq, limit) -> matching rows with after_seq < seq <= up_to_seq, oldest first.
Fetch = Callable[[Connection, int, int, int], list[T]]
TopSeq = Callable[[Connection], int]


async def follow(
    store: Store,
    after_seq: int,
    fetch: Fetch[T],
    top_seq: TopSeq,
    seq_of: Callable[[T], int],
    poll_seconds: float,
) -> AsyncIterator[T]:
    """Yield every matching row after `after_seq`, forever.

    Each round reads the highest committed sequence and the matching rows up to it in one snapshot,
    then moves past that sequence even when a filter matched nothing, so filtered streams do not rescan
    the table. This relies on rows becoming visible in sequence order (see storage/events.py).
    """
    last = after_seq
    while True:
        ticket = store.bus.ticket()

        def snapshot(conn: Connection, last: int = last) -> tuple[int, list[T]]:
            top = top_seq(conn)
            return top, (fetch(conn, last, top, PAGE) if top > last else [])

        top, rows = await store.read(snapshot)
        for row in rows:
            yield row
        if len(rows) == PAGE:
            last = seq_of(rows[-1])
            continue
        last = max(last, top)
        await store.bus.wait(ticket, poll_seconds)
