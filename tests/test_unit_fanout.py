"""Fan-out of followed tables (engine/tail.py, control/follow.py) against a real SQLite store: however many
followers a process has, each new batch of rows is read once, and every follower still gets exactly the
rows its filter selects, in order, nothing lost or doubled: across the hand-over from its own backlog to
the shared tail, while rows keep committing, and when it is too slow to keep up."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import Connection

from athena.v1 import events_pb2
from athena_server.config import Settings
from athena_server.control.events import EVENT_LOG, EventService
from athena_server.control.follow import PAGE, Followed, follow, tail_of
from athena_server.engine.tail import Tail
from athena_server.storage import events
from athena_server.storage.events import EventFilter, EventRow
from athena_server.storage.store import Store
from tests.support.async_waiting import finishes, wait_until_async

Spec = dict[str, Any]


async def add(store: Store, *specs: Spec) -> list[int]:
    """Append the events in one transaction (one commit, so one batch for the tail)."""

    def unit(conn: Connection) -> list[int]:
        return [events.append(conn, **{"type": "t", "trace_id": "tr", "payload": {}, **spec}) for spec in specs]

    return await store.write(unit)


class Fetch:
    """events.list_after with a filter, recording each call's (after, up_to)."""

    def __init__(self, flt: EventFilter | None = None) -> None:
        self.filter = flt or EventFilter()
        self.calls: list[tuple[int, int]] = []

    def __call__(self, conn: Connection, after: int, up_to: int, limit: int) -> list[EventRow]:
        self.calls.append((after, up_to))
        return events.list_after(conn, after, limit, self.filter, up_to_seq=up_to)


def event_log(tail_fetch: Fetch) -> Followed[EventRow]:
    """The event log keyed by session, as streams follow it; the tail's reads recorded by `tail_fetch`."""
    return Followed("events", tail_fetch, events.last_seq, lambda r: r.seq, key_of=lambda r: r.session_id)


class Follower:
    """One follower of the event log with its own filter and fetch, collecting what it is handed."""

    def __init__(self, store: Store, table: Followed[EventRow], after: int, flt: EventFilter) -> None:
        self.fetch = Fetch(flt)
        self.after = after
        self.rows: AsyncIterator[EventRow] = follow(
            store, table, after, self.fetch, events.matches(flt), 60.0, key=flt.session_id
        )
        self.got: list[int] = []
        self.task: asyncio.Task[None] | None = None

    def start(self) -> Follower:
        async def collect() -> None:
            async for row in self.rows:
                self.got.append(row.seq)

        self.task = asyncio.create_task(collect())
        return self

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await finishes(self.task, "the follower to stop")
        await self.rows.aclose()

    async def expected(self, store: Store) -> list[int]:
        """What its filter selects after its resume point, read from the store in one go."""
        rows = await store.read(lambda conn: events.list_after(conn, self.after, 1_000_000, self.fetch.filter))
        return [r.seq for r in rows]


FILTERS = [
    EventFilter(),
    EventFilter(session_id="s-a"),
    EventFilter(session_id="s-b", types=("x",)),
    EventFilter(types=("x", "y")),
    EventFilter(session_id="s-none"),
]


def noise(rng: random.Random, n: int) -> list[Spec]:
    return [{"session_id": rng.choice(["s-a", "s-b", None]), "type": rng.choice(["x", "y", "z"])} for _ in range(n)]


async def joined(store: Store, count: int) -> Tail[Any]:
    """The event log's tail, once `count` followers are on it."""
    return await wait_until_async(
        lambda: (t := store.tails.get("events")) is not None and t.subscribers == count and t,
        f"{count} followers on the tail",
    )


async def test_fifty_followers_cost_one_read_per_batch(store: Store) -> None:
    rng = random.Random(13)
    await add(store, *noise(rng, 10))
    start = await store.read(events.last_seq)
    tail_fetch = Fetch()
    table = event_log(tail_fetch)
    followers = [Follower(store, table, start, FILTERS[i % len(FILTERS)]).start() for i in range(50)]
    tail = await joined(store, 50)
    commits = 20
    offers = 0
    for _ in range(commits):
        specs = noise(rng, rng.randint(1, 8))
        await add(store, *specs)
        # Followers without a session get every batch; the others only the batches holding their session.
        sessions = {spec["session_id"] for spec in specs}
        offers += sum(1 for f in followers if f.fetch.filter.session_id in (None, *sessions))
        top = await store.read(events.last_seq)
        await wait_until_async(lambda top=top: tail.seen == top, "the tail to read the commit")  # type: ignore[misc]
        for f in followers:
            want = await f.expected(store)
            await wait_until_async(lambda f=f, want=want: len(f.got) >= len(want), "the follower to catch up")  # type: ignore[misc]
    for f in followers:
        assert f.got == await f.expected(store)
        assert f.fetch.calls == []  # its backlog was empty, and the tail handed it everything since
    # One read per commit for all fifty, each range starting where the previous one ended.
    assert len(tail_fetch.calls) == commits
    assert all(a[1] == b[0] for a, b in zip(tail_fetch.calls, tail_fetch.calls[1:], strict=False))
    assert tail_fetch.calls[0][0] == start
    assert tail.offers == offers
    for f in followers:
        await f.stop()
    assert tail.subscribers == 0 and not tail.running  # the last follower to leave stopped it


