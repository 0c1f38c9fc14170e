"""Directives: stored inputs a run can execute (`directiveId`)."""

from __future__ import annotations

import uuid

from sqlalchemy import Connection

from athena.v1 import directives_pb2
from athena_server import validation
from athena_server.control import catalog_pages
from athena_server.control.run_specs import clean_metadata
from athena_server.errors import config_error
from athena_server.storage import directives, events
from athena_server.storage.directives import DirectiveRow
from athena_server.storage.store import Store
from athena_server.timefmt import iso, now_ms
from athena_server.tracing import trace_id


def directive_message(row: DirectiveRow) -> directives_pb2.Directive:
    return directives_pb2.Directive(
        id=row.id,
        input=row.input,
        context_refs=row.context_refs or [],
        metadata=row.metadata or {},
        created_at=iso(row.created_at_ms),
    )


class DirectiveService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def create(self, req: directives_pb2.CreateDirectiveRequest) -> directives_pb2.Directive:
        ctx = "directives.create"
        text = req.input.strip()
        if not text:
            raise config_error(f"{ctx}.input must be a non-empty string.")
        refs = [r.strip() for r in req.context_refs]
        if any(not r for r in refs):
            raise config_error(f"{ctx}.contextRefs must contain non-empty strings.")
        metadata = clean_metadata(req.metadata, ctx)
        row = DirectiveRow(0, str(uuid.uuid4()), text, refs or None, metadata or None, now_ms())
        trace = trace_id()

        def unit(conn: Connection) -> None:
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
                "directive.created",
                trace_id=trace,
                payload={"directiveId": row.id, "hasContextRefs": bool(refs), "hasMetadata": bool(metadata)},
            )

        await self.store.write(unit)
        return directive_message(row)

    async def list(self, req: directives_pb2.ListDirectivesRequest) -> directives_pb2.ListDirectivesResponse:
        limit = validation.page_limit(req.limit if req.HasField("limit") else None)
        before, offset = catalog_pages.decode(req.cursor, "directives", "directives.list")
        rows = await self.store.read(lambda conn: directives.page(conn, limit + 1, before, offset))
        resp = directives_pb2.ListDirectivesResponse(items=[directive_message(r) for r in rows[:limit]])
        if len(rows) > limit:
            resp.next_cursor = catalog_pages.encode("directives", rows[limit - 1].seq)
        return resp
