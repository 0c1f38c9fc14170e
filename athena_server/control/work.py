"""Session work queues."""

from __future__ import annotations

from athena.v1 import work_pb2
from athena_server import validation
from athena_server.timefmt import iso, now_ms


def empty_work_queue(session_id: str) -> work_pb2.WorkQueueState:
    """The queue of a session that has nothing queued. Until enqueueing exists this is every session's
    true state."""
    return work_pb2.WorkQueueState(
        schema_version=1,
        session_id=validation.session_id(session_id, "work.queue"),
        items=[],
        draining=False,
        updated_at=iso(now_ms()),
    )
