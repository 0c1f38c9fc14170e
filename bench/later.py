"""Work that runs later: schedule ticks over many schedules, and work-queue drain throughput.

    .venv/bin/python bench/later.py [--schedules 10000] [--due-percent 1] [--ticks 5] [--items 500]

One Athena server (SQLite, background ticker off so only the measured ticks fire) and a bare grpc.aio
echo server run as separate processes; bare SQLite inserts run in this process. Figures:

- tick: `TickSchedules` over `--schedules` schedules of which `--due-percent` are due at each tick (each due
  schedule starts one mock run), and the same tick with nothing due (the scan and claim alone);
- drain: `--items` followup items drained from one session (one run each), then as many collect items
  (merged into one run); the baseline is the same number of sequential `CreateRun` calls in one session.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from athena.v1 import (  # noqa: E402
    runs_pb2,
    runs_pb2_grpc,
    schedules_pb2,
    schedules_pb2_grpc,
    work_pb2,
    work_pb2_grpc,
)
from athena_server.timefmt import iso, now_ms  # noqa: E402
from bench.run import bare_sqlite_inserts, spawn  # noqa: E402
from tests.support.processes import free_port, start_api  # noqa: E402

MINUTE_MS = 60_000


async def bounded(calls: list[Callable[[], Awaitable[object]]], limit: int) -> None:
    """Make the calls with at most `limit` in flight (a gRPC call starts when it is created)."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[object]]) -> None:
        async with gate:
            await call()

    await asyncio.gather(*(one(c) for c in calls))


async def main(schedule_count: int, due_percent: float, ticks: int, items: int) -> None:
    athena = start_api(
        Path(tempfile.mkdtemp()), env={"ATHENA_LOG_LEVEL": "WARNING", "ATHENA_SCHEDULE_TICK_SECONDS": "0"}
    )
    echo_port = free_port()
    bare = spawn([str(ROOT / "bench/baselines.py"), "grpc", str(echo_port)])
    try:
        async with (
            grpc.aio.insecure_channel(athena.grpc_target) as ch,
            grpc.aio.insecure_channel(f"127.0.0.1:{echo_port}") as echo_ch,
        ):
            await grpc.aio.Channel.channel_ready(echo_ch)
            schedules = schedules_pb2_grpc.ScheduleServiceStub(ch)
            work = work_pb2_grpc.WorkServiceStub(ch)
            runs = runs_pb2_grpc.RunServiceStub(ch)
            echo = echo_ch.unary_unary("/bench.Echo/Echo")

            due = max(1, round(schedule_count * due_percent / 100))
            started = time.perf_counter()
            creates: list[Callable[[], Awaitable[object]]] = [
                partial(
                    schedules.CreateSchedule,
                    schedules_pb2.CreateScheduleRequest(
                        id=f"bench-{i}",
                        session_id=f"bench-{i}",
                        input="tick",
                        # The due ones fire every minute from now; the rest not for a week.
                        every_minutes=1 if i < due else 7 * 24 * 60,
                        start_now=i < due,
                    ),
                )
                for i in range(schedule_count)
            ]
            await bounded(creates, 32)
            setup_s = time.perf_counter() - started
            t0 = now_ms() + 1000

            tick_ms: list[float] = []
            for k in range(ticks):
                start = time.perf_counter()
                resp = await schedules.TickSchedules(schedules_pb2.TickSchedulesRequest(at=iso(t0 + k * MINUTE_MS)))
                tick_ms.append((time.perf_counter() - start) * 1000)
                assert len(resp.run) == due and all(r.status == schedules_pb2.SCHEDULE_RUN_STATUS_OK for r in resp.run)
            idle_ms: list[float] = []
            for k in range(ticks):
                start = time.perf_counter()
                at = iso(t0 + (ticks - 1) * MINUTE_MS + 1 + k)  # just after the last tick: nothing due
                resp = await schedules.TickSchedules(schedules_pb2.TickSchedulesRequest(at=at))
                idle_ms.append((time.perf_counter() - start) * 1000)
                assert not resp.run
            echo_ms: list[float] = []
            for _ in range(50):
                start = time.perf_counter()
                await echo(b"x")
                echo_ms.append((time.perf_counter() - start) * 1000)

            async def drain(session: str, mode: int) -> tuple[float, int]:
                for i in range(items):
                    await work.EnqueueWork(
                        work_pb2.EnqueueWorkRequest(session_id=session, payload=f"item {i}", mode=mode)
                    )
                start = time.perf_counter()
                resp = await work.DrainWork(work_pb2.DrainWorkRequest(session_id=session))
                assert resp.status == work_pb2.DRAIN_STATUS_OK and resp.drained_items == items, resp
                return time.perf_counter() - start, resp.drained_items

            followup_s, _ = await drain("bench-drain-followup", work_pb2.WORK_MODE_FOLLOWUP)
            collect_s, _ = await drain("bench-drain-collect", work_pb2.WORK_MODE_COLLECT)
            start = time.perf_counter()
            for i in range(items):
                await runs.CreateRun(runs_pb2.CreateRunRequest(session_id="bench-direct", input=f"item {i}"))
            direct_s = time.perf_counter() - start
        sqlite_base = bare_sqlite_inserts(2.0)
    finally:
        athena.stop()
        bare.terminate()
        bare.wait(10)

    per_run_bare_ms = 1000 / sqlite_base.rps
    tick_median = statistics.median(tick_ms)
    idle_median = statistics.median(idle_ms)
    echo_median = statistics.median(echo_ms)
    print(f"\ncpus={os.cpu_count()} python={sys.version.split()[0]} store=sqlite")
    print(f"\nschedules={schedule_count} due per tick={due} (setup: {schedule_count / setup_s:.0f} creates/s)")
    print(f"  tick with {due} due (runs included)  median {tick_median:8.1f} ms  ({tick_median / due:.2f} ms per run)")
    print(f"  tick with nothing due              median {idle_median:8.1f} ms")
    print(f"  bare grpc.aio echo                 median {echo_median:8.2f} ms")
    print(f"  bare SQLite, {due} run-equivalents of 3 insert transactions: {due * per_run_bare_ms:8.1f} ms")
    print(f"  ratio: tick / bare SQLite run-equivalents = {tick_median / (due * per_run_bare_ms):.1f}x")
    print(f"\ndrain of {items} items, one session")
    print(f"  followup (one run per item)   {items / followup_s:8.0f} items/s")
    print(f"  collect (one merged run)      {items / collect_s:8.0f} items/s")
    print(f"  baseline: sequential CreateRun in one session {items / direct_s:8.0f} runs/s")
    print(f"  ratio: followup drain / sequential CreateRun = {direct_s / followup_s:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--due-percent", type=float, default=1.0)
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--items", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(main(args.schedules, args.due_percent, args.ticks, args.items))
