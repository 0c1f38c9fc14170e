"""Turning a run request into what the run engine executes: validation as the original, and resolution of
the directive and harness profile it names (or the shadow ones a raw input gets)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection

from athena.v1 import runs_pb2
from athena_client.vocab import RunningRunBehavior
from athena_server import validation
from athena_server.config import Settings
from athena_server.engine.providers import ProviderRegistry
from athena_server.errors import config_error
from athena_server.storage import directives, harness_profiles
from athena_server.timefmt import iso, now_ms

BEHAVIORS = {
    runs_pb2.RUNNING_RUN_BEHAVIOR_UNSPECIFIED: RunningRunBehavior.WAIT,
    runs_pb2.RUNNING_RUN_BEHAVIOR_WAIT: RunningRunBehavior.WAIT,
    runs_pb2.RUNNING_RUN_BEHAVIOR_INTERRUPT: RunningRunBehavior.INTERRUPT,
    runs_pb2.RUNNING_RUN_BEHAVIOR_ENQUEUE: RunningRunBehavior.ENQUEUE,
}


@dataclass(frozen=True)
class TemplateInfo:
    id: str
    harness_profile_id: str
    effective_params: dict[str, str]


@dataclass(frozen=True)
class RunSpec:
    session_id: str
    # The text the run executes: the raw input or the directive's input.
    input: str
    provider: str
    model: str
    metadata: Mapping[str, str]
    # A stored directive named by the request; None for raw input (the run records a shadow directive).
    directive_id: str | None
    harness_profile_id: str | None
    # The profile as a JSON resource; a shadow profile (not stored) when the request named none.
    harness_snapshot: dict[str, Any]
    command: tuple[str, ...] = ()
    verification_policies: tuple[Mapping[str, Any], ...] = ()
    wait: bool = True
    behavior: RunningRunBehavior = RunningRunBehavior.WAIT
    template: TemplateInfo | None = None
    labels: dict[str, str] = field(default_factory=dict)
    # Set by internal callers (see RunOptions): a fixed timeout, or the schedule timeout rule.
    timeout_ms: int | None = None
    schedule: bool = False

    @property
    def shadow_directive(self) -> bool:
        return self.directive_id is None


@dataclass(frozen=True)
class RunOptions:
    """What internal callers (drains, schedules, workflow steps) set beyond the public request. They go
    through the same admission as `POST /runs`; only these knobs differ."""

    # The run's id, chosen by the caller so it can record the run before it exists (a drain's items).
    run_id: str | None = None
    # A fixed timeout (a workflow step's `execution.timeoutMs`) instead of the policy's run timeout.
    timeout_ms: int | None = None
    # The schedule rule: `defaultScheduleTimeoutMs` (else ATHENA_SCHEDULE_RUN_TIMEOUT_MS), SCHEDULE_TIMEOUT.
    schedule: bool = False
    # Replaces the directive's text while keeping the directive on the run (workflow output mappings).
    input: str | None = None


def with_options(spec: RunSpec, options: RunOptions) -> RunSpec:
    """The spec as an internal caller's options change it (the spec itself when they change nothing)."""
    if options.timeout_ms is None and not options.schedule and options.input is None:
        return spec
    return replace(
        spec,
        timeout_ms=options.timeout_ms,
        schedule=options.schedule,
        input=options.input if options.input is not None else spec.input,
    )


