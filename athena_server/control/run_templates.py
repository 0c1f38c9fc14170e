"""Run templates: `{{ name }}` placeholders, their defaults, and rendering."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping

from sqlalchemy import Connection

from athena.v1 import run_templates_pb2
from athena_server import validation
from athena_server.control import catalog_pages
from athena_server.errors import config_error
from athena_server.storage import events, harness_profiles, run_templates
from athena_server.storage.run_templates import RunTemplateRow
from athena_server.storage.store import Store
from athena_server.timefmt import iso, now_ms
from athena_server.tracing import trace_id

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def placeholders(template: str) -> list[str]:
    """The distinct placeholder names, sorted."""
    return sorted(set(PLACEHOLDER.findall(template)))


def render(template: str, params: Mapping[str, str], context: str) -> str:
    """Substitute every placeholder; CONFIG_ERROR `<context> is missing values for placeholders: a, b.`"""
    missing = [name for name in placeholders(template) if name not in params]
    if missing:
        raise config_error(f"{context} is missing values for placeholders: {', '.join(missing)}.")
    return PLACEHOLDER.sub(lambda m: params[m.group(1)], template)


def template_message(row: RunTemplateRow) -> run_templates_pb2.RunTemplate:
    return run_templates_pb2.RunTemplate(
        id=row.id,
        harness_profile_id=row.harness_profile_id,
        directive_template=row.directive_template,
        default_params=row.default_params,
        created_at=iso(row.created_at_ms),
    )


class RunTemplateService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def create(self, req: run_templates_pb2.CreateRunTemplateRequest) -> run_templates_pb2.RunTemplate:
        ctx = "runTemplates.create"
        profile_id = req.harness_profile_id.strip()
        if not profile_id:
            raise config_error(f"{ctx}.harnessProfileId must be a non-empty string.")
        template = req.directive_template
        if not template.strip():
            raise config_error(f"{ctx}.directiveTemplate must be a non-empty string.")
        defaults: dict[str, str] = {}
        for key, value in req.default_params.items():
            if not value.strip():
                raise config_error(f"{ctx}.defaultParams.{key} must be a non-empty string.")
            defaults[key] = value
        missing = [name for name in placeholders(template) if name not in defaults]
        if missing:
            raise config_error(f"{ctx}.defaultParams is missing values for placeholders: {', '.join(missing)}.")
        row = RunTemplateRow(0, str(uuid.uuid4()), profile_id, template, defaults, now_ms())
        trace = trace_id()

        def unit(conn: Connection) -> None:
            if harness_profiles.get(conn, profile_id) is None:
                raise config_error(
                    f"{ctx}.harnessProfileId must reference an existing harness profile. Received: {profile_id}."
                )
            run_templates.insert(
                conn,
                id=row.id,
                harness_profile_id=profile_id,
                directive_template=template,
                default_params=defaults,
                created_at_ms=row.created_at_ms,
            )
            events.append(
                conn,
                "run-template.created",
                trace_id=trace,
                payload={
                    "runTemplateId": row.id,
                    "harnessProfileId": profile_id,
                    "placeholders": placeholders(template),
                },
            )

        await self.store.write(unit)
        return template_message(row)

    async def list(self, req: run_templates_pb2.ListRunTemplatesRequest) -> run_templates_pb2.ListRunTemplatesResponse:
        limit = validation.page_limit(req.limit if req.HasField("limit") else None)
        before, offset = catalog_pages.decode(req.cursor, "run-templates", "runTemplates.list")
        rows = await self.store.read(lambda conn: run_templates.page(conn, limit + 1, before, offset))
        resp = run_templates_pb2.ListRunTemplatesResponse(items=[template_message(r) for r in rows[:limit]])
        if len(rows) > limit:
            resp.next_cursor = catalog_pages.encode("run-templates", rows[limit - 1].seq)
        return resp
