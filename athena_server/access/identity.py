"""Authentication: from a request's headers (gRPC metadata; the gateway forwards the HTTP ones) to a
Caller with an identity and a role, or a 401 that says what was missing or wrong.

Credentials, strongest first: a bearer token (`Authorization: Bearer` or `x-athena-api-token`) that is a
configured API token or a JWT the configured key verifies; then, only where the operator trusts it, the
identity header a fronting proxy sets.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

import jwt

from athena_client.contract import API_TOKEN_HEADER, AUTHORIZATION_HEADER, IDENTITY_HEADER_MAX_CHARS
from athena_server.access.caller import Caller
from athena_server.access.config import ApiToken, AuthConfig, JwtConfig, parse_role, token_digest
from athena_server.errors import AthenaError, ErrorCode


class AuthFailed(AthenaError):
    """A 401, with what the `authz.denied` audit event records of it."""

    def __init__(self, code: ErrorCode.ValueType, message: str, reason: str, subject: str | None = None) -> None:
        super().__init__(code, message)
        self.reason = reason
        self.subject = subject


def _identity_missing(header: str) -> AuthFailed:
    return AuthFailed(
        ErrorCode.ERROR_CODE_AUTH_IDENTITY_MISSING, f"Missing required header: {header}.", "IDENTITY_MISSING"
    )


def _token_invalid(message: str, subject: str | None = None) -> AuthFailed:
    return AuthFailed(ErrorCode.ERROR_CODE_AUTH_TOKEN_INVALID, message, "TOKEN_INVALID", subject)


def _looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token the caller sent, if any. `Authorization` must use the Bearer scheme."""
    authorization = headers.get(AUTHORIZATION_HEADER)
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _token_invalid("The Authorization header must be 'Bearer <token>'.")
        return token.strip()
    header_token = headers.get(API_TOKEN_HEADER)
    if header_token is not None:
        if not header_token.strip():
            raise _token_invalid(f"The {API_TOKEN_HEADER} header is empty.")
        return header_token.strip()
    return None


class Authenticator:
    """Decides who the caller is. Built once from the configuration; no I/O per request."""

    def __init__(self, config: AuthConfig) -> None:
        self.config = config

    def authenticate(self, headers: Mapping[str, str]) -> Caller:
        """The caller, or AuthFailed (401). `headers` has lowercase names, one value each."""
        config = self.config
        if config.verifiable:
            token = bearer_token(headers)
            if token is not None:
                return self._from_token(token, headers)
            if not config.trust_identity_header:
                raise AuthFailed(
                    ErrorCode.ERROR_CODE_AUTH_TOKEN_MISSING,
                    f"Missing API token: send 'Authorization: Bearer <token>' or '{API_TOKEN_HEADER}'.",
                    "TOKEN_MISSING",
                )
        identity = self._header_identity(headers)
        return Caller(identity, config.roles.role_of(identity), via="header")

    def _header_identity(self, headers: Mapping[str, str]) -> str:
        """The first non-empty comma-separated value of the identity header (proxies append), as the original."""
        name = self.config.identity_header
        raw = headers.get(name)
        if raw is None:
            raise _identity_missing(name)
        identity = next((part.strip() for part in raw.split(",") if part.strip()), "")
        if not identity:
            raise _identity_missing(name)
        if len(identity) > IDENTITY_HEADER_MAX_CHARS:
            raise AthenaError(
                ErrorCode.ERROR_CODE_CONFIG_ERROR,
                f"header '{name}' must be at most {IDENTITY_HEADER_MAX_CHARS} characters.",
            )
        return identity

    def _match(self, token: str) -> ApiToken | None:
        """The configured token with this digest. Every entry is compared, in constant time each, so the
        time taken says nothing about which entry (or how much of one) matched."""
        digest = token_digest(token)
        found = None
        for candidate in self.config.tokens:
            if hmac.compare_digest(digest, candidate.digest):
                found = candidate
        return found

    def _from_token(self, token: str, headers: Mapping[str, str]) -> Caller:
        jwt_config = self.config.jwt
        if jwt_config is not None and _looks_like_jwt(token):
            return _from_jwt(token, jwt_config, self.config)
        match = self._match(token)
        if match is None:
            raise _token_invalid("Invalid API token.")
        identity = self._header_identity(headers) if match.is_proxy else match.identity
        role = match.role if match.role is not None else self.config.roles.role_of(identity)
        return Caller(identity, role, via=f"token:{match.name}")


def _jwt_key(token: str, config: JwtConfig) -> Any:
    if config.key is not None:
        return config.key
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.InvalidTokenError as exc:
        raise _token_invalid(f"Invalid bearer token: {exc}.") from None
    if kid is None and len(config.keys_by_kid) == 1:
        return next(iter(config.keys_by_kid.values()))
    key = config.keys_by_kid.get(str(kid)) if kid is not None else None
    if key is None:
        raise _token_invalid("Invalid bearer token: no configured key matches its 'kid'.")
    return key


def _role_claim(value: Any) -> int | None:
    """A role name, or a list of them (the strongest wins); anything else grants no role."""
    names = value if isinstance(value, list) else [value]
    roles = [r for r in (parse_role(n) for n in names if isinstance(n, str)) if r is not None]
    return max(roles) if roles else None


def _from_jwt(token: str, config: JwtConfig, auth: AuthConfig) -> Caller:
    try:
        claims = jwt.decode(
            token,
            _jwt_key(token, config),
            algorithms=list(config.algorithms),
            audience=config.audience,
            issuer=config.issuer,
            leeway=config.leeway_seconds,
            options={"require": ["exp"]},
        )
    except jwt.InvalidTokenError as exc:
        raise _token_invalid(f"Invalid bearer token: {exc}.") from None
    identity = claims.get(config.identity_claim)
    if not isinstance(identity, str) or not identity.strip() or len(identity) > IDENTITY_HEADER_MAX_CHARS:
        raise _token_invalid(f"Invalid bearer token: claim '{config.identity_claim}' must name the caller.")
    identity = identity.strip()
    if config.role_claim in claims:
        role = _role_claim(claims[config.role_claim])
    else:
        role = auth.roles.role_of(identity)
    return Caller(identity, role, via="jwt")
