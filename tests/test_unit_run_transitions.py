"""The run status transition table, and the store refusing what it does not allow: a finished run never runs
again, and of two endings only the first is recorded (one status, one ending event)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Connection, select

from athena_client.vocab import EventType, RunStatus
from athena_server.storage import run_endings, runs
from athena_server.storage.run_transitions import ACTIVE, FINAL, INITIAL, RUN_TRANSITIONS, allowed, predecessors
from athena_server.storage.store import Store
from athena_server.storage.tables import events


def test_the_table_names_every_status_and_final_ones_lead_nowhere() -> None:
    assert set(RUN_TRANSITIONS) == set(RunStatus)
    assert FINAL == {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT}
    assert all(RUN_TRANSITIONS[status] == frozenset() for status in FINAL)
    assert set(ACTIVE) == INITIAL == {RunStatus.PENDING, RunStatus.RUNNING}


def test_the_allowed_moves() -> None:
    assert RUN_TRANSITIONS[RunStatus.PENDING] == {RunStatus.RUNNING, RunStatus.FAILED, RunStatus.CANCELLED}
    assert RUN_TRANSITIONS[RunStatus.RUNNING] == {
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.CANCELLED,
        RunStatus.TIMED_OUT,
    }
    assert predecessors(RunStatus.RUNNING) == (RunStatus.PENDING,)
    assert predecessors(RunStatus.SUCCEEDED) == (RunStatus.RUNNING,)
    assert predecessors(RunStatus.TIMED_OUT) == (RunStatus.RUNNING,)
    assert predecessors(RunStatus.FAILED) == (RunStatus.PENDING, RunStatus.RUNNING)
    assert predecessors(RunStatus.PENDING) == ()


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("pending", RunStatus.RUNNING, True),
        ("running", RunStatus.SUCCEEDED, True),
        ("pending", RunStatus.CANCELLED, True),
        ("pending", RunStatus.SUCCEEDED, False),
        ("pending", RunStatus.TIMED_OUT, False),
        ("running", RunStatus.PENDING, False),
        ("running", RunStatus.RUNNING, False),
        ("succeeded", RunStatus.RUNNING, False),
        ("succeeded", RunStatus.FAILED, False),
        ("cancelled", RunStatus.SUCCEEDED, False),
        ("timed-out", RunStatus.RUNNING, False),
        ("no-such-status", RunStatus.RUNNING, False),
    ],
)
def test_allowed_reads_the_table(old: str, new: RunStatus, expected: bool) -> None:
    assert allowed(old, new) is expected


def _insert(conn: Connection, run_id: str, status: RunStatus, session_id: str = "s1") -> None:
    runs.insert_run(
        conn,
        id=run_id,
        session_id=session_id,
        status=status,
        provider="mock",
        model="m",
        input="hi",
        trace_id="t1",
        created_at_ms=1000,
        timeout_ms=5000,
        attempts=0,
        evidence_count=0,
    )


def _fail(conn: Connection, run_id: str, status: RunStatus) -> bool:
    return run_endings.record_failure(
        conn,
        run_id=run_id,
        session_id="s1",
        trace_id="t1",
        provider="mock",
        model="m",
        status=status,
        event_type=EventType.RUN_FAILED,
        code="PROVIDER_ERROR",
        message="boom",
        at=3000,
        attempts=1,
        started=True,
        payload={},
    )


def _ending_events(conn: Connection, run_id: str) -> list[str]:
    q = select(events.c.type).where(events.c.run_id == run_id).order_by(events.c.seq)
    return [str(t) for t in conn.execute(q).scalars()]


async def test_a_succeeded_run_never_moves_back_to_running_nor_ends_twice(store: Store) -> None:
    run_id = str(uuid.uuid4())

    def unit(conn: Connection) -> tuple[bool, bool, bool, bool]:
        _insert(conn, run_id, RunStatus.PENDING)
        started = runs.move(conn, run_id, RunStatus.RUNNING, started_at_ms=2000)
        succeeded = runs.move(conn, run_id, RunStatus.SUCCEEDED, output="done", finished_at_ms=3000)
        again = runs.move(conn, run_id, RunStatus.RUNNING, started_at_ms=4000)
        failed = _fail(conn, run_id, RunStatus.FAILED)
        return started, succeeded, again, failed

    assert await store.write(unit) == (True, True, False, False)
    row = await store.read(lambda conn: runs.get(conn, run_id))
    assert row is not None
    assert (row.status, row.output, row.started_at_ms, row.finished_at_ms, row.error_code) == (
        "succeeded",
        "done",
        2000,
        3000,
        None,
    )
    # The refused failure wrote nothing: no event, no error on the run.
    assert await store.read(lambda conn: _ending_events(conn, run_id)) == []


async def test_of_two_endings_the_first_is_recorded(store: Store) -> None:
    run_id = str(uuid.uuid4())

    def unit(conn: Connection) -> tuple[bool, bool, bool]:
        _insert(conn, run_id, RunStatus.RUNNING)
        first = _fail(conn, run_id, RunStatus.CANCELLED)
        second = _fail(conn, run_id, RunStatus.FAILED)
        success = runs.move(conn, run_id, RunStatus.SUCCEEDED, output="late")
        return first, second, success

    assert await store.write(unit) == (True, False, False)
    row = await store.read(lambda conn: runs.get(conn, run_id))
    assert row is not None and (row.status, row.output) == ("cancelled", None)
    assert await store.read(lambda conn: _ending_events(conn, run_id)) == ["run.failed"]


async def test_a_pending_run_cannot_succeed_or_time_out_without_running(store: Store) -> None:
    run_id = str(uuid.uuid4())

    def unit(conn: Connection) -> tuple[bool, bool]:
        _insert(conn, run_id, RunStatus.PENDING)
        return runs.move(conn, run_id, RunStatus.SUCCEEDED), runs.move(conn, run_id, RunStatus.TIMED_OUT)

    assert await store.write(unit) == (False, False)
    row = await store.read(lambda conn: runs.get(conn, run_id))
    assert row is not None and row.status == "pending"


async def test_status_writes_outside_the_table_are_bugs(store: Store) -> None:
    run_id = str(uuid.uuid4())

    def created_final(conn: Connection) -> None:
        _insert(conn, run_id, RunStatus.SUCCEEDED)

    # The message names the statuses a run may be created in, so the bug it reports says what was expected.
    with pytest.raises(runs.IllegalTransition, match=r"^a run is created pending or running, not 'succeeded'$"):
        await store.write(created_final)
    assert await store.read(lambda conn: runs.get(conn, run_id)) is None

    def unchecked(conn: Connection) -> None:
        _insert(conn, run_id, RunStatus.RUNNING)
        runs.update_run(conn, run_id, status=RunStatus.SUCCEEDED)

    with pytest.raises(runs.IllegalTransition, match=r"runs\.move"):
        await store.write(unchecked)

    def back_to_pending(conn: Connection) -> None:
        runs.move(conn, run_id, RunStatus.PENDING)

    with pytest.raises(runs.IllegalTransition, match="no run status moves to"):
        await store.write(back_to_pending)


async def test_update_run_sets_the_columns_it_is_given_on_that_run_only(store: Store) -> None:
    mine, other = str(uuid.uuid4()), str(uuid.uuid4())

    def unit(conn: Connection) -> None:
        _insert(conn, mine, RunStatus.RUNNING)
        _insert(conn, other, RunStatus.RUNNING, session_id="s2")
        runs.update_run(conn, mine, pid=4242)

    await store.write(unit)
    got = await store.read(lambda conn: (runs.get(conn, mine), runs.get(conn, other)))
    assert got[0] is not None and got[0].pid == 4242 and got[0].status == RunStatus.RUNNING
    assert got[1] is not None and got[1].pid is None
