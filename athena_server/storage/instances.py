"""Server processes sharing the store, so the runs of one that died can be found and failed."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select, update

from athena_server.storage.rows import row_of
from athena_server.storage.tables import instances


@dataclass(frozen=True)
class InstanceRow:
    id: str
    hostname: str
    pid: int
    started_at_ms: int
    heartbeat_at_ms: int


def register(conn: Connection, row: InstanceRow) -> None:
    conn.execute(insert(instances).values(**row.__dict__))


def heartbeat(conn: Connection, instance_id: str, at_ms: int) -> bool:
    """False when the row is gone (another process judged this one dead)."""
    result = conn.execute(update(instances).where(instances.c.id == instance_id).values(heartbeat_at_ms=at_ms))
    return result.rowcount > 0


def others(conn: Connection, instance_id: str) -> list[InstanceRow]:
    rows = conn.execute(select(instances).where(instances.c.id != instance_id)).all()
    return [row_of(InstanceRow, r) for r in rows]


def remove(conn: Connection, instance_ids: list[str]) -> None:
    conn.execute(delete(instances).where(instances.c.id.in_(instance_ids)))
