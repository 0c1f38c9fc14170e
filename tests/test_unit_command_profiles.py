"""Creating a `command` harness profile needs role Admin (it makes the server execute a program), and its
program must be on the allow-list; against a real SQLite store, with the caller set as the auth gate sets
it. Each caller is set inside its own task, so it never leaks into other tests."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from athena.v1 import harness_profiles_pb2
from athena_server.access.caller import ANONYMOUS, AuthzDenied, Caller, Role, set_caller
from athena_server.control.harness_profiles import HarnessProfileService
from athena_server.errors import AthenaError, ErrorCode
from athena_server.storage.migrate import migrate
from athena_server.storage.store import Store

PY = sys.executable


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[HarnessProfileService]:
    store = Store(f"sqlite+pysqlite:///{tmp_path / 'profiles.db'}")
    await migrate(store)
    try:
        yield HarnessProfileService(store, lambda: ["command", "mock"], lambda _: ["default"], lambda p: p == PY)
    finally:
        await store.close()


def profile(provider: str, command: list[str]) -> harness_profiles_pb2.CreateHarnessProfileRequest:
    return harness_profiles_pb2.CreateHarnessProfileRequest(
        display_name="agent",
        version="v1",
        config=harness_profiles_pb2.HarnessConfig(provider=provider, model="default", tools=["shell"], command=command),
        policies=harness_profiles_pb2.HarnessPolicies(timeout_ms=1000, retry_limit=1),
    )


async def create_as(
    service: HarnessProfileService, caller: Caller, req: harness_profiles_pb2.CreateHarnessProfileRequest
) -> harness_profiles_pb2.HarnessProfile:
    """`service.create` with `caller` set, in a task of its own (a copy of this context)."""

    async def call() -> harness_profiles_pb2.HarnessProfile:
        set_caller(caller)
        return await service.create(req)

    return await asyncio.create_task(call())


async def stored(service: HarnessProfileService) -> list[str]:
    listed = await service.list(harness_profiles_pb2.ListHarnessProfilesRequest())
    return [p.config.provider for p in listed.items]


async def test_command_profile_needs_admin(service: HarnessProfileService) -> None:
    bob = Caller(identity="bob", role=Role.ROLE_OPERATOR, via="header")
    with pytest.raises(AuthzDenied) as info:
        await create_as(service, bob, profile("command", [PY, "-V"]))
    assert info.value.code == ErrorCode.ERROR_CODE_AUTHZ_DENIED
    assert info.value.message == "Forbidden: harnessProfiles.create (provider 'command') requires role Admin."
    assert (info.value.operation, info.value.reason) == (
        "harnessProfiles.create (provider 'command')",
        "ROLE_INSUFFICIENT",
    )
    # A program off the list is refused to an Operator the same way: the refusal says nothing about the list.
    with pytest.raises(AuthzDenied):
        await create_as(service, bob, profile("command", ["/bin/sh", "-c", "id"]))
    # An identity without a role is told so.
    nobody = Caller(identity="eve", role=None, via="header")
    with pytest.raises(AuthzDenied) as info:
        await create_as(service, nobody, profile("command", [PY, "-V"]))
    assert info.value.message == (
        "Forbidden: harnessProfiles.create (provider 'command') requires role Admin. "
        "No role is granted to identity 'eve'."
    )
    assert info.value.reason == "ROLE_MISSING"
    assert await stored(service) == []

    # The Operator may still create other profiles; an Admin may create the command profile.
    await create_as(service, bob, profile("mock", []))
    admin = Caller(identity="alice", role=Role.ROLE_ADMIN, via="header")
    created = await create_as(service, admin, profile("command", [PY, "-V"]))
    assert list(created.config.command) == [PY, "-V"]
    # Admin does not bypass the allow-list.
    with pytest.raises(AthenaError) as refused:
        await create_as(service, admin, profile("command", ["/bin/sh", "-c", "id"]))
    assert refused.value.code == ErrorCode.ERROR_CODE_CONFIG_ERROR
    assert refused.value.message == (
        "harnessProfiles.create.config.command[0] must be a program on the server's allow-list "
        "(ATHENA_COMMAND_ALLOW). Received: /bin/sh."
    )
    # Without auth (no caller set) nothing is checked but the allow-list.
    await create_as(service, ANONYMOUS, profile("command", [PY, "-c", "pass"]))
    assert sorted(await stored(service)) == ["command", "command", "mock"]
