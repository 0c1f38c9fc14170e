"""The messages a run answers with: `Run` (GetRun, from the stored row) and `RunResult` (CreateRun, from
what this process knows of the run: finished, accepted and still going, or queued as a work item)."""

from __future__ import annotations

from typing import Any

from athena.v1 import harness_profiles_pb2, runs_pb2, work_pb2
from athena_client.contract import enum_by_json, json_to_message
from athena_client.vocab import RunStatus
from athena_server.control.message_fields import set_present
from athena_server.control.run_specs import RunSpec
from athena_server.control.run_states import Admitted, Finished, Queued
from athena_server.storage.runs import RunRow
from athena_server.timefmt import iso

# The status column holds the contract's JSON spelling of RunStatus ("pending", "timed-out", ...).
_STATUS = enum_by_json(runs_pb2.RunStatus.DESCRIPTOR)
_VERIFICATION = enum_by_json(runs_pb2.VerificationStatus.DESCRIPTOR)


def _iso(ms: int | None) -> str | None:
    return iso(ms) if ms is not None else None


def _usage(input_tokens: int | None, output_tokens: int | None, total: int | None) -> runs_pb2.Usage | None:
    if total is None:
        return None
    return runs_pb2.Usage(input_tokens=input_tokens or 0, output_tokens=output_tokens or 0, total_tokens=total)


def _failures(items: list[dict[str, Any]]) -> list[runs_pb2.VerificationFailure]:
    return [json_to_message(item, runs_pb2.VerificationFailure()) for item in items]


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
        attempts=row.attempts,
        evidence_count=row.evidence_count,
        metadata=row.metadata or {},
        timeout_ms=row.timeout_ms,
    )
    set_present(
        run,
        output=row.output,
        started_at=_iso(row.started_at_ms),
        finished_at=_iso(row.finished_at_ms),
        cost_usd=row.cost_usd,
        directive_id=row.directive_id,
        harness_profile_id=row.harness_profile_id,
    )
    usage = _usage(row.input_tokens, row.output_tokens, row.total_tokens)
    if usage is not None:
        run.usage.CopyFrom(usage)
    if row.error_code is not None:
        run.error.CopyFrom(runs_pb2.RunError(code=row.error_code, message=row.error_message or ""))
    if row.verification is not None:
        run.verification_status = runs_pb2.VerificationStatus.ValueType(_VERIFICATION[row.verification["status"]])
        run.verification_failures.extend(_failures(row.verification.get("failures", [])))
    return run


def _snapshot_message(spec: RunSpec) -> harness_profiles_pb2.HarnessProfile:
    """The run's profile as a message. The shadow profile is built directly: parsing its JSON costs more
    than the rest of a mock run's result."""
    snap = spec.harness_snapshot
    if spec.harness_profile_id is not None:
        return json_to_message(snap, harness_profiles_pb2.HarnessProfile())
    config, policies = snap["config"], snap["policies"]
    return harness_profiles_pb2.HarnessProfile(
        id=snap["id"],
        display_name=snap["displayName"],
        version=snap["version"],
        config=harness_profiles_pb2.HarnessConfig(
            provider=config["provider"], model=config["model"], tools=config["tools"]
        ),
        policies=harness_profiles_pb2.HarnessPolicies(
            timeout_ms=policies["timeoutMs"], retry_limit=policies["retryLimit"], budget_usd=policies["budgetUsd"]
        ),
        created_at=snap["createdAt"],
    )


def _base_result(adm: Admitted) -> runs_pb2.RunResult:
    spec = adm.spec
    result = runs_pb2.RunResult(
        session_id=spec.session_id,
        provider=spec.provider,
        model=spec.model,
        created_at=iso(adm.started_ms if adm.started_ms is not None else adm.created_ms),
        run_id=adm.run_id,
        trace_id=adm.trace,
    )
    set_present(result, directive_id=spec.directive_id)
    result.harness_profile_id = str(spec.harness_snapshot.get("id", spec.harness_profile_id or ""))
    result.harness_profile_snapshot.CopyFrom(_snapshot_message(spec))
    if spec.template is not None:
        result.template.CopyFrom(
            runs_pb2.TemplateRunInfo(
                id=spec.template.id,
                harness_profile_id=spec.template.harness_profile_id,
                effective_params=spec.template.effective_params,
            )
        )
    return result


def success_result(adm: Admitted, fin: Finished) -> runs_pb2.RunResult:
    result = _base_result(adm)
    r = fin.result
    result.output = r.output
    result.status = runs_pb2.RUN_STATUS_SUCCEEDED
    result.usage.CopyFrom(
        runs_pb2.Usage(input_tokens=r.input_tokens, output_tokens=r.output_tokens, total_tokens=r.total_tokens)
    )
    result.verification_status = runs_pb2.VerificationStatus.ValueType(_VERIFICATION[fin.verification.status])
    result.verification_failures.extend(_failures(fin.verification.failures))
    result.evidence_count = len(r.evidence)
    set_present(result, cost_usd=fin.cost_usd)
    result.attempts = fin.attempts
    result.finished_at = iso(fin.finished_ms)
    return result


def accepted_result(adm: Admitted) -> runs_pb2.RunResult:
    """A run that goes on after the answer: running when it took its session's turn, else pending."""
    result = _base_result(adm)
    status = RunStatus.RUNNING if adm.started_ms is not None else RunStatus.PENDING
    result.status = runs_pb2.RunStatus.ValueType(_STATUS[status])
    return result


def queued_result(spec: RunSpec, queued: Queued) -> runs_pb2.RunResult:
    item = queued.item
    return runs_pb2.RunResult(
        session_id=spec.session_id,
        provider=spec.provider,
        model=spec.model,
        created_at=iso(item.created_at_ms),
        queued_item=work_pb2.WorkItem(
            id=item.id,
            session_id=item.session_id,
            payload=item.payload,
            mode=work_pb2.WORK_MODE_FOLLOWUP,
            created_at=iso(item.created_at_ms),
        ),
        queue_depth=queued.depth,
    )
