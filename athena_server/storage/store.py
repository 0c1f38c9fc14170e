"""One store per process, and the two kinds of transaction the control plane uses.

Domain code hands the store a *unit*: a plain function of a SQLAlchemy `Connection` that runs inside one
transaction. Keeping units synchronous lets a whole transaction run with one hop off the event loop
instead of one hop per statement (SQLAlchemy's asyncio bridge over aiosqlite costs ~0.5 ms a
statement; a sync statement ~0.03 ms).

SQLite: one writer thread owns the write connection and commits queued units in groups (group commit,
storage/sqlite_writer.py): one COMMIT makes the whole group durable before any caller is answered, and a
unit that raises rolls back alone (the group runs again without it). `BEGIN IMMEDIATE` takes the write
lock up front, and the writers of several processes on one file queue on a file lock for it
(storage/sqlite_shared.py). Reads run on a small thread pool over WAL snapshots, so they never wait for
the writer.

PostgreSQL: the async engine (asyncpg), each unit inside `run_sync` in its own transaction.

Traces (when on, athena_server/otel.py): one span per transaction, a child of the caller's span, from the
call to the commit: a SQLite unit's span covers its wait in the writer's queue and the group's COMMIT, and
names how many units that commit carried (`athena.store.group_size`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from athena_server import otel
from athena_server.engine.bus import CommitBus
from athena_server.metrics import PENDING, READ, WRITE, Metrics
from athena_server.storage import json_text
from athena_server.storage.notify import NOTIFY_FROM, Listener
from athena_server.storage.sqlite_writer import EVENTS_WRITTEN as EVENTS_WRITTEN
from athena_server.storage.sqlite_writer import Job, SqliteWriter

if TYPE_CHECKING:
    from athena_server.engine.tail import Tail

log = logging.getLogger(__name__)

T = TypeVar("T")
Unit = Callable[[Connection], T]

WRITE_SPAN, READ_SPAN = "athena.store.write", "athena.store.read"


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us emit BEGIN ourselves (the driver's implicit BEGIN is always DEFERRED and breaks SAVEPOINT).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("athena_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def sync_url(url: str) -> str:
    """The synchronous driver URL of a SQLite store (older configurations named the aiosqlite driver)."""
    return url.replace("sqlite+aiosqlite://", "sqlite+pysqlite://", 1)


class Store:
    """The database, as the control plane sees it."""

    def __init__(self, url: str, *, bus: CommitBus | None = None, metrics: Metrics | None = None) -> None:
        self.url = url
        self.bus = bus or CommitBus()
        self.metrics = metrics or Metrics()
        self.metrics.watch(self, self._writer_queue)
        self._sqlite = url.startswith("sqlite")
        self._writer: SqliteWriter | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._async_engine: AsyncEngine | None = None
        # The shared readers of followed tables (control/follow.py), by table name.
        self.tails: dict[str, Tail[Any]] = {}
        self._listener: Listener | None = None
        # Names this store in the notifications its commits send, so its own listener skips them: the bus
        # already woke this process's streams when the commit returned.
        self._token = uuid.uuid4().hex
        if self._sqlite:
            self.engine: Engine = create_engine(
                sync_url(url),
                connect_args={"timeout": 30, "check_same_thread": False},
                pool_size=8,
                max_overflow=8,
                json_serializer=json_text.dumps,
                json_deserializer=json_text.loads,
            )
            _configure_sqlite(self.engine)
            self._readers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="athena-sqlite-read")
        else:
            self._async_engine = create_async_engine(
                url,
                pool_pre_ping=True,
                pool_size=10,
                max_overflow=10,
                json_serializer=json_text.dumps,
                json_deserializer=json_text.loads,
            )
            self.engine = self._async_engine.sync_engine

    @property
    def dialect(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self.engine.dialect.name

    def write(self, unit: Callable[[Connection], T]) -> Awaitable[T]:
        """Run `unit` in a write transaction; the awaitable gives its result once committed. A unit that
        raises is rolled back and its exception re-raised there. Streams are woken if it appended events.

        A unit may run more than once (on SQLite, when another unit of its group raised, the group is rolled
        back and runs again), so it keeps its effects in the transaction: statements on `conn`, marks in
        `conn.info`, metrics through `after_commit`, and what it returns. Nothing else it touches may
        outlive it: no caller's object mutated, no task woken, no I/O.

        On SQLite the unit is queued at once and the awaitable is the writer's future itself, not a
        coroutine around it: a run awaits three writes, and `asyncio.shield` of a future creates no task.
        Not awaiting it does not stop it; cancelling the waiter does not undo it.

        The unit runs in a copy of the caller's context (as `asyncio.to_thread` does), so what the request
        set there (its authenticated caller, which events record as their actor) reaches the writer thread."""
        context = contextvars.copy_context()

        def in_context(conn: Connection) -> T:
            return context.run(unit, conn)

        span = self._span(WRITE_SPAN) if otel.ENABLED else None
        if self._sqlite:
            loop = asyncio.get_running_loop()
            if self._writer is None:
                self._writer = SqliteWriter(self.engine, self.bus.notify, self.metrics, on_foreign=self._waker(loop))
            future: asyncio.Future[T] = loop.create_future()
            self._writer.submit(Job(in_context, loop, future, span))
            return future
        return self._write_async(in_context, span)

    def _waker(self, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
        """Wakes this store's bus on `loop` from another thread (the writer, seeing another process's commit)."""

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
                loop.call_soon_threadsafe(self.bus.notify)

        return wake

    def _span(self, name: str) -> Any:
        return otel.start_span(name, attributes={"db.system.name": self.dialect})

    async def _write_async(self, unit: Callable[[Connection], T], span: Any = None) -> T:
        assert self._async_engine is not None
        start = time.perf_counter()
        with otel.ending(span):
            async with self._async_engine.begin() as conn:
                conn.info[NOTIFY_FROM] = self._token
                conn.info.pop(PENDING, None)  # left by a transaction on this pooled connection that did not commit
                try:
                    result = await conn.run_sync(unit)
                finally:
                    # Always cleared: `info` outlives the transaction on the pooled connection, and a mark left
                    # by a unit that raised would let the next transaction on it skip the log's lock.
                    wrote_events = conn.info.pop(EVENTS_WRITTEN, False)
                    pending = conn.info.pop(PENDING, None)
        self.metrics.store_seconds(WRITE).observe(time.perf_counter() - start)
        if pending:
            self.metrics.apply(pending)
        if wrote_events:
            self.bus.notify()
        return result

    async def read(self, unit: Callable[[Connection], T]) -> T:
        """Run `unit` on a read-only snapshot (rolled back at the end)."""
        span = self._span(READ_SPAN) if otel.ENABLED else None
        with otel.ending(span):
            if self._sqlite:
                assert self._readers is not None
                return await asyncio.get_running_loop().run_in_executor(self._readers, self._read_sync, unit)
            assert self._async_engine is not None
            start = time.perf_counter()
            async with self._async_engine.connect() as conn:
                async with conn.begin():
                    result: T = await conn.run_sync(unit)
            self.metrics.store_seconds(READ).observe(time.perf_counter() - start)
            return result

    def _read_sync(self, unit: Callable[[Connection], T]) -> T:
        start = time.perf_counter()
        with self.engine.connect() as conn, conn.begin():
            result = unit(conn)
        self.metrics.store_seconds(READ).observe(time.perf_counter() - start)
        return result

    def _writer_queue(self) -> int:
        """Write units queued for the SQLite writer thread (0 on PostgreSQL, or before the first write)."""
        writer = self._writer
        return writer.queued() if writer is not None else 0

    async def ping(self) -> float:
        """Round-trip time of a trivial query, in ms; raises when the store is unreachable."""
        start = time.perf_counter()
        await self.read(lambda conn: conn.execute(text("SELECT 1")).scalar_one())
        return (time.perf_counter() - start) * 1000

    def listen(self) -> None:
        """Wake this process's streams on commits other processes make (PostgreSQL LISTEN; started once,
        on first need). SQLite needs nothing here: its writer watches the file for other processes' commits
        (storage/sqlite_shared.py)."""
        if not self._sqlite and self._listener is None:
            self._listener = Listener(self.url, self.bus.notify, ignore=self._token)
            self._listener.start()

    async def close(self) -> None:
        tails, self.tails = list(self.tails.values()), {}
        for tail in tails:
            await tail.close()
        if self._listener is not None:
            listener, self._listener = self._listener, None
            await listener.close()
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await asyncio.to_thread(writer.stop)
        if self._readers is not None:
            self._readers.shutdown(wait=False, cancel_futures=True)
        if self._async_engine is not None:
            await self._async_engine.dispose()
        else:
            self.engine.dispose()
