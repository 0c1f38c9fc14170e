"""Executing one run's provider call: attempts with retries, and the verification of what it left.

Kept free of the store so the arithmetic (retry budget, back-off, verification rules) is unit-testable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from athena_server import otel
from athena_server.engine.providers import Evidence, Provider, ProviderRequest, ProviderResult
from athena_server.errors import AthenaError, ErrorCode

if TYPE_CHECKING:
    from athena_server.metrics import Metrics

log = logging.getLogger(__name__)

# The original's back-off between provider attempts: 50 ms times the attempt number.
BACKOFF_MS = 50
PROVIDER_SPAN = "athena.provider.attempt"


@dataclass
class Attempts:
    """How many provider calls a run made; read by the executor whatever way the run ended."""

    made: int = 0
    errors: list[str] = field(default_factory=list)


def backoff_seconds(attempt: int) -> float:
    return BACKOFF_MS * attempt / 1000


async def call_with_retries(
    provider: Provider,
    request: ProviderRequest,
    retry_budget: int,
    attempts: Attempts,
    metrics: Metrics | None = None,
) -> ProviderResult:
    """Call the provider; retry retryable PROVIDER errors up to `retry_budget` times, with back-off.
    `metrics` counts the attempts and their errors by provider."""
    attempt = 0
    while True:
        attempt += 1
        attempts.made = attempt
        if metrics is not None:
            metrics.provider_attempts(provider.name).inc()
        try:
            return await _complete(provider, _with_attempt(request, attempt))
        except AthenaError as err:
            attempts.errors.append(err.message)
            if metrics is not None:
                metrics.provider_errors(provider.name, err.code_name).inc()
            if not err.retryable or attempt > retry_budget:
                raise
            log.info("run %s: provider attempt %d failed (%s); retrying", request.run_id, attempt, err.message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("provider %s failed for run %s", provider.name, request.run_id)
            failure = AthenaError(ErrorCode.ERROR_CODE_PROVIDER_ERROR, str(exc) or type(exc).__name__)
            if metrics is not None:
                metrics.provider_errors(provider.name, failure.code_name).inc()
            raise failure from exc
        await asyncio.sleep(backoff_seconds(attempt))


def _complete(provider: Provider, request: ProviderRequest) -> Awaitable[ProviderResult]:
    """One provider call; with tracing on, inside an `athena.provider.attempt` span (off: the call itself,
    no coroutine around it)."""
    if not otel.ENABLED:
        return provider.complete(request)
    return _traced_complete(provider, request)


async def _traced_complete(provider: Provider, request: ProviderRequest) -> ProviderResult:
    """The span is active during the call, so a provider that makes traced calls of its own nests them
    there; an error ends it failed with its contract code."""
    attributes = {"athena.provider": provider.name, "athena.run_id": request.run_id, "athena.attempt": request.attempt}
    with otel.span(PROVIDER_SPAN, attributes):
        return await provider.complete(request)


def _with_attempt(request: ProviderRequest, attempt: int) -> ProviderRequest:
    return request if request.attempt == attempt else replace(request, attempt=attempt)


@dataclass(frozen=True)
class Verification:
    status: str  # "passed" | "verification-failed"
    failures: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "failures": self.failures}


def verify(policies: Sequence[Mapping[str, Any]], evidence: Sequence[Evidence]) -> Verification:
    """The harness profile's verification policies against the run's evidence (`require-evidence`: a
    record with the label, and type when given, that is not empty)."""
    failures: list[dict[str, Any]] = []
    for policy in policies:
        if policy.get("kind") != "require-evidence":
            continue
        label = str(policy.get("label", ""))
        wanted_type = policy.get("evidenceType")
        matches = [e for e in evidence if e.label == label and (not wanted_type or e.type == wanted_type)]
        details: dict[str, Any] = {"label": label}
        if wanted_type:
            details["evidenceType"] = wanted_type
        if not matches:
            message = f"Required evidence was not found for label '{label}'."
        elif all(not e.content.strip() for e in matches):
            message = f"Required evidence was present but empty for label '{label}'."
        else:
            continue
        failures.append(
            {"policyId": str(policy.get("id", "")), "kind": "require-evidence", "message": message, "details": details}
        )
    return Verification("verification-failed" if failures else "passed", failures)
