"""Running a persona: load it, check the repository and the range, build the input from the rubric and the
diff, and run it as an ordinary run (the run service's admission, session turn, record, `run.*` events,
cancellation and timeout), then check the answer against the persona's schema, with one repair run when it
does not fit. The result is written as a `persona.run.completed` (or `.failed`) event with the whole result,
and each run's output (the model's review JSON) stays readable through `GET /runs/{id}`."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path

from athena.v1 import personas_pb2, runs_pb2
from athena_client.contract import message_to_json
from athena_server import validation
from athena_server.config import Settings
from athena_server.control.run_specs import clean_metadata
from athena_server.control.runs import RunOptions, RunService
from athena_server.errors import AthenaError, config_error
from athena_server.personas import manifest, preflight, prompt, render, rules, schema
from athena_server.personas.constants import (
    ATTEMPT_REPAIR,
    ATTEMPT_REVIEW,
    CONTEXT,
    EVENT_COMPLETED,
    EVENT_FAILED,
    LABEL_ATTEMPT,
    LABEL_FIRST_RUN,
    LABEL_PERSONA,
    SCHEMA_VERSION,
    STATUS_FAILED,
    STATUS_OK,
    STDOUT_ALIASES,
    STDOUT_MODES,
)
from athena_server.personas.diff import Shown, change, shown_lines
from athena_server.storage import events, runs
from athena_server.storage.store import Store
from athena_server.timefmt import iso, now_ms
from athena_server.tracing import trace_id


class RunFailed(Exception):
    """A review run that exists and ended without an answer (provider error, timeout, cancellation)."""

    def __init__(self, err: AthenaError) -> None:
        super().__init__(err.message)
        self.reason = f"Run failed ({err.code_name}): {err.message}"


def stdout_mode(value: str) -> str:
    mode = STDOUT_ALIASES.get(value.strip(), value.strip())
    if mode not in STDOUT_MODES:
        raise config_error(f"{CONTEXT}.stdout must be summary|json|md|none.")
    return mode


def _notes(judged: rules.Judged) -> str:
    """What the server changed or doubts, appended to the model's report for the human reading it."""
    lines = [judged.gate_note] if judged.gate_note else []
    outside = [f.title for f, out in judged.findings if out]
    if outside:
        lines.append(
            f"{len(outside)} finding(s) point outside the diff and are not trusted: " + "; ".join(outside) + "."
        )
    return "\n\n## Server notes\n\n" + "\n".join(f"- {line}" for line in lines) if lines else ""


def _finding_message(finding: schema.Finding, outside: bool) -> personas_pb2.PersonaFinding:
    msg = personas_pb2.PersonaFinding(
        priority=finding.priority,
        confidence=finding.confidence,
        title=finding.title,
        message=finding.message,
        outside_diff=outside,
    )
    if finding.suggestion is not None:
        msg.suggestion = finding.suggestion
    if finding.file is not None:
        msg.file = finding.file
    if finding.line is not None:
        msg.line = finding.line
    return msg


