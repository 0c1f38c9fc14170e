"""Session work queues: what is queued, and enqueueing (`runningRunBehavior: "enqueue"` uses the same
store functions). Draining arrives with the work-queue capability."""

from __future__ import annotations

import uuid

from sqlalchemy import Connection

from athena.v1 import work_pb2
from athena_client.contract import enum_by_json, enum_to_json
from athena_server import validation
from athena_server.errors import config_error
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
    """A session's queue; one never used is empty, with `updatedAt` now (as the original)."""
    if row is None:
        return work_pb2.WorkQueueState(
            schema_version=1, session_id=session_id, items=[], draining=False, updated_at=iso(now_ms())
        )
    return work_pb2.WorkQueueState(
        schema_version=1,
        session_id=session_id,
        items=[item_message(i) for i in row.items],
        draining=row.draining,
        updated_at=iso(row.updated_at_ms),
    )


class WorkService:
    def __init__(self, store: Store) -> None:
        self.store = store

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
        mode = enum_to_json(work_pb2.WorkMode.DESCRIPTOR, req.mode)
        trace = trace_id()

        def unit(conn: Connection) -> QueueRow | None:
            _, added = work.enqueue(conn, str(uuid.uuid4()), session_id, payload, mode, now_ms())
            if added:
                events.append(
                    conn,
                    "work.enqueued",
                    trace_id=trace,
                    session_id=session_id,
                    payload={"queueDepth": work.depth(conn, session_id)},
                )
            return work.queue(conn, session_id)

        return queue_message(session_id, await self.store.write(unit))
