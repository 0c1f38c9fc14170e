"""The operational policy document (`GET`/`PUT /api/v1/policy`) and its record of refusals.

The PUT is a full replace: fields not sent are dropped, `updatedAt` is always the server's clock. The
document is enforced by control/admission.py for every run, whatever started it; refusals are recorded
there, in the admission transaction, and only listed here.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import Connection, text

from athena.v1 import policy_pb2
from athena_client.vocab import EventType
from athena_server import cursors, validation
from athena_server.control import pages
from athena_server.errors import config_error
from athena_server.storage import events
from athena_server.storage import policy as policy_store
from athena_server.storage.policy import PolicyDoc, RejectionRow
from athena_server.storage.store import Store
from athena_server.timefmt import iso, now_ms
from athena_server.tracing import trace_id

CONTEXT = "policy"
REJECTIONS_CONTEXT = "policy.rejections"
# Any constant: the PostgreSQL advisory lock key that serialises policy writes across replicas.
_POLICY_LOCK_KEY = 0x504F4C59

# The optional document fields: proto name, JSON name, smallest allowed value, the rule as the message says it.
_INT_FIELDS: tuple[tuple[str, str, int, str], ...] = (
    ("max_concurrent_runs", "maxConcurrentRuns", 1, "a positive integer"),
    ("default_run_timeout_ms", "defaultRunTimeoutMs", 1, "a positive integer"),
    ("default_schedule_timeout_ms", "defaultScheduleTimeoutMs", 1, "a positive integer"),
    ("retry_budget_per_run", "retryBudgetPerRun", 0, "an integer >= 0"),
)
_COST_FIELD = "cost_budget_daily_usd"
_DOCUMENT_FIELDS = frozenset({"schema_version", _COST_FIELD, *(f[0] for f in _INT_FIELDS)})


def policy_message(doc: PolicyDoc) -> policy_pb2.Policy:
    msg = policy_pb2.Policy(schema_version=doc.schema_version, updated_at=iso(doc.updated_at_ms))
    for name in (*(f[0] for f in _INT_FIELDS), _COST_FIELD):
        value = getattr(doc, name)
        if value is not None:
            setattr(msg, name, value)
    return msg


def policy_json(doc: PolicyDoc) -> dict[str, Any]:
    """The document as GET answers it, for the `before`/`after` of the `policy.updated` event."""
    return {**doc.to_json(), "updatedAt": iso(doc.updated_at_ms)}


def rejection_message(row: RejectionRow) -> policy_pb2.PolicyRejection:
    msg = policy_pb2.PolicyRejection(
        id=row.id,
        created_at=iso(row.created_at_ms),
        session_id=row.session_id,
        active_runs=row.active_runs,
        max_concurrent_runs=row.max_concurrent_runs,
        reason=row.reason,
    )
    if row.policy:
        msg.policy.update(row.policy)
    if row.run_id is not None:
        msg.run_id = row.run_id
    if row.event:
        msg.event.update(row.event)
    return msg


def _present(msg: Message) -> set[str]:
    """Fields the client sent. Every document field is `optional` in the flat form, so presence is exact;
    under `policy` a zero `schemaVersion` reads as absent, which the same rule refuses."""
    return {f.name for f, _ in msg.ListFields()}


def _document(req: policy_pb2.PutPolicyRequest) -> tuple[dict[str, Any], str | None]:
    """Validate either body form. Returns the new document's fields (without `updatedAt`, which the write
    stamps) and the audit comment."""
    flat = _present(req) & _DOCUMENT_FIELDS
    if req.HasField("policy"):
        # A field beside the wrapped document would be silently dropped by the full replace: refuse it.
        if flat:
            names = ", ".join(sorted(req.DESCRIPTOR.fields_by_name[n].json_name for n in flat))
            raise config_error(
                f"{CONTEXT}: send the document either flat or under `policy`, not both (also sent: {names})."
            )
        comment = req.audit_comment.strip()
        if not comment:
            raise config_error(f"{CONTEXT}.auditComment is required when the document is sent under `policy`.")
        src: Any = req.policy
        present = _present(req.policy)
    else:
        comment = req.audit_comment.strip()
        src, present = req, flat
    if "schema_version" not in present or src.schema_version < 1:
        raise config_error(f"{CONTEXT}.schemaVersion must be a positive integer.")
    values: dict[str, Any] = {"schema_version": src.schema_version}
    for name, json_name, minimum, rule in _INT_FIELDS:
        if name in present:
            value = getattr(src, name)
            if value < minimum:
                raise config_error(f"{CONTEXT}.{json_name} must be {rule}.")
            values[name] = value
    if _COST_FIELD in present:
        cost = src.cost_budget_daily_usd
        # Protobuf JSON accepts "NaN" and "Infinity" for doubles, so finiteness is checked here.
        if not math.isfinite(cost) or cost < 0:
            raise config_error(f"{CONTEXT}.costBudgetDailyUsd must be a finite number >= 0.")
        values[_COST_FIELD] = cost
    return values, comment or None


def _lock_policy(conn: Connection) -> None:
    """Serialise policy writes across processes, so concurrent PUTs neither collide on the single policy row
    nor record a `before` that another write already replaced (SQLite's single writer already does this)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _POLICY_LOCK_KEY})


class PolicyService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self) -> policy_pb2.GetPolicyResponse:
        doc = await self.store.read(policy_store.get)
        resp = policy_pb2.GetPolicyResponse()
        if doc is not None:
            resp.policy.CopyFrom(policy_message(doc))
        return resp

    async def put(self, req: policy_pb2.PutPolicyRequest) -> policy_pb2.PutPolicyResponse:
        """Replace the document and record `policy.updated` (with the document before and after) in one
        transaction, so the event log is an exact audit trail of the policy."""
        values, comment = _document(req)
        trace = trace_id()

        def unit(conn: Connection) -> PolicyDoc:
            _lock_policy(conn)
            before = policy_store.get(conn)
            # Stamped under the lock, so `updatedAt` follows the order the writes took effect in.
            doc = PolicyDoc(updated_at_ms=now_ms(), **values)
            if before is not None and doc.updated_at_ms < before.updated_at_ms:
                doc = dataclasses.replace(doc, updated_at_ms=before.updated_at_ms)
            policy_store.put(conn, doc)
            payload: dict[str, Any] = {"schemaVersion": doc.schema_version, "updatedAt": iso(doc.updated_at_ms)}
            if comment is not None:
                payload["auditComment"] = comment
            if before is not None:
                payload["before"] = policy_json(before)
            payload["after"] = policy_json(doc)
            events.append(conn, EventType.POLICY_UPDATED, trace_id=trace, payload=payload)
            return doc

        doc = await self.store.write(unit)
        return policy_pb2.PutPolicyResponse(policy=policy_message(doc))

    async def rejections(self, req: policy_pb2.ListPolicyRejectionsRequest) -> policy_pb2.ListPolicyRejectionsResponse:
        """Oldest first (seed 025: the cursor `MQ` follows `rej_1`); the cursor is the last item's sequence
        number, so rejections recorded between pages neither repeat nor go missing."""
        limit = validation.page_limit(req.limit if req.HasField("limit") else None)
        after = cursors.decode_number(req.cursor, REJECTIONS_CONTEXT) if req.cursor else 0
        session_id = validation.optional_session_id(req.session_id, REJECTIONS_CONTEXT)
        created_after = validation.optional_instant(req.created_after, REJECTIONS_CONTEXT, "createdAfter")
        created_before = validation.optional_instant(req.created_before, REJECTIONS_CONTEXT, "createdBefore")

        def unit(conn: Connection) -> list[RejectionRow]:
            # One row past the page tells whether another page exists.
            return policy_store.page_rejections(
                conn,
                after_seq=after,
                limit=limit + 1,
                session_id=session_id,
                created_after_ms=created_after,
                created_before_ms=created_before,
            )

        rows = await self.store.read(unit)
        page = pages.fill(rows, limit, rejection_message)
        resp = policy_pb2.ListPolicyRejectionsResponse(items=page.items)
        if page.last is not None:
            resp.next_cursor = cursors.encode(page.last.seq)
        return resp
