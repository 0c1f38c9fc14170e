"""The operational policy document and the record of requests it refused."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from athena_server.storage.prepared import Prepared
from athena_server.storage.rows import row_of
from athena_server.storage.sqlite_writer import GROUP_MEMO
from athena_server.storage.tables import policy, policy_rejections

_ROW_ID = 1
# Read by every run's admission: through the driver on SQLite (storage/prepared.py), the JSON decoded here.
_GET = Prepared(select(policy.c.document, policy.c.updated_at_ms).where(policy.c.id == _ROW_ID))
REJECTION_ID_PREFIX = "rej_"
_MEMO_KEY = "policy"


@dataclass(frozen=True)
class PolicyDoc:
    """The stored document; absent fields are not set (the PUT is a full replace)."""

    schema_version: int
    updated_at_ms: int
    max_concurrent_runs: int | None = None
    default_run_timeout_ms: int | None = None
    default_schedule_timeout_ms: int | None = None
    retry_budget_per_run: int | None = None
    cost_budget_daily_usd: float | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"schemaVersion": self.schema_version}
        for key, value in (
            ("maxConcurrentRuns", self.max_concurrent_runs),
            ("defaultRunTimeoutMs", self.default_run_timeout_ms),
            ("defaultScheduleTimeoutMs", self.default_schedule_timeout_ms),
            ("retryBudgetPerRun", self.retry_budget_per_run),
            ("costBudgetDailyUsd", self.cost_budget_daily_usd),
        ):
            if value is not None:
                doc[key] = value
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any], updated_at_ms: int) -> PolicyDoc:
        return cls(
            schema_version=int(doc["schemaVersion"]),
            updated_at_ms=updated_at_ms,
            max_concurrent_runs=doc.get("maxConcurrentRuns"),
            default_run_timeout_ms=doc.get("defaultRunTimeoutMs"),
            default_schedule_timeout_ms=doc.get("defaultScheduleTimeoutMs"),
            retry_budget_per_run=doc.get("retryBudgetPerRun"),
            cost_budget_daily_usd=doc.get("costBudgetDailyUsd"),
        )


def get(conn: Connection) -> PolicyDoc | None:
    """The policy as this transaction sees it. In a SQLite write group it is read once and kept for the
    group's other units (GROUP_MEMO): a run's admission reads it, and the two statement steps of that read
    were ~10 % of a run's cost on the writer thread."""
    memo: dict[str, Any] | None = conn.info.get(GROUP_MEMO)
    if memo is not None and _MEMO_KEY in memo:
        return memo[_MEMO_KEY]
    rows = _GET.rows(conn, {})
    doc = None
    if rows:
        document, updated_at_ms = rows[0]
        # SQLite hands back the stored text; other drivers the decoded JSON column.
        doc = PolicyDoc.from_json(json.loads(document) if isinstance(document, str) else document, updated_at_ms)
    if memo is not None:
        memo[_MEMO_KEY] = doc
    return doc


def put(conn: Connection, doc: PolicyDoc) -> None:
    conn.execute(delete(policy).where(policy.c.id == _ROW_ID))
    conn.execute(insert(policy).values(id=_ROW_ID, document=doc.to_json(), updated_at_ms=doc.updated_at_ms))
    memo: dict[str, Any] | None = conn.info.get(GROUP_MEMO)
    if memo is not None:
        memo.pop(_MEMO_KEY, None)


@dataclass(frozen=True)
class RejectionRow:
    seq: int
    created_at_ms: int
    session_id: str
    run_id: str | None
    active_runs: int
    max_concurrent_runs: int
    reason: str
    policy: dict[str, Any] | None
    event: dict[str, Any] | None

    @property
    def id(self) -> str:
        return f"{REJECTION_ID_PREFIX}{self.seq}"


def insert_rejection(
    conn: Connection,
    *,
    created_at_ms: int,
    session_id: str,
    run_id: str | None,
    active_runs: int,
    max_concurrent_runs: int,
    reason: str,
    policy_meta: dict[str, Any] | None,
    event: dict[str, Any] | None,
) -> int:
    """Records a refusal; returns its sequence number (the id is `rej_<seq>`)."""
    result = conn.execute(
        insert(policy_rejections).values(
            created_at_ms=created_at_ms,
            session_id=session_id,
            run_id=run_id,
            active_runs=active_runs,
            max_concurrent_runs=max_concurrent_runs,
            reason=reason,
            policy=policy_meta,
            event=event,
        )
    )
    (seq,) = result.inserted_primary_key or (0,)
    return int(seq)


def page_rejections(
    conn: Connection,
    *,
    after_seq: int,
    limit: int,
    session_id: str | None = None,
    created_after_ms: int | None = None,
    created_before_ms: int | None = None,
) -> list[RejectionRow]:
    """Rejections with seq > after_seq, oldest first (the seed's cursor `MQ` follows `rej_1`)."""
    r = policy_rejections.c
    q = select(policy_rejections).where(r.seq > after_seq).order_by(r.seq).limit(limit)
    if session_id is not None:
        q = q.where(r.session_id == session_id)
    if created_after_ms is not None:
        q = q.where(r.created_at_ms >= created_after_ms)
    if created_before_ms is not None:
        q = q.where(r.created_at_ms <= created_before_ms)
    return [row_of(RejectionRow, x) for x in conn.execute(q).all()]
