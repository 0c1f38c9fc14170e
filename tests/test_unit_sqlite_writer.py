"""The SQLite writer's group commit (athena_server/storage/sqlite_writer.py): a unit that raises rolls back
alone, every other unit of its group commits exactly once, what units record for after the commit is
applied once, and after a failure the writer runs the next groups with a savepoint per unit.

Groups are made deterministic by holding the writer thread in a first unit until every other unit is
queued: they then all join the next group."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import Connection, insert, select

from athena_server.engine.bus import CommitBus
from athena_server.errors import AthenaError, ErrorCode
from athena_server.metrics import Metrics, after_commit
from athena_server.storage import events
from athena_server.storage.migrate import migrate
from athena_server.storage.sqlite_writer import CAUTIOUS_GROUPS
from athena_server.storage.store import Store
from athena_server.storage.tables import directives
from tests.support.writer import one_group


class CountingBus(CommitBus):
    def __init__(self) -> None:
        super().__init__()
        self.notified = 0

    def notify(self) -> None:
        self.notified += 1
        super().notify()


class Units:
    """Units that insert one directive each and count how often they ran."""

    def __init__(self) -> None:
        self.ran: Counter[str] = Counter()
        self.recorded: list[str] = []

    def good(self, name: str) -> Callable[[Connection], str]:
        def unit(conn: Connection) -> str:
            self.ran[name] += 1
            conn.execute(insert(directives).values(id=name, input="x", created_at_ms=0))
            after_commit(conn, lambda _m: self.recorded.append(name))
            return name

        return unit

    def bad(self, name: str) -> Callable[[Connection], None]:
        def unit(conn: Connection) -> None:
            self.ran[name] += 1
            conn.execute(insert(directives).values(id=name, input="x", created_at_ms=0))
            after_commit(conn, lambda _m: self.recorded.append(name))
            events.append(conn, "test.doomed", trace_id="t", payload={})
            raise AthenaError(ErrorCode.ERROR_CODE_CONFIG_ERROR, f"{name} refused")

        return unit


async def ids(store: Store) -> list[str]:
    return await store.read(lambda conn: sorted(r.id for r in conn.execute(select(directives.c.id))))


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = Store(f"sqlite+pysqlite:///{tmp_path / 'w.db'}", bus=CountingBus(), metrics=Metrics())
    await migrate(s)
    yield s
    await s.close()


async def test_a_failing_unit_rolls_back_alone_and_the_others_commit_once(store: Store) -> None:
    u = Units()
    names = [f"d{i:02}" for i in range(6)]
    results = await one_group(
        store, [*(u.good(n) for n in names[:3]), u.bad("doomed"), *(u.good(n) for n in names[3:])]
    )
    assert results[:3] == names[:3] and results[4:] == names[3:]
    assert isinstance(results[3], AthenaError) and results[3].message == "doomed refused"
    assert await ids(store) == names
    # The units before the failure ran again after the rollback; the failing unit ran once, those after it once.
    assert u.ran == Counter({"d00": 2, "d01": 2, "d02": 2, "doomed": 1, "d03": 1, "d04": 1, "d05": 1})
    # Recordings of the rolled-back pass are dropped: each committed unit's is applied once, the failed one's never.
    assert sorted(u.recorded) == names


async def test_a_unique_violation_fails_only_its_unit(store: Store) -> None:
    u = Units()
    await store.write(u.good("taken"))
    results = await one_group(store, [u.good("a"), u.good("taken"), u.good("b")])
    assert results[0] == "a" and results[2] == "b" and isinstance(results[1], Exception)
    assert await ids(store) == ["a", "b", "taken"]


async def test_streams_are_woken_only_by_a_commit_that_wrote_events(store: Store) -> None:
    bus = store.bus
    assert isinstance(bus, CountingBus)
    u = Units()

    def nothing(_conn: Connection) -> None:
        return None

    def appends(conn: Connection) -> None:
        events.append(conn, "test.kept", trace_id="t", payload={})

    # The writer hands a group's wake-up to the loop before it answers the next group, so once a later
    # write is answered the wake-up of every earlier one has run.
    before = bus.notified
    alone = await one_group(store, [u.bad("doomed")])
    await store.write(nothing)
    assert isinstance(alone[0], AthenaError) and bus.notified == before
    await one_group(store, [appends])
    await store.write(nothing)
    assert bus.notified == before + 1


async def test_after_a_failure_the_next_groups_use_savepoints(store: Store) -> None:
    u = Units()
    await one_group(store, [u.good("a"), u.bad("x")])
    assert u.ran["a"] == 2
    # The next group runs with a savepoint per unit: a failure there replays nobody.
    results = await one_group(store, [u.good("b"), u.bad("y"), u.good("c")])
    assert results[0] == "b" and results[2] == "c" and isinstance(results[1], AthenaError)
    assert u.ran["b"] == 1 and u.ran["c"] == 1
    # That failure starts the cautious stretch again (the hold above is a group too); once it has passed,
    # groups run optimistically again.
    for i in range(CAUTIOUS_GROUPS - 2):
        await store.write(u.good(f"pad{i:02}"))
    results = await one_group(store, [u.good("e"), u.bad("w")])
    assert u.ran["e"] == 1
    for i in range(CAUTIOUS_GROUPS + 1):
        await store.write(u.good(f"again{i:02}"))
    await one_group(store, [u.good("d"), u.bad("z")])
    assert u.ran["d"] == 2
    assert "x" not in await ids(store) and "y" not in await ids(store) and "z" not in await ids(store)
