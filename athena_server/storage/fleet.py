"""Run counts by status, for the fleet summary."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from athena_server.storage.tables import runs


def counts_by_status(conn: Connection) -> dict[str, int]:
    q = select(runs.c.status, func.count()).group_by(runs.c.status)
    return {status: int(n) for status, n in conn.execute(q).all()}
