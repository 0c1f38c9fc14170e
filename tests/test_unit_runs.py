"""Unit tests for the run engine's logic: retries and back-off, verification rules, and the SQLite store's
group commit (a failing unit rolls back alone, every other unit of its group commits)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import Connection, insert, select

from athena_server.engine.execution import Attempts, backoff_seconds, call_with_retries, verify
from athena_server.engine.providers import Evidence, ProviderRequest, ProviderResult
from athena_server.errors import AthenaError, ErrorCode
from athena_server.storage.migrate import migrate
from athena_server.storage.store import Store
from athena_server.storage.tables import directives


class Flaky:
    """Fails its first `failures` calls with the given retryability."""

    name = "flaky"

    def __init__(self, failures: int, retryable: bool = True) -> None:
        self.failures = failures
        self.retryable = retryable
        self.seen: list[int] = []

    async def complete(self, request: ProviderRequest) -> ProviderResult:
        self.seen.append(request.attempt)
        if len(self.seen) <= self.failures:
            raise AthenaError(ErrorCode.ERROR_CODE_PROVIDER_ERROR, f"fail {request.attempt}", retryable=self.retryable)
        return ProviderResult(output="ok", model="m", input_tokens=1, output_tokens=2)


def request() -> ProviderRequest:
    return ProviderRequest(run_id="r", session_id="s", model="m", prompt="p", input="i")


async def test_retries_retryable_errors_within_the_budget() -> None:
    provider, attempts = Flaky(2), Attempts()
    result = await call_with_retries(provider, request(), retry_budget=2, attempts=attempts)
    assert result.output == "ok" and provider.seen == [1, 2, 3] and attempts.made == 3


async def test_gives_up_when_the_budget_is_spent_or_the_error_is_final() -> None:
    provider, attempts = Flaky(5), Attempts()
    with pytest.raises(AthenaError, match="fail 2"):
        await call_with_retries(provider, request(), retry_budget=1, attempts=attempts)
    assert attempts.made == 2
    final, attempts = Flaky(5, retryable=False), Attempts()
    with pytest.raises(AthenaError, match="fail 1"):
        await call_with_retries(final, request(), retry_budget=3, attempts=attempts)
    assert final.seen == [1]
    zero, attempts = Flaky(1), Attempts()
    with pytest.raises(AthenaError):
        await call_with_retries(zero, request(), retry_budget=0, attempts=attempts)
    assert zero.seen == [1]


def test_backoff_grows_with_the_attempt() -> None:
    assert [backoff_seconds(a) for a in (1, 2, 3)] == [0.05, 0.1, 0.15]


def test_require_evidence() -> None:
    checks = [
        {"id": "a", "kind": "require-evidence", "label": "stderr"},
        {"id": "b", "kind": "require-evidence", "label": "report", "evidenceType": "json"},
    ]
    passed = verify(checks, [Evidence("stderr", "text", "x"), Evidence("report", "json", "{}")])
    assert passed.status == "passed" and passed.failures == []
    failed = verify(checks, [Evidence("stderr", "text", "  "), Evidence("report", "text", "{}")])
    assert failed.status == "verification-failed"
    assert [f["message"] for f in failed.failures] == [
        "Required evidence was present but empty for label 'stderr'.",
        "Required evidence was not found for label 'report'.",
    ]
    assert failed.failures[1]["details"] == {"label": "report", "evidenceType": "json"}
    assert verify([], []).status == "passed"


async def test_group_commit_rolls_back_only_the_failing_unit(tmp_path: Path) -> None:
    store = Store(f"sqlite+pysqlite:///{tmp_path / 'g.db'}")
    await migrate(store)

    def good(i: int):  # type: ignore[no-untyped-def]
        def unit(conn: Connection) -> int:
            conn.execute(insert(directives).values(id=f"d{i}", input="x", created_at_ms=i))
            return i

        return unit

    def bad(conn: Connection) -> None:
        conn.execute(insert(directives).values(id="doomed", input="x", created_at_ms=0))
        raise AthenaError(ErrorCode.ERROR_CODE_CONFIG_ERROR, "no")

    try:
        results = await asyncio.gather(
            *(store.write(good(i)) for i in range(50)),
            store.write(bad),
            *(store.write(good(i)) for i in range(50, 60)),
            return_exceptions=True,
        )
        assert [r for r in results if not isinstance(r, BaseException)] == list(range(60))
        assert sum(isinstance(r, AthenaError) for r in results) == 1
        ids = await store.read(lambda conn: {r.id for r in conn.execute(select(directives.c.id))})
        assert ids == {f"d{i}" for i in range(60)}
        # A unique violation in one unit leaves the rest of its group committed too.
        dup = await asyncio.gather(store.write(good(1)), store.write(good(99)), return_exceptions=True)
        assert isinstance(dup[0], Exception) and dup[1] == 99
    finally:
        await store.close()


async def test_idempotency_keys_replay_then_expire(tmp_path: Path) -> None:
    from athena.v1 import runs_pb2
    from athena_server.control.idempotency import Idempotency

    store = Store(f"sqlite+pysqlite:///{tmp_path / 'i.db'}")
    await migrate(store)
    calls = 0

    async def call() -> tuple[runs_pb2.CreateRunResponse, int]:
        nonlocal calls
        calls += 1
        return runs_pb2.CreateRunResponse(result=runs_pb2.RunResult(run_id=f"r{calls}")), 202

    try:
        keys = Idempotency(store, "owner", ttl_hours=1)
        one = runs_pb2.CreateRunRequest(session_id="s", input="a")
        first = await keys.run("scope", "k", one, runs_pb2.CreateRunResponse, call)
        again = await keys.run("scope", "k", one, runs_pb2.CreateRunResponse, call)
        assert first == again and again[1] == 202 and calls == 1
        other = runs_pb2.CreateRunRequest(session_id="s", input="b")
        with pytest.raises(AthenaError) as info:
            await keys.run("scope", "k", other, runs_pb2.CreateRunResponse, call)
        assert info.value.code == ErrorCode.ERROR_CODE_IDEMPOTENCY_KEY_REUSED
        # Past the TTL the key is free again: pruned by housekeeping, or ignored at lookup.
        expired = Idempotency(store, "owner", ttl_hours=-1)
        assert await expired.expire() == 1
        reused = await keys.run("scope", "k", other, runs_pb2.CreateRunResponse, call)
        assert reused[0].result.run_id == "r2" and calls == 2
    finally:
        await store.close()
