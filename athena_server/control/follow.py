"""Follows an append-only, sequence-numbered table: backlog first, then rows as they commit.

A follower reads its backlog itself, from its resume point, then joins the table's shared tail
(engine/tail.py), which reads each new batch once for every follower of the process; the follower keeps
the rows its predicate matches. The hand-over loses and doubles nothing: the follower tracks `last`, the
highest sequence it has accounted for, skips rows at or below it, and reads any range the tail read without
handing it over (rows committed before it joined, or batches dropped while it lagged) with its own fetch.

All of this relies on rows becoming visible in sequence order (see storage/events.py): a follower that has
accounted for every row up to N never needs to look below N again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Hashable
from typing import TypeVar

from sqlalchemy import Connection

from athena_server.engine.tail import PAGE, Fetch, Followed, Tail
from athena_server.storage.store import Store

T = TypeVar("T")

__all__ = ["PAGE", "Fetch", "Followed", "follow", "tail_of"]


def tail_of(store: Store, table: Followed[T], poll_seconds: float) -> Tail[T]:
    """The store's one tail of `table` (created on first use; the store stops it on close)."""
    tail = store.tails.get(table.name)
    if tail is None:
        tail = store.tails[table.name] = Tail(store, table, poll_seconds)
        store.listen()
    return tail


async def follow(
    store: Store,
    table: Followed[T],
    after_seq: int,
    fetch: Fetch[T],
    matches: Callable[[T], bool],
    poll_seconds: float,
    key: Hashable | None = None,
) -> AsyncIterator[T]:
    """Yield every matching row after `after_seq`, forever.

    `fetch(conn, after, up_to, limit)` reads the matching rows in a range (the backlog and any gap) and
    `matches` is the same predicate in memory, applied to the tail's batches. `key`, when the predicate only
    matches rows whose `table.key_of` is `key`, lets the tail offer this follower those rows only.

    Each backlog round reads the highest committed sequence and the matching rows up to it in one snapshot,
    then moves past that sequence even when the filter matched nothing, so filtered streams do not rescan the
    table.
    """
    seq_of = table.seq_of
    last = after_seq

    async def read(up_to: int | None) -> tuple[int, list[T]]:
        """Matching rows after `last`, up to `up_to` (None: up to the newest committed row)."""

        def snapshot(conn: Connection, last: int = last) -> tuple[int, list[T]]:
            top = table.top_seq(conn) if up_to is None else up_to
            return top, (fetch(conn, last, top, PAGE) if top > last else [])

        return await store.read(snapshot)

    # The backlog, read by this follower alone.
    while True:
        top, rows = await read(None)
        for row in rows:
            yield row
        if len(rows) == PAGE:
            last = seq_of(rows[-1])
            continue
        last = max(last, top)
        break

    tail = tail_of(store, table, poll_seconds)
    sub = tail.join(last, key)
    try:
        while True:
            batch = sub.take()
            if batch is None:
                if sub.uncovered_to <= last:
                    await sub.wait()
                    continue
                gap_end = sub.uncovered_to  # rows the tail read before we joined, or dropped while we lagged
            elif batch.up_to <= last:
                continue
            elif sub.uncovered_to > last:
                gap_end = batch.after  # some of the range before this batch may hold rows we were not offered
            else:
                gap_end = last  # the ranges we were not offered hold none of our rows
            while gap_end > last:
                _, rows = await read(gap_end)
                for row in rows:
                    yield row
                last = seq_of(rows[-1]) if len(rows) == PAGE else gap_end
            if batch is not None:
                for row in batch.rows:
                    if seq_of(row) > last and matches(row):
                        yield row
                last = batch.up_to
    finally:
        tail.leave(sub)
