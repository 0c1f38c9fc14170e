"""Several processes on one SQLite file (athena_server/storage/sqlite_shared.py): the write lock a writer
holds across each group's transaction, and the writer noticing other connections' commits, which wakes
its store's streams. Two stores on one file in one process stand for two processes: each has its own
writer connection and opens the lock file itself."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import stat
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, insert, select
from sqlalchemy.engine import make_url

from athena_server.storage.migrate import migrate
from athena_server.storage.sqlite_shared import (
    IDLE_SECONDS,
    LOCK_SUFFIX,
    QUIET_SECONDS,
    WATCH_SECONDS,
    ForeignCommits,
    WriteLock,
    database_file,
)
from athena_server.storage.store import Store
from athena_server.storage.tables import directives


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


def test_database_file_is_none_for_an_in_memory_database(tmp_path: Path) -> None:
    assert database_file(make_url("sqlite+pysqlite://")) is None
    assert database_file(make_url("sqlite+pysqlite:///:memory:")) is None
    assert database_file(make_url("sqlite+pysqlite:///file::memory:?cache=shared&uri=true")) is None
    assert database_file(make_url(f"sqlite+pysqlite:///{tmp_path}/a.db")) == tmp_path / "a.db"


def test_foreign_commits_are_seen_and_own_commits_are_not(tmp_path: Path) -> None:
    ours, theirs = _connect(tmp_path / "a.db"), _connect(tmp_path / "a.db")
    ours.execute("CREATE TABLE t (x INTEGER)")
    clock, seen = Clock(), []
    watch = ForeignCommits(lambda: seen.append(clock.now), clock=clock)
    watch.look(ours)
    assert seen == []  # the first look only notes where it starts
    ours.execute("INSERT INTO t VALUES (1)")
    watch.look(ours)
    assert seen == []  # this connection's own commit
    theirs.execute("INSERT INTO t VALUES (2)")
    clock.now += 1
    watch.look(ours)
    assert seen == [1001.0]
    watch.look(ours)
    assert seen == [1001.0]  # nothing new since
    theirs.execute("BEGIN")
    theirs.execute("INSERT INTO t VALUES (3)")
    watch.look(ours)
    assert seen == [1001.0]  # not committed yet
    theirs.execute("COMMIT")
    watch.look(ours)
    assert len(seen) == 2


def test_the_watch_looks_often_only_while_others_commit(tmp_path: Path) -> None:
    ours, theirs = _connect(tmp_path / "a.db"), _connect(tmp_path / "a.db")
    ours.execute("CREATE TABLE t (x INTEGER)")
    clock, seen = Clock(), []
    watch = ForeignCommits(lambda: seen.append(1), clock=clock)
    watch.look(ours)
    assert watch.wait_seconds() == IDLE_SECONDS  # alone on the file so far
    theirs.execute("INSERT INTO t VALUES (1)")
    watch.look(ours)
    assert watch.wait_seconds() == WATCH_SECONDS
    clock.now += QUIET_SECONDS - 0.001
    assert watch.wait_seconds() == WATCH_SECONDS
    clock.now += 0.002
    assert watch.wait_seconds() == IDLE_SECONDS

    # Between groups it looks only once WATCH_SECONDS have passed since its last look.
    theirs.execute("INSERT INTO t VALUES (2)")
    watch.look(ours)
    theirs.execute("INSERT INTO t VALUES (3)")
    clock.now += WATCH_SECONDS / 2
    watch.look_if_due(ours)
    assert len(seen) == 2
    clock.now += WATCH_SECONDS / 2
    watch.look_if_due(ours)
    assert len(seen) == 3


def test_a_failing_look_is_logged_and_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    conn = _connect(tmp_path / "a.db")
    watch = ForeignCommits(lambda: None)
    conn.close()
    watch.look(conn)
    assert [r.getMessage() for r in caplog.records] == ["PRAGMA data_version: Cannot operate on a closed database."]


def test_a_new_watch_looks_at_its_first_chance(tmp_path: Path) -> None:
    ours, theirs = _connect(tmp_path / "a.db"), _connect(tmp_path / "a.db")
    ours.execute("CREATE TABLE t (x INTEGER)")
    clock, seen = Clock(), []
    watch = ForeignCommits(lambda: seen.append(1), clock=clock)
    watch.look_if_due(ours)  # never looked: due at once (it notes where it starts)
    theirs.execute("INSERT INTO t VALUES (1)")
    clock.now += 2 * WATCH_SECONDS
    watch.look_if_due(ours)
    assert seen == [1]


def test_the_write_lock_excludes_another_holder_until_released(tmp_path: Path) -> None:
    lock = WriteLock(tmp_path / "a.db")
    assert lock.path == tmp_path / f"a.db{LOCK_SUFFIX}"
    assert stat.S_IMODE(lock.path.stat().st_mode) == 0o600  # only its owner may open it
    probe = os.open(lock.path, os.O_RDWR)
    try:
        with lock:
            with pytest.raises(BlockingIOError):
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(probe, fcntl.LOCK_UN)
    finally:
        os.close(probe)
        lock.close()


@pytest.fixture
async def two_stores(tmp_path: Path) -> AsyncIterator[tuple[Store, Store]]:
    url = f"sqlite+pysqlite:///{tmp_path / 'shared.db'}"
    a, b = Store(url), Store(url)
    await migrate(a)
    await migrate(b)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


def _insert(name: str) -> object:
    def unit(conn: Connection) -> None:
        conn.execute(insert(directives).values(id=name, input="x", created_at_ms=0))

    return unit


async def test_a_writer_holds_the_file_lock_for_its_transaction_and_another_store_waits(
    two_stores: tuple[Store, Store], tmp_path: Path
) -> None:
    a, b = two_stores
    inside, release = threading.Event(), threading.Event()
    probe = os.open(tmp_path / f"shared.db{LOCK_SUFFIX}", os.O_RDWR)

    def held(conn: Connection) -> None:
        conn.execute(insert(directives).values(id="held", input="x", created_at_ms=0))
        inside.set()
        release.wait(10)

    try:
        first = a.write(held)
        assert await asyncio.to_thread(inside.wait, 10)
        with pytest.raises(BlockingIOError):
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        second = asyncio.ensure_future(b.write(_insert("after")))  # type: ignore[arg-type]
        await asyncio.sleep(0.3)
        assert not second.done()  # B's writer queues on the lock, not on SQLite's busy timeout
        release.set()
        await first
        await asyncio.wait_for(second, 10)
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again once both committed
        fcntl.flock(probe, fcntl.LOCK_UN)
    finally:
        release.set()
        os.close(probe)
    names = await b.read(lambda conn: [r[0] for r in conn.execute(select(directives.c.id).order_by(directives.c.id))])
    assert names == ["after", "held"]


async def test_another_stores_commit_wakes_this_stores_bus(two_stores: tuple[Store, Store]) -> None:
    a, b = two_stores
    await b.write(_insert("b-first"))  # type: ignore[arg-type]  # B's writer is running and has looked
    # B has seen no other commit yet, so its idle writer looks every IDLE_SECONDS: the first is seen then.
    ticket = b.bus.ticket()
    await a.write(_insert("a-first"))  # type: ignore[arg-type]
    await asyncio.wait_for(asyncio.shield(ticket), IDLE_SECONDS + 5)
    # Every later commit of A wakes B again (how soon is the watch's rule, tested above with a clock).
    for i in range(3):
        ticket = b.bus.ticket()
        await a.write(_insert(f"a-{i}"))  # type: ignore[arg-type]
        await asyncio.wait_for(asyncio.shield(ticket), IDLE_SECONDS + 5)


async def test_an_idle_writer_keeps_looking(two_stores: tuple[Store, Store]) -> None:
    a, b = two_stores
    await b.write(_insert("b-first"))  # type: ignore[arg-type]
    await asyncio.sleep(3 * WATCH_SECONDS)  # B's writer is idle, waiting for work with a timeout
    ticket = b.bus.ticket()
    raw = a.engine.raw_connection()  # a commit that is not even A's writer's
    try:
        raw.driver_connection.execute("INSERT INTO directives (id, input, created_at_ms) VALUES ('raw', 'x', 0)")  # type: ignore[union-attr]
        raw.commit()
    finally:
        raw.close()
    await asyncio.wait_for(asyncio.shield(ticket), 5)


async def test_a_busy_writer_looks_between_its_groups(two_stores: tuple[Store, Store]) -> None:
    """While B's writer always has work, its idle wait never times out: it must look between groups."""
    a, b = two_stores
    busy = True

    async def keep_busy(name: str) -> None:
        i = 0
        while busy:
            i += 1
            await b.write(_insert(f"{name}-{i}"))  # type: ignore[arg-type]

    workers = [asyncio.create_task(keep_busy(f"b{n}")) for n in range(4)]
    try:
        for i in range(3):
            ticket = b.bus.ticket()
            await a.write(_insert(f"a-{i}"))  # type: ignore[arg-type]
            await asyncio.wait_for(asyncio.shield(ticket), IDLE_SECONDS + 5)
    finally:
        busy = False
        await asyncio.gather(*workers)
