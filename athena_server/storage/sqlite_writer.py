"""The single writer thread of a SQLite store, and how it commits queued units in groups.

Units that arrive while a group is committing join the next group, and one COMMIT makes the whole group
durable before any caller is answered (group commit).

A group runs *optimistically*: its units run one after another in one transaction with no savepoint of
their own. A unit that raises is then the exception: the whole transaction is rolled back, that unit's
caller gets its error, and the group's other units run again, each in its own SAVEPOINT (so a unit that
raises then rolls back alone), and commit. After a group in which a unit raised, the next CAUTIOUS_GROUPS
groups use savepoints from the start, so a stream of failing units does not make every group run twice.

Why: the sqlite3 driver lets go of the GIL for every statement it steps, and getting it back while the
event loop runs Python is what the writer waits on most (measured under run load: the writer's wall time
in a group was twice its CPU time). A savepoint is two more statements per unit, four per run. Under
`CreateRun` load, groups without them carried +19 % calls/s at -15 % CPU per call.

What this asks of a unit (Store.write says it too): it may run twice, the first run's writes rolled back,
so it keeps its effects in the transaction (`conn`, `conn.info`, `after_commit`) and in what it returns.

Several processes on one file (storage/sqlite_shared.py): each group's transaction holds the file's write
lock, and between groups the writer looks for other processes' commits, which wake this process's streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine

from athena_server import otel
from athena_server.metrics import PENDING, WRITE, Metrics
from athena_server.storage.sqlite_shared import ForeignCommits, WriteLock, database_file

log = logging.getLogger(__name__)

# Marks a transaction that appended to a followed table (events, transcript entries): streams are woken when
# it commits (storage/events.py sets it).
EVENTS_WRITTEN = "athena_events_written"
# What units of one group may share for as long as it stays true (storage/policy.py keeps the policy it
# read there): a dict in conn.info, set only on the writer's connection, emptied whenever a unit is rolled back.
GROUP_MEMO = "athena_group_memo"
# Units that arrive while a group is committing join the next group, up to this many.
MAX_GROUP = 128
# After a unit raised in an optimistic group, this many groups run with a savepoint per unit.
CAUTIOUS_GROUPS = 32
GROUP_SIZE_ATTR = "athena.store.group_size"

# A unit's outcome: its result, or the exception it raised.
Outcome = tuple[Any, BaseException | None]


@dataclass
class Job:
    unit: Callable[[Connection], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    span: Any = None  # the transaction's span when tracing is on


def _settle(
    answers: list[tuple[asyncio.Future[Any], Any, BaseException | None]], then: Callable[[], None] | None
) -> None:
    """Answer a group's callers on their loop (one hand-over per group, not one per unit), then `then`."""
    for future, result, error in answers:
        if future.done():  # the caller stopped waiting; the transaction's outcome stands regardless
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    if then is not None:
        then()


class _RolledBack(Exception):
    """Raised inside `conn.begin()` to roll the transaction back after a unit raised."""


