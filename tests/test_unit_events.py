"""The event log against a real SQLite store: appends get increasing ids, lists filter and page without
losing or repeating an event, and a stream resumes exactly after the event it names."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import Connection

from athena.v1 import events_pb2
from athena_server import cursors
from athena_server.access.caller import Caller, set_caller
from athena_server.config import Settings
from athena_server.control.events import EventService, event_message
from athena_server.control.follow import PAGE
from athena_server.errors import AthenaError
from athena_server.storage import events
from athena_server.storage.events import EventFilter, EventRow
from athena_server.storage.store import Store


@pytest.fixture
def service(store: Store) -> EventService:
    return EventService(store, Settings(event_poll_seconds=30))


async def add(store: Store, *specs: dict[str, Any]) -> list[int]:
    def unit(conn: Connection) -> list[int]:
        return [events.append(conn, **{"type": "t", "trace_id": "tr", "payload": {}, **spec}) for spec in specs]

    return await store.write(unit)


async def test_append_returns_increasing_ids_and_stores_every_field(store: Store) -> None:
    first, second = await add(
        store,
        {
            "type": "run.started",
            "trace_id": "tr1",
            "payload": {"a": 1},
            "session_id": "s1",
            "run_id": "r1",
            "created_at_ms": 1234,
            "policy": {"max": 2},
        },
        {"type": "run.done", "payload": {}},
    )
    assert second == first + 1
    assert await store.read(events.last_seq) == second
    rows = await store.read(lambda conn: events.list_after(conn, 0, 10, EventFilter()))
    assert rows[0] == EventRow(first, "run.started", "tr1", "s1", "r1", {"a": 1}, 1234, {"max": 2}, None)
    assert rows[0].id == f"evt_{first}"
    assert rows[1].session_id is None and rows[1].run_id is None and rows[1].policy is None
    assert rows[1].created_at_ms > 1_700_000_000_000  # now, not 0


async def test_append_all_appends_in_order_as_append_would(any_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Several events in one call (a run's `run.created` and `run.started`): stored in order with every
    field and the caller as actor, streams woken; on SQLite in one statement."""
    monkeypatch.setattr(events, "_INSERT_ROWS", {})  # built here, not taken from an earlier test's call
    news = [
        events.NewEvent("run.created", "tr1", {"a": 1}, session_id="s1", run_id="r1", created_at_ms=1234),
        events.NewEvent("run.started", "tr2", {"b": [2]}, session_id="s2", run_id="r2", created_at_ms=1235),
    ]
    inserts: list[str] = []

    def unit(conn: Connection) -> None:
        if conn.dialect.name == "sqlite":
            raw = conn.connection.driver_connection
            assert raw is not None
            raw.set_trace_callback(lambda sql: inserts.append(sql) if sql.startswith("INSERT") else None)
            events.append_all(conn, news)
            raw.set_trace_callback(None)
        else:
            events.append_all(conn, news)

    async def as_alice() -> None:
        set_caller(Caller(identity="alice", role=None))
        await any_store.write(unit)

    before = await any_store.read(events.last_seq)
    woken = any_store.bus.ticket()
    await asyncio.create_task(as_alice())
    assert woken.done()
    assert len(inserts) == (1 if any_store.dialect == "sqlite" else 0)
    await any_store.write(lambda conn: events.append_all(conn, [events.NewEvent("solo", "tr3", {})]))
    await any_store.write(lambda conn: events.append_all(conn, []))
    pair = [events.NewEvent("now.a", "tr4", {}), events.NewEvent("now.b", "tr4", {}, created_at_ms=7)]
    await any_store.write(lambda conn: events.append_all(conn, pair))
    rows = await any_store.read(lambda conn: events.list_after(conn, before, 10, EventFilter()))
    assert rows[:2] == [
        EventRow(before + 1, "run.created", "tr1", "s1", "r1", {"a": 1}, 1234, None, "alice"),
        EventRow(before + 2, "run.started", "tr2", "s2", "r2", {"b": [2]}, 1235, None, "alice"),
    ]
    assert [(r.seq, r.type, r.trace_id, r.session_id, r.run_id, r.payload, r.actor) for r in rows[2:]] == [
        (before + 3, "solo", "tr3", None, None, {}, None),
        (before + 4, "now.a", "tr4", None, None, {}, None),
        (before + 5, "now.b", "tr4", None, None, {}, None),
    ]
    assert rows[2].created_at_ms > 1_700_000_000_000 and rows[3].created_at_ms > 1_700_000_000_000  # now, not 0
    assert rows[4].created_at_ms == 7


