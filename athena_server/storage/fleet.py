"""Run counts by status, for the fleet summary."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from athena_server.storage.tables import runs

# One grouped COUNT (served by ix_runs_status) rather than a query per status: the counts are then one
# consistent snapshot, so the summary's total always equals the sum of its parts.
_COUNTS = select(runs.c.status, func.count()).group_by(runs.c.status)


def counts_by_status(conn: Connection) -> dict[str, int]:
    """`{status: number of runs}`; statuses without runs are absent."""
    return {str(status): int(n) for status, n in conn.execute(_COUNTS).all()}
