"""Delivery of agent-to-agent messages: a background dispatcher in each server process.

Each attempt is claimed in the store (`pending` → `delivering`, owned, with the run id chosen up front), so
however many processes dispatch, exactly one delivers it. Delivery is an ordinary run in the target session
through `RunService.create` (the policy's admission, the session's turn, the run record and `run.*`
events, as a direct run), whose input is the message and whose metadata names it. The attempt is settled
in one transaction with its event: `a2a.message.delivered` when the run succeeded; otherwise
`a2a.message.failed` and either a later retry (`a2a_retry_delay_ms` x attempts) or, once `maxAttempts`
attempts failed, the dead-letter queue.

A process that dies mid-attempt is handled by the reaper's hook (its run was already failed, unless it had
succeeded): the attempt counts as failed (or delivered). A process that stops cleanly puts its attempts back
without counting them: the target did not fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from typing import Any

from sqlalchemy import Connection

from athena.v1 import runs_pb2
from athena_client.vocab import EventType, RunStatus
from athena_server.config import Settings
from athena_server.control.a2a import (
    FROM_SESSION_KEY,
    MESSAGE_ID_KEY,
    dead_letter_payload,
)
from athena_server.control.background import stop_background
from athena_server.control.runs import RunOptions, RunService
from athena_server.errors import AthenaError
from athena_server.storage import a2a, events
from athena_server.storage import runs as run_store
from athena_server.storage.a2a import MessageRow
from athena_server.storage.store import Store
from athena_server.timefmt import iso, now_ms
from athena_server.tracing import set_trace_id

log = logging.getLogger(__name__)

ABANDONED = "The server process delivering this message stopped; the attempt was abandoned."


@dataclasses.dataclass(frozen=True)
class Failure:
    code: str
    message: str


def record_attempt(conn: Connection, row: MessageRow, failure: Failure | None, at: int, retry_delay_ms: int) -> None:
    """Settle the attempt `row` is in (its `attempts` and `run_id` are the attempt's): delivered, retried
    later, or dead-lettered, with its event. Nothing happens when the attempt was already settled."""
    assert row.run_id is not None
    ran = run_store.get(conn, row.run_id) is not None
    common: dict[str, Any] = {
        "messageId": row.id,
        "fromSessionId": row.from_session_id,
        "toSessionId": row.to_session_id,
        "attempt": row.attempts,
        "maxAttempts": row.max_attempts,
    }
    if ran:
        common["runId"] = row.run_id
    if failure is None:
        if a2a.settle(conn, row.id, row.run_id, status=a2a.DELIVERED, delivered_at_ms=at, updated_at_ms=at):
            events.append(
                conn,
                EventType.A2A_MESSAGE_DELIVERED,
                trace_id=row.trace_id,
                session_id=row.to_session_id,
                run_id=row.run_id,
                payload=common,
                created_at_ms=at,
            )
        return
    dead = row.attempts >= row.max_attempts
    values: dict[str, Any] = {
        "last_error_code": failure.code,
        "last_error_message": failure.message,
        "run_id": row.run_id if ran else None,
        "updated_at_ms": at,
    }
    if dead:
        values["status"] = a2a.DEAD_LETTERED
    else:
        values["status"] = a2a.PENDING
        values["next_attempt_at_ms"] = at + retry_delay_ms * row.attempts
    if not a2a.settle(conn, row.id, row.run_id, **values):
        return
    payload = {**common, "error": {"code": failure.code, "message": failure.message}, "deadLettered": dead}
    if not dead:
        payload["nextAttemptAt"] = iso(values["next_attempt_at_ms"])
    events.append(
        conn,
        EventType.A2A_MESSAGE_FAILED,
        trace_id=row.trace_id,
        session_id=row.to_session_id,
        run_id=row.run_id if ran else None,
        payload=payload,
        created_at_ms=at,
    )
    if dead:
        settled = dataclasses.replace(
            row, last_error_code=failure.code, last_error_message=failure.message, run_id=values["run_id"]
        )
        reason = (
            f"Delivery to session '{row.to_session_id}' failed {row.attempts} time(s) (maxAttempts "
            f"{row.max_attempts}); last error {failure.code}: {failure.message}"
        )
        a2a.put_dead_letter(conn, row.id, reason, dead_letter_payload(settled), at)


def _run_outcome(conn: Connection, run_id: str | None) -> Failure | bool | None:
    """How the attempt's run ended: None (succeeded), its failure, or False (no run, or still active)."""
    run = run_store.get(conn, run_id) if run_id else None
    if run is None or run.status in run_store.ACTIVE:
        return False
    if run.status == RunStatus.SUCCEEDED:
        return None
    return Failure(run.error_code or "UNAVAILABLE", run.error_message or ABANDONED)


class A2aDispatcher:
    def __init__(self, store: Store, settings: Settings, runs: RunService, owner_id: str) -> None:
        self.store = store
        self.settings = settings
        self.runs = runs
        self.owner_id = owner_id
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    @property
    def serving(self) -> bool:
        """Whether this process delivers messages (capabilities' `supportsA2ABus`)."""
        return self._loop is not None

    def start(self) -> None:
        if self.settings.a2a_poll_seconds > 0 and self._loop is None:
            self._wake = asyncio.Event()
            self._loop = asyncio.create_task(self._forever(), name="athena-a2a-dispatcher")

    def wake(self) -> None:
        """A message became due in this process: look now rather than at the next poll."""
        if self._wake is not None:
            self._wake.set()

    async def _forever(self) -> None:
        assert self._wake is not None
        while True:
            self._wake.clear()
            try:
                await self.dispatch()
            except Exception:
                log.exception("a2a dispatch failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.a2a_poll_seconds)

    async def dispatch(self) -> int:
        """Claim due messages for the free delivery slots and start delivering them; returns how many."""
        free = max(1, self.settings.a2a_parallelism) - len(self._tasks)
        if free <= 0:
            return 0

        def claim(conn: Connection) -> list[MessageRow]:
            at = now_ms()
            claimed: list[MessageRow] = []
            for row in a2a.due(conn, at, free):
                run_id = str(uuid.uuid4())
                if a2a.claim(conn, row, self.owner_id, run_id, at):
                    claimed.append(
                        dataclasses.replace(
                            row, status=a2a.DELIVERING, attempts=row.attempts + 1, owner_id=self.owner_id, run_id=run_id
                        )
                    )
            return claimed

        claimed = await self.store.write(claim)
        for row in claimed:
            task = asyncio.create_task(self._deliver(row), name=f"athena-a2a-{row.id}")
            self._tasks.add(task)
            task.add_done_callback(self._done)
        return len(claimed)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self.wake()  # a slot is free

    async def _deliver(self, row: MessageRow) -> None:
        """One attempt: the run in the target session, then its settlement."""
        assert row.run_id is not None
        set_trace_id(row.trace_id)  # the run and the delivery events carry the message's trace
        metadata = {**(row.metadata or {}), MESSAGE_ID_KEY: row.id, FROM_SESSION_KEY: row.from_session_id}
        create = runs_pb2.CreateRunRequest(
            session_id=row.to_session_id, input=row.input, provider=row.provider, model=row.model, metadata=metadata
        )
        failure: Failure | None = None
        try:
            await self.runs.create(create, context="a2a.deliver", options=RunOptions(run_id=row.run_id))
        except AthenaError as err:
            failure = Failure(err.code_name, err.message)
        except asyncio.CancelledError:
            await asyncio.shield(self.store.write(lambda conn: self._put_back(conn, row)))
            raise
        except Exception as exc:
            log.exception("a2a delivery of %s failed", row.id)
            failure = Failure("INTERNAL_ERROR", f"Delivery failed: {exc}")
        delay = self.settings.a2a_retry_delay_ms
        await asyncio.shield(self.store.write(lambda conn: record_attempt(conn, row, failure, now_ms(), delay)))

    def _put_back(self, conn: Connection, row: MessageRow) -> None:
        """This server is stopping mid-attempt: a run that succeeded delivered the message; otherwise the
        attempt is handed back uncounted, due at once for another process."""
        at = now_ms()
        outcome = _run_outcome(conn, row.run_id)
        if outcome is None:
            record_attempt(conn, row, None, at, self.settings.a2a_retry_delay_ms)
            return
        assert row.run_id is not None
        ran = run_store.get(conn, row.run_id) is not None
        a2a.settle(
            conn,
            row.id,
            row.run_id,
            status=a2a.PENDING,
            attempts=row.attempts - 1,
            next_attempt_at_ms=at,
            run_id=row.run_id if ran else None,
            updated_at_ms=at,
        )

    def release_owned(self, conn: Connection, dead_owner_ids: list[str], at_ms: int) -> None:
        """The reaper's hook (after it failed the dead processes' runs): each attempt they held is settled
        by its run's outcome, so a delivered message is never delivered again and a lost one is retried."""
        for row in a2a.delivering_of(conn, dead_owner_ids):
            outcome = _run_outcome(conn, row.run_id)
            failure = Failure("UNAVAILABLE", ABANDONED) if outcome is False else outcome
            assert not isinstance(failure, bool)
            record_attempt(conn, row, failure, at_ms, self.settings.a2a_retry_delay_ms)

    def in_flight(self) -> list[asyncio.Task[None]]:
        return list(self._tasks)

    async def close(self) -> None:
        """Stop dispatching; attempts in flight are put back (see `_put_back`)."""
        await stop_background(self._loop, self._tasks)
        # A claim that committed as the loop was cancelled has no task: hand it back too, since this
        # process's instance row is about to go and the reaper would never find it.
        await self.store.write(self._put_back_all)

    def _put_back_all(self, conn: Connection) -> None:
        for row in a2a.delivering_of(conn, [self.owner_id]):
            self._put_back(conn, row)
