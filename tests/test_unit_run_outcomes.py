"""A run start's outcome through `Idempotency-Key` (control/idempotency.py `outcome`): accepted work is kept as
REST 202 and done work as 200, and a retry is answered accepted exactly when the first answer was."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from google.protobuf import wrappers_pb2

from athena_server.control.idempotency import Idempotency
from athena_server.control.outcomes import Outcome, accepted, done
from athena_server.storage import idempotency as storage
from athena_server.storage.store import Store


class Start:
    """The call behind a key: counts its calls, answers with `how` (accepted or done)."""

    def __init__(self, how: Callable[[wrappers_pb2.StringValue], Outcome[wrappers_pb2.StringValue]]) -> None:
        self.how = how
        self.calls = 0

    async def __call__(self) -> Outcome[wrappers_pb2.StringValue]:
        self.calls += 1
        answer = wrappers_pb2.StringValue(value=f"run #{self.calls}")
        return self.how(answer)


@pytest.mark.parametrize(("how", "status"), [(accepted, 202), (done, 200)])
async def test_the_outcome_is_stored_as_its_status_and_replayed(
    store: Store, how: Callable[[wrappers_pb2.StringValue], Outcome[wrappers_pb2.StringValue]], status: int
) -> None:
    idem, start, key = Idempotency(store, "p1", 24), Start(how), f"key-{uuid.uuid4().hex}"
    request = wrappers_pb2.StringValue(value="body")
    first = await idem.outcome("runs.create", key, request, wrappers_pb2.StringValue, start)
    again = await idem.outcome("runs.create", key, request, wrappers_pb2.StringValue, start)
    expected = Outcome(wrappers_pb2.StringValue(value="run #1"), accepted=how is accepted)
    assert first == again == expected
    assert start.calls == 1
    row = await store.read(lambda conn: storage.get(conn, "runs.create", key))
    assert row is not None and (row.state, row.http_status) == ("done", status)


async def test_without_a_key_the_outcome_passes_through(store: Store) -> None:
    idem, start = Idempotency(store, "p1", 24), Start(accepted)
    request = wrappers_pb2.StringValue(value="body")
    assert await idem.outcome("runs.create", None, request, wrappers_pb2.StringValue, start) == accepted(
        wrappers_pb2.StringValue(value="run #1")
    )
    assert await idem.outcome("runs.create", None, request, wrappers_pb2.StringValue, start) == accepted(
        wrappers_pb2.StringValue(value="run #2")
    )
