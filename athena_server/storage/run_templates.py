"""Run templates: a directive template with `{{ name }}` placeholders, its default parameters and the
harness profile its runs use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy import insert as sql_insert

from athena_server.storage import keyset
from athena_server.storage.rows import row_of
from athena_server.storage.tables import run_templates

_INSERT = sql_insert(run_templates)


@dataclass(frozen=True)
class RunTemplateRow:
    seq: int  # 0 until stored; only pages read it
    id: str
    harness_profile_id: str
    directive_template: str
    default_params: dict[str, str]
    created_at_ms: int


def _row(r: Any) -> RunTemplateRow:
    return row_of(RunTemplateRow, r, default_params=dict(r.default_params or {}))


def insert(
    conn: Connection,
    *,
    id: str,
    harness_profile_id: str,
    directive_template: str,
    default_params: dict[str, str],
    created_at_ms: int,
) -> None:
    conn.execute(
        _INSERT,
        {
            "id": id,
            "harness_profile_id": harness_profile_id,
            "directive_template": directive_template,
            "default_params": default_params,
            "created_at_ms": created_at_ms,
        },
    )


def get(conn: Connection, template_id: str) -> RunTemplateRow | None:
    r = conn.execute(select(run_templates).where(run_templates.c.id == template_id)).one_or_none()
    return _row(r) if r is not None else None


def page(conn: Connection, limit: int, before_seq: int | None, offset: int = 0) -> list[RunTemplateRow]:
    """Newest first, strictly before `before_seq` (a keyset cursor), or skipping `offset` rows (a legacy one)."""
    before = None if before_seq is None else (before_seq,)
    q = keyset.newest_first(select(run_templates), [run_templates.c.seq], before, limit, offset)
    return [_row(r) for r in conn.execute(q).all()]
