"""Harness profiles: the provider, model, tools, policies, egress rules and verification policies a run
executes under (`harnessProfileId`).

Validation follows the original's parser and service, in their order and with their messages: egress rules
and verification policies first, then displayName, version, config and policies; then the checks that need
configuration (provider, model, and this server's `command` argv rule). The profile is stored as its JSON
resource, which is what the API returns and what a run snapshots.

A `command` profile names a program the server will execute, so creating one needs role Admin and its
program must be on the operator's allow-list (`ATHENA_COMMAND_ALLOW`); runs check the list again.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable, Collection, Iterable
from typing import Any

from sqlalchemy import Connection

from athena.v1 import harness_profiles_pb2
from athena_client.contract import json_to_message, message_to_json
from athena_client.vocab import EventType
from athena_server import validation
from athena_server.access.caller import Role, require
from athena_server.control import catalog_pages, pages
from athena_server.errors import config_error
from athena_server.storage import events, harness_profiles
from athena_server.storage.store import Store
from athena_server.timefmt import iso, now_ms
from athena_server.tracing import trace_id

VERSIONS = ("v1", "v2")
EVIDENCE_TYPES = ("text", "json", "binary")
COMMAND_PROVIDER = "command"
_CTX = "harnessProfiles.create"
_KIND = "harness-profiles"
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
_IPV4_PART = re.compile(r"^\d{1,3}$")


def profile_message(document: dict[str, Any]) -> harness_profiles_pb2.HarnessProfile:
    return json_to_message(document, harness_profiles_pb2.HarnessProfile())


def _required(value: str, field: str) -> str:
    if not value.strip():
        raise config_error(f"{field} must be a non-empty string.")
    return value.strip()


def _is_ipv4(host: str) -> bool:
    parts = host.split(".")
    return len(parts) == 4 and all(_IPV4_PART.match(p) and int(p) <= 255 for p in parts)


def _is_hostname(host: str) -> bool:
    if not 0 < len(host) <= 253:
        return False
    return all(0 < len(label) <= 63 and _LABEL.match(label) for label in host.split("."))


def is_egress_host(host: str) -> bool:
    """A lowercase domain (one label is enough), a `*.domain` wildcard or an IPv4 address, as the original."""
    return _is_ipv4(host) or _is_hostname(host) or (host.startswith("*.") and _is_hostname(host[2:]))


def _egress(rules: Iterable[harness_profiles_pb2.EgressRule]) -> list[harness_profiles_pb2.EgressRule]:
    out: list[harness_profiles_pb2.EgressRule] = []
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        ctx = f"{_CTX}.allowedEgress[{i}]"
        host = _required(rule.host, f"{ctx}.host").lower()
        if not is_egress_host(host):
            raise config_error(f"{ctx}.host must be a valid domain, wildcard domain, or IPv4 address.")
        clean = harness_profiles_pb2.EgressRule(host=host)
        if rule.HasField("port"):
            if not 1 <= rule.port <= 65535:
                raise config_error(f"{ctx}.port must be an integer between 1 and 65535.")
            clean.port = rule.port
        destination = f"{host}:{clean.port if clean.HasField('port') else '*'}"
        if destination in seen:
            raise config_error(f"{_CTX}.allowedEgress contains duplicate destination '{destination}'.")
        seen.add(destination)
        out.append(clean)
    return out


def _verification(
    policies: Iterable[harness_profiles_pb2.VerificationPolicy],
) -> list[harness_profiles_pb2.VerificationPolicy]:
    out: list[harness_profiles_pb2.VerificationPolicy] = []
    ids: set[str] = set()
    for i, policy in enumerate(policies):
        ctx = f"{_CTX}.verificationPolicies[{i}]"
        policy_id = _required(policy.id, f"{ctx}.id")
        if policy_id in ids:
            raise config_error(f"{_CTX}.verificationPolicies contains duplicate id '{policy_id}'.")
        ids.add(policy_id)
        kind = _required(policy.kind, f"{ctx}.kind")
        if kind != "require-evidence":
            raise config_error(f"{ctx}.kind is unsupported: {kind}.")
        clean = harness_profiles_pb2.VerificationPolicy(
            id=policy_id, kind=kind, label=_required(policy.label, f"{ctx}.label")
        )
        evidence_type = policy.evidence_type.strip() if policy.HasField("evidence_type") else ""
        if evidence_type:
            if evidence_type not in EVIDENCE_TYPES:
                raise config_error(f"{ctx}.evidenceType must be 'text', 'json', or 'binary'.")
            clean.evidence_type = evidence_type
        out.append(clean)
    return out


def _config(req: harness_profiles_pb2.CreateHarnessProfileRequest) -> harness_profiles_pb2.HarnessConfig:
    if not req.HasField("config"):
        raise config_error(f"{_CTX}.config must be an object.")
    config = req.config
    tools = [_required(tool, f"{_CTX}.config.tools[{i}]") for i, tool in enumerate(config.tools)]
    if not tools:
        raise config_error(f"{_CTX}.config.tools must include at least one tool.")
    # argv elements are kept verbatim (an argument may mean its spaces); only empty ones are refused.
    for i, arg in enumerate(config.command):
        _required(arg, f"{_CTX}.config.command[{i}]")
    return harness_profiles_pb2.HarnessConfig(
        provider=_required(config.provider, f"{_CTX}.config.provider"),
        model=_required(config.model, f"{_CTX}.config.model"),
        tools=list(dict.fromkeys(tools)),
        command=list(config.command),
    )


def _policies(req: harness_profiles_pb2.CreateHarnessProfileRequest) -> harness_profiles_pb2.HarnessPolicies:
    if not req.HasField("policies"):
        raise config_error(f"{_CTX}.policies must be an object.")
    policies = req.policies
    for field, value in (("timeoutMs", policies.timeout_ms), ("retryLimit", policies.retry_limit)):
        if value <= 0:
            raise config_error(f"{_CTX}.policies.{field} must be a positive integer.")
    if not math.isfinite(policies.budget_usd):
        raise config_error(f"{_CTX}.policies.budgetUsd must be a finite number when provided.")
    if policies.budget_usd < 0:
        raise config_error(f"{_CTX}.policies.budgetUsd must be >= 0.")
    return harness_profiles_pb2.HarnessPolicies(
        timeout_ms=policies.timeout_ms, retry_limit=policies.retry_limit, budget_usd=policies.budget_usd
    )


def parse(req: harness_profiles_pb2.CreateHarnessProfileRequest) -> harness_profiles_pb2.HarnessProfile:
    """The request's shape checks (no configuration needed): the profile to store, id and createdAt unset."""
    egress = _egress(req.allowed_egress)
    checks = _verification(req.verification_policies)
    display_name = _required(req.display_name, f"{_CTX}.displayName")
    if req.version not in VERSIONS:
        raise config_error(f"{_CTX}.version must be 'v1' or 'v2'.")
    return harness_profiles_pb2.HarnessProfile(
        display_name=display_name,
        version=req.version,
        config=_config(req),
        policies=_policies(req),
        allowed_egress=egress,
        verification_policies=checks,
    )


