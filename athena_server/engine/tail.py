"""One reader per followed table per process, handing each new batch of rows to every subscriber.

Followers used to read the store themselves on every commit wake-up, so N subscribers cost N reads per
commit, and those reads queued on the store's small read pool ahead of the run path. A tail reads the
rows after the highest sequence it has seen once per wake-up (or poll), unfiltered, and offers that batch
to every subscriber; each filters it in memory with the predicate its own SQL fetch applies.

A subscriber that only wants rows of one key (a session's events, a session's transcript) is offered only
the batches holding rows of that key, and only those rows: a thousand streams on a hundred sessions cost
each commit the wake-ups of the streams its rows concern, not a thousand.

A batch says which sequence range it covers (`after < seq <= up_to`), so a subscriber can tell a batch it
already has from one that starts after a range it was not offered. Such a range holds none of its rows
(the tail skipped it for that reason) unless it is *uncovered*: read by the tail before the subscriber
joined, or dropped while the subscriber lagged; the subscriber reads an uncovered range itself.
Subscribers' queues are bounded: a slow subscriber never holds the tail or the others back; it loses
queued batches, not rows, and catches up by reading on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from sqlalchemy import Connection

if TYPE_CHECKING:
    from athena_server.storage.store import Store

log = logging.getLogger(__name__)

R = TypeVar("R")
PAGE = 500
# Batches a subscriber may have queued before the tail drops new ones for it (it then reads the gap).
QUEUE_LIMIT = 256

# fetch(conn, after_seq, up_to_seq, limit) -> rows with after_seq < seq <= up_to_seq, oldest first.
Fetch = Callable[[Connection, int, int, int], list[R]]
TopSeq = Callable[[Connection], int]


@dataclass(frozen=True)
class Followed(Generic[R]):
    """A table streams follow: its name (one tail per name per store), how to read all its rows in a
    sequence range, its highest committed sequence, a row's sequence, and optionally a row's key (the value
    a subscriber may restrict itself to: the tail then offers it only rows with that key)."""

    name: str
    fetch_all: Fetch[R]
    top_seq: TopSeq
    seq_of: Callable[[R], int]
    key_of: Callable[[R], Hashable] | None = None


@dataclass(frozen=True)
class Batch(Generic[R]):
    """Rows with `after < seq <= up_to`, oldest first: all of them, or all of them with the subscriber's key."""

    after: int
    up_to: int
    rows: list[R]


class Subscription(Generic[R]):
    def __init__(self, limit: int, key: Hashable | None, uncovered_to: int) -> None:
        self.key = key
        # Rows up to here may have been read by the tail without being offered to this subscriber.
        self.uncovered_to = uncovered_to
        self._limit = limit
        self._batches: deque[Batch[R]] = deque()
        self._ready = asyncio.Event()
        self._error: BaseException | None = None

    def offer(self, batch: Batch[R]) -> None:
        if len(self._batches) >= self._limit:
            # Dropped: the subscriber reads this range itself once it has drained its queue.
            self.uncovered_to = max(self.uncovered_to, batch.up_to)
            return
        self._batches.append(batch)
        self._ready.set()

    def fail(self, error: BaseException) -> None:
        """The tail's read failed: the subscriber ends with the cause, as its own read would have."""
        self._error = error
        self._ready.set()

    def take(self) -> Batch[R] | None:
        """The oldest queued batch, or None when none is queued."""
        if self._error is not None:
            raise self._error
        return self._batches.popleft() if self._batches else None

    async def wait(self) -> None:
        """Until a batch (or the tail's failure) arrives."""
        while not self._batches and self._error is None:
            self._ready.clear()
            await self._ready.wait()


class Tail(Generic[R]):
    """The shared reader of one table. It runs while it has subscribers."""

    def __init__(self, store: Store, table: Followed[R], poll_seconds: float, queue_limit: int = QUEUE_LIMIT) -> None:
        self._store = store
        self._table = table
        self._poll = poll_seconds
        self._limit = queue_limit
        self._everything: set[Subscription[R]] = set()  # subscribers without a key
        self._by_key: dict[Hashable, set[Subscription[R]]] = {}
        self._count = 0
        self._task: asyncio.Task[None] | None = None
        # Every row up to `seen` has been offered to the subscribers present when it was read.
        self.seen = 0
        # For diagnostics and tests: store reads, and batches offered to subscribers.
        self.reads = 0
        self.offers = 0

    @property
    def subscribers(self) -> int:
        return self._count

    @property
    def running(self) -> bool:
        return self._task is not None

    def join(self, last: int, key: Hashable | None = None) -> Subscription[R]:
        """Subscribe a follower that has every row up to `last` (and wants only rows with `key`, unless
        None). A stopped tail restarts from `last`, and reads at once, so nothing committed since the
        follower's own last read waits for a wake-up."""
        if self._table.key_of is None:
            key = None
        if self._task is None:
            self.seen = last
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"athena-tail-{self._table.name}")
        sub: Subscription[R] = Subscription(self._limit, key, uncovered_to=self.seen)
        if key is None:
            self._everything.add(sub)
        else:
            self._by_key.setdefault(key, set()).add(sub)
        self._count += 1
        return sub

    def leave(self, sub: Subscription[R]) -> None:
        group = self._everything if sub.key is None else self._by_key.get(sub.key, set())
        if sub not in group:
            return
        group.discard(sub)
        if sub.key is not None and not group:
            del self._by_key[sub.key]
        self._count -= 1
        if not self._count and self._task is not None:
            task, self._task = self._task, None
            task.cancel()

    async def close(self) -> None:
        """Stop reading; subscribers still present end with an error rather than wait forever."""
        task = self._task
        self._fail(RuntimeError(f"the store is closed: the {self._table.name} stream ended"))
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        table, bus = self._table, self._store.bus
        while True:
            ticket = bus.ticket()
            seen = self.seen

            def snapshot(conn: Connection, seen: int = seen) -> tuple[int, list[R]]:
                top = table.top_seq(conn)
                return top, (table.fetch_all(conn, seen, top, PAGE) if top > seen else [])

            try:
                top, rows = await self._store.read(snapshot)
            except Exception as exc:
                log.warning("tail of %s failed: %s", table.name, exc)
                self._fail(exc)
                return
            self.reads += 1
            up_to = table.seq_of(rows[-1]) if len(rows) == PAGE else top
            if up_to > seen:
                self.seen = up_to
                self._offer(seen, up_to, rows)
            if len(rows) == PAGE:
                continue
            await bus.wait(ticket, self._poll)

    def _offer(self, after: int, up_to: int, rows: list[R]) -> None:
        batch = Batch(after, up_to, rows)
        for sub in self._everything:
            sub.offer(batch)
        self.offers += len(self._everything)
        if not self._by_key or self._table.key_of is None:
            return
        key_of = self._table.key_of
        by_key: dict[Hashable, list[R]] = {}
        for row in rows:
            by_key.setdefault(key_of(row), []).append(row)
        for key, keyed in by_key.items():
            subs = self._by_key.get(key)
            if subs:
                part = Batch(after, up_to, keyed)
                for sub in subs:
                    sub.offer(part)
                self.offers += len(subs)

    def _fail(self, error: Exception) -> None:
        subs = [*self._everything, *(s for group in self._by_key.values() for s in group)]
        self._everything, self._by_key, self._count = set(), {}, 0
        self._task = None
        for sub in subs:
            sub.fail(error)
