"""What lets several processes share one SQLite file (`athena api serve --workers N`, or any two Athena
processes on the same database): a write lock they queue on, and noticing each other's commits.

The write lock. SQLite serialises writers itself, but a writer that finds the database locked sleeps in
its busy handler (1, 2, 5, 10 ... ms between tries), so two busy processes spend much of their time asleep
with the lock free. Each process's writer thread instead holds an `flock` on a file beside the database
for the length of each group's transaction: the kernel queues the waiters and wakes the next one the moment
the lock is released (and releases it if its holder dies, kill -9 included). Uncontended, it costs two
system calls per group, and `fcntl.flock` lets go of the GIL while it waits.

Other processes' commits. A process wakes its own streams when its writer commits. `PRAGMA data_version`,
read on the writer's connection, changes when any *other* connection committed, never for its own
commits; the writer reads it between groups and while idle, and a change wakes the process's commit bus
(streams, session turns), as PostgreSQL's NOTIFY does for replicas. While another process has committed
within the last QUIET_SECONDS (sibling workers heartbeat every few seconds) the writer reads it every
WATCH_SECONDS; a process alone on its file reads it only every IDLE_SECONDS, which is the streams' own poll
interval anyway.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

# While another process commits, how often the writer looks for its commits (the most it adds to the
# latency of a stream in this process following a run in that one).
WATCH_SECONDS = 0.01
# How often a process that has seen no other process commit looks.
IDLE_SECONDS = 1.0
# How long after the last commit of another process the writer keeps looking every WATCH_SECONDS.
QUIET_SECONDS = 30.0
LOCK_SUFFIX = "-athena-write.lock"

log = logging.getLogger(__name__)


def database_file(url: URL) -> Path | None:
    """The file of a SQLite database; None for an in-memory one (no other process can open it)."""
    name = url.database
    if not name or name == ":memory:" or name.startswith("file::memory:"):
        return None
    return Path(name)


class WriteLock:
    """An exclusive `flock` on `<database>-athena-write.lock`, held by a writer across a group's
    transaction. Each instance opens the file itself, so two stores in one process exclude each other too."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + LOCK_SUFFIX)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def __enter__(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *_exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


class ForeignCommits:
    """Watches the writer connection's `data_version` and calls `on_change` (from the writer thread) when
    another connection has committed since the last look."""

    def __init__(self, on_change: Callable[[], None], *, clock: Callable[[], float] = time.monotonic) -> None:
        self._on_change = on_change
        self._clock = clock
        self._version: int | None = None
        self._looked = float("-inf")
        self._foreign = float("-inf")  # when a change was last seen

    def wait_seconds(self) -> float:
        """How long the idle writer may wait for work before it should look again."""
        busy = self._clock() - self._foreign < QUIET_SECONDS
        return WATCH_SECONDS if busy else IDLE_SECONDS

    def look_if_due(self, raw: Any) -> None:
        """Between groups: look when WATCH_SECONDS have passed since the last look."""
        if self._clock() - self._looked >= WATCH_SECONDS:
            self.look(raw)

    def look(self, raw: Any) -> None:
        """`raw`: the writer's sqlite3 connection, outside a transaction."""
        now = self._looked = self._clock()
        try:
            version = raw.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as exc:  # never the writer's end: the streams' poll still finds the rows
            log.warning("PRAGMA data_version: %s", exc)
            return
        changed = self._version is not None and version != self._version
        self._version = version
        if changed:
            self._foreign = now
            self._on_change()
