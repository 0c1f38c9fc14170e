"""One engine per process and the two kinds of transaction the control plane uses.

SQLite: WAL (readers never block the writer), a busy timeout, and `BEGIN IMMEDIATE` for write
transactions. A deferred transaction that reads and then writes can fail at once with SQLITE_BUSY when
another connection committed in between (the busy timeout does not apply to that upgrade); taking the
write lock up front makes writers queue instead. PostgreSQL needs none of this.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from athena_server.engine.bus import CommitBus

_WRITE_OPTION = "athena_write"
EVENTS_WRITTEN = "athena_events_written"


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us emit BEGIN ourselves (the driver's implicit BEGIN is always DEFERRED).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class Store:
    """The database, as the control plane sees it."""

    def __init__(self, url: str, *, bus: CommitBus | None = None) -> None:
        self.url = url
        is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"pool_pre_ping": not is_sqlite}
        if is_sqlite:
            kwargs["connect_args"] = {"timeout": 30}
            kwargs["pool_size"] = 8
            kwargs["max_overflow"] = 8
        else:
            kwargs["pool_size"] = 10
            kwargs["max_overflow"] = 10
        self.engine = create_async_engine(url, **kwargs)
        if is_sqlite:
            _configure_sqlite(self.engine)
        self.bus = bus or CommitBus()
        self._write_turn = asyncio.Lock() if is_sqlite else None

    @property
    def dialect(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self.engine.dialect.name

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction. Streams are woken after it commits if it appended events."""
        turn = self._write_turn if self._write_turn is not None else contextlib.nullcontext()
        async with turn, self.engine.connect() as conn:
            conn = await conn.execution_options(**{_WRITE_OPTION: True})
            async with conn.begin():
                yield conn
            wrote_events = conn.info.pop(EVENTS_WRITTEN, False)
        if wrote_events:
            self.bus.notify()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only snapshot (rolled back at the end)."""
        async with self.engine.connect() as conn:
            async with conn.begin():
                yield conn

    async def ping(self) -> float:
        """Round-trip time of a trivial query, in ms; raises when the store is unreachable."""
        start = time.perf_counter()
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return (time.perf_counter() - start) * 1000

    async def close(self) -> None:
        await self.engine.dispose()
