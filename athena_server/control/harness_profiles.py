"""Harness profiles: the provider, model, tools, policies, egress rules and verification policies a run
uses (`harnessProfileId`). Validation follows the original's rules and messages."""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy import Connection

from athena.v1 import harness_profiles_pb2
from athena_client.contract import json_to_message, message_to_json
from athena_server import validation
from athena_server.control import catalog_pages
from athena_server.errors import config_error
from athena_server.storage import events, harness_profiles
from athena_server.storage.store import Store
from athena_server.timefmt import iso, now_ms
from athena_server.tracing import trace_id

VERSIONS = ("v1", "v2")
EVIDENCE_TYPES = ("text", "json", "binary")
_DOMAIN = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_CTX = "harnessProfiles.create"


def profile_message(document: dict[str, Any]) -> harness_profiles_pb2.HarnessProfile:
    return json_to_message(document, harness_profiles_pb2.HarnessProfile())


def _host(raw: str, index: int) -> str:
    host = raw.strip().lower()
    if not host:
        raise config_error(f"{_CTX}.allowedEgress[{index}].host must be a non-empty string.")
    try:
        ipaddress.IPv4Address(host)
        return host
    except ValueError:
        pass
    if not _DOMAIN.match(host) or "." not in host.removeprefix("*."):
        raise config_error(
            f"{_CTX}.allowedEgress[{index}].host must be a domain, a '*.domain' wildcard or an IPv4 address."
        )
    return host


def _strings(values: Collection[str], field: str) -> list[str]:
    out: list[str] = []
    for value in values:
        if not value.strip():
            raise config_error(f"{_CTX}.{field} must contain non-empty strings.")
        out.append(value.strip())
    return out


def validate(
    req: harness_profiles_pb2.CreateHarnessProfileRequest,
    provider_names: Collection[str],
    allowed_models: Collection[str],
) -> harness_profiles_pb2.HarnessProfile:
    """The profile to store (id and createdAt still unset), or CONFIG_ERROR naming the field."""
    display_name = req.display_name.strip()
    if not display_name:
        raise config_error(f"{_CTX}.displayName must be a non-empty string.")
    if req.version not in VERSIONS:
        raise config_error(f"{_CTX}.version must be 'v1' or 'v2'.")
    if not req.HasField("config"):
        raise config_error(f"{_CTX}.config is required.")
    provider = req.config.provider.strip()
    model = req.config.model.strip()
    if not provider:
        raise config_error(f"{_CTX}.config.provider must be a non-empty string.")
    if not model:
        raise config_error(f"{_CTX}.config.model must be a non-empty string.")
    tools = list(dict.fromkeys(_strings(req.config.tools, "config.tools")))
    if not tools:
        raise config_error(f"{_CTX}.config.tools must be a non-empty array of strings.")
    command = _strings(req.config.command, "config.command")
    if not req.HasField("policies"):
        raise config_error(f"{_CTX}.policies is required.")
    policies = req.policies
    if policies.timeout_ms < 1:
        raise config_error(f"{_CTX}.policies.timeoutMs must be a positive integer.")
    if policies.retry_limit < 1:
        raise config_error(f"{_CTX}.policies.retryLimit must be a positive integer.")
    if not policies.budget_usd >= 0 or policies.budget_usd == float("inf"):
        raise config_error(f"{_CTX}.policies.budgetUsd must be a finite number >= 0.")
    egress: list[harness_profiles_pb2.EgressRule] = []
    seen: set[tuple[str, int | None]] = set()
    for i, rule in enumerate(req.allowed_egress):
        host = _host(rule.host, i)
        port = rule.port if rule.HasField("port") else None
        if port is not None and not 1 <= port <= 65535:
            raise config_error(f"{_CTX}.allowedEgress[{i}].port must be an integer in 1..65535.")
        if (host, port) in seen:
            raise config_error(f"{_CTX}.allowedEgress contains a duplicate rule: {host}{f':{port}' if port else ''}.")
        seen.add((host, port))
        out = harness_profiles_pb2.EgressRule(host=host)
        if port is not None:
            out.port = port
        egress.append(out)
    checks: list[harness_profiles_pb2.VerificationPolicy] = []
    ids: set[str] = set()
    for i, check in enumerate(req.verification_policies):
        check_id = check.id.strip()
        if not check_id:
            raise config_error(f"{_CTX}.verificationPolicies[{i}].id must be a non-empty string.")
        if check_id in ids:
            raise config_error(f"{_CTX}.verificationPolicies ids must be unique. Duplicate: {check_id}.")
        ids.add(check_id)
        if check.kind != "require-evidence":
            raise config_error(f"{_CTX}.verificationPolicies[{i}].kind must be 'require-evidence'.")
        if not check.label.strip():
            raise config_error(f"{_CTX}.verificationPolicies[{i}].label must be a non-empty string.")
        out_check = harness_profiles_pb2.VerificationPolicy(id=check_id, kind=check.kind, label=check.label.strip())
        if check.HasField("evidence_type"):
            if check.evidence_type not in EVIDENCE_TYPES:
                raise config_error(
                    f"{_CTX}.verificationPolicies[{i}].evidenceType must be one of: {', '.join(EVIDENCE_TYPES)}."
                )
            out_check.evidence_type = check.evidence_type
        checks.append(out_check)
    if provider not in provider_names:
        raise config_error(
            f"{_CTX}.config.provider must be a registered provider. Allowed: {', '.join(sorted(provider_names))}."
        )
    if model not in allowed_models:
        raise config_error(
            f"{_CTX}.config.model must match a configured model. Allowed: {', '.join(sorted(allowed_models))}."
        )
    if provider == "command" and not command:
        raise config_error(f"{_CTX}.config.command must name the agent program (argv) for provider 'command'.")
    if provider != "command" and command:
        raise config_error(f"{_CTX}.config.command is only used with provider 'command'.")
    return harness_profiles_pb2.HarnessProfile(
        display_name=display_name,
        version=req.version,
        config=harness_profiles_pb2.HarnessConfig(provider=provider, model=model, tools=tools, command=command),
        policies=harness_profiles_pb2.HarnessPolicies(
            timeout_ms=policies.timeout_ms, retry_limit=policies.retry_limit, budget_usd=policies.budget_usd
        ),
        allowed_egress=egress,
        verification_policies=checks,
    )


