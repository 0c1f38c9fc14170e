"""PostgreSQL LISTEN/NOTIFY: commits made by other server processes wake this process's streams at once.

A transaction that appends to the event log (or a transcript) queues `pg_notify(CHANNEL, '')` (see
storage/events.py); PostgreSQL delivers it to every listener when, and only if, the transaction commits.
Each process keeps one listening connection, outside the store's pool, whose notifications wake the
process's commit bus. The notification carries nothing: the table is the source of truth, and the wake-up
only saves the readers the rest of their poll interval. So a lost notification (the connection dropped,
the process was reconnecting) only delays delivery until the next poll, never loses a row; after
(re)connecting the listener wakes the bus once, for whatever committed while it was not listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

CHANNEL = "athena_events"
# `Connection.info` key: the payload of the transaction's notification (the writing store's token).
NOTIFY_FROM = "athena_notify_from"
# How the listening connection names itself in pg_stat_activity.
APPLICATION_NAME = "athena-listen"
# Reconnection back-off, doubling from the first to the last.
FIRST_RETRY_SECONDS = 0.1
LAST_RETRY_SECONDS = 5.0
# A dropped TCP connection may not be noticed until something is sent: the listener checks its connection
# this often.
CHECK_SECONDS = 30.0


def asyncpg_dsn(url: str) -> str:
    """The libpq-style DSN asyncpg takes, from the store's SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Listener:
    """One LISTEN connection per process, reconnecting with back-off when it drops."""

    def __init__(self, url: str, wake: Callable[[], None], *, ignore: str = "") -> None:
        self._dsn = asyncpg_dsn(url)
        self._wake = wake
        self._ignore = ignore  # the payload of this process's own commits, which woke it already
        self._task: asyncio.Task[None] | None = None
        self.connections = 0  # how many times it (re)connected: for tests and diagnostics

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="athena-listen")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if not payload or payload != self._ignore:
            self._wake()

    async def _run(self) -> None:
        delay = FIRST_RETRY_SECONDS
        while True:
            try:
                await self._listen()
                delay = FIRST_RETRY_SECONDS  # it was listening: the next drop starts the back-off afresh
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("LISTEN %s: %s; retrying in %.1f s", CHANNEL, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, LAST_RETRY_SECONDS)

    async def _listen(self) -> None:
        """Listen until the connection drops."""
        conn: asyncpg.Connection = await asyncpg.connect(
            self._dsn, timeout=10, server_settings={"application_name": APPLICATION_NAME}
        )
        try:
            lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            def on_lost(_conn: Any) -> None:
                if not lost.done():
                    lost.set_result(None)

            conn.add_termination_listener(on_lost)
            await conn.add_listener(CHANNEL, self._on_notify)
            self.connections += 1
            self._wake()  # commits made while this process was not listening
            while not lost.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(lost), CHECK_SECONDS)
                if not lost.done():
                    await conn.fetchval("SELECT 1", timeout=10)
            log.warning("LISTEN %s: connection lost", CHANNEL)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)
            if not conn.is_closed():
                conn.terminate()