async def test_an_empty_log_has_last_seq_zero(store: Store) -> None:
    assert await store.read(events.last_seq) == 0


async def test_list_after_filters_and_bounds(store: Store) -> None:
    sid = f"s-{uuid.uuid4().hex}"
    ids = await add(
        store,
        {"type": "a", "session_id": sid, "run_id": "r1", "trace_id": "x", "created_at_ms": 100},
        {"type": "b", "session_id": sid, "run_id": "r2", "trace_id": "y", "created_at_ms": 200},
        {"type": "c", "session_id": "other", "run_id": "r1", "trace_id": "x", "created_at_ms": 300},
        {"type": "a", "session_id": sid, "run_id": "r1", "trace_id": "y", "created_at_ms": 400},
    )

    async def seqs(after: int = 0, limit: int = 10, up_to: int | None = None, **flt: Any) -> list[int]:
        f = EventFilter(**flt)
        rows = await store.read(lambda conn: events.list_after(conn, after, limit, f, up_to_seq=up_to))
        return [r.seq for r in rows]

    assert await seqs() == ids
    assert await seqs(after=ids[1]) == ids[2:]
    assert await seqs(limit=2) == ids[:2]
    assert await seqs(up_to=ids[2]) == ids[:3]
    assert await seqs(session_id=sid) == [ids[0], ids[1], ids[3]]
    assert await seqs(run_id="r1") == [ids[0], ids[2], ids[3]]
    assert await seqs(trace_id="y") == [ids[1], ids[3]]
    assert await seqs(types=("a", "c")) == [ids[0], ids[2], ids[3]]
    assert await seqs(created_after_ms=200) == ids[1:]
    assert await seqs(created_before_ms=300) == ids[:3]
    assert await seqs(session_id=sid, types=("a",), created_after_ms=101) == [ids[3]]


def test_an_event_message_carries_the_row() -> None:
    row = EventRow(7, "run.started", "tr", "s1", "r1", {"n": 1}, 0, {"p": "q"}, "alice")
    assert event_message(row) == events_pb2.Event(
        id="evt_7",
        trace_id="tr",
        type="run.started",
        created_at="1970-01-01T00:00:00.000Z",
        session_id="s1",
        run_id="r1",
        actor="alice",
        payload={"n": 1},
        policy={"p": "q"},
    )
    bare = event_message(EventRow(8, "x", "tr", None, None, {}, 0))
    assert not bare.HasField("session_id") and not bare.HasField("run_id") and not bare.HasField("actor")
    assert not bare.HasField("policy")


async def test_list_pages_through_a_session_without_gaps_or_repeats(store: Store, service: EventService) -> None:
    sid = f"s-{uuid.uuid4().hex}"
    ids = await add(store, *({"session_id": sid, "type": f"t{i % 3}"} for i in range(7)))
    await add(store, {"session_id": "noise"})
    seen: list[str] = []
    sizes: list[int] = []
    cursor = ""
    while True:
        page = await service.list(events_pb2.ListEventsRequest(session_id=sid, limit=3, cursor=cursor))
        seen += [e.id for e in page.events]
        sizes.append(len(page.events))
        if not page.next_cursor:
            break
        assert page.next_cursor == cursors.encode(int(page.events[-1].id[4:]))
        cursor = page.next_cursor
    assert seen == [f"evt_{i}" for i in ids]
    assert sizes == [3, 3, 1]
    full = await service.list(events_pb2.ListEventsRequest(session_id=sid, limit=7))
    assert len(full.events) == 7 and not full.next_cursor
    typed = await service.list(events_pb2.ListEventsRequest(session_id=sid, types=[" t0 , t2", ""]))
    assert [e.type for e in typed.events] == ["t0", "t2", "t0", "t2", "t0"]


