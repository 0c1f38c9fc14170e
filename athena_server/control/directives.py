"""Directives: stored task inputs a run can execute by id (`directiveId`).

Validation follows the original's parser: `contextRefs` and `metadata` are checked before `input`, every
string is stored trimmed, and empty lists or maps are stored as absent.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping

from sqlalchemy import Connection

from athena.v1 import directives_pb2
from athena_client.vocab import EventType
from athena_server import validation
from athena_server.control import catalog_pages, pages
from athena_server.errors import config_error
from athena_server.storage import directives, events
from athena_server.storage.directives import DirectiveRow
from athena_server.storage.store import Store
from athena_server.timefmt import iso, now_ms
from athena_server.tracing import trace_id

_CTX = "directives.create"
_KIND = "directives"


def directive_message(row: DirectiveRow) -> directives_pb2.Directive:
    return directives_pb2.Directive(
        id=row.id,
        input=row.input,
        context_refs=row.context_refs or [],
        metadata=row.metadata or {},
        created_at=iso(row.created_at_ms),
    )


def _context_refs(values: Iterable[str]) -> list[str]:
    refs: list[str] = []
    for index, value in enumerate(values):
        if not value.strip():
            raise config_error(f"{_CTX}.contextRefs[{index}] must be a non-empty string.")
        refs.append(value.strip())
    return refs


def _metadata(values: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in values.items():
        if not value.strip():
            raise config_error(f"{_CTX}.metadata.{key} must be a non-empty string.")
        out[key] = value.strip()
    return out


class DirectiveService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def create(self, req: directives_pb2.CreateDirectiveRequest) -> directives_pb2.Directive:
        refs = _context_refs(req.context_refs)
        metadata = _metadata(req.metadata)
        text = req.input.strip()
        if not text:
            raise config_error(f"{_CTX}.input must be a non-empty string.")
        directive_id = str(uuid.uuid4())
        trace = trace_id()

        def unit(conn: Connection) -> DirectiveRow:
            created = max(now_ms(), directives.latest_created_ms(conn) or 0)
            row = DirectiveRow(0, directive_id, text, refs or None, metadata or None, created)
            directives.insert(
                conn,
                id=row.id,
                input=row.input,
                context_refs=row.context_refs,
                metadata=row.metadata,
                created_at_ms=row.created_at_ms,
            )
            events.append(
                conn,
                EventType.DIRECTIVE_CREATED,
                trace_id=trace,
                payload={"directiveId": row.id, "hasContextRefs": bool(refs), "hasMetadata": bool(metadata)},
            )
            return row

        return directive_message(await self.store.write(unit))

    async def list(self, req: directives_pb2.ListDirectivesRequest) -> directives_pb2.ListDirectivesResponse:
        limit = validation.page_limit(req.limit if req.HasField("limit") else None)
        before, offset = catalog_pages.decode(req.cursor, _KIND, "directives.list")
        rows = await self.store.read(lambda conn: directives.page(conn, limit + 1, before, offset))
        page = pages.fill(rows, limit, directive_message)
        resp = directives_pb2.ListDirectivesResponse(items=page.items)
        if page.last is not None:
            resp.next_cursor = catalog_pages.encode(_KIND, page.last.seq)
        return resp
