"""Sessions in the store (storage/sessions.py): created by a session's first run, touched by every later one
(one upsert), on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from athena_server.config import normalise_database_url
from athena_server.storage import sessions
from athena_server.storage.migrate import migrate
from athena_server.storage.store import Store
from tests.support.postgres import new_database


@pytest.fixture
def pg_url(postgres_cluster: str) -> Iterator[str]:
    with new_database(postgres_cluster) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite+pysqlite:///{tmp_path / 'athena.db'}"
    else:
        url = normalise_database_url(request.getfixturevalue("pg_url"), tmp_path)
    store = Store(url)
    await migrate(store)
    try:
        yield store
    finally:
        await store.close()


async def test_the_first_touch_creates_the_session_and_later_ones_record_the_latest_run(any_store: Store) -> None:
    await any_store.write(lambda conn: sessions.touch(conn, "s1", "mock", "m1", 1_000))
    await any_store.write(lambda conn: sessions.touch(conn, "s2", "mock", "m1", 1_500))
    await any_store.write(lambda conn: sessions.touch(conn, "s1", "openai", "gpt", 2_000))
    listed = await any_store.read(lambda conn: sessions.page(conn, 10, None, 0))
    assert listed == [
        sessions.SessionRow("s1", "openai", "gpt", created_at_ms=1_000, updated_at_ms=2_000),
        sessions.SessionRow("s2", "mock", "m1", created_at_ms=1_500, updated_at_ms=1_500),
    ]
