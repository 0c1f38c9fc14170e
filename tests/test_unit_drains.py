"""Session work queues and their drains, against a real SQLite store: what is queued (once), which items
each drained run gets, what stays queued when a run fails or the caller goes away, that one drain at a time
holds a session, and how the next drain settles the items a dead one left. The run service is a recording
stand-in: a drain's run goes through `RunService.create`, whose own logic is tested elsewhere."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import Connection, insert, select

from athena.v1 import runs_pb2, work_pb2
from athena_server.control.runs import RunOptions
from athena_server.control.work import WorkService, item_message, queue_message
from athena_server.errors import AthenaError, ErrorCode
from athena_server.storage import work
from athena_server.storage.store import Store
from athena_server.storage.tables import events, runs, work_items, work_queues
from athena_server.storage.work import QueueRow, WorkItemRow
from athena_server.timefmt import iso, now_ms, parse_iso

FOLLOWUP, COLLECT = work_pb2.WORK_MODE_FOLLOWUP, work_pb2.WORK_MODE_COLLECT


class Runs:
    """Records each run a drain starts; `fail` maps a call number (1-based) to what that call raises."""

    def __init__(self, fail: dict[int, BaseException] | None = None) -> None:
        self.calls: list[tuple[runs_pb2.CreateRunRequest, str, str | None]] = []
        self.fail = fail or {}

    async def create(self, req: runs_pb2.CreateRunRequest, *, context: str, options: RunOptions) -> Any:
        self.calls.append((req, context, options.run_id))
        error = self.fail.get(len(self.calls))
        if error is not None:
            raise error
        return runs_pb2.RunResult(), 200

    def inputs(self) -> list[str]:
        return [req.input for req, _, _ in self.calls]


def sid() -> str:
    return f"s-{uuid.uuid4().hex[:12]}"


def service(store: Store, runs_: Runs | None = None, owner: str = "me") -> WorkService:
    return WorkService(store, runs_ or Runs(), owner)  # type: ignore[arg-type]


async def enqueue(svc: WorkService, session_id: str, *items: tuple[str, int]) -> work_pb2.WorkQueueState:
    state = work_pb2.WorkQueueState()
    for payload, mode in items:
        state = await svc.enqueue(work_pb2.EnqueueWorkRequest(session_id=session_id, payload=payload, mode=mode))
    return state


def logged(conn: Connection, type_: str) -> list[tuple[str | None, dict[str, Any]]]:
    rows = conn.execute(select(events).where(events.c.type == type_).order_by(events.c.seq)).all()
    return [(r.session_id, r.payload) for r in rows]


def queued(conn: Connection, session_id: str) -> list[tuple[str, str, str | None]]:
    q = select(work_items).where(work_items.c.session_id == session_id).order_by(work_items.c.seq)
    return [(r.payload, r.mode, r.run_id) for r in conn.execute(q).all()]


def queue_row(conn: Connection, session_id: str) -> Any:
    return conn.execute(select(work_queues).where(work_queues.c.session_id == session_id)).one_or_none()


def add_run(conn: Connection, run_id: str, status: str) -> None:
    conn.execute(
        insert(runs).values(
            id=run_id,
            session_id="elsewhere",
            status=status,
            provider="mock",
            model="m",
            input="x",
            trace_id="t",
            created_at_ms=1,
        )
    )


# ---- the queue ------------------------------------------------------------------------------------------


async def test_an_unused_queue_is_empty_and_not_draining(store: Store) -> None:
    before = now_ms()
    state = await service(store).get_queue(" s-unused ")
    stamped = parse_iso(state.updated_at)
    assert stamped is not None and before <= stamped <= now_ms()
    assert (state.schema_version, state.session_id, list(state.items), state.draining) == (1, "s-unused", [], False)


async def test_enqueue_appends_in_order_once_per_payload_and_mode(store: Store) -> None:
    s, other = sid(), sid()
    svc = service(store)
    await enqueue(svc, other, ("elsewhere", FOLLOWUP))
    state = await enqueue(svc, s, ("  first ", FOLLOWUP), ("second", COLLECT), ("first", FOLLOWUP), ("first", COLLECT))
    assert [(i.payload, i.mode) for i in state.items] == [
        ("first", FOLLOWUP),
        ("second", COLLECT),
        ("first", COLLECT),
    ]
    assert (state.schema_version, state.session_id, state.draining) == (1, s, False)
    assert len({i.id for i in state.items}) == 3 and all(i.session_id == s for i in state.items)
    # Only additions are announced, each with the depth it left.
    depths = [p["queueDepth"] for session, p in await store.read(lambda c: logged(c, "work.enqueued")) if session == s]
    assert depths == [1, 2, 3]
    assert await service(store).get_queue(s) == state
    stored = await store.read(lambda conn: work.queue(conn, s))
    assert stored is not None and state.updated_at == iso(stored.updated_at_ms)


@pytest.mark.parametrize(
    ("payload", "mode", "message"),
    [
        ("   ", FOLLOWUP, "work.enqueue.payload must be a non-empty string."),
        ("x", work_pb2.WORK_MODE_UNSPECIFIED, "work.enqueue.mode must be 'followup' or 'collect'."),
    ],
)
async def test_enqueue_refuses_what_could_not_run(store: Store, payload: str, mode: int, message: str) -> None:
    s = sid()
    with pytest.raises(AthenaError) as err:
        await service(store).enqueue(work_pb2.EnqueueWorkRequest(session_id=s, payload=payload, mode=mode))
    assert (err.value.code, err.value.message) == (ErrorCode.ERROR_CODE_CONFIG_ERROR, message)
    assert await store.read(lambda conn: work.queue(conn, s)) is None


async def test_enqueue_refuses_an_input_too_large_to_run(store: Store) -> None:
    s = sid()
    with pytest.raises(AthenaError) as err:
        await service(store).enqueue(work_pb2.EnqueueWorkRequest(session_id=s, payload="x" * 10_000_000, mode=1))
    assert err.value.code == ErrorCode.ERROR_CODE_CONTEXT_OVERFLOW
    assert await store.read(lambda conn: work.depth(conn, s)) == 0


def test_store_enqueue_returns_the_existing_item_for_a_duplicate(store: Store) -> None:
    s = sid()
    with store.engine.connect() as conn, conn.begin():
        first, added = work.enqueue(conn, "i1", s, "p", "followup", 100)
        assert added is True and first == WorkItemRow(first.seq, "i1", s, "p", "followup", 100)
        again, added = work.enqueue(conn, "i2", s, "p", "followup", 200)
        assert (again, added) == (first, False)
        assert queue_row(conn, s).updated_at_ms == 100  # nothing changed
        _, added = work.enqueue(conn, "i3", s, "q", "followup", 300)
        assert added is True
        assert work.queue(conn, s) == QueueRow(s, False, 300, work.items(conn, s))
        assert [i.id for i in work.items(conn, s)] == ["i1", "i3"]
        assert work.depth(conn, s) == 2


def test_queue_message_shows_the_stored_queue() -> None:
    item = WorkItemRow(1, "i1", "s", "p", "collect", 1_700_000_000_000)
    assert item_message(item) == work_pb2.WorkItem(
        id="i1", session_id="s", payload="p", mode=COLLECT, created_at=iso(1_700_000_000_000)
    )
    state = queue_message("s", QueueRow("s", True, 1_700_000_000_001, [item]))
    assert state == work_pb2.WorkQueueState(
        schema_version=1, session_id="s", items=[item_message(item)], draining=True, updated_at=iso(1_700_000_000_001)
    )


# ---- batches --------------------------------------------------------------------------------------------


def test_take_batch_is_the_head_followup_or_the_head_block_of_collects(store: Store) -> None:
    s = sid()
    with store.engine.connect() as conn, conn.begin():
        assert work.take_batch(conn, s, "r0") == []
        for n, mode in enumerate(["collect", "collect", "followup", "collect", "followup"]):
            work.enqueue(conn, f"i{n}", s, f"p{n}", mode, n)
        assert [i.id for i in work.take_batch(conn, s, "r1")] == ["i0", "i1"]
        assert [r for _, _, r in queued(conn, s)] == ["r1", "r1", None, None, None]
        work.finish_batch(conn, s, "r1", True, 50)
        assert queue_row(conn, s).updated_at_ms == 50
        assert [i.id for i in work.take_batch(conn, s, "r2")] == ["i2"]
        work.finish_batch(conn, s, "r2", False, 60)  # failed: back in the queue, unmarked
        assert queued(conn, s) == [("p2", "followup", None), ("p3", "collect", None), ("p4", "followup", None)]
        assert queue_row(conn, s).updated_at_ms == 60
        work.finish_batch(conn, s, "r2", True, 70)  # the failed batch's items are no longer its
        assert work.depth(conn, s) == 3


# ---- drains ---------------------------------------------------------------------------------------------


async def test_drain_runs_the_queue_in_order_and_reports_it(store: Store) -> None:
    s, other = sid(), sid()
    recorder = Runs()
    svc = service(store, recorder)
    await enqueue(svc, other, ("not mine", FOLLOWUP))
    state = await enqueue(
        svc, s, ("a", FOLLOWUP), ("b", COLLECT), ("c", COLLECT), ("d", FOLLOWUP), ("e", FOLLOWUP), ("f", COLLECT)
    )
    ids = [i.id for i in state.items]
    resp = await svc.drain(work_pb2.DrainWorkRequest(session_id=s, provider="mock", model="m1"))
    assert resp == work_pb2.DrainWorkResponse(
        status=work_pb2.DRAIN_STATUS_OK, drained_items=6, queue_depth_before=6, queue_depth_after=0
    )
    assert recorder.inputs() == ["a", "b\n\nc", "d", "e", "f"]
    groups = [[ids[0]], ids[1:3], [ids[3]], [ids[4]], [ids[5]]]
    for (req, context, run_id), group in zip(recorder.calls, groups, strict=True):
        assert context == "work.drain"
        assert (req.session_id, req.provider, req.model) == (s, "mock", "m1")
        assert dict(req.metadata) == {"source": "work.drain", "workItemIds": ",".join(group)}
        assert run_id is not None
    assert len({run_id for _, _, run_id in recorder.calls}) == 5
    assert await store.read(lambda conn: queued(conn, s)) == []
    assert await store.read(lambda conn: work.depth(conn, other)) == 1
    assert await store.read(lambda conn: logged(conn, "work.drained")) == [
        (s, {"status": "ok", "drainedItems": 6, "queueDepthBefore": 6, "queueDepthAfter": 0})
    ]
    row = await store.read(lambda conn: queue_row(conn, s))
    assert (row.draining, row.drain_owner) == (False, None)


async def test_a_failed_run_ends_the_drain_and_keeps_its_items(store: Store) -> None:
    s = sid()
    refusal = AthenaError(ErrorCode.ERROR_CODE_POLICY_CONCURRENCY_LIMIT_EXCEEDED, "too many")
    recorder = Runs(fail={2: refusal})
    svc = service(store, recorder)
    await enqueue(svc, s, ("a", FOLLOWUP), ("b", COLLECT), ("c", COLLECT), ("d", FOLLOWUP))
    with pytest.raises(AthenaError) as err:
        await svc.drain(work_pb2.DrainWorkRequest(session_id=s))
    assert err.value is refusal
    assert recorder.inputs() == ["a", "b\n\nc"]
    assert await store.read(lambda conn: queued(conn, s)) == [
        ("b", "collect", None),
        ("c", "collect", None),
        ("d", "followup", None),
    ]
    assert await store.read(lambda conn: logged(conn, "work.drained")) == [
        (
            s,
            {
                "status": "failed",
                "drainedItems": 1,
                "queueDepthBefore": 4,
                "queueDepthAfter": 3,
                "error": {"code": "POLICY_CONCURRENCY_LIMIT_EXCEEDED", "message": "too many"},
            },
        )
    ]
    # The drain let go of the session: the next one runs the rest.
    resp = await service(store, Runs()).drain(work_pb2.DrainWorkRequest(session_id=s))
    assert (resp.status, resp.drained_items, resp.queue_depth_before, resp.queue_depth_after) == (
        work_pb2.DRAIN_STATUS_OK,
        3,
        3,
        0,
    )


async def test_a_caller_that_goes_away_ends_the_drain_as_cancelled(store: Store) -> None:
    s = sid()
    recorder = Runs(fail={1: asyncio.CancelledError()})
    svc = service(store, recorder)
    await enqueue(svc, s, ("a", FOLLOWUP), ("b", FOLLOWUP))
    with pytest.raises(asyncio.CancelledError):
        await svc.drain(work_pb2.DrainWorkRequest(session_id=s))
    assert await store.read(lambda conn: queued(conn, s)) == [("a", "followup", None), ("b", "followup", None)]
    assert await store.read(lambda conn: logged(conn, "work.drained")) == [
        (
            s,
            {
                "status": "failed",
                "drainedItems": 0,
                "queueDepthBefore": 2,
                "queueDepthAfter": 2,
                "error": {"code": "RUN_CANCELLED", "message": "The drain's caller went away."},
            },
        )
    ]
    assert (await store.read(lambda conn: queue_row(conn, s))).draining is False


async def test_one_drain_at_a_time_per_session(store: Store) -> None:
    s, other = sid(), sid()
    recorder = Runs()
    svc = service(store, recorder)
    await enqueue(svc, s, ("a", FOLLOWUP), ("b", FOLLOWUP))
    await enqueue(svc, other, ("c", FOLLOWUP))
    assert await store.write(lambda conn: work.claim_drain(conn, s, "another-process", 5)) is True
    row = await store.read(lambda conn: queue_row(conn, s))
    assert (row.draining, row.drain_owner, row.updated_at_ms) == (True, "another-process", 5)
    resp = await svc.drain(work_pb2.DrainWorkRequest(session_id=s))
    assert resp == work_pb2.DrainWorkResponse(
        status=work_pb2.DRAIN_STATUS_ALREADY_DRAINING, drained_items=0, queue_depth_before=2, queue_depth_after=2
    )
    assert recorder.calls == [] and await store.read(lambda conn: logged(conn, "work.drained")) == []
    assert await store.write(lambda conn: work.claim_drain(conn, s, "me", 6)) is False
    # Another session is not held by it.
    assert (await svc.drain(work_pb2.DrainWorkRequest(session_id=other))).drained_items == 1
    # Released, the session can be drained again.
    await store.write(lambda conn: work.release_drain(conn, s, 7))
    row = await store.read(lambda conn: queue_row(conn, s))
    assert (row.draining, row.drain_owner, row.updated_at_ms) == (False, None, 7)
    assert (await svc.drain(work_pb2.DrainWorkRequest(session_id=s))).drained_items == 2


async def test_draining_an_unused_queue_runs_nothing(store: Store) -> None:
    s = sid()
    recorder = Runs()
    resp = await service(store, recorder).drain(work_pb2.DrainWorkRequest(session_id=s))
    assert resp == work_pb2.DrainWorkResponse(
        status=work_pb2.DRAIN_STATUS_OK, drained_items=0, queue_depth_before=0, queue_depth_after=0
    )
    assert recorder.calls == []
    assert await store.read(lambda conn: queue_row(conn, s)) is None


async def test_drains_of_a_dead_process_are_released_and_settled_by_the_next(store: Store) -> None:
    s, kept = sid(), sid()
    svc = service(store)
    await enqueue(svc, s, ("done", FOLLOWUP), ("lost", FOLLOWUP), ("orphan", FOLLOWUP), ("next", FOLLOWUP))
    await enqueue(svc, kept, ("x", FOLLOWUP))

    def crash(conn: Connection) -> None:
        # A dead process claimed the drain and had started three runs: one succeeded, one failed, one never
        # got a run record. Another live process drains `kept`.
        assert work.claim_drain(conn, s, "dead", 10)
        assert work.claim_drain(conn, kept, "alive", 10)
        for payload, run_id in (("done", "run-ok"), ("lost", "run-failed"), ("orphan", "run-missing")):
            (item,) = [i for i in work.items(conn, s) if i.payload == payload]
            conn.execute(work_items.update().where(work_items.c.seq == item.seq).values(run_id=run_id))
        add_run(conn, "run-ok", "succeeded")
        add_run(conn, "run-failed", "failed")
        work.release_owned(conn, ["dead", "gone"], 20)

    await store.write(crash)
    row = await store.read(lambda c: queue_row(c, s))
    assert (row.draining, row.drain_owner, row.updated_at_ms) == (False, None, 20)
    assert (await store.read(lambda c: queue_row(c, kept))).drain_owner == "alive"

    recorder = Runs()
    resp = await service(store, recorder).drain(work_pb2.DrainWorkRequest(session_id=s))
    # The item whose run succeeded is done; the others run again, in their order.
    assert (resp.drained_items, resp.queue_depth_before, resp.queue_depth_after) == (3, 3, 0)
    assert recorder.inputs() == ["lost", "orphan", "next"]


def test_reconcile_counts_items_whose_run_succeeded(store: Store) -> None:
    s, other = sid(), sid()
    with store.engine.connect() as conn, conn.begin():
        for n in range(4):
            work.enqueue(conn, f"{s}-{n}", s, f"p{n}", "followup", n)
        work.enqueue(conn, f"{other}-0", other, "q", "followup", 0)
        add_run(conn, f"ok-{s}", "succeeded")
        add_run(conn, f"ok2-{s}", "succeeded")
        add_run(conn, f"run-{s}", "running")
        for payload, run_id in (("p0", f"ok-{s}"), ("p1", f"ok2-{s}"), ("p2", f"run-{s}")):
            conn.execute(work_items.update().where(work_items.c.payload == payload).values(run_id=run_id))
        conn.execute(work_items.update().where(work_items.c.session_id == other).values(run_id=f"ok-{s}"))
        assert work.reconcile(conn, s) == 2
        assert queued(conn, s) == [("p2", "followup", None), ("p3", "followup", None)]
        assert queued(conn, other) == [("q", "followup", f"ok-{s}")]
        assert work.reconcile(conn, s) == 0


@pytest.mark.parametrize("context", ["work.queue", "work.enqueue", "work.drain"])
async def test_each_call_names_itself_when_the_session_is_missing(store: Store, context: str) -> None:
    svc = service(store)
    calls = {
        "work.queue": lambda: svc.get_queue("  "),
        "work.enqueue": lambda: svc.enqueue(work_pb2.EnqueueWorkRequest(session_id=" ", payload="p", mode=1)),
        "work.drain": lambda: svc.drain(work_pb2.DrainWorkRequest(session_id="")),
    }
    with pytest.raises(AthenaError) as err:
        await calls[context]()
    assert err.value.message == f"{context}.sessionId must be a non-empty string."


async def test_a_drain_holds_the_session_as_its_process(store: Store) -> None:
    s = sid()
    seen: list[tuple[bool, str | None]] = []

    class Watching(Runs):
        async def create(self, req: runs_pb2.CreateRunRequest, *, context: str, options: RunOptions) -> Any:
            row = await store.read(lambda conn: queue_row(conn, s))
            q = await store.read(lambda conn: work.queue(conn, s))
            assert q is not None
            seen.append((q.draining, row.drain_owner))
            return await super().create(req, context=context, options=options)

    svc = service(store, Watching(), owner="proc-7")
    await enqueue(svc, s, ("a", FOLLOWUP))
    assert (await svc.drain(work_pb2.DrainWorkRequest(session_id=s))).drained_items == 1
    assert seen == [(True, "proc-7")]


def test_queues_are_per_session(store: Store) -> None:
    s, other = sid(), sid()
    with store.engine.connect() as conn, conn.begin():
        work.enqueue(conn, f"{s}-1", other, "same", "followup", 1)
        # An unused session is not held by another session's queue.
        assert work.claim_drain(conn, s, "me", 2) is True
        assert queue_row(conn, s) is None
        _, added = work.enqueue(conn, f"{s}-2", s, "same", "followup", 3)
        assert added is True
        assert (work.depth(conn, s), work.depth(conn, other)) == (1, 1)
        assert work.claim_drain(conn, s, "me", 4) is True
        q = work.queue(conn, s)
        assert q is not None and q.draining is True
        other_q = work.queue(conn, other)
        assert other_q is not None and other_q.draining is False