class PersonaService:
    def __init__(self, store: Store, settings: Settings, run_service: RunService) -> None:
        self.store = store
        self.settings = settings
        self.runs = run_service

    @property
    def workspace(self) -> Path:
        return (self.settings.workspace or Path.cwd()).resolve()

    async def run(self, req: personas_pb2.RunPersonaRequest) -> personas_pb2.RunPersonaResponse:
        mode = stdout_mode(req.stdout)
        workspace = self.workspace
        persona = manifest.load(req.name, workspace)
        session_id = validation.optional_session_id(req.session_id, CONTEXT)
        labels = clean_metadata(req.metadata, CONTEXT)
        roots = preflight.allowed_roots(workspace, self.settings.persona_repo_roots)
        checked = await preflight.check(persona, req.repo_path, req.head_ref, req.base_ref, workspace, roots)
        changed = await change(checked.git, checked.base_commit, checked.head_commit)
        text, shown_diff = prompt.review_input(
            persona.name,
            persona.rubric,
            checked.base_ref,
            checked.head_ref,
            changed.files,
            changed.files_truncated,
            changed.diff,
            changed.truncated,
        )
        shown = Shown(frozenset(changed.files), shown_lines(shown_diff))
        started = now_ms()
        suffix = f"{persona.name}-{started}-{uuid.uuid4().hex[:8]}"
        run_id = f"persona-{suffix}"
        result = personas_pb2.PersonaRunResult(
            schema_version=SCHEMA_VERSION,
            persona_name=persona.name,
            run_id=run_id,
            session_id=session_id or f"session-{suffix}",
            repo_path=req.repo_path.strip(),
            head_ref=checked.head_ref,
            base_ref=checked.base_ref,
            started_at=iso(started),
            base_ref_resolved_from=checked.base_from,
            base_commit=checked.base_commit,
            head_commit=checked.head_commit,
            changed_files=changed.files,
            diff_truncated=changed.truncated or len(shown_diff) < len(changed.diff.rstrip("\n")),
        )
        labels = {**labels, LABEL_PERSONA: persona.name, LABEL_FIRST_RUN: run_id}
        try:
            review = await self._review(req, result, text, labels)
        except RunFailed as failed:
            result.status, result.error = STATUS_FAILED, failed.reason
        except schema.InvalidAnswer as invalid:
            result.status = STATUS_FAILED
            result.error = f"The answer did not match the persona's schema after one repair attempt: {invalid}"
        else:
            judged = rules.judge(review, shown)
            result.status = STATUS_OK
            result.merge_gate = judged.merge_gate
            result.findings.extend(_finding_message(f, out) for f, out in judged.findings)
            result.report_markdown = review.report_markdown + _notes(judged)
        result.finished_at = iso(now_ms())
        await self._record(result)
        return personas_pb2.RunPersonaResponse(result=result, stdout=render.render(mode, result))

    async def _review(
        self,
        req: personas_pb2.RunPersonaRequest,
        result: personas_pb2.PersonaRunResult,
        text: str,
        labels: Mapping[str, str],
    ) -> schema.Review:
        """The valid review: the first answer, else the repair run's. InvalidAnswer when both miss."""
        first = await self._run_once(
            req, result.run_id, result.session_id, text, {**labels, LABEL_ATTEMPT: ATTEMPT_REVIEW}
        )
        try:
            return schema.parse(first)
        except schema.InvalidAnswer as invalid:
            result.repair_attempted = True
            result.parse_error = str(invalid)
            result.repair_run_id = f"{result.run_id}-repair"
            repair = prompt.repair_input(text, first, invalid.problems)
            second = await self._run_once(
                req, result.repair_run_id, result.session_id, repair, {**labels, LABEL_ATTEMPT: ATTEMPT_REPAIR}
            )
            return schema.parse(second)

    async def _run_once(
        self, req: personas_pb2.RunPersonaRequest, run_id: str, session_id: str, text: str, labels: Mapping[str, str]
    ) -> str:
        """One run through the run service; its output. Errors before the run exists (a policy refusal, an
        unknown provider, a busy session) are the request's errors; a run that failed is RunFailed."""
        create = runs_pb2.CreateRunRequest(
            session_id=session_id, input=text, provider=req.provider, model=req.model, metadata=dict(labels)
        )
        try:
            outcome = await self.runs.create(create, context=CONTEXT, options=RunOptions(run_id=run_id))
        except AthenaError as err:
            if await self.store.read(lambda conn: runs.get(conn, run_id)) is None:
                raise
            raise RunFailed(err) from None
        return outcome.value.output

    async def _record(self, result: personas_pb2.PersonaRunResult) -> None:
        """The result as an event: `persona.run.completed` for a review, `persona.run.failed` otherwise."""
        event_type = EVENT_COMPLETED if result.status == STATUS_OK else EVENT_FAILED
        payload = message_to_json(result)
        trace = trace_id()
        await self.store.write(
            lambda conn: events.append(
                conn,
                event_type,
                trace_id=trace,
                session_id=result.session_id,
                run_id=result.run_id,
                payload=payload,
            )
        )
