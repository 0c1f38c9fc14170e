"""The agent-to-agent bus: sending and reading messages, and the dead-letter queue of those that could not
be delivered. Delivery itself is the dispatcher's (`a2a_dispatch`).

A message is stored `pending` with the `a2a.message.sent` event in one transaction; the answer does not
wait for delivery (an agent that messages another must not hold its own turn while the other works). A
dead letter is the message's own record in the queue (same id): requeueing it puts the message back on the
bus in the transaction that marks the item `requeued`, so a requeue is never lost or doubled; discarding is
final. Both are guarded by conditional writes and answer `updated: false` when repeated.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from athena.v1 import a2a_dlq_pb2, a2a_pb2, runs_pb2
from athena_client.contract import enum_by_json
from athena_client.vocab import EventType
from athena_server import validation
from athena_server.config import Settings
from athena_server.control import catalog_pages, pages
from athena_server.control.outcomes import Outcome, accepted
from athena_server.control.run_specs import clean_metadata
from athena_server.engine.context import check_input
from athena_server.engine.providers import ProviderRegistry
from athena_server.errors import AthenaError, ErrorCode, config_error, not_found
from athena_server.storage import a2a, events
from athena_server.storage.a2a import DlqRow, MessageRow
from athena_server.storage.store import Store
from athena_server.timefmt import iso, now_ms
from athena_server.tracing import trace_id

# Metadata the delivery runs carry; callers may not set these keys themselves.
RESERVED_PREFIX = "a2a."
MESSAGE_ID_KEY = "a2a.messageId"
FROM_SESSION_KEY = "a2a.fromSessionId"

MAX_ATTEMPTS_LIMIT = 20
MESSAGE_ID_PREFIX = "a2a_"
_MESSAGES_KIND = "a2a-messages"
_DLQ_KIND = "a2a-dlq"

_MESSAGE_STATUS = enum_by_json(a2a_pb2.A2aMessageStatus.DESCRIPTOR)
_MESSAGE_STATUS_NAMES = {number: name for name, number in _MESSAGE_STATUS.items()}
_DLQ_STATUS = enum_by_json(a2a_dlq_pb2.A2aDlqStatus.DESCRIPTOR)
_DLQ_STATUS_NAMES = {number: name for name, number in _DLQ_STATUS.items()}


def message_message(row: MessageRow) -> a2a_pb2.A2aMessage:
    msg = a2a_pb2.A2aMessage(
        id=row.id,
        from_session_id=row.from_session_id,
        to_session_id=row.to_session_id,
        input=row.input,
        metadata=row.metadata or {},
        provider=row.provider,
        model=row.model,
        status=a2a_pb2.A2aMessageStatus.ValueType(_MESSAGE_STATUS[row.status]),
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        requeues=row.requeues,
        created_at=iso(row.created_at_ms),
        updated_at=iso(row.updated_at_ms),
        trace_id=row.trace_id,
    )
    if row.next_attempt_at_ms is not None and row.status == a2a.PENDING:
        msg.next_attempt_at = iso(row.next_attempt_at_ms)
    if row.delivered_at_ms is not None:
        msg.delivered_at = iso(row.delivered_at_ms)
    if row.run_id is not None:
        msg.run_id = row.run_id
    if row.last_error_code is not None:
        msg.last_error.CopyFrom(runs_pb2.RunError(code=row.last_error_code, message=row.last_error_message or ""))
    return msg


def dead_letter_message(row: DlqRow) -> a2a_dlq_pb2.A2aDlqItem:
    item = a2a_dlq_pb2.A2aDlqItem(
        id=row.id,
        status=a2a_dlq_pb2.A2aDlqStatus.ValueType(_DLQ_STATUS[row.status]),
        created_at=iso(row.created_at_ms),
        updated_at=iso(row.updated_at_ms),
    )
    item.payload.update(row.payload)
    if row.reason is not None:
        item.reason = row.reason
    return item


def dead_letter_payload(row: MessageRow) -> dict[str, Any]:
    """What a dead letter carries: the message, how its delivery went, and the trace to follow it by."""
    payload: dict[str, Any] = {
        "messageId": row.id,
        "fromSessionId": row.from_session_id,
        "toSessionId": row.to_session_id,
        "input": row.input,
        "metadata": row.metadata or {},
        "provider": row.provider,
        "model": row.model,
        "attempts": row.attempts,
        "maxAttempts": row.max_attempts,
        "requeues": row.requeues,
        "traceId": row.trace_id,
    }
    if row.run_id is not None:
        payload["runId"] = row.run_id
    if row.last_error_code is not None:
        payload["lastError"] = {"code": row.last_error_code, "message": row.last_error_message or ""}
    return payload


def _session(value: str, context: str, field: str) -> str:
    value = value.strip()
    if not value:
        raise config_error(f"{context}.{field} must be a non-empty string.")
    if not validation.SESSION_ID_PATTERN.match(value):
        raise config_error(f"Invalid {field} '{value}'. Allowed pattern: {validation.SESSION_ID_PATTERN.pattern}")
    return value


def _item_id(value: str, context: str) -> str:
    value = value.strip()
    if not value:
        raise config_error(f"{context}.id must be a non-empty string.")
    return value


class A2aService:
    def __init__(self, store: Store, settings: Settings, providers: ProviderRegistry, wake: Callable[[], None]) -> None:
        self.store = store
        self.settings = settings
        self.providers = providers
        # Tells this process's dispatcher that a message became due (others find it by polling).
        self.wake = wake

    # ---- messages -----------------------------------------------------------------------------------

    async def accept(self, req: a2a_pb2.SendA2aMessageRequest) -> Outcome[a2a_pb2.A2aMessage]:
        """`send` as the RPC answers it: accepted, since the message is delivered after the answer."""
        return accepted(await self.send(req))

    async def send(self, req: a2a_pb2.SendA2aMessageRequest) -> a2a_pb2.A2aMessage:
        """Store the message for delivery (the dispatcher delivers it); returns it `pending`."""
        context = "a2a.send"
        from_session = _session(req.from_session_id, context, "fromSessionId")
        to_session = _session(req.to_session_id, context, "toSessionId")
        text = req.input.strip()
        if not text:
            raise config_error(f"{context}.input must be a non-empty string.")
        check_input(text)  # a message no run could take is refused now, not dead-lettered later
        metadata = clean_metadata(req.metadata, context)
        reserved = sorted(k for k in metadata if k.startswith(RESERVED_PREFIX))
        if reserved:
            raise config_error(f"{context}.metadata keys starting '{RESERVED_PREFIX}' are reserved: {reserved[0]}.")
        provider = req.provider.strip() or self.settings.default_provider
        self.providers.get(provider)  # PROVIDER_NOT_FOUND now rather than on every attempt
        model = req.model.strip() or self.settings.default_model
        if req.HasField("max_attempts"):
            max_attempts = req.max_attempts
            if not 1 <= max_attempts <= MAX_ATTEMPTS_LIMIT:
                raise config_error(f"{context}.maxAttempts must be an integer in 1..{MAX_ATTEMPTS_LIMIT}.")
        else:
            max_attempts = max(1, min(MAX_ATTEMPTS_LIMIT, self.settings.a2a_max_attempts))
        trace = trace_id()

        def unit(conn: Connection) -> MessageRow:
            at = now_ms()
            row = a2a.insert_message(
                conn,
                MessageRow(
                    seq=0,
                    id=f"{MESSAGE_ID_PREFIX}{uuid.uuid4().hex}",
                    from_session_id=from_session,
                    to_session_id=to_session,
                    input=text,
                    metadata=metadata or None,
                    provider=provider,
                    model=model,
                    status=a2a.PENDING,
                    attempts=0,
                    max_attempts=max_attempts,
                    requeues=0,
                    next_attempt_at_ms=at,
                    owner_id=None,
                    run_id=None,
                    last_error_code=None,
                    last_error_message=None,
                    trace_id=trace,
                    created_at_ms=at,
                    updated_at_ms=at,
                    delivered_at_ms=None,
                ),
            )
            events.append(
                conn,
                EventType.A2A_MESSAGE_SENT,
                trace_id=trace,
                session_id=from_session,
                payload={
                    "messageId": row.id,
                    "fromSessionId": from_session,
                    "toSessionId": to_session,
                    "maxAttempts": max_attempts,
                },
                created_at_ms=at,
            )
            return row

        row = await self.store.write(unit)
        self.wake()
        return message_message(row)

    async def get(self, raw_id: str) -> a2a_pb2.A2aMessage:
        message_id = _item_id(raw_id, "a2a.messages.get")
        row = await self.store.read(lambda conn: a2a.get_message(conn, message_id))
        if row is None:
            raise not_found(f"A2A message '{message_id}' not found.")
        return message_message(row)

    async def page(self, req: a2a_pb2.ListA2aMessagesRequest) -> a2a_pb2.ListA2aMessagesResponse:
        """Newest first, keyset on the insertion sequence."""
        context = "a2a.messages"
        status: str | None = None
        if req.status:
            status = _MESSAGE_STATUS_NAMES.get(req.status)
            if status is None:
                names = "|".join(_MESSAGE_STATUS)
                raise config_error(f"{context}.status must be {names}.")
        from_session = _session(req.from_session_id, context, "fromSessionId") if req.from_session_id.strip() else None
        to_session = _session(req.to_session_id, context, "toSessionId") if req.to_session_id.strip() else None
        limit = validation.page_limit(req.limit if req.HasField("limit") else None)
        before, offset = catalog_pages.decode(req.cursor, _MESSAGES_KIND, context)
        rows = await self.store.read(
            lambda conn: a2a.page_messages(
                conn,
                limit + 1,
                before,
                offset,
                status=status,
                from_session_id=from_session,
                to_session_id=to_session,
            )
        )
        page = pages.fill(rows, limit, message_message)
        resp = a2a_pb2.ListA2aMessagesResponse(items=page.items)
        if page.last is not None:
            resp.next_cursor = catalog_pages.encode(_MESSAGES_KIND, page.last.seq)
        return resp

    # ---- dead letters -------------------------------------------------------------------------------

    async def dead_letters(self, req: a2a_dlq_pb2.ListA2aDlqItemsRequest) -> a2a_dlq_pb2.ListA2aDlqItemsResponse:
        """Oldest first (the original's file order), keyset on the insertion sequence; the original's offset
        cursors are still read."""
        context = "a2a.dlq"
        status: str | None = None
        if req.status:
            status = _DLQ_STATUS_NAMES.get(req.status)
            if status is None:
                raise config_error(f"{context}.status must be pending|requeued|discarded.")
        limit = validation.page_limit(req.limit if req.HasField("limit") else None)
        after, offset = catalog_pages.decode(req.cursor, _DLQ_KIND, context)
        rows = await self.store.read(lambda conn: a2a.page_dead_letters(conn, limit + 1, after, offset, status))
        page = pages.fill(rows, limit, dead_letter_message)
        resp = a2a_dlq_pb2.ListA2aDlqItemsResponse(items=page.items)
        if page.last is not None:
            resp.next_cursor = catalog_pages.encode(_DLQ_KIND, page.last.seq)
        return resp

    async def requeue(self, raw_id: str, audit_note: str | None = None) -> a2a_dlq_pb2.RequeueA2aDlqItemResponse:
        context = "a2a.dlq.requeue"
        item_id = _item_id(raw_id, context)
        note = (audit_note or "").strip() or None
        trace = trace_id()

        def unit(conn: Connection) -> tuple[DlqRow, bool]:
            item = _dead_letter(conn, item_id)
            if item.status == a2a.DLQ_PENDING:
                at = now_ms()
                # The message first (the order every writer of both rows follows): a concurrent requeue
                # waits for this one's row lock and then finds the message no longer dead-lettered.
                if a2a.requeue_message(conn, item_id, at):
                    a2a.move_dead_letter(conn, item_id, a2a.DLQ_PENDING, a2a.DLQ_REQUEUED, at, audit_note=note)
                    message = a2a.get_message(conn, item_id)
                    events.append(
                        conn,
                        EventType.A2A_DLQ_REQUEUED,
                        trace_id=trace,
                        session_id=message.to_session_id if message else None,
                        payload=_audited(item_id, note),
                        created_at_ms=at,
                    )
                    return _dead_letter(conn, item_id), True
                item = _dead_letter(conn, item_id)
            if item.status == a2a.DLQ_DISCARDED:
                raise config_error(
                    f"{context}: DLQ item '{item_id}' is discarded; a discarded item cannot be requeued."
                )
            if item.status == a2a.DLQ_REQUEUED:
                return item, False
            raise _changed(item_id)

        item, updated = await self.store.write(unit)
        if updated:
            self.wake()
        return a2a_dlq_pb2.RequeueA2aDlqItemResponse(updated=updated, item=dead_letter_message(item))

    async def discard(self, raw_id: str, audit_note: str | None) -> a2a_dlq_pb2.DiscardA2aDlqItemResponse:
        context = "a2a.dlq.discard"
        item_id = _item_id(raw_id, context)
        note = (audit_note or "").strip() or None
        trace = trace_id()

        def unit(conn: Connection) -> tuple[DlqRow, bool]:
            item = _dead_letter(conn, item_id)
            if item.status == a2a.DLQ_PENDING:
                at = now_ms()
                if a2a.move(conn, item_id, a2a.DEAD_LETTERED, status=a2a.DISCARDED, updated_at_ms=at):
                    a2a.move_dead_letter(conn, item_id, a2a.DLQ_PENDING, a2a.DLQ_DISCARDED, at, audit_note=note)
                    message = a2a.get_message(conn, item_id)
                    events.append(
                        conn,
                        EventType.A2A_DLQ_DISCARDED,
                        trace_id=trace,
                        session_id=message.to_session_id if message else None,
                        payload=_audited(item_id, note),
                        created_at_ms=at,
                    )
                    return _dead_letter(conn, item_id), True
                item = _dead_letter(conn, item_id)
            if item.status == a2a.DLQ_DISCARDED:
                return item, False
            if item.status == a2a.DLQ_REQUEUED:
                raise config_error(
                    f"{context}: DLQ item '{item_id}' was requeued: its message is on the bus again and can no "
                    "longer be discarded."
                )
            raise _changed(item_id)

        item, updated = await self.store.write(unit)
        return a2a_dlq_pb2.DiscardA2aDlqItemResponse(updated=updated, item=dead_letter_message(item))


def _dead_letter(conn: Connection, item_id: str) -> DlqRow:
    item = a2a.get_dead_letter(conn, item_id)
    if item is None:
        raise not_found(f"DLQ item '{item_id}' not found.")
    return item


def _audited(item_id: str, note: str | None) -> dict[str, Any]:
    """The payload of a DLQ decision's event: the item, and the operator's note when one was given."""
    return {"id": item_id, "auditNote": note} if note is not None else {"id": item_id}


def _changed(item_id: str) -> AthenaError:
    return AthenaError(
        ErrorCode.ERROR_CODE_UNAVAILABLE,
        f"DLQ item '{item_id}' changed while this request ran; try again.",
        retryable=True,
    )
