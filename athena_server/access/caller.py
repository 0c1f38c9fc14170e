"""The caller of the current request, as the gate decided it, for the code that needs it further in.

The interceptor sets it once per RPC; asyncio tasks started by the request inherit it, and the store runs
a request's units in the request's context, so events written for the request carry its actor.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from athena.v1 import options_pb2
from athena_client.contract import role_name
from athena_server.errors import AthenaError, ErrorCode

Role = options_pb2.Role


@dataclass(frozen=True)
class Caller:
    """An authenticated caller (auth on), or the anonymous caller of a server without auth."""

    # The identity (trusted header, token or JWT subject); None when auth is off.
    identity: str | None
    # The resolved `athena.v1.Role`; None when auth is off (nothing is checked) or no role covers the identity.
    role: int | None
    # How the caller proved the identity: "header", "token:<name>", "jwt", or "none" when auth is off.
    via: str = "none"

    @property
    def enforced(self) -> bool:
        """Whether roles are checked for this caller (auth is on)."""
        return self.via != "none"

    @property
    def role_label(self) -> str:
        return role_name(self.role) if self.role is not None else "none"


ANONYMOUS = Caller(identity=None, role=None)

_caller: ContextVar[Caller] = ContextVar("athena_caller", default=ANONYMOUS)


def set_caller(caller: Caller) -> None:
    _caller.set(caller)


def current_caller() -> Caller:
    return _caller.get()


def actor() -> str | None:
    """The identity events record as their actor: the authenticated caller, None without auth."""
    return _caller.get().identity


def roles_at_least(role: int) -> list[str]:
    """The role names that satisfy `role`, least first: what a refusal message lists."""
    return [role_name(r) for r in (Role.ROLE_VIEWER, Role.ROLE_OPERATOR, Role.ROLE_ADMIN) if r >= role]


class AuthzDenied(AthenaError):
    """AUTHZ_DENIED with what the audit event needs; the interceptor emits `authz.denied` for it."""

    def __init__(self, operation: str, required: int, caller: Caller, reason: str) -> None:
        names = roles_at_least(required)
        wanted = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
        message = f"Forbidden: {operation} requires role {wanted}."
        if caller.role is None:
            message += f" No role is granted to identity '{caller.identity}'."
        super().__init__(ErrorCode.ERROR_CODE_AUTHZ_DENIED, message)
        self.operation = operation
        self.required = required
        self.caller = caller
        self.reason = reason
        # Set once its `authz.denied` event is written, so the interceptor does not write it twice.
        self.recorded = False


def require(role: int, operation: str, reason: str = "ROLE_INSUFFICIENT") -> None:
    """For checks that depend on the request's content (a `command` profile needs Admin): raise
    AuthzDenied unless the current caller holds `role`. A no-op when auth is off."""
    caller = _caller.get()
    if not caller.enforced:
        return
    if caller.role is None or caller.role < role:
        raise AuthzDenied(operation, role, caller, reason if caller.role is not None else "ROLE_MISSING")