async def test_list_filters_by_run_trace_and_time(store: Store, service: EventService) -> None:
    sid = f"s-{uuid.uuid4().hex}"
    run = f"r-{uuid.uuid4().hex[:8]}"
    trace = uuid.uuid4().hex
    ids = await add(
        store,
        {"session_id": sid, "run_id": run, "trace_id": trace, "created_at_ms": 1_000},
        {"session_id": sid, "run_id": "other", "trace_id": "t2", "created_at_ms": 2_000},
        {"session_id": sid, "run_id": run, "trace_id": "t3", "created_at_ms": 3_000},
    )

    async def listed(**fields: Any) -> list[str]:
        page = await service.list(events_pb2.ListEventsRequest(session_id=sid, **fields))
        return [e.id for e in page.events]

    assert await listed(run_id=f" {run} ") == [f"evt_{ids[0]}", f"evt_{ids[2]}"]
    assert await listed(trace_id=f" {trace} ") == [f"evt_{ids[0]}"]
    assert await listed(created_after="1970-01-01T00:00:02.000Z") == [f"evt_{ids[1]}", f"evt_{ids[2]}"]
    assert await listed(created_before="1970-01-01T00:00:02.000Z") == [f"evt_{ids[0]}", f"evt_{ids[1]}"]
    assert await listed(run_id=" ", trace_id=" ") == [f"evt_{i}" for i in ids]


async def test_a_stream_without_a_resume_point_starts_after_the_newest_event(
    store: Store, service: EventService
) -> None:
    sid = f"s-{uuid.uuid4().hex}"
    await add(store, {"session_id": sid, "type": "old"})
    stream = await service.open_stream(events_pb2.StreamEventsRequest(session_id=sid))
    (new,) = await add(store, {"session_id": sid, "type": "new"})
    event = await anext(stream)
    assert (event.id, event.type) == (f"evt_{new}", "new")
    await stream.aclose()


@pytest.mark.parametrize("form", ["id", "cursor"])
async def test_a_stream_resumes_strictly_after_the_named_event(store: Store, service: EventService, form: str) -> None:
    sid = f"s-{uuid.uuid4().hex}"
    ids = await add(store, *({"session_id": sid, "type": t} for t in ("a", "b", "a", "c")))
    after = f" evt_{ids[0]} " if form == "id" else cursors.encode(ids[0])
    stream = await service.open_stream(events_pb2.StreamEventsRequest(session_id=sid, after=after, types=["a,c"]))
    got = [await anext(stream), await anext(stream)]
    assert [(e.id, e.type) for e in got] == [(f"evt_{ids[2]}", "a"), (f"evt_{ids[3]}", "c")]
    await stream.aclose()


async def test_a_stream_may_resume_after_the_newest_event(store: Store, service: EventService) -> None:
    (last,) = await add(store, {"type": "x"})
    stream = await service.open_stream(events_pb2.StreamEventsRequest(after=f"evt_{last}"))
    (new,) = await add(store, {"type": "y"})
    assert (await anext(stream)).id == f"evt_{new}"
    await stream.aclose()


async def test_a_resume_point_beyond_the_newest_event_is_refused(store: Store, service: EventService) -> None:
    with pytest.raises(AthenaError) as exc:
        await service.open_stream(events_pb2.StreamEventsRequest(after=" evt_1 "))
    assert exc.value.code_name == "CONFIG_ERROR"
    assert exc.value.message == (
        "events.stream.after 'evt_1' is beyond the newest event (the store has no events yet); list GET "
        "/api/v1/events to resume from an event that exists."
    )
    (last,) = await add(store, {"type": "x"})
    with pytest.raises(AthenaError) as exc:
        await service.open_stream(events_pb2.StreamEventsRequest(after=f"evt_{last + 1}"))
    assert f"(the newest event is evt_{last})" in exc.value.message


@pytest.mark.parametrize("after", ["evt_x", "evt_", "nonsense!", "evt_-1", "abcd1"])
async def test_a_resume_point_that_is_no_event_is_refused(service: EventService, after: str) -> None:
    with pytest.raises(AthenaError) as exc:
        await service.open_stream(events_pb2.StreamEventsRequest(after=after))
    assert exc.value.message == "events.stream.after must be an event id or an events cursor."


