"""Idempotency-Key, against a real SQLite store: a retry replays the first answer (response and REST status,
or a final error) without running the work again; answers a retry could change (retryable refusals,
unexpected failures, a caller that went away) release the key; keys expire after their TTL."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import pytest
from google.protobuf import struct_pb2, wrappers_pb2

from athena_server.control import idempotency as control
from athena_server.control.idempotency import MAX_KEY_LENGTH, Idempotency, fingerprint
from athena_server.errors import AthenaError, ErrorCode
from athena_server.storage import idempotency as storage
from athena_server.storage.idempotency import KeyRow
from athena_server.storage.store import Store
from athena_server.timefmt import now_ms

HOUR_MS = 3_600_000


def key() -> str:
    return f"key-{uuid.uuid4().hex}"


def body(text: str) -> wrappers_pb2.StringValue:
    return wrappers_pb2.StringValue(value=text)


class Work:
    """The call behind a key: counts how often it runs; answers `outcomes` in turn (a response, or an
    exception to raise)."""

    def __init__(self, *outcomes: object, status: int = 202) -> None:
        self.outcomes = list(outcomes) or ["done"]
        self.status = status
        self.calls = 0

    async def __call__(self) -> tuple[wrappers_pb2.StringValue, int]:
        outcome = self.outcomes[min(self.calls, len(self.outcomes) - 1)]
        self.calls += 1
        if isinstance(outcome, BaseException):
            raise outcome
        return wrappers_pb2.StringValue(value=f"{outcome} #{self.calls}"), self.status


async def run(idem: Idempotency, k: str | None, work: Work, text: str = "hello", scope: str = "runs.start"):
    return await idem.run(scope, k, body(text), wrappers_pb2.StringValue, work)


async def test_without_a_key_every_call_runs(store: Store) -> None:
    idem, work = Idempotency(store, "p1", 24), Work()
    assert await run(idem, None, work) == (wrappers_pb2.StringValue(value="done #1"), 202)
    assert await run(idem, None, work) == (wrappers_pb2.StringValue(value="done #2"), 202)
    assert work.calls == 2


async def test_a_retry_replays_the_first_answer_and_status(store: Store) -> None:
    idem, work, k = Idempotency(store, "p1", 24), Work(status=202), key()
    first = await run(idem, k, work)
    again = await run(idem, k, work)
    assert first == again == (wrappers_pb2.StringValue(value="done #1"), 202)
    assert work.calls == 1
    row = await store.read(lambda conn: storage.get(conn, "runs.start", k))
    assert row is not None
    assert (row.state, row.owner_id, row.http_status, row.error) == ("done", "p1", 202, None)
    assert row.request_hash == fingerprint("runs.start", body("hello"))
    assert row.response == wrappers_pb2.StringValue(value="done #1").SerializeToString()


async def test_the_key_is_trimmed_and_bounded(store: Store) -> None:
    idem, work, k = Idempotency(store, "p1", 24), Work(), key()
    await run(idem, f"  {k}\t", work)
    assert await run(idem, k, work) == (wrappers_pb2.StringValue(value="done #1"), 202)
    longest = "k" * (MAX_KEY_LENGTH - len(k)) + k
    assert await run(idem, longest, work) == (wrappers_pb2.StringValue(value="done #2"), 202)
    for bad in ("", "   ", "k" * (MAX_KEY_LENGTH + 1)):
        with pytest.raises(AthenaError) as exc:
            await run(idem, bad, work)
        assert exc.value.code_name == "CONFIG_ERROR"
        assert exc.value.message == "Idempotency-Key must be 1..255 characters."
    assert work.calls == 2


async def test_the_same_key_with_another_body_is_refused(store: Store) -> None:
    idem, work, k = Idempotency(store, "p1", 24), Work(), key()
    await run(idem, k, work, text="first")
    with pytest.raises(AthenaError) as exc:
        await run(idem, k, work, text="second")
    assert exc.value.code == ErrorCode.ERROR_CODE_IDEMPOTENCY_KEY_REUSED
    assert exc.value.message == "Idempotency-Key was already used with a different request body."
    assert work.calls == 1


async def test_keys_are_per_scope(store: Store) -> None:
    idem, work, k = Idempotency(store, "p1", 24), Work(), key()
    await run(idem, k, work, scope="runs.start")
    assert await run(idem, k, work, scope="a2a.send") == (wrappers_pb2.StringValue(value="done #2"), 202)
    assert await run(idem, k, work, scope="runs.start") == (wrappers_pb2.StringValue(value="done #1"), 202)


async def test_releasing_a_key_leaves_other_keys_and_scopes_alone(store: Store) -> None:
    limited = AthenaError(ErrorCode.ERROR_CODE_RATE_LIMITED, "slow down", retryable=True)
    idem, k, neighbour = Idempotency(store, "p1", 24), key(), key()
    await run(idem, k, Work(), scope="runs.start")
    await run(idem, neighbour, Work(), scope="a2a.send")
    with pytest.raises(AthenaError):
        await run(idem, k, Work(limited), scope="a2a.send")
    assert await store.read(lambda conn: storage.get(conn, "a2a.send", k)) is None
    assert await store.read(lambda conn: storage.get(conn, "runs.start", k)) is not None
    assert await store.read(lambda conn: storage.get(conn, "a2a.send", neighbour)) is not None


def test_the_fingerprint_is_stable_across_versions_and_field_order() -> None:
    """Processes of two versions share the store: the hash must stay sha256(scope NUL deterministic body)."""
    one = struct_pb2.Struct()
    one.update({f"k{i}": i for i in range(20)})
    other = struct_pb2.Struct()
    other.update({f"k{i}": i for i in reversed(range(20))})
    expected = hashlib.sha256(b"runs.start\0" + one.SerializeToString(deterministic=True)).hexdigest()
    assert fingerprint("runs.start", one) == fingerprint("runs.start", other) == expected
    assert fingerprint("runs.start", body("x")) != fingerprint("a2a.send", body("x"))


async def test_a_final_error_is_replayed_without_running_again(store: Store) -> None:
    refusal = AthenaError(ErrorCode.ERROR_CODE_CONFIG_ERROR, "input is empty", metadata={"field": "input"})
    idem, work, k = Idempotency(store, "p1", 24), Work(refusal), key()
    for _ in range(2):
        with pytest.raises(AthenaError) as exc:
            await run(idem, k, work)
        assert (exc.value.code, exc.value.message, exc.value.metadata) == (
            ErrorCode.ERROR_CODE_CONFIG_ERROR,
            "input is empty",
            {"field": "input"},
        )
        assert exc.value.retryable is False
    assert work.calls == 1
    row = await store.read(lambda conn: storage.get(conn, "runs.start", k))
    assert row is not None and row.state == "done" and row.response is None and row.http_status is None


async def test_a_retryable_refusal_releases_the_key_so_a_retry_runs(store: Store) -> None:
    """A 429 (rate limit, concurrency limit) stored instead of released would answer 429 forever."""
    limited = AthenaError(ErrorCode.ERROR_CODE_RATE_LIMITED, "slow down", retryable=True)
    idem, work, k = Idempotency(store, "p1", 24), Work(limited, "done"), key()
    with pytest.raises(AthenaError) as exc:
        await run(idem, k, work)
    assert exc.value is limited
    assert await store.read(lambda conn: storage.get(conn, "runs.start", k)) is None
    assert await run(idem, k, work) == (wrappers_pb2.StringValue(value="done #2"), 202)
    assert await run(idem, k, work) == (wrappers_pb2.StringValue(value="done #2"), 202)
    assert work.calls == 2


@pytest.mark.parametrize("failure", [RuntimeError("boom"), asyncio.CancelledError()])
async def test_an_unexpected_failure_or_a_caller_gone_releases_the_key(store: Store, failure: BaseException) -> None:
    idem, work, k = Idempotency(store, "p1", 24), Work(failure, "done"), key()
    with pytest.raises(type(failure)):
        await run(idem, k, work)
    assert await store.read(lambda conn: storage.get(conn, "runs.start", k)) is None
    assert await run(idem, k, work) == (wrappers_pb2.StringValue(value="done #2"), 202)
    assert work.calls == 2


async def pending(store: Store, k: str, text: str = "hello", owner: str = "other", at_ms: int | None = None) -> None:
    digest = fingerprint("runs.start", body(text))
    at = now_ms() if at_ms is None else at_ms
    assert await store.write(lambda conn: storage.claim(conn, "runs.start", k, digest, owner, at))


async def test_a_retry_during_the_first_request_waits_for_its_answer(store: Store) -> None:
    idem, work, k = Idempotency(store, "p1", 24), Work(), key()
    await pending(store, k)
    retry = asyncio.ensure_future(run(idem, k, work))
    await asyncio.sleep(0)  # one loop turn: the retry submits its claim before the answer below is stored
    answer = wrappers_pb2.StringValue(value="first answer").SerializeToString()
    await store.write(lambda conn: storage.finish(conn, "runs.start", k, response=answer, http_status=201, error=None))
    assert await retry == (wrappers_pb2.StringValue(value="first answer"), 201)
    assert work.calls == 0


async def test_a_retry_runs_itself_when_the_first_request_lets_go_of_the_key(store: Store) -> None:
    idem, work, k = Idempotency(store, "p1", 24), Work(), key()
    await pending(store, k)
    retry = asyncio.ensure_future(run(idem, k, work))
    await asyncio.sleep(0)  # one loop turn: the retry submits its claim before the release below
    await store.write(lambda conn: storage.release(conn, "runs.start", k))
    assert await retry == (wrappers_pb2.StringValue(value="done #1"), 202)
    assert work.calls == 1
    row = await store.read(lambda conn: storage.get(conn, "runs.start", k))
    assert row is not None and (row.state, row.owner_id) == ("done", "p1")


async def test_a_retry_with_another_body_during_the_first_request_is_refused_at_once(store: Store) -> None:
    idem, work, k = Idempotency(store, "p1", 24), Work(), key()
    await pending(store, k, text="first")
    with pytest.raises(AthenaError) as exc:
        await run(idem, k, work, text="second")
    assert exc.value.code == ErrorCode.ERROR_CODE_IDEMPOTENCY_KEY_REUSED
    assert work.calls == 0


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The idempotency service's clock, fixed at now[0] (the store stays real)."""
    now = [now_ms()]
    monkeypatch.setattr(control, "now_ms", lambda: now[0])
    return now


