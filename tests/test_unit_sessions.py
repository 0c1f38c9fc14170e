"""Sessions in the store (storage/sessions.py): created by a session's first run, touched by every later one
(one upsert), on SQLite and PostgreSQL alike."""

from __future__ import annotations

from athena_server.storage import sessions
from athena_server.storage.store import Store


async def test_the_first_touch_creates_the_session_and_later_ones_record_the_latest_run(any_store: Store) -> None:
    await any_store.write(lambda conn: sessions.touch(conn, "s1", "mock", "m1", 1_000))
    await any_store.write(lambda conn: sessions.touch(conn, "s2", "mock", "m1", 1_500))
    await any_store.write(lambda conn: sessions.touch(conn, "s1", "openai", "gpt", 2_000))
    listed = await any_store.read(lambda conn: sessions.page(conn, 10, None, 0))
    assert listed == [
        sessions.SessionRow("s1", "openai", "gpt", created_at_ms=1_000, updated_at_ms=2_000),
        sessions.SessionRow("s2", "mock", "m1", created_at_ms=1_500, updated_at_ms=1_500),
    ]
