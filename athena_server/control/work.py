"""Session work queues: what is queued, enqueueing (`runningRunBehavior: "enqueue"` uses the same store
functions), and draining: the queued items become runs, in order, inside their session.

Each drained batch is an ordinary run (`runs.create`), so it passes the policy's admission, waits for the
session's turn, and leaves the run record and `run.*` events a direct run leaves (the original called the
backend directly and left none). Which process drains a session is decided in the store.
"""

from __future__ import annotations

import asyncio
import uuid
from functools import partial

from sqlalchemy import Connection

from athena.v1 import runs_pb2, work_pb2
from athena_client.contract import enum_by_json, enum_to_json
from athena_client.vocab import EventType
from athena_server import validation
from athena_server.control import pages
from athena_server.control.runs import RunOptions, RunService
from athena_server.engine.context import check_input
from athena_server.errors import AthenaError, config_error
from athena_server.storage import events, work
from athena_server.storage.store import Store
from athena_server.storage.work import QueueRow, WorkItemRow
from athena_server.timefmt import iso, now_ms
from athena_server.tracing import trace_id

_MODES = enum_by_json(work_pb2.WorkMode.DESCRIPTOR)


def item_message(row: WorkItemRow) -> work_pb2.WorkItem:
    return work_pb2.WorkItem(
        id=row.id,
        session_id=row.session_id,
        payload=row.payload,
        mode=work_pb2.WorkMode.ValueType(_MODES[row.mode]),
        created_at=iso(row.created_at_ms),
    )


def queue_message(session_id: str, row: QueueRow | None) -> work_pb2.WorkQueueState:
    """A session's queue; one never used is empty, with `updatedAt` now (as the original). Its items are
    the head of the queue that fits a page's byte budget (the answer has no cursor: the rest shows as the
    queue drains)."""
    if row is None:
        return work_pb2.WorkQueueState(
            schema_version=1, session_id=session_id, items=[], draining=False, updated_at=iso(now_ms())
        )
    return work_pb2.WorkQueueState(
        schema_version=1,
        session_id=session_id,
        items=pages.fill(row.items, len(row.items), item_message).items,
        draining=row.draining,
        updated_at=iso(row.updated_at_ms),
    )


class WorkService:
    def __init__(self, store: Store, runs: RunService, owner_id: str) -> None:
        self.store = store
        self.runs = runs
        self.owner_id = owner_id

    async def get_queue(self, session_id: str) -> work_pb2.WorkQueueState:
        session_id = validation.session_id(session_id, "work.queue")
        row = await self.store.read(lambda conn: work.queue(conn, session_id))
        return queue_message(session_id, row)

    async def enqueue(self, req: work_pb2.EnqueueWorkRequest) -> work_pb2.WorkQueueState:
        session_id = validation.session_id(req.session_id, "work.enqueue")
        payload = req.payload.strip()
        if not payload:
            raise config_error("work.enqueue.payload must be a non-empty string.")
        if req.mode not in (work_pb2.WORK_MODE_FOLLOWUP, work_pb2.WORK_MODE_COLLECT):
            raise config_error("work.enqueue.mode must be 'followup' or 'collect'.")
        check_input(payload)  # an item that could never run is not queued
        mode = enum_to_json(work_pb2.WorkMode.DESCRIPTOR, req.mode)
        trace = trace_id()

        def unit(conn: Connection) -> QueueRow | None:
            _, added = work.enqueue(conn, str(uuid.uuid4()), session_id, payload, mode, now_ms())
            if added:
                events.append(
                    conn,
                    EventType.WORK_ENQUEUED,
                    trace_id=trace,
                    session_id=session_id,
                    payload={"queueDepth": work.depth(conn, session_id)},
                )
            return work.queue(conn, session_id)

        return queue_message(session_id, await self.store.write(unit))

    async def drain(self, req: work_pb2.DrainWorkRequest) -> work_pb2.DrainWorkResponse:
        """Run the queue until it is empty. A failing run ends the drain with that run's error; its items and
        the rest stay queued. The drain is not resumed on its own after a crash: the next drain first settles
        the items the dead one had started (see `work.reconcile`)."""
        session_id = validation.session_id(req.session_id, "work.drain")
        trace = trace_id()

        def claim(conn: Connection) -> tuple[bool, int]:
            at = now_ms()
            if not work.claim_drain(conn, session_id, self.owner_id, at):
                return False, work.depth(conn, session_id)
            work.reconcile(conn, session_id)
            return True, work.depth(conn, session_id)

        claimed, before = await self.store.write(claim)
        if not claimed:
            return work_pb2.DrainWorkResponse(
                status=work_pb2.DRAIN_STATUS_ALREADY_DRAINING,
                drained_items=0,
                queue_depth_before=before,
                queue_depth_after=before,
            )
        drained = 0
        failure: BaseException | None = None
        try:
            while True:
                run_id = str(uuid.uuid4())
                batch = await self.store.write(partial(work.take_batch, session_id=session_id, run_id=run_id))
                if not batch:
                    break
                create = runs_pb2.CreateRunRequest(
                    session_id=session_id,
                    input="\n\n".join(item.payload for item in batch),
                    provider=req.provider,
                    model=req.model,
                    metadata={"source": "work.drain", "workItemIds": ",".join(item.id for item in batch)},
                )
                succeeded = False
                try:
                    await self.runs.create(create, context="work.drain", options=RunOptions(run_id=run_id))
                    succeeded = True
                finally:
                    await asyncio.shield(self._finish_batch(session_id, run_id, succeeded))
                drained += len(batch)
        except BaseException as err:
            failure = err
            raise
        finally:
            await asyncio.shield(self._release(session_id, trace, before, drained, failure))
        after = await self.store.read(lambda conn: work.depth(conn, session_id))
        return work_pb2.DrainWorkResponse(
            status=work_pb2.DRAIN_STATUS_OK, drained_items=drained, queue_depth_before=before, queue_depth_after=after
        )

    async def _finish_batch(self, session_id: str, run_id: str, succeeded: bool) -> None:
        await self.store.write(lambda conn: work.finish_batch(conn, session_id, run_id, succeeded, now_ms()))

    async def _release(
        self, session_id: str, trace: str, before: int, drained: int, failure: BaseException | None
    ) -> None:
        """End the drain and report it: `work.drained` says how far it got, and why it stopped early."""

        def unit(conn: Connection) -> None:
            work.release_drain(conn, session_id, now_ms())
            payload: dict[str, object] = {
                "status": "ok" if failure is None else "failed",
                "drainedItems": drained,
                "queueDepthBefore": before,
                "queueDepthAfter": work.depth(conn, session_id),
            }
            if isinstance(failure, AthenaError):
                payload["error"] = {"code": failure.code_name, "message": failure.message}
            elif failure is not None:
                payload["error"] = {"code": "RUN_CANCELLED", "message": "The drain's caller went away."}
            events.append(conn, EventType.WORK_DRAINED, trace_id=trace, session_id=session_id, payload=payload)

        await self.store.write(unit)