def clean_metadata(values: Mapping[str, str], context: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in values.items():
        if not value.strip():
            raise config_error(f"{context}.metadata.{key} must be a non-empty string.")
        out[key] = value.strip()
    return out


def shadow_profile(provider: str, model: str, timeout_ms: int) -> dict[str, Any]:
    """The unstored profile a run without `harnessProfileId` reports (the original's shadow harness)."""
    return {
        "id": f"shadow-harness-{uuid.uuid4().hex[:12]}",
        "displayName": "Shadow Harness Profile",
        "version": "v1",
        "config": {"provider": provider, "model": model, "tools": ["shadow-directive"]},
        "policies": {"timeoutMs": timeout_ms, "retryLimit": 1, "budgetUsd": 0},
        "createdAt": iso(now_ms()),
    }


@dataclass(frozen=True)
class _Refs:
    directive_input: str | None
    profile: dict[str, Any] | None


class RunSpecs:
    def __init__(self, settings: Settings, providers: ProviderRegistry) -> None:
        self.settings = settings
        self.providers = providers

    def parse(
        self,
        req: runs_pb2.CreateRunRequest,
        context: str = "runs.create",
        *,
        template: TemplateInfo | None = None,
    ) -> tuple[RunSpec, str | None, str | None]:
        """Validate what needs no store; returns the partial spec and the directive / profile ids to load."""
        session_id = validation.session_id(req.session_id, context)
        user_input = req.input.strip()
        directive_id = req.directive_id.strip() or None
        profile_id = req.harness_profile_id.strip() or None
        if not user_input and directive_id is None:
            raise config_error(f"{context} requires either input or directiveId.")
        if user_input and directive_id is not None:
            raise config_error(f"{context}.input cannot be combined with directiveId.")
        if profile_id is not None and (req.provider.strip() or req.model.strip()):
            raise config_error(f"{context}.provider/model cannot be combined with harnessProfileId.")
        if req.running_run_behavior not in BEHAVIORS:
            raise config_error(f"{context}.runningRunBehavior must be one of: wait, interrupt, enqueue.")
        provider = req.provider.strip() or self.settings.default_provider
        model = req.model.strip() or self.settings.default_model
        spec = RunSpec(
            session_id=session_id,
            input=user_input,
            provider=provider,
            model=model,
            metadata=clean_metadata(req.metadata, context),
            directive_id=directive_id,
            harness_profile_id=profile_id,
            harness_snapshot={},
            wait=req.wait if req.HasField("wait") else True,
            behavior=BEHAVIORS[req.running_run_behavior],
            template=template,
        )
        return spec, directive_id, profile_id

    def load_refs(self, conn: Connection, directive_id: str | None, profile_id: str | None) -> _Refs:
        directive = directives.get(conn, directive_id) if directive_id else None
        profile = harness_profiles.get(conn, profile_id) if profile_id else None
        return _Refs(directive.input if directive is not None else None, profile)

    def complete(self, spec: RunSpec, refs: _Refs | None, context: str = "runs.create") -> RunSpec:
        """The spec with its directive and profile resolved; unknown references are CONFIG_ERROR (the
        original's answer), an unknown provider PROVIDER_NOT_FOUND."""
        run_input = spec.input
        if spec.directive_id is not None:
            if refs is None or refs.directive_input is None:
                raise config_error(
                    f"{context}.directiveId must reference an existing directive. Received: {spec.directive_id}."
                )
            run_input = refs.directive_input
        provider, model = spec.provider, spec.model
        command: tuple[str, ...] = ()
        checks: tuple[Mapping[str, Any], ...] = ()
        if spec.harness_profile_id is not None:
            if refs is None or refs.profile is None:
                raise config_error(
                    f"{context}.harnessProfileId must reference an existing harness profile. "
                    f"Received: {spec.harness_profile_id}."
                )
            snapshot = refs.profile
            config = snapshot.get("config", {})
            provider = str(config.get("provider", provider))
            model = str(config.get("model", model))
            command = tuple(str(a) for a in config.get("command", ()))
            checks = tuple(snapshot.get("verificationPolicies", ()))
        else:
            snapshot = shadow_profile(provider, model, self.settings.run_timeout_ms)
        self.providers.get(provider)
        if provider == "command" and not command:
            raise config_error(
                f"{context}.provider 'command' runs the program named in a harness profile's config.command: "
                "pass harnessProfileId."
            )
        labels = {"provider": provider, "model": model}
        if spec.harness_profile_id is not None:
            labels["harnessProfileId"] = spec.harness_profile_id
        if spec.directive_id is not None:
            labels["directiveId"] = spec.directive_id
        return replace(
            spec,
            input=run_input,
            provider=provider,
            model=model,
            harness_snapshot=snapshot,
            command=command,
            verification_policies=checks,
            labels=labels,
        )
