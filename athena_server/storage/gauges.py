"""The store's facts `/metrics` shows, read in one transaction per scrape (athena_server/metrics.py).

Each query is bounded by an index (runs by status, runs by finish time, schedules by enabled and due time)
or by a table that only holds what is queued (work items leave it when done), so a scrape costs the same
whatever the history's size.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from athena_server.storage import policy, runs
from athena_server.storage.run_transitions import ACTIVE
from athena_server.storage.tables import runs as runs_table
from athena_server.storage.tables import schedules, work_items

DAY_MS = 86_400_000

_ACTIVE = (
    select(runs_table.c.status, func.count())
    .where(runs_table.c.status.in_([str(status) for status in ACTIVE]))
    .group_by(runs_table.c.status)
)
_WORK_ITEMS = select(func.count()).select_from(work_items)
_MOST_OVERDUE = select(func.min(schedules.c.next_run_at_ms)).where(schedules.c.enabled.is_(True))


@dataclass(frozen=True)
class Snapshot:
    active: dict[str, int]  # every active status, 0 when none
    max_concurrent_runs: int | None
    work_items: int
    schedule_lag_ms: int
    cost_today_usd: float
    cost_budget_daily_usd: float | None


def read(conn: Connection, at_ms: int) -> Snapshot:
    """The facts as of `at_ms` (cost today: runs finished since the UTC day began, as admission counts it)."""
    active = {str(status): 0 for status in ACTIVE}
    for status, count in conn.execute(_ACTIVE).all():
        active[status] = int(count)
    doc = policy.get(conn)
    due = conn.execute(_MOST_OVERDUE).scalar_one_or_none()
    return Snapshot(
        active=active,
        max_concurrent_runs=doc.max_concurrent_runs if doc is not None else None,
        work_items=int(conn.execute(_WORK_ITEMS).scalar_one()),
        schedule_lag_ms=max(0, at_ms - int(due)) if due is not None else 0,
        cost_today_usd=runs.cost_since(conn, at_ms - at_ms % DAY_MS),
        cost_budget_daily_usd=doc.cost_budget_daily_usd if doc is not None else None,
    )
