"""Starting runs and reading them back.

A run moves pending -> running -> succeeded | failed | cancelled | timed-out, and each move commits
together with its event (`run.created`, `run.started`, `run.completed` / `run.failed` /
`run.cancelled`) and its transcript entry, so the event log, the transcript and the run record never
disagree, whatever the moment a process dies.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from athena.v1 import runs_pb2
from athena_client.contract import enum_by_json
from athena_server import validation
from athena_server.config import Settings
from athena_server.engine.context import MAX_HISTORY_ENTRIES, compile_context
from athena_server.engine.providers import ProviderRegistry, ProviderRequest
from athena_server.errors import AthenaError, ErrorCode, config_error, not_found, not_implemented
from athena_server.storage import events, runs, sessions, transcripts
from athena_server.storage.runs import RunRow
from athena_server.storage.store import Store
from athena_server.storage.transcripts import EntryRow
from athena_server.timefmt import iso, now_ms
from athena_server.tracing import trace_id

log = logging.getLogger(__name__)

# The status column holds the contract's JSON spelling of RunStatus ("pending", "timed-out", ...).
_STATUS = enum_by_json(runs_pb2.RunStatus.DESCRIPTOR)
# Final status and event of a run that ended with an error, by error code.
_FAILURE = {
    ErrorCode.ERROR_CODE_RUN_CANCELLED: ("cancelled", "run.cancelled"),
    ErrorCode.ERROR_CODE_RUN_TIMEOUT: ("timed-out", "run.failed"),
}


def _metadata(values: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in values.items():
        if not value.strip():
            raise config_error(f"runs.create.metadata.{key} must be a non-empty string.")
        out[key] = value.strip()
    return out


def _usage(row: RunRow) -> runs_pb2.Usage | None:
    if row.total_tokens is None:
        return None
    return runs_pb2.Usage(
        input_tokens=row.input_tokens or 0, output_tokens=row.output_tokens or 0, total_tokens=row.total_tokens
    )


def run_message(row: RunRow) -> runs_pb2.Run:
    run = runs_pb2.Run(
        run_id=row.id,
        session_id=row.session_id,
        status=runs_pb2.RunStatus.ValueType(_STATUS[row.status]),
        provider=row.provider,
        model=row.model,
        input=row.input,
        created_at=iso(row.created_at_ms),
        trace_id=row.trace_id,
    )
    if row.output is not None:
        run.output = row.output
    if row.started_at_ms is not None:
        run.started_at = iso(row.started_at_ms)
    if row.finished_at_ms is not None:
        run.finished_at = iso(row.finished_at_ms)
    usage = _usage(row)
    if usage is not None:
        run.usage.CopyFrom(usage)
    if row.error_code is not None:
        run.error.CopyFrom(runs_pb2.RunError(code=row.error_code, message=row.error_message or ""))
    return run


class RunService:
    def __init__(self, store: Store, settings: Settings, providers: ProviderRegistry) -> None:
        self.store = store
        self.settings = settings
        self.providers = providers

    async def create(self, req: runs_pb2.CreateRunRequest) -> runs_pb2.RunResult:
        session_id = validation.session_id(req.session_id, "runs.create")
        if req.directive_id.strip():
            raise not_implemented("Runs from stored directives (directiveId)")
        if req.harness_profile_id.strip():
            raise not_implemented("Runs with harness profiles (harnessProfileId)")
        user_input = req.input.strip()
        if not user_input:
            raise config_error("runs.create requires either input or directiveId.")
        provider_name = req.provider.strip() or self.settings.default_provider
        provider = self.providers.get(provider_name)
        model = req.model.strip() or self.settings.default_model
        metadata = _metadata(dict(req.metadata))
        trace = trace_id()
        run_id = str(uuid.uuid4())
        labels = {"provider": provider_name, "model": model}

        created = now_ms()
        async with self.store.write() as conn:
            await sessions.touch(conn, session_id, provider_name, model, created)
            await runs.insert_run(
                conn,
                id=run_id,
                session_id=session_id,
                status="pending",
                provider=provider_name,
                model=model,
                input=user_input,
                metadata=metadata or None,
                trace_id=trace,
                created_at_ms=created,
            )
            await events.append(
                conn, "run.created", trace_id=trace, session_id=session_id, run_id=run_id, payload=labels
            )

        started = now_ms()
        async with self.store.write() as conn:
            history = await transcripts.tail(conn, session_id, MAX_HISTORY_ENTRIES)
            await runs.update_run(conn, run_id, status="running", started_at_ms=started)
            await transcripts.append(
                conn, EntryRow(0, str(uuid.uuid4()), session_id, run_id, "user", user_input, False, None, started)
            )
            await events.append(
                conn, "run.started", trace_id=trace, session_id=session_id, run_id=run_id, payload=labels
            )

        try:
            compiled = compile_context([(e.role, e.content) for e in history], user_input)
            result = await provider.complete(
                ProviderRequest(
                    run_id=run_id, session_id=session_id, model=model, prompt=compiled.prompt, input=user_input
                )
            )
        except AthenaError as err:
            await self._finish_failed(run_id, session_id, labels, trace, err)
            raise
        except asyncio.CancelledError:
            # The caller went away (or the server is stopping): record the run as cancelled rather than
            # leaving it "running" forever, then let the cancellation proceed.
            gone = AthenaError(ErrorCode.ERROR_CODE_RUN_CANCELLED, "Run cancelled: the caller disconnected.")
            await asyncio.shield(self._finish_failed(run_id, session_id, labels, trace, gone))
            raise
        except Exception as exc:
            log.exception("provider %s failed for run %s", provider_name, run_id)
            failure = AthenaError(ErrorCode.ERROR_CODE_PROVIDER_ERROR, str(exc) or type(exc).__name__, retryable=True)
            await self._finish_failed(run_id, session_id, labels, trace, failure)
            raise failure from exc

        usage = {
            "inputTokens": result.input_tokens,
            "outputTokens": result.output_tokens,
            "totalTokens": result.total_tokens,
        }
        finished = now_ms()
        async with self.store.write() as conn:
            await runs.update_run(
                conn,
                run_id,
                status="succeeded",
                output=result.output,
                input_tokens=result.input_tokens,
                output_tokens=result.output_tokens,
                total_tokens=result.total_tokens,
                finished_at_ms=finished,
            )
            entry_meta = {
                "contextStrategy": compiled.strategy,
                "contextChars": str(len(compiled.prompt)),
                "contextHistoryEntries": str(compiled.history_entries),
                "providerModel": result.model,
                "providerLatencyMs": str(finished - started),
            }
            await transcripts.append(
                conn,
                EntryRow(
                    0, str(uuid.uuid4()), session_id, run_id, "assistant", result.output, False, entry_meta, started
                ),
            )
            await sessions.touch(conn, session_id, provider_name, model, finished)
            await events.append(
                conn,
                "run.completed",
                trace_id=trace,
                session_id=session_id,
                run_id=run_id,
                payload={**labels, "usage": usage},
            )
        return runs_pb2.RunResult(
            session_id=session_id,
            output=result.output,
            provider=provider_name,
            model=model,
            created_at=iso(started),
            run_id=run_id,
            usage=runs_pb2.Usage(
                input_tokens=result.input_tokens, output_tokens=result.output_tokens, total_tokens=result.total_tokens
            ),
        )

    async def _finish_failed(
        self, run_id: str, session_id: str, labels: dict[str, str], trace: str, err: AthenaError
    ) -> None:
        status, event_type = _FAILURE.get(err.code, ("failed", "run.failed"))
        finished = now_ms()
        async with self.store.write() as conn:
            await runs.update_run(
                conn,
                run_id,
                status=status,
                error_code=err.code_name,
                error_message=err.message,
                finished_at_ms=finished,
            )
            await transcripts.append(
                conn,
                EntryRow(
                    0,
                    str(uuid.uuid4()),
                    session_id,
                    run_id,
                    "assistant",
                    err.message,
                    True,
                    {"errorCode": err.code_name},
                    finished,
                ),
            )
            await sessions.touch(conn, session_id, labels["provider"], labels["model"], finished)
            await events.append(
                conn,
                event_type,
                trace_id=trace,
                session_id=session_id,
                run_id=run_id,
                payload={**labels, "error": {"code": err.code_name, "message": err.message}},
            )

    async def get(self, run_id: str) -> runs_pb2.Run:
        run_id = run_id.strip()
        if not run_id:
            raise config_error("runs.get.runId must be a non-empty string.")
        async with self.store.read() as conn:
            row = await runs.get(conn, run_id)
        if row is None:
            raise not_found(f"Run '{run_id}' not found.")
        return run_message(row)
