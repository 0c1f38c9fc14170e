"""How a client calls: who it is (credentials) and how it retries. Both default from the environment the
CLI shares (`ATHENA_IDENTITY`, `ATHENA_API_TOKEN`)."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

from athena_client.contract import AUTHORIZATION_HEADER, DEFAULT_IDENTITY_HEADER
from athena_client.errors import AthenaError, AthenaTransportError

IDENTITY_ENV = "ATHENA_IDENTITY"
API_TOKEN_ENV = "ATHENA_API_TOKEN"
IDENTITY_HEADER_ENV = "ATHENA_AUTH_IDENTITY_HEADER"

# Refusals that prove the server did nothing, so even a write may be retried after them: the gate refuses
# a rate-limited call before any servicer reads the request.
REFUSED_BEFORE_WORK = frozenset({"RATE_LIMITED"})


@dataclass(frozen=True)
class Credentials:
    """What the server's auth reads: an API token (sent as `Authorization: Bearer`), and the identity a
    trusted-header deployment (or a proxy token) names the caller by."""

    identity: str | None = None
    api_token: str | None = None
    identity_header: str = DEFAULT_IDENTITY_HEADER

    @classmethod
    def resolve(cls, identity: str | None = None, api_token: str | None = None) -> Credentials:
        """The arguments given, else `ATHENA_IDENTITY` / `ATHENA_API_TOKEN` (and the identity header's name
        from `ATHENA_AUTH_IDENTITY_HEADER`, as the server reads it)."""
        header = os.environ.get(IDENTITY_HEADER_ENV, "").strip().lower() or DEFAULT_IDENTITY_HEADER
        return cls(
            identity=identity if identity is not None else (os.environ.get(IDENTITY_ENV) or None),
            api_token=api_token if api_token is not None else (os.environ.get(API_TOKEN_ENV) or None),
            identity_header=header,
        )

    def headers(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if self.identity:
            out.append((self.identity_header, self.identity))
        if self.api_token:
            out.append((AUTHORIZATION_HEADER, f"Bearer {self.api_token}"))
        return out

    def __repr__(self) -> str:  # never print the token
        token = "***" if self.api_token else None
        return f"Credentials(identity={self.identity!r}, api_token={token!r}, identity_header={self.identity_header!r})"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with jitter between attempts of one logical call. A server's `retry_after`
    is honoured (never retried sooner); one longer than `max_retry_after` is returned to the caller instead
    of slept through. Stream reconnects use the same back-off, `max_reconnects` times in a row."""

    max_attempts: int = 4
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    multiplier: float = 2.0
    max_retry_after: float = 30.0
    max_reconnects: int = 20

    def backoff(self, attempt: int) -> float:
        """The pause after failed attempt number `attempt` (0-based): jittered in [half, whole]."""
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier**attempt)
        return ceiling * random.uniform(0.5, 1.0)

    def delay(self, attempt: int, error: AthenaError, retry_safe: bool) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None when `error` should reach the caller."""
        if attempt + 1 >= self.max_attempts:
            return None
        if not (error.retryable and (retry_safe or error.code in REFUSED_BEFORE_WORK)):
            return None
        if isinstance(error, AthenaTransportError) and not retry_safe:
            return None
        pause = self.backoff(attempt)
        if error.retry_after is not None:
            if error.retry_after > self.max_retry_after:
                return None
            pause = max(pause, error.retry_after)
        return pause


NO_RETRY = RetryPolicy(max_attempts=1)