def check_config(
    config: harness_profiles_pb2.HarnessConfig,
    provider_names: Collection[str],
    allowed_models: Collection[str],
    program_allowed: Callable[[str], bool],
) -> None:
    """The configuration checks: a registered provider, an allowed model, and argv exactly for `command`,
    whose program must be on the allow-list."""
    if config.provider not in provider_names:
        raise config_error(f"{_CTX}.config.provider must reference a configured provider. Received: {config.provider}.")
    if config.model not in allowed_models:
        raise config_error(f"{_CTX}.config.model must match a configured model. Allowed: {', '.join(allowed_models)}.")
    if config.provider == COMMAND_PROVIDER and not config.command:
        raise config_error(
            f"{_CTX}.config.command must be a non-empty array of strings for provider '{COMMAND_PROVIDER}'."
        )
    if config.provider != COMMAND_PROVIDER and config.command:
        raise config_error(f"{_CTX}.config.command is only supported for provider '{COMMAND_PROVIDER}'.")
    if config.command and not program_allowed(config.command[0]):
        raise config_error(
            f"{_CTX}.config.command[0] must be a program on the server's allow-list (ATHENA_COMMAND_ALLOW). "
            f"Received: {config.command[0]}."
        )


def require_admin_for_command(config: harness_profiles_pb2.HarnessConfig) -> None:
    """A `command` profile makes the server execute a program: only Admin may create one. Checked before
    the configuration, so other callers learn nothing about the allow-list."""
    if config.provider == COMMAND_PROVIDER:
        require(Role.ROLE_ADMIN, f"{_CTX} (provider '{COMMAND_PROVIDER}')")


class HarnessProfileService:
    def __init__(
        self,
        store: Store,
        provider_names: Callable[[], Collection[str]],
        allowed_models: Callable[[str], Collection[str]],
        program_allowed: Callable[[str], bool],
    ) -> None:
        """`provider_names`, `allowed_models(provider)` and `program_allowed(argv0)` (the `command`
        allow-list) are read per request, so they follow the registry and the configured models without
        this service knowing either."""
        self.store = store
        self.provider_names = provider_names
        self.allowed_models = allowed_models
        self.program_allowed = program_allowed

    async def create(
        self, req: harness_profiles_pb2.CreateHarnessProfileRequest
    ) -> harness_profiles_pb2.HarnessProfile:
        profile = parse(req)
        provider = profile.config.provider
        require_admin_for_command(profile.config)
        check_config(profile.config, self.provider_names(), list(self.allowed_models(provider)), self.program_allowed)
        created = now_ms()
        profile.id = str(uuid.uuid4())
        profile.created_at = iso(created)
        document = message_to_json(profile)
        trace = trace_id()

        def unit(conn: Connection) -> None:
            harness_profiles.insert(conn, id=profile.id, document=document, created_at_ms=created)
            events.append(
                conn,
                EventType.HARNESS_PROFILE_CREATED,
                trace_id=trace,
                payload={
                    "harnessProfileId": profile.id,
                    "version": profile.version,
                    "provider": provider,
                    "model": profile.config.model,
                },
            )

        await self.store.write(unit)
        return profile

    async def list(
        self, req: harness_profiles_pb2.ListHarnessProfilesRequest
    ) -> harness_profiles_pb2.ListHarnessProfilesResponse:
        limit = validation.page_limit(req.limit if req.HasField("limit") else None)
        before, offset = catalog_pages.decode(req.cursor, _KIND, "harnessProfiles.list")
        rows = await self.store.read(lambda conn: harness_profiles.page(conn, limit + 1, before, offset))
        page = pages.fill(rows, limit, lambda r: profile_message(r.document))
        resp = harness_profiles_pb2.ListHarnessProfilesResponse(items=page.items)
        if page.last is not None:
            resp.next_cursor = catalog_pages.encode(_KIND, page.last.seq)
        return resp
