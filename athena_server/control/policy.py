"""The operational policy document (`GET`/`PUT /api/v1/policy`) and its record of refusals.

The PUT is a full replace: fields not sent are dropped, `updatedAt` is always the server's clock. The
document is enforced by control/admission.py for every run, whatever started it.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Connection

from athena.v1 import policy_pb2
from athena_server import cursors, validation
from athena_server.errors import config_error
from athena_server.storage import events
from athena_server.storage import policy as policy_store
from athena_server.storage.policy import PolicyDoc, RejectionRow
from athena_server.storage.store import Store
from athena_server.timefmt import iso, now_ms
from athena_server.tracing import trace_id


def policy_message(doc: PolicyDoc) -> policy_pb2.Policy:
    msg = policy_pb2.Policy(schema_version=doc.schema_version, updated_at=iso(doc.updated_at_ms))
    for name in (
        "max_concurrent_runs",
        "default_run_timeout_ms",
        "default_schedule_timeout_ms",
        "retry_budget_per_run",
        "cost_budget_daily_usd",
    ):
        value = getattr(doc, name)
        if value is not None:
            setattr(msg, name, value)
    return msg


def _struct_dict(value: Any) -> dict[str, Any]:
    return dict(value) if value else {}


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


def _document(req: policy_pb2.PutPolicyRequest) -> tuple[PolicyDoc, str | None]:
    """Validate either body form; returns the new document (stamped now) and the audit comment."""
    ctx = "policy"
    wrapped = req.HasField("policy")
    comment: str | None = None
    if wrapped:
        comment = req.audit_comment.strip() if req.HasField("audit_comment") else ""
        if not comment:
            raise config_error("policy.auditComment is required when the document is sent under `policy`.")
        src: Any = req.policy
        present = {f.name for f, _ in src.ListFields()}
        schema_version = src.schema_version if "schema_version" in present else None
    else:
        src = req
        present = {f.name for f, _ in src.ListFields()}
        schema_version = req.schema_version if req.HasField("schema_version") else None
        if req.HasField("audit_comment"):
            comment = req.audit_comment.strip() or None
    if schema_version is None:
        raise config_error(f"{ctx}.schemaVersion is required.")
    if schema_version < 1:
        raise config_error(f"{ctx}.schemaVersion must be a positive integer.")
    values: dict[str, Any] = {}
    for name, json_name, minimum in (
        ("max_concurrent_runs", "maxConcurrentRuns", 1),
        ("default_run_timeout_ms", "defaultRunTimeoutMs", 1),
        ("default_schedule_timeout_ms", "defaultScheduleTimeoutMs", 1),
        ("retry_budget_per_run", "retryBudgetPerRun", 0),
    ):
        if name in present:
            value = getattr(src, name)
            if value < minimum:
                kind = "a positive integer" if minimum == 1 else "an integer >= 0"
                raise config_error(f"{ctx}.{json_name} must be {kind}.")
            values[name] = value
    if "cost_budget_daily_usd" in present:
        cost = src.cost_budget_daily_usd
        if not math.isfinite(cost) or cost < 0:
            raise config_error(f"{ctx}.costBudgetDailyUsd must be a finite number >= 0.")
        values["cost_budget_daily_usd"] = cost
    return PolicyDoc(schema_version=schema_version, updated_at_ms=now_ms(), **values), comment


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
        doc, comment = _document(req)
        trace = trace_id()

        def unit(conn: Connection) -> None:
            before = policy_store.get(conn)
            policy_store.put(conn, doc)
            after = {**doc.to_json(), "updatedAt": iso(doc.updated_at_ms)}
            payload: dict[str, Any] = {
                "schemaVersion": doc.schema_version,
                "updatedAt": iso(doc.updated_at_ms),
                "after": after,
            }
            if before is not None:
                payload["before"] = {**before.to_json(), "updatedAt": iso(before.updated_at_ms)}
            if comment:
                payload["auditComment"] = comment
            events.append(conn, "policy.updated", trace_id=trace, payload=payload)

        await self.store.write(unit)
        return policy_pb2.PutPolicyResponse(policy=policy_message(doc))

    async def rejections(self, req: policy_pb2.ListPolicyRejectionsRequest) -> policy_pb2.ListPolicyRejectionsResponse:
        ctx = "policy.rejections"
        limit = validation.page_limit(req.limit if req.HasField("limit") else None)
        after = cursors.decode_number(req.cursor, ctx) if req.cursor else 0
        session_id = validation.optional_session_id(req.session_id, ctx)
        created_after = validation.optional_instant(req.created_after, ctx, "createdAfter")
        created_before = validation.optional_instant(req.created_before, ctx, "createdBefore")
        rows = await self.store.read(
            lambda conn: policy_store.page_rejections(
                conn,
                after_seq=after,
                limit=limit + 1,
                session_id=session_id,
                created_after_ms=created_after,
                created_before_ms=created_before,
            )
        )
        resp = policy_pb2.ListPolicyRejectionsResponse(items=[rejection_message(r) for r in rows[:limit]])
        if len(rows) > limit:
            resp.next_cursor = cursors.encode(rows[limit - 1].seq)
        return resp
