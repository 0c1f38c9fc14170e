"""Alembic environment: migrations run on the connection athena_server.storage.migrate hands over."""

from __future__ import annotations

from alembic import context

from athena_server.storage.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Run migrations through athena_server.storage.migrate (the server applies them at start).")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=False,
)
with context.begin_transaction():
    context.run_migrations()
