"""The reaper, against a real SQLite store: which server processes count as dead, and what happens to what
they held (their pending and running runs fail with UNAVAILABLE, reason `owner-lost`; their agent process
groups are killed; their unfinished idempotency keys and drains are released; their rows go), while the
runs and keys of live processes are left alone.

No real process group is ever signalled: `os.killpg` is replaced by a recorder for every test here (the
server runs as whatever user the tests run as, and a wrong pgid must not reach the kernel)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import uuid
from typing import Any

import pytest
from sqlalchemy import Connection, insert, select

from athena_server.engine import liveness
from athena_server.engine.liveness import LOST_CODE, Liveness, kill_group, pid_alive
from athena_server.storage import idempotency, instances, work
from athena_server.storage.instances import InstanceRow
from athena_server.storage.store import Store
from athena_server.storage.tables import events, runs, sessions, transcript_entries

NO_SUCH_PID = 2**30  # above any pid_max: never a live process
STALE_S = 60.0


@pytest.fixture(autouse=True)
def killed(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(liveness.os, "killpg", lambda pgid, sig: calls.append((pgid, sig)))
    return calls


def reaper(store: Store) -> Liveness:
    return Liveness(store, heartbeat_seconds=3600, stale_seconds=STALE_S)


def instance(hostname: str, pid: int, heartbeat_at_ms: int) -> InstanceRow:
    return InstanceRow(f"inst-{uuid.uuid4().hex}", hostname, pid, heartbeat_at_ms, heartbeat_at_ms)


def add_run(conn: Connection, owner: str | None, status: str, pid: int | None = None, attempts: int = 1) -> str:
    run_id = f"run-{uuid.uuid4().hex}"
    conn.execute(
        insert(runs).values(
            id=run_id,
            session_id=f"sess-{run_id}",
            status=status,
            provider="mock",
            model="m1",
            input="x",
            trace_id=f"trace-{run_id}",
            created_at_ms=1,
            attempts=attempts,
            owner_id=owner,
            pid=pid,
        )
    )
    return run_id


def run_state(conn: Connection, run_id: str) -> tuple[str, str | None, str | None, int | None]:
    r = conn.execute(select(runs).where(runs.c.id == run_id)).one()
    return r.status, r.error_code, r.error_message, r.finished_at_ms


def failed_events(conn: Connection) -> list[Any]:
    return list(conn.execute(select(events).where(events.c.type == "run.failed").order_by(events.c.seq)).all())


# ---- process checks -------------------------------------------------------------------------------------


def test_a_lost_run_ends_unavailable() -> None:
    assert LOST_CODE == "UNAVAILABLE"


def test_pid_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pid_alive(os.getpid()) is True
    assert pid_alive(NO_SUCH_PID) is False

    def refuse(pid: int, sig: int) -> None:
        raise PermissionError(pid)

    monkeypatch.setattr(liveness.os, "kill", refuse)
    assert pid_alive(12345) is True  # exists, owned by another user


def test_kill_group_never_signals_init_or_our_own_group(killed: list[tuple[int, int]]) -> None:
    for pgid in (-5, 0, 1, os.getpgid(0)):
        kill_group(pgid)
    assert killed == []
    kill_group(2)
    kill_group(NO_SUCH_PID)
    assert killed == [(2, signal.SIGKILL), (NO_SUCH_PID, signal.SIGKILL)]


def test_kill_group_ignores_a_group_that_is_gone_or_not_ours(monkeypatch: pytest.MonkeyPatch) -> None:
    for error in (ProcessLookupError, PermissionError):

        def fail(pgid: int, sig: int, error: type[Exception] = error) -> None:
            raise error(pgid)

        monkeypatch.setattr(liveness.os, "killpg", fail)
        kill_group(NO_SUCH_PID)  # does not raise


def test_who_is_dead(store: Store) -> None:
    live = reaper(store)
    now = 10_000_000
    stale_ms = int(STALE_S * 1000)
    here, there = live.hostname, f"not-{live.hostname}"
    assert live.stale_ms == stale_ms
    # Silent for longer than the stale period: dead wherever it ran.
    assert live._dead(instance(there, NO_SUCH_PID, now - stale_ms - 1), now) is True
    assert live._dead(instance(there, os.getpid(), now - stale_ms - 1), now) is True
    # Exactly the stale period, or less, on another host: alive whatever its pid.
    assert live._dead(instance(there, NO_SUCH_PID, now - stale_ms), now) is False
    assert live._dead(instance(there, os.getpid(), now), now) is False
    # On this host: dead at once when its pid is gone, or is ours (a restarted container reuses pids).
    assert live._dead(instance(here, NO_SUCH_PID, now), now) is True
    assert live._dead(instance(here, os.getpid(), now), now) is True
    assert live._dead(instance(here, os.getppid(), now), now) is False


# ---- reaping --------------------------------------------------------------------------------------------


async def test_reap_fails_the_runs_of_dead_processes_only(store: Store, killed: list[tuple[int, int]]) -> None:
    live = reaper(store)
    here, there = live.hostname, f"not-{live.hostname}"
    now = liveness.now_ms()
    dead_here = instance(here, NO_SUCH_PID, now)
    dead_there = instance(there, 4242, now - 3_600_000)
    alive_there = instance(there, 4343, now)
    seen: list[tuple[list[str], int]] = []
    live.on_reap.append(lambda conn, ids, at: seen.append((sorted(ids), at)))

    def setup(conn: Connection) -> dict[str, str]:
        for row in (dead_here, dead_there, alive_there):
            instances.register(conn, row)
        ids = {
            "running_here": add_run(conn, dead_here.id, "running", pid=777, attempts=2),
            "agentless_here": add_run(conn, dead_here.id, "running", pid=None),
            "self_pid_here": add_run(conn, dead_here.id, "running", pid=NO_SUCH_PID),
            "pending_there": add_run(conn, dead_there.id, "pending", pid=None, attempts=0),
            "running_there": add_run(conn, dead_there.id, "running", pid=888),
            "finished_dead": add_run(conn, dead_here.id, "succeeded", pid=999),
            "alive": add_run(conn, alive_there.id, "running", pid=555),
            "unowned": add_run(conn, None, "pending"),
        }
        idempotency.claim(conn, "runs", f"k1-{dead_here.id}", "h", dead_here.id, 1)
        idempotency.claim(conn, "runs", f"k2-{dead_here.id}", "h", dead_here.id, 1)
        idempotency.finish(conn, "runs", f"k2-{dead_here.id}", response=b"r", http_status=200, error=None)
        idempotency.claim(conn, "runs", f"k3-{alive_there.id}", "h", alive_there.id, 1)
        return ids

    ids = await store.write(setup)
    assert await live.reap() == 5

    # Agent process groups are killed only on this host, and never the dead server's own pid.
    assert killed == [(777, signal.SIGKILL)]
    assert len(seen) == 1 and seen[0][0] == sorted([dead_here.id, dead_there.id])
    at = seen[0][1]
    assert at >= now

    def check(conn: Connection) -> None:
        for name in ("running_here", "agentless_here", "self_pid_here"):
            assert run_state(conn, ids[name]) == (
                "failed",
                "UNAVAILABLE",
                f"The server process executing this run stopped (pid {NO_SUCH_PID} on {here}); the run was abandoned.",
                at,
            ), name
        for name in ("pending_there", "running_there"):
            assert run_state(conn, ids[name]) == (
                "failed",
                "UNAVAILABLE",
                f"The server process executing this run stopped (pid 4242 on {there}); the run was abandoned.",
                at,
            ), name
        assert run_state(conn, ids["finished_dead"])[0] == "succeeded"
        assert run_state(conn, ids["alive"]) == ("running", None, None, None)
        assert run_state(conn, ids["unowned"]) == ("pending", None, None, None)

        evts = {e.run_id: e for e in failed_events(conn)}
        assert sorted(evts) == sorted(
            ids[n] for n in ("running_here", "agentless_here", "self_pid_here", "pending_there", "running_there")
        )
        first = evts[ids["running_here"]]
        assert (first.session_id, first.trace_id, first.created_at_ms) == (
            f"sess-{ids['running_here']}",
            f"trace-{ids['running_here']}",
            at,
        )
        assert first.payload == {
            "provider": "mock",
            "model": "m1",
            "reason": "owner-lost",
            "status": "failed",
            "attempts": 2,
            "error": {"code": "UNAVAILABLE", "message": run_state(conn, ids["running_here"])[2]},
        }
        assert evts[ids["pending_there"]].payload["attempts"] == 0
        # A run that had started gets an error entry in its transcript; a pending one does not.
        entries = conn.execute(select(transcript_entries)).all()
        assert sorted(e.run_id for e in entries) == sorted(
            ids[n] for n in ("running_here", "agentless_here", "self_pid_here", "running_there")
        )
        assert all(e.is_error and e.role == "assistant" and e.metadata == {"errorCode": "UNAVAILABLE"} for e in entries)
        pending_session = f"sess-{ids['pending_there']}"
        assert conn.execute(select(sessions.c.id).where(sessions.c.id == pending_session)).first() is None
        # Unfinished keys of the dead are released; finished ones and the living's stay.
        assert idempotency.get(conn, "runs", f"k1-{dead_here.id}") is None
        assert idempotency.get(conn, "runs", f"k2-{dead_here.id}") is not None
        assert idempotency.get(conn, "runs", f"k3-{alive_there.id}") is not None
        assert [o.id for o in instances.others(conn, "nobody")] == [alive_there.id]

    await store.read(check)
    # Nothing left to reap: a second pass changes nothing and calls no hook.
    assert await live.reap() == 0
    assert len(seen) == 1
    assert len(await store.read(failed_events)) == 5


async def test_reap_of_a_dead_process_without_runs_still_releases_what_it_held(store: Store) -> None:
    live = reaper(store)
    dead = instance(live.hostname, NO_SUCH_PID, liveness.now_ms())
    s = f"s-{uuid.uuid4().hex[:8]}"
    live.on_reap.append(work.release_owned)

    def setup(conn: Connection) -> None:
        instances.register(conn, dead)
        work.enqueue(conn, "i1", s, "p", "followup", 1)
        assert work.claim_drain(conn, s, dead.id, 2)

    await store.write(setup)
    assert await live.reap() == 0
    q = await store.read(lambda conn: work.queue(conn, s))
    assert q is not None and q.draining is False
    assert await store.read(lambda conn: instances.others(conn, "nobody")) == []


async def test_start_registers_reaps_and_close_deregisters(store: Store) -> None:
    first, second = reaper(store), reaper(store)
    await store.write(lambda conn: instances.register(conn, instance(first.hostname, NO_SUCH_PID, 1)))
    await store.write(lambda conn: add_run(conn, None, "pending"))
    assert await first.start() == 0
    try:
        rows = await store.read(lambda conn: instances.others(conn, "nobody"))
        assert [(r.id, r.hostname, r.pid) for r in rows] == [(first.instance_id, first.hostname, os.getpid())]
        assert rows[0].started_at_ms == rows[0].heartbeat_at_ms
        # To another process of this host, a row with our own pid is a previous life of us: dead.
        orphan = await store.write(lambda conn: add_run(conn, first.instance_id, "running"))
        assert await second.start() == 1
        assert (await store.read(lambda conn: run_state(conn, orphan)))[0] == "failed"
    finally:
        await first.close()
        await second.close()
    assert await store.read(lambda conn: instances.others(conn, "nobody")) == []


async def test_heartbeat_beats_reaps_and_comes_back_after_being_reaped(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    # The chore paces the beats: it reports each beat, then waits for the test to let that beat finish.
    beats: asyncio.Queue[int] = asyncio.Queue()
    proceed: asyncio.Queue[bool] = asyncio.Queue()

    async def chore() -> None:
        await beats.put(1)
        if await proceed.get():
            raise RuntimeError("housekeeping broke")

    live = Liveness(store, heartbeat_seconds=0, stale_seconds=STALE_S, housekeeping=[chore])
    assert live.housekeeping == [chore]
    caplog.set_level(logging.DEBUG, logger=liveness.__name__)
    await live.start()
    try:
        await beats.get()
        # Meanwhile another process judged us dead and removed our row, and a dead process registered.
        dead = instance(live.hostname, NO_SUCH_PID, 1)
        await store.write(lambda conn: instances.register(conn, dead))
        await store.write(lambda conn: instances.remove(conn, [live.instance_id]))
        await proceed.put(True)  # this beat's chore fails: logged, and the beats go on
        await beats.get()
        # The next beat registered us again and reaped the dead one before its chores.
        rows = await store.read(lambda conn: instances.others(conn, "nobody"))
        assert [(r.id, r.pid) for r in rows] == [(live.instance_id, os.getpid())]
        messages = [r.getMessage() for r in caplog.records]
        assert "heartbeat failed" in messages
        assert "this server's instance row was reaped by another process; registering again" in messages
    finally:
        await live.close()
    assert await store.read(lambda conn: instances.others(conn, "nobody")) == []


async def test_a_reaper_without_chores_starts_beats_and_stops(store: Store) -> None:
    live = reaper(store)
    assert live.housekeeping == [] and live.on_reap == []
    await live.close()  # never started: nothing to stop
    await live.start()
    task = live._task
    assert task is not None and task.get_name() == "athena-heartbeat"
    await live.close()
    assert task.cancelled()


async def test_reaping_is_logged(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    live = reaper(store)
    caplog.set_level(logging.DEBUG, logger=liveness.__name__)
    dead = instance(live.hostname, NO_SUCH_PID, 1)
    empty = instance(live.hostname, NO_SUCH_PID, 1)

    def setup(conn: Connection) -> None:
        instances.register(conn, dead)
        instances.register(conn, empty)
        add_run(conn, dead.id, "running")
        add_run(conn, dead.id, "pending")

    await store.write(setup)
    assert await live.reap() == 2
    assert [r.getMessage() for r in caplog.records] == ["reaped 2 run(s) of 2 dead server process(es)"]
