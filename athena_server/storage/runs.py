"""Run records: the authority on a run's status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from athena_server.storage.tables import runs


@dataclass(frozen=True)
class RunRow:
    id: str
    session_id: str
    status: str
    provider: str
    model: str
    input: str
    output: str | None
    error_code: str | None
    error_message: str | None
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    metadata: dict[str, str] | None
    trace_id: str
    created_at_ms: int
    started_at_ms: int | None
    finished_at_ms: int | None


async def insert_run(conn: AsyncConnection, **values: Any) -> None:
    await conn.execute(insert(runs).values(**values))


async def update_run(conn: AsyncConnection, run_id: str, **values: Any) -> None:
    await conn.execute(update(runs).where(runs.c.id == run_id).values(**values))


async def get(conn: AsyncConnection, run_id: str) -> RunRow | None:
    r = (await conn.execute(select(runs).where(runs.c.id == run_id))).one_or_none()
    return RunRow(**r._mapping) if r is not None else None
