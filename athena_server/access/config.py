"""Auth configuration, read once at start-up from the settings and checked whole.

A mistake here must stop the server with a message that names the entry, never leave it running with a
gate that is more open (or more closed) than the operator wrote: an unknown role, a malformed map entry,
a token whose hash is not a SHA-256 digest, an unreadable key file.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import jwt
from jwt.algorithms import get_default_algorithms

from athena.v1 import options_pb2
from athena_client.contract import DEFAULT_IDENTITY_HEADER, role_name
from athena_server.config import Settings

Role = options_pb2.Role
ASSIGNABLE_ROLES = (Role.ROLE_VIEWER, Role.ROLE_OPERATOR, Role.ROLE_ADMIN)
_ROLES_BY_NAME = {role_name(r).lower(): r for r in ASSIGNABLE_ROLES}
# The original: lowercase letters, digits and dashes; it must also be a valid gRPC metadata key.
_HEADER_NAME = re.compile(r"^[a-z0-9-]+$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
# Headers the gate reads for credentials; the identity header may not shadow them.
_RESERVED_HEADERS = {"authorization", "x-athena-api-token", "idempotency-key", "x-trace-id", "content-type", "host"}
WILDCARD = "*"


class AuthConfigError(ValueError):
    """Bad auth configuration; the message names the setting and the entry."""


def parse_role(text: str) -> int | None:
    """A role name, case-insensitive (the original's rule); None when it names no role."""
    return _ROLES_BY_NAME.get(text.strip().lower())


def _role(text: str, where: str) -> int:
    role = parse_role(text)
    if role is None:
        allowed = ", ".join(role_name(r) for r in ASSIGNABLE_ROLES)
        raise AuthConfigError(f"{where}: unknown role {text.strip()!r} (allowed: {allowed}).")
    return role


@dataclass(frozen=True)
class RoleMap:
    """`ATHENA_AUTH_IDENTITY_ROLE_MAP` and `ATHENA_AUTH_DEFAULT_ROLE`: who gets which role."""

    entries: dict[str, int] = field(default_factory=dict)
    default: int | None = None

    def role_of(self, identity: str) -> int | None:
        """The identity's entry, else the `*` entry, else the default role; None (no role) when none covers
        it: fail closed."""
        found = self.entries.get(identity)
        if found is None:
            found = self.entries.get(WILDCARD)
        return found if found is not None else self.default


def parse_role_map(text: str, default_role: str | None) -> RoleMap:
    """`alice:Admin,bob:Operator,*:Viewer`. Every entry must be `identity:Role`; an identity may appear once."""
    entries: dict[str, int] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        identity, sep, role = entry.rpartition(":")
        identity = identity.strip()
        where = f"ATHENA_AUTH_IDENTITY_ROLE_MAP entry {entry!r}"
        if not sep or not identity:
            raise AuthConfigError(f"{where}: expected identity:Role.")
        if identity in entries:
            raise AuthConfigError(f"{where}: identity {identity!r} is mapped more than once.")
        entries[identity] = _role(role, where)
    default = None
    if default_role is not None and default_role.strip():
        default = _role(default_role, "ATHENA_AUTH_DEFAULT_ROLE")
    return RoleMap(entries, default)


@dataclass(frozen=True)
class ApiToken:
    """A named API token. Only its SHA-256 digest is held; `identity` `*` makes it a proxy token (the
    identity header names the caller) and `role` None takes the role from the role map."""

    name: str
    identity: str
    role: int | None
    digest: bytes

    @property
    def is_proxy(self) -> bool:
        return self.identity == WILDCARD


def token_digest(token: str) -> bytes:
    """What a token is stored and compared as. API tokens are random (`athena auth new-token`: 256 bits),
    so a plain SHA-256 is enough; slow password hashes defend guessable secrets, which these are not."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def parse_api_tokens(text: str, single: str | None) -> tuple[ApiToken, ...]:
    """`name:identity:role:sha256hex` entries (identity may contain colons), plus the original's single
    plaintext `ATHENA_AUTH_API_TOKEN`, which becomes the proxy token `api-token`."""
    tokens: list[ApiToken] = []
    names: set[str] = set()
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        parts = entry.split(":")
        # The hash is the secret's stand-in: never echo it back in an error message.
        shown = ":".join(parts[:-1]) + ":…" if len(parts) > 1 else entry[:16] + "…"
        where = f"ATHENA_AUTH_API_TOKENS entry {shown!r}"
        if len(parts) < 4:
            raise AuthConfigError(f"{where}: expected name:identity:role:sha256hex.")
        name, identity, role_text, digest = parts[0].strip(), ":".join(parts[1:-2]).strip(), parts[-2], parts[-1]
        if not name or not identity:
            raise AuthConfigError(f"{where}: name and identity must be non-empty.")
        if name in names:
            raise AuthConfigError(f"{where}: token name {name!r} is used more than once.")
        if not _SHA256_HEX.match(digest.strip().lower()):
            raise AuthConfigError(f"{where}: the last field must be the token's SHA-256 digest (64 hex digits).")
        role = None if role_text.strip() == WILDCARD else _role(role_text, where)
        names.add(name)
        tokens.append(ApiToken(name, identity, role, bytes.fromhex(digest.strip().lower())))
    if single is not None and single.strip():
        if "api-token" in names:
            raise AuthConfigError("ATHENA_AUTH_API_TOKEN: the token name 'api-token' is already used.")
        tokens.append(ApiToken("api-token", WILDCARD, None, token_digest(single.strip())))
    return tuple(tokens)


@dataclass(frozen=True)
class JwtConfig:
    """How JWT bearer tokens are verified: a key (PEM) or a key set (JWKS) by `kid`."""

    key: Any | None
    keys_by_kid: dict[str, Any]
    algorithms: tuple[str, ...]
    issuer: str | None
    audience: str | None
    identity_claim: str
    role_claim: str
    leeway_seconds: float


def _read(path: Any, setting: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise AuthConfigError(f"{setting}: cannot read {str(path)!r}: {exc.strerror or exc}.") from None


def parse_jwt(settings: Settings) -> JwtConfig | None:
    if settings.auth_jwt_key_file is None and settings.auth_jwt_jwks_file is None:
        return None
    if settings.auth_jwt_key_file is not None and settings.auth_jwt_jwks_file is not None:
        raise AuthConfigError("ATHENA_AUTH_JWT_KEY_FILE and ATHENA_AUTH_JWT_JWKS_FILE: configure one, not both.")
    known = set(get_default_algorithms())
    algorithms = tuple(a.strip() for a in settings.auth_jwt_algorithms.split(",") if a.strip())
    if not algorithms:
        raise AuthConfigError("ATHENA_AUTH_JWT_ALGORITHMS: name at least one algorithm.")
    for name in algorithms:
        if name.lower() == "none" or name not in known:
            raise AuthConfigError(f"ATHENA_AUTH_JWT_ALGORITHMS entry {name!r}: not a supported signing algorithm.")
    key: Any | None = None
    keys_by_kid: dict[str, Any] = {}
    if settings.auth_jwt_key_file is not None:
        key = _read(settings.auth_jwt_key_file, "ATHENA_AUTH_JWT_KEY_FILE")
    else:
        text = _read(settings.auth_jwt_jwks_file, "ATHENA_AUTH_JWT_JWKS_FILE")
        try:
            key_set = jwt.PyJWKSet.from_json(text)
        except (jwt.PyJWKSetError, ValueError) as exc:
            raise AuthConfigError(f"ATHENA_AUTH_JWT_JWKS_FILE: not a usable JWKS document: {exc}.") from None
        for i, jwk in enumerate(key_set.keys):
            keys_by_kid[jwk.key_id or f"#{i}"] = jwk.key
    return JwtConfig(
        key=key,
        keys_by_kid=keys_by_kid,
        algorithms=algorithms,
        issuer=settings.auth_jwt_issuer or None,
        audience=settings.auth_jwt_audience or None,
        identity_claim=settings.auth_jwt_identity_claim,
        role_claim=settings.auth_jwt_role_claim,
        leeway_seconds=settings.auth_jwt_leeway_seconds,
    )


@dataclass(frozen=True)
class AuthConfig:
    """Everything the gate needs to authenticate callers and resolve their roles."""

    enabled: bool
    identity_header: str
    roles: RoleMap
    tokens: tuple[ApiToken, ...]
    jwt: JwtConfig | None
    # Whether the identity header alone identifies a caller (see `trusts_header`).
    trust_identity_header: bool

    @property
    def verifiable(self) -> bool:
        """Whether callers prove who they are with something the server checks (a token or a JWT)."""
        return bool(self.tokens) or self.jwt is not None


def load_auth(settings: Settings) -> AuthConfig:
    """The auth configuration, or AuthConfigError naming what is wrong."""
    header = settings.auth_identity_header.strip().lower() or DEFAULT_IDENTITY_HEADER
    if not _HEADER_NAME.match(header) or header in _RESERVED_HEADERS or header.startswith("grpc-"):
        raise AuthConfigError(
            f"ATHENA_AUTH_IDENTITY_HEADER {settings.auth_identity_header!r}: use lowercase letters, digits and "
            "dashes, and not a header Athena reads for something else."
        )
    roles = parse_role_map(settings.auth_identity_role_map, settings.auth_default_role)
    tokens = parse_api_tokens(settings.auth_api_tokens, settings.auth_api_token)
    jwt_config = parse_jwt(settings)
    trust = settings.auth_trust_identity_header
    if trust is None:
        # With nothing to verify, the header is the seed's trusted-header mode; with tokens or JWT configured,
        # a header anyone can send must not be enough on its own.
        trust = not tokens and jwt_config is None
    return AuthConfig(
        enabled=settings.auth_enabled,
        identity_header=header,
        roles=roles,
        tokens=tokens,
        jwt=jwt_config,
        trust_identity_header=trust,
    )