class SqliteWriter:
    """The one thread that writes a SQLite store (see the module's notes)."""

    def __init__(
        self,
        engine: Engine,
        on_events: Callable[[], None],
        metrics: Metrics,
        *,
        on_foreign: Callable[[], None] | None = None,
    ) -> None:
        """`on_events` runs on the loop of a group's first caller after a commit that wrote events;
        `on_foreign`, from this thread, when another process has committed to the file."""
        self._engine = engine
        self._on_events = on_events
        self._metrics = metrics
        database = database_file(engine.url)
        self._lock = WriteLock(database) if database is not None else None
        self._watch = ForeignCommits(on_foreign) if database is not None and on_foreign is not None else None
        self._cautious = 0  # groups left to run with savepoints from the start
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="athena-sqlite-writer", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        self._queue.put(job)

    def queued(self) -> int:
        """Units waiting for the writer (approximate, as any queue length read from another thread)."""
        return self._queue.qsize()

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)
        if self._lock is not None and not self._thread.is_alive():
            self._lock.close()

    def _run(self) -> None:
        conn = self._engine.connect().execution_options(athena_write=True)
        raw = conn.connection.driver_connection
        watch = self._watch
        try:
            if watch is not None:
                watch.look(raw)  # where this process starts from
            while True:
                if watch is None:
                    first = self._queue.get()
                else:
                    try:
                        first = self._queue.get(timeout=watch.wait_seconds())
                    except queue.Empty:
                        watch.look(raw)
                        continue
                if first is None:
                    return
                group = [first]
                while len(group) < MAX_GROUP:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        self._queue.put(None)
                        break
                    group.append(nxt)
                if watch is not None:
                    watch.look_if_due(raw)
                self._commit_group(conn, group)
        finally:
            conn.close()

    def _commit_group(self, conn: Connection, group: list[Job]) -> None:
        start = time.perf_counter()
        cautious = self._cautious > 0 and len(group) > 1
        if self._cautious > 0:
            self._cautious -= 1
        with self._lock if self._lock is not None else contextlib.nullcontext():
            outcomes, committed = self._transaction(conn, group, savepoints=cautious)
        if len(group) > 1 and any(error is not None for _, error in outcomes):
            self._cautious = CAUTIOUS_GROUPS
        wrote_events = bool(conn.info.pop(EVENTS_WRITTEN, False))
        pending = conn.info.pop(PENDING, None)
        if committed:  # recorded before anyone is answered, so a caller reading /metrics next sees it
            self._metrics.store_seconds(WRITE).observe(time.perf_counter() - start)
            if pending:
                self._metrics.apply(pending)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
        for job, (result, error) in zip(group, outcomes, strict=True):
            if job.span is not None:
                job.span.set_attribute(GROUP_SIZE_ATTR, len(group))
                otel.end_span(job.span, error)
            by_loop.setdefault(job.loop, []).append((job.future, result, error))
        wake = self._on_events if committed and wrote_events else None
        for loop, answers in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                loop.call_soon_threadsafe(_settle, answers, wake if loop is group[0].loop else None)

    def _transaction(self, conn: Connection, group: list[Job], *, savepoints: bool) -> tuple[list[Outcome], bool]:
        """Run the group in one transaction: its units' outcomes, and whether it committed. Without
        savepoints, the first unit that raises rolls everything back and the rest run again with them."""
        outcomes: list[Outcome] = []
        conn.info[GROUP_MEMO] = {}
        try:
            with conn.begin():
                for job in group:
                    outcomes.append(self._call(conn, job, savepoint=savepoints))
                    if outcomes[-1][1] is not None and not savepoints:
                        raise _RolledBack()
            return outcomes, True
        except _RolledBack:
            pass
        except BaseException as exc:  # the COMMIT (or BEGIN) itself failed: nothing in the group stands
            log.exception("SQLite group commit failed")
            return [(None, exc)] * len(group), False
        finally:
            conn.info.pop(GROUP_MEMO, None)
        # A unit raised in an optimistic transaction, now rolled back: its caller gets the error, the others
        # run again, each in a savepoint of its own.
        conn.info.pop(EVENTS_WRITTEN, None)
        conn.info.pop(PENDING, None)
        failed = len(outcomes) - 1
        if len(group) == 1:
            return outcomes, False
        others, committed = self._transaction(conn, group[:failed] + group[failed + 1 :], savepoints=True)
        others.insert(failed, outcomes[failed])
        return others, committed

    @staticmethod
    def _call(conn: Connection, job: Job, *, savepoint: bool) -> Outcome:
        if not savepoint:
            try:
                return job.unit(conn), None
            except Exception as exc:
                return None, exc
        before = conn.info.get(EVENTS_WRITTEN, False)
        pending: list[Any] | None = conn.info.get(PENDING)
        recorded = len(pending) if pending is not None else 0
        # Plain SQL with one fixed name: SQLAlchemy's begin_nested() compiles a fresh, uniquely named
        # SAVEPOINT for every unit, which costs more than the unit's own statements.
        raw = conn.connection.driver_connection
        assert raw is not None
        raw.execute("SAVEPOINT athena_unit")
        try:
            result = job.unit(conn)
        except Exception as exc:
            raw.execute("ROLLBACK TO SAVEPOINT athena_unit")
            raw.execute("RELEASE SAVEPOINT athena_unit")
            conn.info[GROUP_MEMO] = {}
            conn.info[EVENTS_WRITTEN] = before
            pending = conn.info.get(PENDING)
            if pending is not None:
                del pending[recorded:]  # what the rolled-back unit would have recorded
            return None, exc
        raw.execute("RELEASE SAVEPOINT athena_unit")
        return result, None