class HarnessProfileService:
    def __init__(
        self,
        store: Store,
        provider_names: Callable[[], Collection[str]],
        allowed_models: Callable[[str], Collection[str]],
    ) -> None:
        self.store = store
        self.provider_names = provider_names
        self.allowed_models = allowed_models

    async def create(
        self, req: harness_profiles_pb2.CreateHarnessProfileRequest
    ) -> harness_profiles_pb2.HarnessProfile:
        profile = validate(req, self.provider_names(), self.allowed_models(req.config.provider.strip()))
        created = now_ms()
        profile.id = str(uuid.uuid4())
        profile.created_at = iso(created)
        document = message_to_json(profile)
        trace = trace_id()

        def unit(conn: Connection) -> None:
            harness_profiles.insert(conn, id=profile.id, document=document, created_at_ms=created)
            events.append(
                conn,
                "harness-profile.created",
                trace_id=trace,
                payload={
                    "harnessProfileId": profile.id,
                    "version": profile.version,
                    "provider": profile.config.provider,
                    "model": profile.config.model,
                },
            )

        await self.store.write(unit)
        return profile

    async def list(
        self, req: harness_profiles_pb2.ListHarnessProfilesRequest
    ) -> harness_profiles_pb2.ListHarnessProfilesResponse:
        limit = validation.page_limit(req.limit if req.HasField("limit") else None)
        before, offset = catalog_pages.decode(req.cursor, "harness-profiles", "harnessProfiles.list")
        rows = await self.store.read(lambda conn: harness_profiles.page(conn, limit + 1, before, offset))
        resp = harness_profiles_pb2.ListHarnessProfilesResponse(
            items=[profile_message(r.document) for r in rows[:limit]]
        )
        if len(rows) > limit:
            resp.next_cursor = catalog_pages.encode("harness-profiles", rows[limit - 1].seq)
        return resp
