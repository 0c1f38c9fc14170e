"""Which server processes are alive, and what happens to the runs of one that died.

Each process registers a row in `instances` and heartbeats it. A process is dead when its heartbeat is
older than `instance_stale_seconds`, or at once when it ran on this host and its pid is gone (or is now
ours: a restarted container reuses pids). Its `pending`/`running` runs are then failed with UNAVAILABLE
(`run.failed`, reason `owner-lost`), the agent process groups it started on this host are killed, and
its unfinished idempotency keys are released so a retry can run. The reaper runs at start-up and with
every heartbeat, so a crash is cleaned up by the next start or by any surviving replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from collections.abc import Awaitable, Callable
from functools import partial

from sqlalchemy import Connection

from athena_client.vocab import EventType, RunStatus
from athena_server.errors import AthenaError, ErrorCode
from athena_server.storage import idempotency, instances, run_endings, runs
from athena_server.storage.instances import InstanceRow
from athena_server.storage.store import Store
from athena_server.timefmt import now_ms

log = logging.getLogger(__name__)

# The error a run of a dead process ends with: its executor became unavailable.
LOST_CODE = AthenaError(ErrorCode.ERROR_CODE_UNAVAILABLE, "").code_name


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_group(pgid: int) -> None:
    """SIGKILL a process group an agent subprocess led (it was started in its own session)."""
    if pgid <= 1 or pgid == os.getpgid(0):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class Liveness:
    def __init__(
        self,
        store: Store,
        heartbeat_seconds: float,
        stale_seconds: float,
        housekeeping: list[Callable[[], Awaitable[object]]] | None = None,
    ) -> None:
        # Releases of what dead processes held besides runs (drains, schedule runs, workflow runs): each is
        # called in the reaping transaction with the dead instance ids and the time.
        self.on_reap: list[Callable[[Connection, list[str], int], object]] = []
        # Periodic clean-up that any live process may do (expired idempotency keys), run with each beat.
        self.housekeeping = housekeeping if housekeeping is not None else []
        self.store = store
        self.heartbeat_seconds = heartbeat_seconds
        self.stale_ms = int(stale_seconds * 1000)
        self.instance_id = uuid.uuid4().hex
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Register this process and reap the dead; returns how many runs were failed."""
        at = now_ms()
        row = InstanceRow(self.instance_id, self.hostname, self.pid, at, at)
        await self.store.write(lambda conn: instances.register(conn, row))
        reaped = await self.reap()
        self._task = asyncio.create_task(self._beat(), name="athena-heartbeat")
        return reaped

    async def reap(self) -> int:
        """Fail the runs of dead server processes; then, the failure committed, stop their agents here."""
        lost, dead, groups = await self.store.write(self._reap)
        for pid in groups:
            kill_group(pid)
        if lost:
            log.warning("reaped %d run(s) of %d dead server process(es)", lost, dead)
        return lost

    def _dead(self, other: InstanceRow, at: int) -> bool:
        if at - other.heartbeat_at_ms > self.stale_ms:
            return True
        return other.hostname == self.hostname and (other.pid == self.pid or not pid_alive(other.pid))

    def _reap(self, conn: Connection) -> tuple[int, int, list[int]]:
        """(runs failed, dead processes, this host's agent process groups to stop once committed): a unit
        may run twice (Store.write), so it signals nothing itself."""
        at = now_ms()
        dead = [o for o in instances.others(conn, self.instance_id) if self._dead(o, at)]
        if not dead:
            return 0, 0, []
        by_id = {o.id: o for o in dead}
        lost = runs.owned_active(conn, list(by_id))
        groups: list[int] = []
        for run in lost:
            owner = by_id[run.owner_id or ""]
            if run.pid and run.pid != owner.pid and owner.hostname == self.hostname:
                groups.append(run.pid)
            message = (
                f"The server process executing this run stopped (pid {owner.pid} on {owner.hostname}); "
                "the run was abandoned."
            )
            run_endings.record_stored_failure(
                conn,
                run,
                status=RunStatus.FAILED,
                event_type=EventType.RUN_FAILED,
                code=LOST_CODE,
                message=message,
                at=at,
                payload={"provider": run.provider, "model": run.model, "reason": "owner-lost"},
            )
        idempotency.release_owned(conn, list(by_id))
        for release in self.on_reap:
            release(conn, list(by_id), at)
        instances.remove(conn, list(by_id))
        return len(lost), len(dead), groups

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            try:
                alive = await self.store.write(lambda conn: instances.heartbeat(conn, self.instance_id, now_ms()))
                if not alive:
                    # Another process judged us dead (a long pause); come back rather than run unowned.
                    log.error("this server's instance row was reaped by another process; registering again")
                    at = now_ms()
                    row = InstanceRow(self.instance_id, self.hostname, self.pid, at, at)
                    await self.store.write(partial(instances.register, row=row))
                await self.reap()
                for chore in self.housekeeping:
                    await chore()
            except Exception:
                log.exception("heartbeat failed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.store.write(lambda conn: instances.remove(conn, [self.instance_id]))
