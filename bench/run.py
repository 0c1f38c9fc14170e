"""Throughput and latency of Athena's hot paths beside bare baselines started in the same run.

    .venv/bin/python bench/run.py [--clients 1,8,32] [--seconds 5]

Every server is a separate process on loopback; the load generator is one asyncio process keeping
`--clients` requests in flight. The machine is shared by client and servers, so absolute figures are a
floor; the ratio to the bare baseline (same framework, no work) is the figure to watch.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from athena.v1 import runs_pb2, runs_pb2_grpc, system_pb2, system_pb2_grpc  # noqa: E402
from tests.support.processes import free_port, start_api  # noqa: E402


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def load(name: str, call: Callable[[int], Awaitable[None]], clients: int, seconds: float) -> Result:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    counter = 0

    async def worker() -> None:
        nonlocal counter
        while time.perf_counter() < deadline:
            counter += 1
            start = time.perf_counter()
            await call(counter)
            latencies.append((time.perf_counter() - start) * 1000)

    for i in range(min(20, clients * 2)):  # warm-up: connections, caches, first-request costs
        await call(-i - 1)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return Result(name, len(latencies), time.perf_counter() - started, latencies)


def bare_sqlite_inserts(seconds: float) -> Result:
    """Three single-row inserts per transaction (a run writes three transactions), WAL, synchronous=NORMAL."""
    path = Path(tempfile.mkdtemp()) / "bare.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)")
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(3):
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO t (v) VALUES (?)", (uuid.uuid4().hex,))
            db.execute("COMMIT")
        latencies.append((time.perf_counter() - start) * 1000)
    return Result("bare SQLite: 3 insert transactions", len(latencies), time.perf_counter() - started, latencies)


def spawn(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def wait_http(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(300):
            try:
                await client.get(url)
                return
            except httpx.HTTPError:
                await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


async def main(client_counts: list[int], seconds: float) -> None:
    work = Path(tempfile.mkdtemp())
    athena = start_api(work, env={"ATHENA_LOG_LEVEL": "WARNING"})
    rest_port, grpc_port = free_port(), free_port()
    bare_rest = spawn([str(ROOT / "bench/baselines.py"), "rest", str(rest_port)])
    bare_grpc = spawn([str(ROOT / "bench/baselines.py"), "grpc", str(grpc_port)])
    try:
        await wait_http(f"http://127.0.0.1:{rest_port}/bare")
        clients = max(client_counts)
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with (
            httpx.AsyncClient(base_url=athena.rest_url, limits=limits, timeout=60) as a_rest,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{rest_port}", limits=limits, timeout=60) as b_rest,
            grpc.aio.insecure_channel(athena.grpc_target) as a_ch,
            grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as b_ch,
        ):
            await grpc.aio.Channel.channel_ready(b_ch)
            caps = system_pb2_grpc.SystemServiceStub(a_ch).GetCapabilities
            create = runs_pb2_grpc.RunServiceStub(a_ch).CreateRun
            echo = b_ch.unary_unary("/bench.Echo/Echo")
            caps_bytes = system_pb2.GetCapabilitiesResponse(execution_backend="local").SerializeToString()

            async def rest_caps(_: int) -> None:
                (await a_rest.get("/api/v1/capabilities")).raise_for_status()

            async def bare_get(_: int) -> None:
                (await b_rest.get("/bare")).raise_for_status()

            async def grpc_caps(_: int) -> None:
                await caps(system_pb2.GetCapabilitiesRequest())

            async def grpc_echo(_: int) -> None:
                await echo(caps_bytes)

            def run_body(i: int) -> dict[str, str]:
                # A new session per run: measures the run path, not the growth of one session's context.
                return {
                    "sessionId": f"b-{os.getpid()}-{i}-{uuid.uuid4().hex[:6]}",
                    "input": "hello",
                    "provider": "mock",
                }

            async def rest_run(i: int) -> None:
                (await a_rest.post("/api/v1/runs", json=run_body(i))).raise_for_status()

            async def bare_post(i: int) -> None:
                (await b_rest.post("/bare", json=run_body(i))).raise_for_status()

            async def grpc_run(i: int) -> None:
                b = run_body(i)
                await create(runs_pb2.CreateRunRequest(session_id=b["sessionId"], input="hello", provider="mock"))

            tables: list[tuple[int, list[tuple[Result, Result]]]] = []
            for n in client_counts:
                tables.append(
                    (
                        n,
                        [
                            (
                                await load("REST GET /api/v1/capabilities", rest_caps, n, seconds),
                                await load("bare FastAPI GET route", bare_get, n, seconds),
                            ),
                            (
                                await load("gRPC GetCapabilities", grpc_caps, n, seconds),
                                await load("bare grpc.aio unary echo", grpc_echo, n, seconds),
                            ),
                            (
                                await load("REST POST /api/v1/runs (mock)", rest_run, n, seconds),
                                await load("bare FastAPI POST route", bare_post, n, seconds),
                            ),
                            (
                                await load("gRPC CreateRun (mock)", grpc_run, n, seconds),
                                await load("bare grpc.aio unary echo", grpc_echo, n, seconds),
                            ),
                        ],
                    )
                )
        sqlite_base = bare_sqlite_inserts(seconds)
    finally:
        athena.stop()
        for p in (bare_rest, bare_grpc):
            p.terminate()
            p.wait(10)

    print(f"\nseconds/scenario={seconds} cpus={os.cpu_count()} python={sys.version.split()[0]}")
    for n, pairs in tables:
        print(f"\nclients={n}")
        header = f"{'scenario':40} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}   {'vs baseline':>11}"
        print(header)
        print("-" * len(header))
        for target, base in pairs:
            for r in (target, base):
                ratio = f"{target.rps / base.rps:10.2f}x" if r is target else ""
                print(f"{r.name:40} {r.rps:9.0f} {r.pct(50):8.2f} {r.pct(99):8.2f}   {ratio:>11}")
            print()
        runs = pairs[3][0]
        print(f"  mean gRPC CreateRun latency {statistics.fmean(runs.latencies_ms):.2f} ms")
    print()
    print(f"{sqlite_base.name:40} {sqlite_base.rps:9.0f} {sqlite_base.pct(50):8.2f} {sqlite_base.pct(99):8.2f}")
    best = max(pairs[3][0].rps for _, pairs in tables)
    print(f"  (best gRPC runs/s as a share of bare SQLite run-equivalents: {best / sqlite_base.rps:.2f}x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1,8,32", help="comma-separated concurrent client counts")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    asyncio.run(main([int(c) for c in args.clients.split(",")], args.seconds))
