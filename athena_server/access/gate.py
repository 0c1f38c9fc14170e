"""The gate every RPC passes before its servicer runs: who is calling, may they, and not too often.

The role each RPC needs and its rate class come from the contract (`(athena.v1.required_role)`,
`(athena.v1.rate_class)`), read once at start-up; an RPC that declares neither stops the server. The REST
gateway forwards its HTTP headers as metadata, so REST and gRPC callers are decided by this same code.

Order, chosen so that refusals cannot be used to flood the audit trail: authenticate; a caller that fails
is counted against its client address's rate limit before its refusal is recorded; an authenticated
caller is counted against its identity's limit, then authorised. Every 401 and 403 is recorded as an
`authz.denied` event; rate-limit refusals are not (they would turn a flood into writes).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import grpc

from athena.v1 import options_pb2
from athena_client.contract import (
    API_TOKEN_HEADER,
    AUTHORIZATION_HEADER,
    CLIENT_ADDRESS_HEADER,
    IDENTITY_HEADER_MAX_CHARS,
    MethodAccess,
    error_code,
    header_repeated,
    method_access,
    role_name,
    services,
)
from athena_client.vocab import EventType
from athena_server.access.caller import ANONYMOUS, AuthzDenied, Caller, set_caller
from athena_server.access.config import AuthConfig, load_auth
from athena_server.access.identity import Authenticator, AuthFailed
from athena_server.access.rate_limits import RateLimiter, load_rate_limits
from athena_server.config import Settings
from athena_server.errors import config_error
from athena_server.storage import events
from athena_server.storage.store import Store
from athena_server.tracing import trace_id

Role = options_pb2.Role
RateClass = options_pb2.RateClass
DENIED_EVENT = EventType.AUTHZ_DENIED


@dataclass(frozen=True)
class MethodRule:
    """The decided access of one RPC, keyed by its gRPC path."""

    access: MethodAccess
    # How refusals and audit events name it: `PolicyService.PutPolicy`.
    operation: str


def method_rules() -> dict[str, MethodRule]:
    """`/athena.v1.X/Y` -> its rule, for every RPC of the contract (ValueError if one declares none)."""
    rules: dict[str, MethodRule] = {}
    for service in services():
        for method in service.methods:
            rules[f"/{service.full_name}/{method.name}"] = MethodRule(
                method_access(method), f"{service.name}.{method.name}"
            )
    return rules


def _networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    nets = []
    for raw in text.split(","):
        entry = raw.strip()
        if entry:
            try:
                nets.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"ATHENA_TRUSTED_PROXIES entry {entry!r}: not an address or network.") from None
    return tuple(nets)


def peer_address(peer: str) -> str:
    """The address part of a gRPC peer string (`ipv4:127.0.0.1:5000`, `ipv6:[::1]:5000`, `unix:/p`)."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return peer


def check_settings(settings: Settings) -> None:
    """Parse everything the gate reads, so that a mistake stops start-up (ValueError naming the entry)
    before any port is bound."""
    load_auth(settings)
    load_rate_limits(settings)
    _networks(settings.trusted_proxies)


