"""Following the event log (control/follow.py) against a real SQLite store: the backlog first, in order, in
pages, then rows as they commit; nothing lost or repeated, however large the backlog. The follower reads
its backlog with its own fetch; rows committed after it joined reach it through the table's shared tail,
whose reads are recorded separately."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sqlalchemy import Connection

from athena_server.control.follow import PAGE, Followed, follow
from athena_server.storage import events
from athena_server.storage.events import EventFilter, EventRow
from athena_server.storage.store import Store


async def add(store: Store, count: int, type: str = "t") -> list[int]:
    def unit(conn: Connection) -> list[int]:
        return [events.append(conn, type, trace_id="tr", payload={"i": i}) for i in range(count)]

    return await store.write(unit)


class Fetch:
    """events.list_after for one type, recording each call's (after, up_to, limit)."""

    def __init__(self, type: str | None = None) -> None:
        self.filter = EventFilter(types=(type,) if type else ())
        self.calls: list[tuple[int, int, int]] = []

    def __call__(self, conn: Connection, after: int, up_to: int, limit: int) -> list[EventRow]:
        self.calls.append((after, up_to, limit))
        return events.list_after(conn, after, limit, self.filter, up_to_seq=up_to)


def table(tail_fetch: Fetch) -> Followed[EventRow]:
    """The event log, its shared reads recorded by `tail_fetch` (unfiltered)."""
    return Followed("events", tail_fetch, events.last_seq, lambda r: r.seq)


def stream(store: Store, after: int, fetch: Fetch, tail_fetch: Fetch | None = None) -> AsyncIterator[EventRow]:
    # A long poll interval: every step below is woken by a commit, never by the timer.
    predicate = events.matches(fetch.filter)
    return follow(store, table(tail_fetch or Fetch()), after, fetch, predicate, 60.0)


async def take(rows: AsyncIterator[EventRow], n: int) -> list[int]:
    return [(await anext(rows)).seq for _ in range(n)]


async def test_a_backlog_larger_than_a_page_is_delivered_whole_then_new_rows(store: Store) -> None:
    """A page that resumed from the snapshot's top instead of its last row would drop rows 501..."""
    ids = await add(store, 2 * PAGE + 3)
    fetch = Fetch()
    rows = stream(store, 0, fetch)
    assert await take(rows, len(ids)) == ids
    assert [c[0] for c in fetch.calls] == [0, ids[PAGE - 1], ids[2 * PAGE - 1]]
    assert all(limit == PAGE for _, _, limit in fetch.calls)
    later = await add(store, 2)
    assert await take(rows, 2) == later
    await rows.aclose()


async def test_a_stream_starts_strictly_after_its_resume_point(store: Store) -> None:
    ids = await add(store, 5)
    rows = stream(store, ids[2], Fetch())
    assert await take(rows, 2) == ids[3:]
    more = await add(store, 1)
    assert await take(rows, 1) == more
    await rows.aclose()


async def test_a_filtered_stream_moves_past_rows_it_did_not_match(store: Store) -> None:
    await add(store, 3, type="other")
    first = await add(store, 1, type="wanted")
    skipped = await add(store, 3, type="other")
    fetch, tail_fetch = Fetch("wanted"), Fetch()
    rows = stream(store, 0, fetch, tail_fetch)
    assert await take(rows, 1) == first
    second = await add(store, 1, type="wanted")
    assert await take(rows, 1) == second
    # Round 1 read up to the last unmatched row; round 2 (the shared tail's, once the follower joined it)
    # starts there instead of rescanning from the match.
    assert fetch.calls == [(0, skipped[-1], PAGE)]
    assert tail_fetch.calls[:1] == [(skipped[-1], second[0], PAGE)]
    await rows.aclose()


async def test_an_empty_log_waits_for_the_first_row(store: Store) -> None:
    fetch, tail_fetch = Fetch(), Fetch()
    rows = stream(store, 0, fetch, tail_fetch)
    first = await add(store, 1)
    assert await take(rows, 1) == first
    # No fetch ran before there was a row: the follower's (empty) backlog read none, nor did the tail.
    assert [c[1] for c in fetch.calls + tail_fetch.calls] == [first[0]]
    await rows.aclose()
