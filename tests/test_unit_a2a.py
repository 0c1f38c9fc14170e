"""The bus's store decisions, in process on a real SQLite store: an attempt is claimed once, settled once,
and the reaper settles the attempts of a dead process by their run's outcome."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, insert, select

from athena.v1 import a2a_dlq_pb2, a2a_pb2
from athena_server.config import Settings
from athena_server.control.a2a_dispatch import Failure, record_attempt
from athena_server.errors import AthenaError, ErrorCode
from athena_server.plane import ControlPlane
from athena_server.storage import a2a
from athena_server.storage.a2a import MessageRow
from athena_server.storage.tables import events, runs


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[ControlPlane]:
    """A control plane without background work: nothing delivers unless the test says so."""
    plane = ControlPlane(Settings(database_url=str(tmp_path / "a2a.db"), data_dir=tmp_path))
    await plane.start(background=False)
    try:
        yield plane
    finally:
        await plane.close()


async def _send(plane: ControlPlane, max_attempts: int = 2) -> MessageRow:
    sent = await plane.a2a.send(
        a2a_pb2.SendA2aMessageRequest(from_session_id="src", to_session_id="dst", input="hi", max_attempts=max_attempts)
    )
    row = await plane.store.read(lambda conn: a2a.get_message(conn, sent.id))
    assert row is not None
    return row


def _event_types(conn: Connection) -> list[str]:
    return [r.type for r in conn.execute(select(events.c.type).order_by(events.c.seq))]


async def test_an_attempt_is_claimed_once_and_settled_once(plane: ControlPlane) -> None:
    row = await _send(plane)

    def claim_twice(conn: Connection) -> list[bool]:
        return [a2a.claim(conn, row, "one", "run-1", 1), a2a.claim(conn, row, "two", "run-2", 1)]

    assert await plane.store.write(claim_twice) == [True, False]
    attempt = dataclasses.replace(row, status=a2a.DELIVERING, attempts=1, owner_id="one", run_id="run-1")
    failure = Failure("PROVIDER_ERROR", "no")

    def settle_twice(conn: Connection) -> None:
        record_attempt(conn, attempt, failure, 100, 50)
        record_attempt(conn, attempt, failure, 100, 50)  # a second settlement of the same attempt: nothing

    await plane.store.write(settle_twice)
    after = await plane.store.read(lambda conn: a2a.get_message(conn, row.id))
    assert after is not None
    assert (after.status, after.attempts, after.next_attempt_at_ms, after.owner_id) == ("pending", 1, 150, None)
    assert (after.last_error_code, after.run_id) == ("PROVIDER_ERROR", None)  # no run existed
    types = await plane.store.read(_event_types)
    assert types.count("a2a.message.failed") == 1


async def test_the_reaper_settles_a_dead_process_attempts_by_their_runs(plane: ControlPlane) -> None:
    lost, done = await _send(plane, max_attempts=1), await _send(plane)

    def claim(conn: Connection) -> None:
        assert a2a.claim(conn, lost, "dead", "run-lost", 1)
        assert a2a.claim(conn, done, "dead", "run-done", 1)
        conn.execute(
            insert(runs).values(
                id="run-done",
                session_id="dst",
                status="succeeded",
                provider="mock",
                model="default",
                input="hi",
                trace_id="t",
                created_at_ms=1,
                attempts=1,
                evidence_count=0,
                timeout_ms=0,
            )
        )

    await plane.store.write(claim)
    await plane.store.write(lambda conn: plane.a2a_dispatcher.release_owned(conn, ["dead"], 500))
    delivered = await plane.a2a.get(done.id)
    assert (delivered.status, delivered.run_id) == (a2a_pb2.A2A_MESSAGE_STATUS_DELIVERED, "run-done")
    dead = await plane.a2a.get(lost.id)
    assert dead.status == a2a_pb2.A2A_MESSAGE_STATUS_DEAD_LETTERED
    assert (dead.last_error.code, dead.attempts) == ("UNAVAILABLE", 1)
    listed = await plane.a2a.dead_letters(a2a_dlq_pb2.ListA2aDlqItemsRequest(status=a2a_dlq_pb2.A2A_DLQ_STATUS_PENDING))
    assert [i.id for i in listed.items] == [lost.id]


async def test_dead_letter_transitions_are_guarded(plane: ControlPlane) -> None:
    row = await _send(plane, max_attempts=1)
    await plane.store.write(lambda conn: a2a.claim(conn, row, "me", "r1", 1))
    attempt = dataclasses.replace(row, status=a2a.DELIVERING, attempts=1, owner_id="me", run_id="r1")
    await plane.store.write(lambda conn: record_attempt(conn, attempt, Failure("PROVIDER_ERROR", "no"), 2, 10))

    discarded = await plane.a2a.discard(row.id, "  ")
    assert discarded.updated and discarded.item.status == a2a_dlq_pb2.A2A_DLQ_STATUS_DISCARDED
    assert not (await plane.a2a.discard(row.id, None)).updated
    with pytest.raises(AthenaError) as refused:
        await plane.a2a.requeue(row.id)
    assert refused.value.code == ErrorCode.ERROR_CODE_CONFIG_ERROR
    with pytest.raises(AthenaError) as missing:
        await plane.a2a.requeue("a2a_nothing")
    assert missing.value.code == ErrorCode.ERROR_CODE_NOT_FOUND
    types = await plane.store.read(_event_types)
    assert types.count("a2a.dlq.discarded") == 1 and "a2a.dlq.requeued" not in types
