"""Run templates: a directive text with `{{ name }}` placeholders, default parameters covering every one,
and the harness profile its runs use. `placeholders` and `render` are the pure template logic, shared with
the template runner (`POST /api/v1/templates/{id}/run`, `run_template`)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping

from sqlalchemy import Connection

from athena.v1 import run_templates_pb2, runs_pb2
from athena_client.vocab import EventType
from athena_server import validation
from athena_server.control import catalog_pages, pages
from athena_server.control.outcomes import Outcome
from athena_server.control.run_specs import TemplateInfo
from athena_server.errors import config_error
from athena_server.storage import events, harness_profiles, run_templates
from athena_server.storage.run_templates import RunTemplateRow
from athena_server.storage.store import Store
from athena_server.timefmt import iso, now_ms
from athena_server.tracing import trace_id

# `{{ name }}`: whitespace inside the braces is optional; anything else (`{{ a-b }}`, `{{}}`) is literal text.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_CTX = "runTemplates.create"
_KIND = "run-templates"


def placeholders(template: str) -> list[str]:
    """The distinct placeholder names of `template`, sorted."""
    return sorted(set(PLACEHOLDER.findall(template)))


def missing(template: str, params: Mapping[str, str]) -> list[str]:
    """The placeholders `params` has no value for, sorted."""
    return [name for name in placeholders(template) if name not in params]


def render(template: str, params: Mapping[str, str], context: str) -> str:
    """Substitute every placeholder in one pass (a value that itself looks like `{{ x }}` stays as is).
    CONFIG_ERROR `<context> is missing values for placeholders: a, b.` when any has no value."""
    absent = missing(template, params)
    if absent:
        raise config_error(f"{context} is missing values for placeholders: {', '.join(absent)}.")
    return PLACEHOLDER.sub(lambda m: params[m.group(1)], template)


def clean_params(values: Mapping[str, str], context: str) -> dict[str, str]:
    """Keys and values trimmed; empty keys or values are CONFIG_ERROR (`<context>.<key> must be ...`)."""
    out: dict[str, str] = {}
    for key, value in values.items():
        name = key.strip()
        if not name:
            raise config_error(f"{context} keys must be non-empty strings.")
        if not value.strip():
            raise config_error(f"{context}.{name} must be a non-empty string.")
        out[name] = value.strip()
    return out


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
        profile_id = req.harness_profile_id.strip()
        if not profile_id:
            raise config_error(f"{_CTX}.harnessProfileId must be a non-empty string.")
        template = req.directive_template.strip()
        if not template:
            raise config_error(f"{_CTX}.directiveTemplate must be a non-empty string.")
        defaults = clean_params(req.default_params, f"{_CTX}.defaultParams")
        row = RunTemplateRow(0, str(uuid.uuid4()), profile_id, template, defaults, now_ms())
        trace = trace_id()

        def unit(conn: Connection) -> None:
            # The profile is checked in the transaction that stores the template, as the original checks
            # it before the placeholders.
            if not harness_profiles.exists(conn, profile_id):
                raise config_error(
                    f"{_CTX}.harnessProfileId must reference an existing harness profile. Received: {profile_id}."
                )
            absent = missing(template, defaults)
            if absent:
                raise config_error(f"{_CTX}.defaultParams is missing values for placeholders: {', '.join(absent)}.")
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
                EventType.RUN_TEMPLATE_CREATED,
                trace_id=trace,
                payload={"runTemplateId": row.id, "harnessProfileId": profile_id},
            )

        await self.store.write(unit)
        return template_message(row)

    async def list(self, req: run_templates_pb2.ListRunTemplatesRequest) -> run_templates_pb2.ListRunTemplatesResponse:
        limit = validation.page_limit(req.limit if req.HasField("limit") else None)
        before, offset = catalog_pages.decode(req.cursor, _KIND, "runTemplates.list")
        rows = await self.store.read(lambda conn: run_templates.page(conn, limit + 1, before, offset))
        page = pages.fill(rows, limit, template_message)
        resp = run_templates_pb2.ListRunTemplatesResponse(items=page.items)
        if page.last is not None:
            resp.next_cursor = catalog_pages.encode(_KIND, page.last.seq)
        return resp


# Starts a run as `POST /runs` does, under the template runner's error context, with the template named.
StartRun = Callable[[runs_pb2.CreateRunRequest, str, TemplateInfo], Awaitable[Outcome[runs_pb2.RunResult]]]


async def run_template(
    store: Store, start: StartRun, req: run_templates_pb2.RunRunTemplateRequest
) -> Outcome[runs_pb2.RunResult]:
    """`POST /api/v1/templates/{id}/run`: render the template (defaults overridden by `params`) and run
    it with the template's harness profile, as the original's template runner; `run-template.run` follows."""
    ctx = "runTemplates.run"
    template_id = req.id.strip()
    if not template_id:
        raise config_error(f"{ctx}.id must be a non-empty string.")
    template = await store.read(lambda conn: run_templates.get(conn, template_id))
    if template is None:
        raise config_error(f"{ctx}.id must reference an existing run template. Received: {template_id}.")
    params = {**template.default_params, **clean_params(req.params, f"{ctx}.params")}
    rendered = render(template.directive_template, params, f"{ctx}.params")
    session_id = req.session_id.strip() or f"template-{template_id}-{uuid.uuid4().hex[:12]}"
    metadata = {
        "templateRun": "true",
        "templateId": template_id,
        "templateHarnessProfileId": template.harness_profile_id,
        "templateEffectiveParams": json.dumps(params, sort_keys=True, separators=(",", ":")),
    }
    create = runs_pb2.CreateRunRequest(
        session_id=session_id,
        input=rendered,
        harness_profile_id=template.harness_profile_id,
        metadata=metadata,
    )
    if req.HasField("wait"):
        create.wait = req.wait
    outcome = await start(create, ctx, TemplateInfo(template_id, template.harness_profile_id, params))
    result, trace = outcome.value, trace_id()
    await store.write(
        lambda conn: events.append(
            conn,
            EventType.RUN_TEMPLATE_RUN,
            trace_id=trace,
            session_id=session_id,
            run_id=result.run_id or None,
            payload={
                "templateId": template_id,
                "harnessProfileId": template.harness_profile_id,
                "runId": result.run_id,
            },
        )
    )
    return outcome
