"""Evidence records runs leave behind, read by verification policies."""

from __future__ import annotations

from sqlalchemy import Connection, insert

from athena_server.engine.providers.base import Evidence
from athena_server.storage.tables import evidence


def insert_all(conn: Connection, run_id: str, records: list[Evidence], at_ms: int) -> None:
    if records:
        conn.execute(
            insert(evidence),
            [
                {"run_id": run_id, "label": e.label, "type": e.type, "content": e.content, "created_at_ms": at_ms}
                for e in records
            ],
        )