async def test_a_key_older_than_its_ttl_is_free_again(store: Store, clock: list[int]) -> None:
    idem, work, k = Idempotency(store, "p1", 2), Work(), key()
    assert idem.ttl_ms == 2 * HOUR_MS
    await run(idem, k, work)
    clock[0] += 2 * HOUR_MS  # exactly the TTL: still the same key
    assert await run(idem, k, work) == (wrappers_pb2.StringValue(value="done #1"), 202)
    clock[0] += 1  # past it: a new request (another body is no reuse any more)
    assert await run(idem, k, work, text="another") == (wrappers_pb2.StringValue(value="done #2"), 202)
    assert await run(idem, k, work, text="another") == (wrappers_pb2.StringValue(value="done #2"), 202)
    row = await store.read(lambda conn: storage.get(conn, "runs.start", k))
    assert row is not None and row.created_at_ms == clock[0]


async def test_a_pending_key_older_than_its_ttl_is_taken_over(store: Store, clock: list[int]) -> None:
    idem, work, k = Idempotency(store, "p1", 0.5), Work(), key()
    await pending(store, k, at_ms=clock[0] - HOUR_MS // 2 - 1)
    assert await run(idem, k, work) == (wrappers_pb2.StringValue(value="done #1"), 202)
    assert work.calls == 1


async def test_expire_deletes_only_keys_past_the_ttl(store: Store, clock: list[int]) -> None:
    idem = Idempotency(store, "p1", 1)
    old, edge, fresh = key(), key(), key()
    await pending(store, old, at_ms=clock[0] - HOUR_MS - 1)
    await pending(store, edge, at_ms=clock[0] - HOUR_MS)
    await pending(store, fresh, at_ms=clock[0])
    assert await idem.expire() == 1
    remaining = [await store.read(lambda conn, k=k: storage.get(conn, "runs.start", k)) for k in (old, edge, fresh)]
    assert [row is not None for row in remaining] == [False, True, True]


async def test_release_owned_frees_only_pending_keys_of_the_dead_processes(store: Store) -> None:
    dead_pending, dead_done, alive_pending = key(), key(), key()
    await pending(store, dead_pending, owner="dead")
    await pending(store, dead_done, owner="dead")
    await store.write(
        lambda conn: storage.finish(conn, "runs.start", dead_done, response=b"", http_status=200, error=None)
    )
    await pending(store, alive_pending, owner="alive")
    await store.write(lambda conn: storage.release_owned(conn, ["dead", "gone"]))
    rows = [await store.read(lambda conn, k=k: storage.get(conn, "runs.start", k)) for k in (dead_pending, dead_done)]
    assert rows[0] is None and rows[1] is not None
    assert await store.read(lambda conn: storage.get(conn, "runs.start", alive_pending)) is not None


async def test_a_second_claim_of_a_held_key_fails_and_keeps_the_first(store: Store) -> None:
    k = key()
    assert await store.write(lambda conn: storage.claim(conn, "runs.start", k, "h1", "p1", 1000))
    assert not await store.write(lambda conn: storage.claim(conn, "runs.start", k, "h2", "p2", 2000))
    row = await store.read(lambda conn: storage.get(conn, "runs.start", k))
    assert row == KeyRow("runs.start", k, "h1", "p1", "pending", None, None, None, 1000)


def test_a_replayed_empty_answer_is_an_empty_message_with_status_200() -> None:
    row = KeyRow("s", "k", "h", "p", "done", None, None, None, 0)
    assert Idempotency._replay(row, wrappers_pb2.StringValue) == (wrappers_pb2.StringValue(), 200)
    stored = KeyRow("s", "k", "h", "p", "done", b"", 204, None, 0)
    assert Idempotency._replay(stored, wrappers_pb2.StringValue) == (wrappers_pb2.StringValue(), 204)
    failed = KeyRow("s", "k", "h", "p", "done", None, None, {"code": ErrorCode.ERROR_CODE_NOT_FOUND, "message": "m"}, 0)
    with pytest.raises(AthenaError) as exc:
        Idempotency._replay(failed, wrappers_pb2.StringValue)
    assert (exc.value.code, exc.value.message, exc.value.metadata) == (ErrorCode.ERROR_CODE_NOT_FOUND, "m", {})
