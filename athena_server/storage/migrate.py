"""Applies Alembic migrations at server start, so a fresh database and an old one both come up current.

Alembic logs every step at INFO ("Context impl SQLiteImpl.", "Running upgrade ..."); the server holds
libraries to WARNING at INFO (athena_server/logs.py), and says itself, in one line, when the schema
changed."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text

from athena_server.storage.store import Store

MIGRATIONS = Path(__file__).parent / "migrations"
# Any constant: PostgreSQL advisory lock key that serialises migrations of replicas starting together.
_MIGRATION_LOCK_KEY = 0x41544845

log = logging.getLogger(__name__)


def _revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    before = _revision(connection)
    command.upgrade(config, "head")
    after = _revision(connection)
    if after != before:
        log.info("store schema upgraded from %s to %s", before or "empty", after)


async def migrate(store: Store) -> None:
    if store.dialect == "sqlite":
        url_path = store.url.split("///", 1)[-1]
        if url_path and url_path != ":memory:":
            Path(url_path).parent.mkdir(parents=True, exist_ok=True)
    await store.write(_upgrade)