async def test_list_defaults_to_pages_of_50(store: Store, service: EventService) -> None:
    sid = f"s-{uuid.uuid4().hex}"
    ids = await add(store, *({"session_id": sid} for _ in range(51)))
    page = await service.list(events_pb2.ListEventsRequest(session_id=sid))
    assert [e.id for e in page.events] == [f"evt_{i}" for i in ids[:50]]
    assert page.next_cursor == cursors.encode(ids[49])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cursor": "!!"}, "events.list.cursor is invalid."),
        ({"created_after": "soon"}, "events.list.createdAfter must be a valid ISO datetime."),
        ({"created_before": "later"}, "events.list.createdBefore must be a valid ISO datetime."),
    ],
)
async def test_list_names_the_field_it_refuses(service: EventService, fields: dict[str, str], message: str) -> None:
    with pytest.raises(AthenaError) as exc:
        await service.list(events_pb2.ListEventsRequest(**fields))
    assert exc.value.code_name == "CONFIG_ERROR" and exc.value.message.startswith(message)


async def test_a_stream_keeps_to_its_session_over_a_backlog_of_many_pages(store: Store, service: EventService) -> None:
    sid = f"s-{uuid.uuid4().hex}"
    (start,) = await add(store, {"session_id": sid})
    mine = await add(store, *({"session_id": sid} if i % 2 else {"session_id": "noise"} for i in range(2 * PAGE + 6)))
    stream = await service.open_stream(events_pb2.StreamEventsRequest(session_id=sid, after=f"evt_{start}"))
    wanted = [i for n, i in enumerate(mine) if n % 2]
    got = [int((await anext(stream)).id[4:]) for _ in wanted]
    assert got == wanted
    (last,) = await add(store, {"session_id": sid})
    assert (await anext(stream)).id == f"evt_{last}"
    await stream.aclose()


async def test_an_event_records_the_authenticated_caller_as_its_actor(store: Store) -> None:
    async def as_alice() -> list[int]:
        set_caller(Caller(identity="alice", role=None))  # in this task's own copy of the context
        return await add(store, {"type": "x"})

    (seq,) = await asyncio.create_task(as_alice())
    (anonymous,) = await add(store, {"type": "y"})
    rows = await store.read(lambda conn: events.list_after(conn, seq - 1, 10, EventFilter()))
    assert [(r.seq, r.actor) for r in rows] == [(seq, "alice"), (anonymous, None)]


@pytest.mark.parametrize(
    "flt",
    [
        EventFilter(),
        EventFilter(session_id="s1"),
        EventFilter(session_id="s2"),
        EventFilter(run_id="r1"),
        EventFilter(trace_id="y"),
        EventFilter(types=("a", "c")),
        EventFilter(types=("b",)),
        EventFilter(created_after_ms=200),
        EventFilter(created_before_ms=300),
        EventFilter(session_id="s1", types=("a",), created_after_ms=101, created_before_ms=400),
        EventFilter(session_id="s1", run_id="r2", trace_id="y"),
    ],
)
async def test_the_in_memory_filter_selects_exactly_the_rows_the_query_selects(store: Store, flt: EventFilter) -> None:
    """Streams filter the shared tail's batches with `matches` and read their backlog with `list_after`: a
    difference would make a stream deliver different rows live than on resume."""
    base = await store.read(events.last_seq)
    await add(
        store,
        {"type": "a", "session_id": "s1", "run_id": "r1", "trace_id": "x", "created_at_ms": 100},
        {"type": "b", "session_id": "s1", "run_id": "r2", "trace_id": "y", "created_at_ms": 200},
        {"type": "c", "session_id": "s2", "run_id": "r1", "trace_id": "x", "created_at_ms": 300},
        {"type": "a", "session_id": "s1", "run_id": "r1", "trace_id": "y", "created_at_ms": 400},
        {"type": "b", "session_id": None, "run_id": None, "trace_id": "y", "created_at_ms": 401},
        {"type": "a", "session_id": "s1", "run_id": "r1", "trace_id": "x", "created_at_ms": 101},
    )
    every = await store.read(lambda conn: events.list_after(conn, base, 100, EventFilter()))
    queried = await store.read(lambda conn: events.list_after(conn, base, 100, flt))
    assert [r for r in every if events.matches(flt)(r)] == queried
    # Each filter here keeps some rows and (but the empty one) drops some, so both sides are exercised.
    assert queried and (flt == EventFilter() or len(queried) < len(every))
