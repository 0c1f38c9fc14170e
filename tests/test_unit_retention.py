"""Retention at the store: exactly which rows a sweep deletes and keeps at the age boundary, active runs
untouched, batches bounded, the lease, and two sweepers at once on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Connection, Table, func, insert, select

from athena.v1 import events_pb2
from athena_client.vocab import EventType, RunStatus, WorkflowRunStatus
from athena_server import cursors
from athena_server.config import Settings, normalise_database_url
from athena_server.control.events import EventService
from athena_server.engine.retention import Cutoffs, RetentionSweep
from athena_server.errors import AthenaError
from athena_server.storage import retention
from athena_server.storage.migrate import migrate
from athena_server.storage.store import Store
from athena_server.storage.tables import (
    cancel_requests,
    events,
    evidence,
    policy_rejections,
    runs,
    schedule_logs,
    sessions,
    transcript_entries,
    work_items,
    workflow_runs,
    workflow_steps,
)
from tests.support.postgres import new_database
from tests.support.shapes import unique

DAY = 86_400_000
# Noon UTC, so "today" began 12 h before NOW.
NOW = 1_781_006_400_000
HISTORY_CUT = NOW - 30 * DAY
EVENT_CUT = NOW - 7 * DAY


def settings(batch_rows: int = 1000, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "run_history_retention_days": 30,
        "event_retention_days": 7,
        "retention_batch_rows": batch_rows,
        "retention_sweep_seconds": 3600,
    }
    return Settings(**(values | extra))


def add(table: Table, **values: Any) -> Any:
    def unit(conn: Connection) -> Any:
        key = conn.execute(insert(table).values(**values)).inserted_primary_key
        assert key is not None
        return key[0]

    return unit


def run_row(run_id: str, session_id: str, status: str, finished: int | None, evidence_count: int = 0) -> dict[str, Any]:
    return {
        "id": run_id,
        "session_id": session_id,
        "status": status,
        "provider": "mock",
        "model": "default",
        "input": "hi",
        "trace_id": "t",
        "created_at_ms": (finished or NOW) - 1000,
        "started_at_ms": (finished or NOW) - 500,
        "finished_at_ms": finished,
        "attempts": 1,
        "evidence_count": evidence_count,
        "timeout_ms": 0,
    }


async def put(store: Store, table: Table, **values: Any) -> Any:
    return await store.write(add(table, **values))


async def put_run(store: Store, session_id: str, status: str, finished: int | None, evidence_rows: int = 0) -> str:
    run_id = unique("run")
    await put(store, runs, **run_row(run_id, session_id, status, finished, evidence_rows))
    for i in range(evidence_rows):
        await put(store, evidence, run_id=run_id, label=f"e{i}", type="text", content="x", created_at_ms=NOW)
    return run_id


async def put_event(store: Store, created: int, run_id: str | None = None) -> int:
    return int(
        await put(store, events, type="run.created", trace_id="t", run_id=run_id, payload={}, created_at_ms=created)
    )


async def ids(store: Store, column: Any) -> set[Any]:
    return set(await store.read(lambda conn: conn.execute(select(column)).scalars().all()))


async def count(store: Store, table: Table) -> int:
    return int(await store.read(lambda conn: conn.execute(select(func.count()).select_from(table)).scalar_one()))


def sweeper(store: Store, owner: str = "me", at: int = NOW, **kw: Any) -> RetentionSweep:
    return RetentionSweep(store, settings(**kw), owner, clock=lambda: at)


async def test_runs_that_ended_before_the_age_go_with_their_evidence_and_active_runs_stay(any_store: Store) -> None:
    s = unique("s")
    old = await put_run(any_store, s, RunStatus.SUCCEEDED, HISTORY_CUT - 1, evidence_rows=2)
    at_cut = await put_run(any_store, s, RunStatus.FAILED, HISTORY_CUT, evidence_rows=1)
    running = await put_run(any_store, s, RunStatus.RUNNING, None)
    pending = await put_run(any_store, unique("s"), RunStatus.PENDING, None)
    await put(any_store, cancel_requests, run_id=old, session_id=s, requested_at_ms=NOW - 40 * DAY, trace_id="t")
    await put(any_store, cancel_requests, run_id=running, session_id=s, requested_at_ms=NOW - 40 * DAY, trace_id="t")

    report = await sweeper(any_store).sweep()

    assert report is not None
    assert (report.deleted["runs"], report.deleted["evidence"], report.deleted["cancelRequests"]) == (1, 2, 1)
    assert await ids(any_store, runs.c.id) == {at_cut, running, pending}
    assert await ids(any_store, evidence.c.run_id) == {at_cut}
    assert await ids(any_store, cancel_requests.c.run_id) == {running}


async def test_a_run_that_finished_today_stays_whatever_the_age_for_the_daily_cost_budget(any_store: Store) -> None:
    s = unique("s")
    today = await put_run(any_store, s, RunStatus.SUCCEEDED, NOW - 11 * 3_600_000)
    yesterday = await put_run(any_store, s, RunStatus.SUCCEEDED, NOW - 13 * 3_600_000)

    report = await sweeper(any_store, run_history_retention_days=0.01).sweep()

    assert report is not None and report.deleted["runs"] == 1
    assert await ids(any_store, runs.c.id) == {today}
    assert yesterday not in await ids(any_store, runs.c.id)
    assert Cutoffs.at(NOW, 0.01, None).runs_ms == NOW - 12 * 3_600_000


async def test_idle_sessions_lose_their_transcript_unless_a_run_is_active_or_work_is_queued(any_store: Store) -> None:
    idle, busy, queued, recent = (unique(n) for n in ("idle", "busy", "queued", "recent"))
    for sid, updated in (
        (idle, HISTORY_CUT - 1),
        (busy, HISTORY_CUT - 1),
        (queued, HISTORY_CUT - 1),
        (recent, HISTORY_CUT),
    ):
        await put(
            any_store, sessions, id=sid, provider="mock", model="default", created_at_ms=updated, updated_at_ms=updated
        )
        for i in range(3):
            await put(
                any_store,
                transcript_entries,
                id=unique("e"),
                session_id=sid,
                role="user",
                content=str(i),
                created_at_ms=updated,
            )
    await put_run(any_store, busy, RunStatus.RUNNING, None)
    await put(any_store, work_items, id=unique("w"), session_id=queued, payload="p", mode="followup", created_at_ms=NOW)

    report = await sweeper(any_store).sweep()

    assert report is not None
    assert (report.deleted["sessions"], report.deleted["transcriptEntries"]) == (1, 3)
    assert await ids(any_store, sessions.c.id) >= {busy, queued, recent}
    assert idle not in await ids(any_store, sessions.c.id)
    assert await ids(any_store, transcript_entries.c.session_id) >= {busy, queued, recent}
    assert idle not in await ids(any_store, transcript_entries.c.session_id)


async def test_events_go_from_the_start_of_the_log_up_to_the_first_younger_one_except_an_active_runs(
    any_store: Store,
) -> None:
    running = await put_run(any_store, unique("s"), RunStatus.RUNNING, None)
    first = await put_event(any_store, EVENT_CUT - 10)
    active = await put_event(any_store, EVENT_CUT - 9, run_id=running)
    second = await put_event(any_store, EVENT_CUT - 1)
    young = await put_event(any_store, EVENT_CUT)
    old_after_young = await put_event(any_store, EVENT_CUT - 5)  # a replica's clock behind: it waits for `young`

    report = await sweeper(any_store).sweep()

    assert report is not None and report.deleted["events"] == 2 and report.event_seq is not None
    left = await ids(any_store, events.c.seq)
    assert left == {active, young, old_after_young, report.event_seq}
    assert {first, second}.isdisjoint(left)
    assert await any_store.read(retention.events_pruned_through) == second
    pruned = await any_store.read(
        lambda conn: conn.execute(select(events).where(events.c.seq == report.event_seq)).one()
    )
    assert pruned.type == EventType.EVENTS_PRUNED
    assert pruned.payload == {
        "deleted": {table: (2 if table == "events" else 0) for table in retention.TABLES},
        "eventsPrunedThrough": f"evt_{second}",
    }


async def test_resume_points_and_cursors_below_the_watermark_are_refused_at_it_they_open(store: Store) -> None:
    seqs = [await put_event(store, EVENT_CUT - 10 + i) for i in range(3)]
    kept = await put_event(store, EVENT_CUT)
    await store.write(partial(retention.prune_events, before_ms=EVENT_CUT, budget=10, after=0))
    service = EventService(store, settings())
    through = seqs[-1]
    for after in (f"evt_{through - 1}", cursors.encode(through - 1)):
        with pytest.raises(AthenaError) as exc:
            await service.open_stream(events_pb2.StreamEventsRequest(after=after))
        assert exc.value.code_name == "EVENT_CURSOR_EXPIRED"
        assert exc.value.message == (
            f"events.stream.after '{after}' is older than the retained events (events up to evt_{through} were "
            "deleted by retention); list GET /api/v1/events without a cursor to start again from the oldest "
            "retained event."
        )
    with pytest.raises(AthenaError) as exc:
        await service.list(events_pb2.ListEventsRequest(cursor=cursors.encode(seqs[0])))
    assert exc.value.code_name == "EVENT_CURSOR_EXPIRED"
    assert exc.value.message.startswith(f"events.list.cursor '{cursors.encode(seqs[0])}' is older than")
    page = await service.list(events_pb2.ListEventsRequest(cursor=cursors.encode(through)))
    assert [e.id for e in page.events] == [f"evt_{kept}"]
    stream = cast(
        AsyncGenerator[events_pb2.Event, None],
        await service.open_stream(events_pb2.StreamEventsRequest(after=f"evt_{through}")),
    )
    assert (await anext(stream)).id == f"evt_{kept}"
    await stream.aclose()


async def test_a_sweep_that_deletes_nothing_appends_no_event_and_the_watermark_stays(store: Store) -> None:
    await put_event(store, EVENT_CUT)
    before = await count(store, events)

    report = await sweeper(store).sweep()

    assert report is not None and report.event_seq is None and set(report.deleted.values()) == {0}
    assert await count(store, events) == before
    assert await store.read(retention.events_pruned_through) == 0


async def test_every_batch_deletes_at_most_the_batch_rows(any_store: Store) -> None:
    seqs = [await put_event(any_store, EVENT_CUT - 100 + i) for i in range(10)]

    batches = []
    after = 0
    while True:
        batch = await any_store.write(partial(retention.prune_events, before_ms=EVENT_CUT, budget=3, after=after))
        batches.append(batch.deleted.get("events", 0))
        after = batch.after
        if not batch.more:
            break

    assert batches == [3, 3, 3, 1]
    assert await any_store.read(retention.events_pruned_through) == seqs[-1]
    s = unique("s")
    big = await put_run(any_store, s, RunStatus.SUCCEEDED, HISTORY_CUT - 30, evidence_rows=1)  # 2 rows
    small = [await put_run(any_store, s, RunStatus.SUCCEEDED, HISTORY_CUT - 20 + i) for i in range(3)]  # 1 row each
    first = await any_store.write(partial(retention.prune_runs, before_ms=HISTORY_CUT, budget=3))
    assert (first.deleted, first.more) == ({"evidence": 1, "cancelRequests": 0, "runs": 2}, True)
    assert big not in await ids(any_store, runs.c.id) and small[0] not in await ids(any_store, runs.c.id)
    report = await sweeper(any_store, batch_rows=3).sweep()
    assert report is not None and report.deleted["runs"] == 2 and report.batches == 1 + 1 + 1 + 1 + 1 + 1
    assert not {*small} & await ids(any_store, runs.c.id)


async def test_schedule_logs_rejections_and_superseded_workflow_runs_at_the_boundary(any_store: Store) -> None:
    sched = unique("sched")
    for finished in (HISTORY_CUT - 1, HISTORY_CUT):
        await put(
            any_store,
            schedule_logs,
            id=unique("log"),
            schedule_id=sched,
            session_id="s",
            started_at_ms=finished - 10,
            finished_at_ms=finished,
            status="ok",
        )
    for created in (HISTORY_CUT - 1, HISTORY_CUT):
        await put(
            any_store,
            policy_rejections,
            created_at_ms=created,
            session_id="s",
            active_runs=1,
            max_concurrent_runs=1,
            reason="x",
        )
    wf = unique("wf")
    statuses: list[str] = [
        WorkflowRunStatus.FAILED,
        WorkflowRunStatus.OK,
        WorkflowRunStatus.OK,
        WorkflowRunStatus.FAILED,
    ]
    ends = [HISTORY_CUT - 3, HISTORY_CUT - 2, HISTORY_CUT, HISTORY_CUT - 1]  # the last is the latest
    wf_runs = []
    for status, fin in zip(statuses, ends, strict=True):
        run_id = unique("wfr")
        wf_runs.append(run_id)
        await put(
            any_store,
            workflow_runs,
            id=run_id,
            workflow_id=wf,
            status=status,
            created_at_ms=fin - 10,
            updated_at_ms=fin,
            finished_at_ms=fin,
        )
        for step in ("a", "b"):
            await put(
                any_store,
                workflow_steps,
                workflow_run_id=run_id,
                step_id=step,
                position=0,
                status=status,
                attempt=1,
                updated_at_ms=fin,
            )

    report = await sweeper(any_store).sweep()

    assert report is not None
    assert report.deleted["scheduleLogs"] == 1 and report.deleted["policyRejections"] == 1
    assert (report.deleted["workflowRuns"], report.deleted["workflowSteps"]) == (2, 4)
    assert await ids(any_store, schedule_logs.c.finished_at_ms) >= {HISTORY_CUT}
    assert HISTORY_CUT - 1 not in await ids(any_store, schedule_logs.c.finished_at_ms)
    assert HISTORY_CUT - 1 not in await ids(any_store, policy_rejections.c.created_at_ms)
    assert await ids(any_store, workflow_runs.c.id) >= {wf_runs[2], wf_runs[3]}
    assert not {wf_runs[0], wf_runs[1]} & await ids(any_store, workflow_runs.c.id)
    assert not {wf_runs[0], wf_runs[1]} & await ids(any_store, workflow_steps.c.workflow_run_id)


async def test_a_long_transcript_goes_oldest_first_across_batches_and_the_session_row_last(any_store: Store) -> None:
    sid = unique("s")
    await put(any_store, sessions, id=sid, provider="mock", model="m", created_at_ms=1, updated_at_ms=HISTORY_CUT - 1)
    entries = [
        await put(
            any_store, transcript_entries, id=unique("e"), session_id=sid, role="user", content="c", created_at_ms=1
        )
        for _ in range(5)
    ]
    first = await any_store.write(partial(retention.prune_sessions, before_ms=HISTORY_CUT, budget=3))
    assert (first.deleted, first.more) == ({"transcriptEntries": 3, "sessions": 0}, True)
    assert await ids(any_store, transcript_entries.c.seq) >= set(entries[3:])
    assert not set(entries[:3]) & await ids(any_store, transcript_entries.c.seq)
    second = await any_store.write(partial(retention.prune_sessions, before_ms=HISTORY_CUT, budget=3))
    assert second.deleted == {"transcriptEntries": 2, "sessions": 1}
    assert sid not in await ids(any_store, sessions.c.id)


async def test_the_lease_lets_one_process_sweep_per_interval(any_store: Store) -> None:
    assert await sweeper(any_store, owner="a").sweep() is not None
    assert await sweeper(any_store, owner="b").sweep() is None  # held until a's next sweep is due
    assert await sweeper(any_store, owner="a").sweep() is not None  # the holder's own next turn
    assert await sweeper(any_store, owner="b", at=NOW + 3_600_000).sweep() is not None  # due: anyone may take it


# ---- PostgreSQL: two sweepers at once ------------------------------------------------------------------


@pytest.fixture
def pg_url(postgres_cluster: str, tmp_path: Path) -> Iterator[str]:
    with new_database(postgres_cluster) as url:
        yield normalise_database_url(url, tmp_path)


@pytest.fixture
async def pg_stores(pg_url: str) -> AsyncIterator[tuple[Store, Store]]:
    a, b = Store(pg_url), Store(pg_url)
    await migrate(a)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_two_sweepers_at_once_on_postgresql_delete_each_row_once(pg_stores: tuple[Store, Store]) -> None:
    a, b = pg_stores
    s = unique("s")
    old_runs = [await put_run(a, s, RunStatus.SUCCEEDED, HISTORY_CUT - 100 + i, evidence_rows=1) for i in range(20)]
    kept = await put_run(a, s, RunStatus.RUNNING, None)
    old_events = [await put_event(a, EVENT_CUT - 100 + i) for i in range(50)]
    young = await put_event(a, EVENT_CUT)

    reports = await asyncio.gather(
        sweeper(a, owner="a", batch_rows=7).sweep(), sweeper(b, owner="b", batch_rows=7).sweep()
    )

    done = [r for r in reports if r is not None]
    assert len(done) >= 1
    assert sum(r.deleted["runs"] for r in done) == 20
    assert sum(r.deleted["evidence"] for r in done) == 20
    assert sum(r.deleted["events"] for r in done) == 50
    assert await ids(a, runs.c.id) == {kept}
    assert young in await ids(a, events.c.seq) and not set(old_events) & await ids(a, events.c.seq)
    assert not set(old_runs) & await ids(a, evidence.c.run_id)
    assert await a.read(retention.events_pruned_through) == old_events[-1]
    # Without the lease, the batches themselves are idempotent: both run every batch, each row goes once.
    more = [await put_event(a, EVENT_CUT - 50 + i) for i in range(40)]
    present = await ids(a, events.c.seq)  # `young`, `events.pruned` and `more`: all older than NOW + 1

    async def drain(store: Store) -> int:
        total, after = 0, 0
        while True:
            batch = await store.write(partial(retention.prune_events, before_ms=NOW + 1, budget=9, after=after))
            total += batch.deleted.get("events", 0)
            after = batch.after
            if not batch.more:
                return total

    totals = await asyncio.gather(drain(a), drain(b))
    assert sum(totals) == len(present) == 42
    assert await count(a, events) == 0
    assert await a.read(retention.events_pruned_through) == more[-1]


# ---- the exact rules of each batch: order, bounds, `more`, the watermark, the lease --------------------


def call(fn: Any, **kw: Any) -> Any:
    return partial(fn, **kw)


async def lease(store: Store) -> tuple[Any, ...]:
    row = await store.read(
        lambda conn: conn.execute(
            select(
                retention.retention_state.c.lease_owner,
                retention.retention_state.c.lease_until_ms,
                retention.retention_state.c.swept_at_ms,
            )
        ).one()
    )
    return tuple(row)


async def test_the_lease_has_one_owner_until_it_expires_and_finish_holds_it_until_the_next_sweep(store: Store) -> None:
    assert await store.write(call(retention.claim, owner="a", now_ms=NOW, until_ms=NOW + 100))
    assert await lease(store) == ("a", NOW + 100, None)
    assert not await store.write(call(retention.claim, owner="b", now_ms=NOW + 99, until_ms=NOW + 200))
    assert not await store.write(call(retention.renew, owner="b", until_ms=NOW + 300))
    assert await lease(store) == ("a", NOW + 100, None)
    assert await store.write(call(retention.renew, owner="a", until_ms=NOW + 150))
    assert not await store.write(call(retention.claim, owner="b", now_ms=NOW + 149, until_ms=NOW + 200))
    done = call(retention.finish, owner="a", now_ms=NOW + 120, next_at_ms=NOW + 1000, deleted={}, trace_id="t")
    assert await store.write(done) is None
    assert await lease(store) == ("a", NOW + 1000, NOW + 120)
    assert not await store.write(call(retention.claim, owner="b", now_ms=NOW + 999, until_ms=NOW + 1100))
    assert await store.write(call(retention.claim, owner="b", now_ms=NOW + 1000, until_ms=NOW + 1100))
    assert await lease(store) == ("b", NOW + 1100, NOW + 120)
    late = call(retention.finish, owner="a", now_ms=NOW + 2000, next_at_ms=NOW + 5000, deleted={}, trace_id="t")
    assert await store.write(late) is None
    assert await lease(store) == ("b", NOW + 1100, NOW + 120)  # a finish by a process that lost the lease


async def test_the_pruned_event_counts_every_table_with_zero_for_those_not_given(store: Store) -> None:
    await store.write(call(retention.claim, owner="a", now_ms=NOW, until_ms=NOW + 100))
    seq = await store.write(
        call(retention.finish, owner="a", now_ms=NOW, next_at_ms=NOW + 1, deleted={"runs": 2}, trace_id="t")
    )
    row = await store.read(lambda conn: conn.execute(select(events).where(events.c.seq == seq)).one())
    assert row.payload == {"deleted": {t: (2 if t == "runs" else 0) for t in retention.TABLES}}


async def test_an_events_batch_covers_only_ids_after_its_start_and_moves_past_an_active_runs_events(
    any_store: Store,
) -> None:
    running = await put_run(any_store, unique("s"), RunStatus.RUNNING, None)
    ended = await put_run(any_store, unique("s"), RunStatus.SUCCEEDED, HISTORY_CUT)
    e1 = await put_event(any_store, EVENT_CUT - 10)
    active = await put_event(any_store, EVENT_CUT - 9, run_id=running)
    of_ended = await put_event(any_store, EVENT_CUT - 8, run_id=ended)
    e4 = await put_event(any_store, EVENT_CUT - 7)
    young = await put_event(any_store, EVENT_CUT)

    def prune(budget: int, after: int) -> Any:
        return any_store.write(call(retention.prune_events, before_ms=EVENT_CUT, budget=budget, after=after))

    first = await prune(1, e1)
    assert (first.deleted, first.after, first.more) == ({}, active, True)
    second = await prune(1, active)
    assert (second.deleted, second.after, second.more) == ({"events": 1}, of_ended, True)
    assert await any_store.read(retention.events_pruned_through) == of_ended
    third = await prune(3, e1)
    assert (third.deleted, third.after, third.more) == ({"events": 1}, e4, False)
    last = await prune(3, e4)
    assert (last.deleted, last.after, last.more) == ({}, e4, False)
    assert await ids(any_store, events.c.seq) == {e1, active, young}
    assert await any_store.read(retention.events_pruned_through) == e4


async def test_events_go_in_id_order_whatever_order_they_were_written_in(any_store: Store) -> None:
    for seq in (1001, 1000):
        await put(any_store, events, seq=seq, type="run.created", trace_id="t", payload={}, created_at_ms=EVENT_CUT - 1)
    batch = await any_store.write(call(retention.prune_events, before_ms=EVENT_CUT, budget=1, after=0))
    assert (batch.deleted, batch.after, batch.more) == ({"events": 1}, 1000, True)
    assert await ids(any_store, events.c.seq) == {1001}
    assert await any_store.read(retention.events_pruned_through) == 1000


async def test_runs_go_oldest_finished_first_and_a_run_larger_than_the_batch_goes_alone(any_store: Store) -> None:
    s = unique("s")
    newer = await put_run(any_store, s, RunStatus.SUCCEEDED, HISTORY_CUT - 10)
    big = await put_run(any_store, s, RunStatus.FAILED, HISTORY_CUT - 20, evidence_rows=3)
    batch = await any_store.write(call(retention.prune_runs, before_ms=HISTORY_CUT, budget=2))
    assert (batch.deleted, batch.more) == ({"evidence": 3, "cancelRequests": 0, "runs": 1}, True)
    assert await ids(any_store, runs.c.id) == {newer}
    assert big not in await ids(any_store, evidence.c.run_id)


async def put_session(store: Store, sid: str, updated: int, entries: int = 0) -> None:
    await put(store, sessions, id=sid, provider="mock", model="m", created_at_ms=1, updated_at_ms=updated)
    for _ in range(entries):
        await put(store, transcript_entries, id=unique("e"), session_id=sid, role="user", content="c", created_at_ms=1)


async def test_idle_sessions_go_oldest_first_then_by_id(any_store: Store) -> None:
    p = unique("s")
    for suffix, updated in (
        ("a", HISTORY_CUT - 10),
        ("b", HISTORY_CUT - 20),
        ("d", HISTORY_CUT - 30),
        ("c", HISTORY_CUT - 30),
    ):
        await put_session(any_store, f"{p}-{suffix}", updated)
    order: list[str] = []
    for _ in range(4):
        before = await ids(any_store, sessions.c.id)
        batch = await any_store.write(call(retention.prune_sessions, before_ms=HISTORY_CUT, budget=1))
        assert (batch.deleted, batch.more) == ({"transcriptEntries": 0, "sessions": 1}, True)
        order.extend(before - await ids(any_store, sessions.c.id))
    assert order == [f"{p}-c", f"{p}-d", f"{p}-b", f"{p}-a"]


async def test_a_sessions_batch_counts_entries_and_session_rows_against_the_budget(any_store: Store) -> None:
    p = unique("s")
    for n, entries in enumerate((1, 1, 0, 5)):
        await put_session(any_store, f"{p}-{n}", HISTORY_CUT - 100 + n, entries)

    def prune(budget: int) -> Any:
        return any_store.write(call(retention.prune_sessions, before_ms=HISTORY_CUT, budget=budget))

    first = await prune(4)
    assert (first.deleted, first.more) == ({"transcriptEntries": 2, "sessions": 2}, True)
    assert await ids(any_store, sessions.c.id) == {f"{p}-2", f"{p}-3"}
    second = await prune(10)
    assert (second.deleted, second.more) == ({"transcriptEntries": 5, "sessions": 2}, False)
    await put_session(any_store, f"{p}-4", HISTORY_CUT - 50, 1)
    await put_session(any_store, f"{p}-5", HISTORY_CUT - 40, 0)
    third = await prune(3)  # 1 entry + 1 session leave room for exactly the next empty session
    assert (third.deleted, third.more) == ({"transcriptEntries": 1, "sessions": 2}, False)
    await put_session(any_store, f"{p}-6", HISTORY_CUT - 30)
    await put_session(any_store, f"{p}-7", HISTORY_CUT - 20)
    fourth = await prune(2)
    assert (fourth.deleted, fourth.more) == ({"transcriptEntries": 0, "sessions": 2}, True)
    assert await count(any_store, sessions) == 0


async def test_a_transcript_goes_in_entry_order_whatever_order_it_was_written_in(any_store: Store) -> None:
    sid = unique("s")
    await put_session(any_store, sid, HISTORY_CUT - 1)
    for seq in (2001, 2000):
        await put(
            any_store,
            transcript_entries,
            seq=seq,
            id=unique("e"),
            session_id=sid,
            role="user",
            content="c",
            created_at_ms=1,
        )
    batch = await any_store.write(call(retention.prune_sessions, before_ms=HISTORY_CUT, budget=1))
    assert (batch.deleted, batch.more) == ({"transcriptEntries": 1, "sessions": 0}, True)
    assert await ids(any_store, transcript_entries.c.seq) == {2001}


async def test_schedule_logs_and_rejections_go_oldest_first_at_most_the_budget(any_store: Store) -> None:
    ends = (HISTORY_CUT - 10, HISTORY_CUT - 20, HISTORY_CUT - 30)
    for fin in ends:
        await put(
            any_store,
            schedule_logs,
            id=unique("log"),
            schedule_id="x",
            session_id="s",
            started_at_ms=fin - 1,
            finished_at_ms=fin,
            status="ok",
        )
        await put(
            any_store,
            policy_rejections,
            created_at_ms=fin,
            session_id="s",
            active_runs=1,
            max_concurrent_runs=1,
            reason="x",
        )
    for fn, key, column in (
        (retention.prune_schedule_logs, "scheduleLogs", schedule_logs.c.finished_at_ms),
        (retention.prune_rejections, "policyRejections", policy_rejections.c.created_at_ms),
    ):
        first = await any_store.write(call(fn, before_ms=HISTORY_CUT, budget=2))
        assert (first.deleted, first.more) == ({key: 2}, True)
        assert await ids(any_store, column) == {HISTORY_CUT - 10}
        second = await any_store.write(call(fn, before_ms=HISTORY_CUT, budget=2))
        assert (second.deleted, second.more) == ({key: 1}, False)
        assert await ids(any_store, column) == set()


async def test_workflow_runs_go_whole_oldest_first_within_the_budget_and_never_an_unended_one(any_store: Store) -> None:
    wf = unique("wf")

    async def wf_run(status: str, finished: int, steps: int) -> str:
        run_id = unique("wfr")
        await put(
            any_store,
            workflow_runs,
            id=run_id,
            workflow_id=wf,
            status=status,
            created_at_ms=1,
            updated_at_ms=finished,
            finished_at_ms=finished,
        )
        for i in range(steps):
            await put(
                any_store,
                workflow_steps,
                workflow_run_id=run_id,
                step_id=f"s{i}",
                position=i,
                status=status,
                attempt=1,
                updated_at_ms=finished,
            )
        return run_id

    r3 = await wf_run(
        WorkflowRunStatus.FAILED, HISTORY_CUT - 20, 3
    )  # written first, finished third (after an r1 and an r2)
    await wf_run(WorkflowRunStatus.OK, HISTORY_CUT - 40, 1)
    await wf_run(WorkflowRunStatus.OK, HISTORY_CUT - 30, 0)
    r4 = await wf_run(WorkflowRunStatus.OK, HISTORY_CUT - 10, 0)
    running = await wf_run(WorkflowRunStatus.RUNNING, HISTORY_CUT - 50, 0)
    latest = await wf_run(WorkflowRunStatus.FAILED, HISTORY_CUT - 5, 1)

    def prune(budget: int) -> Any:
        return any_store.write(call(retention.prune_workflow_runs, before_ms=HISTORY_CUT, budget=budget))

    first = await prune(3)  # r1 (2 rows) + r2 (1 row) fill it; r3 (4 rows) waits
    assert (first.deleted, first.more) == ({"workflowSteps": 1, "workflowRuns": 2}, True)
    assert await ids(any_store, workflow_runs.c.id) == {r3, r4, running, latest}
    second = await prune(3)  # r3 alone is larger than the budget: it goes whole, alone
    assert (second.deleted, second.more) == ({"workflowSteps": 3, "workflowRuns": 1}, True)
    assert await ids(any_store, workflow_runs.c.id) == {r4, running, latest}
    third = await prune(5)
    assert (third.deleted, third.more) == ({"workflowSteps": 0, "workflowRuns": 1}, False)
    last = await prune(5)
    assert (last.deleted, last.more) == ({}, False)
    assert await ids(any_store, workflow_runs.c.id) == {running, latest}
    assert await ids(any_store, workflow_steps.c.workflow_run_id) == {latest}