class Gate:
    """Admits or refuses each RPC. One per server process; holds no per-request state."""

    def __init__(self, settings: Settings, store: Store, auth: AuthConfig | None = None) -> None:
        self.auth = auth or load_auth(settings)
        self.authenticator = Authenticator(self.auth)
        self.limiter = RateLimiter(load_rate_limits(settings))
        self.rules = method_rules()
        self.trusted = _networks(settings.trusted_proxies)
        self.store = store
        # The headers the gate reads. The interceptor bounds them before the gate runs (`header_limits`
        # adds the configured identity header to the contract's table).
        self._read = frozenset(
            {AUTHORIZATION_HEADER, API_TOKEN_HEADER, CLIENT_ADDRESS_HEADER, self.auth.identity_header}
        )
        self.header_limits = {self.auth.identity_header: IDENTITY_HEADER_MAX_CHARS}
        # Whether the gate has anything to do for non-public RPCs; when not, admission is a dict lookup.
        self._active = self.auth.enabled or self.limiter.config.enabled

    async def admit(
        self, method_name: str, context: grpc.aio.ServicerContext, metadata: Iterable[tuple[str, str | bytes]]
    ) -> Caller:
        """The caller of this RPC, set as the request's caller; raises AuthFailed (401), AuthzDenied (403),
        RATE_LIMITED (429) or CONFIG_ERROR (a credential header sent twice). `metadata` is the call's,
        already bounded by the interceptor."""
        rule = self.rules.get(method_name)
        if rule is None or rule.access.role == Role.ROLE_PUBLIC or not self._active:
            # Not an Athena RPC (health, reflection), a probe, or nothing configured: nothing to decide.
            return ANONYMOUS
        headers = self._headers(metadata)
        if not self.auth.enabled:
            self.limiter.hit(self._address_key(context, headers), rule.access.rate_class)
            return ANONYMOUS
        try:
            caller = self.authenticator.authenticate(headers)
        except AuthFailed as err:
            self.limiter.hit(self._address_key(context, headers), rule.access.rate_class)
            await self._record(
                rule.operation, err.subject, None, rule.access.role, err.reason, err, self._address(context, headers)
            )
            raise
        set_caller(caller)
        self.limiter.hit(f"id:{caller.identity}", rule.access.rate_class)
        if caller.role is None or caller.role < rule.access.role:
            denied = AuthzDenied(
                rule.operation,
                rule.access.role,
                caller,
                "ROLE_MISSING" if caller.role is None else "ROLE_INSUFFICIENT",
            )
            await self.record_denied(denied, self._address(context, headers))
            raise denied
        return caller

    async def record_denied(self, denied: AuthzDenied, address: str | None = None) -> None:
        """The audit event of a 403, decided here or by domain code (a `command` profile needs Admin)."""
        caller = denied.caller
        denied.recorded = True
        await self._record(
            denied.operation, caller.identity, caller.role, denied.required, denied.reason, denied, address
        )

    async def _record(
        self,
        operation: str,
        subject: str | None,
        role: int | None,
        required: int,
        reason: str,
        err: AuthFailed | AuthzDenied,
        address: str | None,
    ) -> None:
        payload = {
            "subject": subject,
            "role": role_name(role) if role is not None else None,
            "operation": operation,
            "requiredRole": role_name(required),
            "reason": reason,
            "code": error_code(err.code),
            "address": address,
        }
        trace = trace_id()
        await self.store.write(lambda conn: events.append(conn, DENIED_EVENT, trace_id=trace, payload=payload))

    def _headers(self, metadata: Iterable[tuple[str, str | bytes]]) -> dict[str, str]:
        """The credential headers, one value each: a repeated one is ambiguous, so it is refused rather than
        one copy silently chosen."""
        found: dict[str, str] = {}
        read = self._read
        for key, value in metadata:
            if key not in read or not isinstance(value, str):
                continue
            if key in found:
                raise config_error(header_repeated(key))
            found[key] = value
        return found

    def _address(self, context: grpc.aio.ServicerContext, headers: Mapping[str, str]) -> str:
        """The caller's address: the peer, or the HTTP client's address when the peer is a trusted gateway."""
        peer = peer_address(context.peer() or "")
        forwarded = headers.get(CLIENT_ADDRESS_HEADER)
        if forwarded and self._trusted(peer):
            return forwarded.strip()
        return peer

    def _address_key(self, context: grpc.aio.ServicerContext, headers: Mapping[str, str]) -> str:
        return f"addr:{self._address(context, headers)}"

    def _trusted(self, address: str) -> bool:
        if address.startswith("unix:"):
            return True  # a local socket: only this machine's processes can connect
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.trusted)