async def test_followers_joining_while_rows_commit_lose_and_double_nothing(store: Store) -> None:
    """Followers start from resume points behind, at and ahead of a backlog of several pages, while a writer
    keeps committing: each one's rows are exactly what its filter selects, in order."""
    rng = random.Random(7)
    await add(store, *noise(rng, 2 * PAGE + 50))
    tail_fetch = Fetch()
    table = event_log(tail_fetch)
    followers: list[Follower] = []
    stop = asyncio.Event()

    async def writer() -> None:
        while not stop.is_set():
            await add(store, *noise(rng, rng.randint(1, 30)))
            await asyncio.sleep(0)

    writing = asyncio.create_task(writer())
    for i in range(30):
        newest = await store.read(events.last_seq)
        after = rng.choice([0, newest // 3, max(newest - 40, 0), newest])
        followers.append(Follower(store, table, after, FILTERS[i % len(FILTERS)]).start())
        await asyncio.sleep(0.01)  # let rows commit between joins
    await wait_until_async(
        lambda: all(len(f.got) > 0 for f in followers if f.fetch.filter.session_id != "s-none"), "rows"
    )
    stop.set()
    await finishes(writing, "the writer")
    for f in followers:
        want = await f.expected(store)
        await wait_until_async(lambda f=f, want=want: len(f.got) >= len(want), "the follower to catch up")  # type: ignore[misc]
        assert f.got == want
    for f in followers:
        await f.stop()


async def test_a_slow_follower_holds_no_one_back_and_catches_up_on_its_own(store: Store) -> None:
    rng = random.Random(3)
    start = await store.read(events.last_seq)
    tail_fetch = Fetch()
    table = event_log(tail_fetch)
    # A queue of two batches, so that the slow follower overflows after a few commits.
    tail: Tail[EventRow] = Tail(store, table, 60.0, queue_limit=2)
    store.tails["events"] = tail
    fast = [Follower(store, table, start, flt).start() for flt in FILTERS]
    # Two slow followers: each joins, takes one row, then stops reading.
    slow, stalled = (Follower(store, table, start, EventFilter(session_id="s-a")) for _ in range(2))
    firsts = [asyncio.create_task(anext(slow.rows)), asyncio.create_task(anext(stalled.rows))]
    await joined(store, len(FILTERS) + 2)
    (seq,) = await add(store, {"type": "x", "session_id": "s-a"})
    assert [(await f).seq for f in firsts] == [seq, seq]
    for _ in range(10):
        await add(store, {"session_id": "s-a"}, *noise(rng, rng.randint(1, 5)))
        for f in fast:
            want = await f.expected(store)
            await wait_until_async(lambda f=f, want=want: len(f.got) >= len(want), "a fast follower to keep up")  # type: ignore[misc]
    for f in fast:
        assert f.got == await f.expected(store)
        assert f.fetch.calls == []
    assert len(tail_fetch.calls) == 11  # the tail read each commit once, not held back by the slow followers
    # One resumes while nothing more commits: it drains its queue, then reads the dropped ranges itself.
    want = (await stalled.expected(store))[1:]
    assert [(await anext(stalled.rows)).seq for _ in want] == want
    assert stalled.fetch.calls, "the dropped batches were read by the stalled follower itself"
    await stalled.stop()
    # The other takes one more row, which frees a place in its queue for the next commit's batch:
    # a batch that starts after the ranges it dropped.
    got = [(await anext(slow.rows)).seq]
    await add(store, {"session_id": "s-a"}, *noise(rng, 3))
    top = await store.read(events.last_seq)
    await wait_until_async(lambda: tail.seen == top, "the tail to read the commit")
    # It resumes: every row after the one it took first, once, in order, the dropped ranges read by itself.
    want = (await slow.expected(store))[1:]
    got += [(await anext(slow.rows)).seq for _ in want[1:]]
    assert got == want
    assert slow.fetch.calls, "the dropped batches were read by the slow follower itself"
    more = await add(store, {"type": "y", "session_id": "s-a"})
    assert [(await anext(slow.rows)).seq] == more  # and it is back on the tail
    await slow.stop()
    for f in fast:
        await f.stop()


async def test_a_failing_tail_read_ends_its_followers_and_the_next_follower_restarts_it(store: Store) -> None:
    class Failing(Fetch):
        fail = True

        def __call__(self, conn: Connection, after: int, up_to: int, limit: int) -> list[EventRow]:
            if self.fail:
                raise RuntimeError("store gone")
            return super().__call__(conn, after, up_to, limit)

    start = await store.read(events.last_seq)
    tail_fetch = Failing()
    table = event_log(tail_fetch)
    follower = Follower(store, table, start, EventFilter())
    pending = asyncio.create_task(anext(follower.rows))
    await joined(store, 1)
    await add(store, {"type": "x"})
    await finishes(pending, "the follower to end")
    error = pending.exception()
    assert isinstance(error, RuntimeError) and str(error) == "store gone"
    tail = store.tails["events"]
    assert tail.subscribers == 0 and not tail.running

    tail_fetch.fail = False
    again = Follower(store, table, start, EventFilter())
    # The event the failed read missed comes from the new follower's own backlog, then new ones live.
    (missed,) = await again.expected(store)
    assert (await anext(again.rows)).seq == missed
    live = asyncio.create_task(anext(again.rows))
    await joined(store, 1)
    assert tail.running
    (seq,) = await add(store, {"type": "y"})
    assert (await live).seq == seq
    await again.stop()


async def test_the_event_service_streams_of_a_process_share_one_tail(store: Store) -> None:
    service = EventService(store, Settings(event_poll_seconds=30))
    streams = [await service.open_stream(events_pb2.StreamEventsRequest(session_id=sid)) for sid in ("s-a", "s-b") * 5]
    firsts = [asyncio.create_task(anext(s)) for s in streams]
    tail = await joined(store, len(streams))
    reads, offers = tail.reads, tail.offers
    ids = await add(store, {"session_id": "s-a"}, {"session_id": "s-b"}, {"session_id": "s-c"})
    got = [(await f).id for f in firsts]
    assert got == [f"evt_{ids[0]}", f"evt_{ids[1]}"] * 5
    assert tail.reads == reads + 1  # one read for the ten streams
    assert tail.offers == offers + 10  # each stream was handed the batch once, with its session's row only
    assert list(store.tails) == ["events"]
    for s in streams:
        await s.aclose()  # type: ignore[attr-defined]  # open_stream's iterator is an async generator


async def test_the_event_log_tail_reads_a_large_commit_in_pages(store: Store) -> None:
    """However many rows one commit adds, the tail holds at most a page of them at a time."""
    start = await store.read(events.last_seq)
    tail = tail_of(store, EVENT_LOG, 30.0)
    sub = tail.join(start)
    ids = await add(store, *({"session_id": "s-big"} for _ in range(2 * PAGE + 10)))
    await wait_until_async(lambda: tail.seen == ids[-1], "the tail to read the commit")
    batches = []
    while (batch := sub.take()) is not None:
        batches.append(batch)
    assert [len(b.rows) for b in batches] == [PAGE, PAGE, 10]
    assert [r.seq for b in batches for r in b.rows] == ids
    tail.leave(sub)


async def test_a_subscriber_that_left_is_handed_nothing_more(store: Store) -> None:
    start = await store.read(events.last_seq)
    tail = tail_of(store, EVENT_LOG, 30.0)
    stays, leaves, keyed = tail.join(start), tail.join(start), tail.join(start, key="s-k")
    tail.leave(leaves)
    tail.leave(keyed)
    ids = await add(store, {"session_id": "s-k"})
    await wait_until_async(lambda: tail.seen == ids[-1], "the tail to read the commit")
    assert (got := stays.take()) is not None and [r.seq for r in got.rows] == ids
    assert leaves.take() is None
    assert keyed.take() is None
    assert tail.subscribers == 1
    tail.leave(stays)
    assert not tail.running


async def test_closing_the_store_stops_its_tails(store: Store) -> None:
    tail = tail_of(store, EVENT_LOG, 30.0)
    sub = tail.join(await store.read(events.last_seq))
    task = tail._task
    assert task is not None and not task.done()
    await store.close()
    assert task.done()
    with pytest.raises(RuntimeError, match="the store is closed"):
        sub.take()


async def test_a_dropped_range_longer_than_a_page_is_read_back_page_by_page(store: Store) -> None:
    """A follower whose queue was full when a large commit came reads the whole range itself, in pages:
    every row once, in order."""
    start = await store.read(events.last_seq)
    tail_fetch = Fetch()
    table = event_log(tail_fetch)
    tail: Tail[EventRow] = Tail(store, table, 60.0, queue_limit=1)
    store.tails["events"] = tail
    follower = Follower(store, table, start, EventFilter(session_id="s-big"))
    first = asyncio.create_task(anext(follower.rows))
    await joined(store, 1)
    (seq,) = await add(store, {"session_id": "s-big"})
    assert (await first).seq == seq
    queued = await add(store, {"session_id": "s-big"})  # fills its queue of one
    dropped = await add(store, *({"session_id": "s-big"} for _ in range(2 * PAGE + 7)))
    await wait_until_async(lambda: tail.seen == dropped[-1], "the tail to read the large commit")
    got = [(await anext(follower.rows)).seq for _ in range(1 + len(dropped))]
    assert got == queued + dropped
    assert len(follower.fetch.calls) >= 3, "the dropped range was read by the follower itself, a page at a time"
    await follower.stop()
