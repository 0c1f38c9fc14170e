"""What a store unit records (admission's refusals, say) reaches the metrics only when its transaction commits:
alone or in a SQLite group commit beside units that roll back. And each store's metrics are its own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from sqlalchemy import Connection, text

from athena_server.control.admission import Workload, check_concurrency, check_cost
from athena_server.metrics import Metrics, after_commit
from athena_server.storage.policy import PolicyDoc
from athena_server.storage.store import Store


def count(store: Store, reason: str) -> float:
    value = store.metrics.registry.get_sample_value("athena_admission_refusals_total", {"reason": reason})
    return value or 0.0


def recording(reason: str, *, fail: bool) -> Callable[[Connection], int]:
    def unit(conn: Connection) -> int:
        after_commit(conn, lambda m: m.admission_refusals(reason).inc())
        conn.execute(text("SELECT 1"))
        if fail:
            raise ValueError("rolled back")
        return 1

    return unit


async def test_a_unit_that_commits_records_and_one_that_rolls_back_does_not(store: Store) -> None:
    assert await store.write(recording("kept", fail=False)) == 1
    with pytest.raises(ValueError):
        await store.write(recording("lost", fail=True))
    assert (count(store, "kept"), count(store, "lost")) == (1, 0)


async def test_in_a_group_only_the_committed_units_record(store: Store) -> None:
    units = [recording("group", fail=i % 2 == 1) for i in range(10)]
    # Submitted together, so the writer commits them in groups with a savepoint per unit.
    outcomes = await asyncio.gather(*(store.write(u) for u in units), return_exceptions=True)
    assert [isinstance(o, ValueError) for o in outcomes] == [i % 2 == 1 for i in range(10)]
    assert count(store, "group") == 5


async def test_each_store_has_its_own_registry(store: Store) -> None:
    other = Metrics()
    await store.write(recording("mine", fail=False))
    assert count(store, "mine") == 1
    assert other.registry.get_sample_value("athena_admission_refusals_total", {"reason": "mine"}) is None
    text_ = (await store.metrics.scrape()).decode()
    assert 'athena_admission_refusals_total{reason="mine"} 1.0' in text_
    assert 'athena_runs_active{status="running"} 0.0' in text_


async def test_admission_counts_each_refusal_by_reason_once_it_committed(store: Store) -> None:
    """`_reject` records its reason after the admitting transaction commits; an admitted run records none."""
    at = 1_780_000_000_000
    work = Workload(session_id="s", run_id="r", trace_id="t", metadata={})
    no_room = PolicyDoc(schema_version=1, updated_at_ms=0, max_concurrent_runs=0, cost_budget_daily_usd=0.0)
    room = PolicyDoc(schema_version=1, updated_at_ms=0, max_concurrent_runs=5, cost_budget_daily_usd=10.0)
    assert await store.write(lambda conn: check_concurrency(conn, no_room, work, at)) is not None
    assert await store.write(lambda conn: check_cost(conn, no_room, work, at)) is not None
    assert await store.write(lambda conn: check_concurrency(conn, room, work, at)) is None
    assert await store.write(lambda conn: check_cost(conn, room, work, at)) is None
    assert count(store, "max-concurrent-runs-exceeded") == 1
    assert count(store, "cost-budget-exceeded") == 1
