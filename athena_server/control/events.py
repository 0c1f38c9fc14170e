"""Reading and following the event log."""

from __future__ import annotations

from collections.abc import AsyncIterator

from google.protobuf import struct_pb2
from sqlalchemy import Connection

from athena.v1 import events_pb2
from athena_server import cursors, validation
from athena_server.config import Settings
from athena_server.control import pages
from athena_server.control.follow import Followed, follow
from athena_server.errors import AthenaError, ErrorCode, config_error
from athena_server.storage import events, retention
from athena_server.storage.events import EVENT_ID_PREFIX, EventFilter, EventRow
from athena_server.storage.store import Store
from athena_server.timefmt import iso


def _all_events(conn: Connection, after: int, up_to: int, limit: int) -> list[EventRow]:
    return events.list_after(conn, after, limit, EventFilter(), up_to_seq=up_to)


# The event log as streams follow it: one tail per process reads it for every stream.
EVENT_LOG: Followed[EventRow] = Followed(
    "events", _all_events, events.last_seq, lambda r: r.seq, key_of=lambda r: r.session_id
)


def event_message(row: EventRow) -> events_pb2.Event:
    payload = struct_pb2.Struct()
    payload.update(row.payload)
    event = events_pb2.Event(
        id=row.id, trace_id=row.trace_id, type=row.type, created_at=iso(row.created_at_ms), payload=payload
    )
    if row.session_id is not None:
        event.session_id = row.session_id
    if row.run_id is not None:
        event.run_id = row.run_id
    if row.policy is not None:
        event.policy.update(row.policy)
    if row.actor is not None:
        event.actor = row.actor
    return event


def _types(values: list[str]) -> tuple[str, ...]:
    return tuple(t.strip() for v in values for t in v.split(",") if t.strip())


def _resume_point(after: str, context: str) -> int:
    """An event id (`evt_12`) or a ListEvents cursor; both name the last event already seen."""
    after = after.strip()
    seq = cursors.number(after[len(EVENT_ID_PREFIX) :]) if after.startswith(EVENT_ID_PREFIX) else None
    if seq is not None:
        return seq
    try:
        return cursors.decode_number(after, context)
    except AthenaError:
        raise config_error(f"{context}.after must be an event id or an events cursor.") from None


def _issued(start: int, newest: int, after: str, context: str) -> None:
    """A resume point must name an event this store issued: one beyond the newest would wait silently for
    ids that may never come (another store's ids, a store that was reset), so the client is told to re-list."""
    if start > newest:
        have = f"the newest event is {EVENT_ID_PREFIX}{newest}" if newest else "the store has no events yet"
        raise config_error(
            f"{context}.after '{after.strip()}' is beyond the newest event ({have}); list GET /api/v1/events "
            "to resume from an event that exists."
        )


def _retained(start: int, pruned_through: int, shown: str, context: str) -> None:
    """A resume point or cursor below the retention watermark would skip events the sweep deleted: refuse
    it with EVENT_CURSOR_EXPIRED (a silent gap would look like a complete log)."""
    if start < pruned_through:
        raise AthenaError(
            ErrorCode.ERROR_CODE_EVENT_CURSOR_EXPIRED,
            f"{context} '{shown}' is older than the retained events (events up to "
            f"{EVENT_ID_PREFIX}{pruned_through} were deleted by retention); list GET /api/v1/events without a "
            "cursor to start again from the oldest retained event.",
        )


def _bounds(conn: Connection) -> tuple[int, int]:
    """(the newest event id, the highest id retention deleted), in one snapshot."""
    return events.last_seq(conn), retention.events_pruned_through(conn)


class EventService:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def list(self, req: events_pb2.ListEventsRequest) -> events_pb2.ListEventsResponse:
        ctx = "events.list"
        limit = validation.page_limit(req.limit if req.HasField("limit") else None)
        after = cursors.decode_number(req.cursor, ctx) if req.cursor else 0
        flt = EventFilter(
            session_id=validation.optional_session_id(req.session_id, ctx),
            run_id=req.run_id.strip() or None,
            trace_id=req.trace_id.strip() or None,
            types=_types(list(req.types)),
            created_after_ms=validation.optional_instant(req.created_after, ctx, "createdAfter"),
            created_before_ms=validation.optional_instant(req.created_before, ctx, "createdBefore"),
        )

        def unit(conn: Connection) -> list[EventRow]:
            if after:
                _retained(after, retention.events_pruned_through(conn), req.cursor.strip(), f"{ctx}.cursor")
            return events.list_after(conn, after, limit + 1, flt)

        rows = await self.store.read(unit)
        page = pages.fill(rows, limit, event_message)
        resp = events_pb2.ListEventsResponse(events=page.items)
        if page.last is not None:
            resp.next_cursor = cursors.encode(page.last.seq)
        return resp

    async def open_stream(self, req: events_pb2.StreamEventsRequest) -> AsyncIterator[events_pb2.Event]:
        """Validate and fix the starting point now (so errors surface before the stream opens), and
        return the stream."""
        ctx = "events.stream"
        flt = EventFilter(session_id=validation.optional_session_id(req.session_id, ctx), types=_types(list(req.types)))
        # The watermark counts as issued: between a sweep's last batch and its `events.pruned` the log
        # may be empty.
        newest, pruned_through = await self.store.read(_bounds)
        newest = max(newest, pruned_through)
        if req.after.strip():
            start = _resume_point(req.after, ctx)
            _issued(start, newest, req.after, ctx)
            _retained(start, pruned_through, req.after.strip(), f"{ctx}.after")
        else:
            start = newest

        def fetch(conn: Connection, after: int, up_to: int, limit: int) -> list[EventRow]:
            # A stream reading its backlog (or a gap, when it lagged) while the sweep deletes ahead of it
            # ends with EVENT_CURSOR_EXPIRED rather than skipping what was deleted.
            _retained(after, retention.events_pruned_through(conn), f"{EVENT_ID_PREFIX}{after}", f"{ctx}.after")
            return events.list_after(conn, after, limit, flt, up_to_seq=up_to)

        async def stream() -> AsyncIterator[events_pb2.Event]:
            async for row in follow(
                self.store,
                EVENT_LOG,
                start,
                fetch,
                events.matches(flt),
                self.settings.event_poll_seconds,
                key=flt.session_id,
            ):
                yield event_message(row)

        return stream()
