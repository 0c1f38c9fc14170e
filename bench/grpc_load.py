"""gRPC CreateRun under load from several client processes, beside the bare grpc.aio echo started in the
same run (issue 13, row 4):

    .venv/bin/python bench/grpc_load.py [--seconds 8] [--processes 2] [--in-flight 16] [--rounds 1]

`--processes` client processes (grpc.aio, one channel each) keep `--in-flight` calls each in flight for
`--seconds`: `CreateRun` (mock provider, a new session each) against Athena, then the same serialized
request bytes against the bare echo. Reported: calls/s, latency percentiles, the server's CPU per call
(its process tree, /proc), the runs persisted in its SQLite file (counted after it stopped), and each
client process's CPU share, so a pegged load generator shows. Exits non-zero only on a harness error.

    python bench/grpc_load.py --client TARGET METHOD SECONDS IN_FLIGHT CONNECTIONS   # one client (internal)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from athena.v1 import runs_pb2  # noqa: E402
from bench.harness import Row, athena, bare_grpc, count_rows, pct, print_rows, tree_cpu_seconds  # noqa: E402

CREATE_RUN = "/athena.v1.RunService/CreateRun"
ECHO = "/bench.Echo/Echo"


def _request(nonce: str, i: int) -> bytes:
    return runs_pb2.CreateRunRequest(session_id=f"g-{nonce}-{i}", input="hello", provider="mock").SerializeToString()


async def _client(target: str, method: str, seconds: float, in_flight: int, connections: int) -> None:
    """One load-generating process: warm up, say `ready`, wait for `go` on stdin, load, print the figures.
    Its calls take turns over `connections` channels, each with a TCP connection of its own (a local
    subchannel pool: channels to one target otherwise share one), so a server of several workers on one
    port (SO_REUSEPORT spreads connections, not calls) gets its share on each."""
    nonce = uuid.uuid4().hex[:8]
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(connections)]
    try:
        # bytes in, bytes out: no client-side (de)serialisation to pay
        calls = [channel.unary_unary(method) for channel in channels]
        counter = 0
        for i in range(20 * connections):
            counter += 1
            await calls[i % connections](_request(nonce, counter), timeout=30)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        latencies: list[float] = []
        errors: dict[str, int] = {}
        cpu0, t0 = os.times(), time.perf_counter()
        deadline = t0 + seconds

        async def worker(call: grpc.aio.UnaryUnaryMultiCallable) -> None:
            nonlocal counter
            while time.perf_counter() < deadline:
                counter += 1
                start = time.perf_counter()
                try:
                    await call(_request(nonce, counter), timeout=30)
                    latencies.append((time.perf_counter() - start) * 1000)
                except grpc.aio.AioRpcError as err:
                    errors[err.code().name] = errors.get(err.code().name, 0) + 1

        await asyncio.gather(*(worker(calls[i % connections]) for i in range(in_flight)))
        wall = time.perf_counter() - t0
        cpu1 = os.times()
        cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    finally:
        for channel in channels:
            await channel.close()
    print(json.dumps({"latencies": latencies, "errors": errors, "wall": wall, "cpu": cpu}), flush=True)


@dataclass
class Load:
    calls: int
    errors: dict[str, int]
    seconds: float
    latencies: list[float]
    server_cpu_s: float
    client_cpu_shares: list[float]  # each client process's CPU time / wall time (1.0 = one core pegged)

    @property
    def rps(self) -> float:
        return self.calls / self.seconds

    @property
    def cpu_ms_per_call(self) -> float:
        return self.server_cpu_s * 1000 / max(self.calls, 1)


def load(
    target: str,
    server_pid: int,
    method: str,
    seconds: float,
    processes: int,
    in_flight: int,
    on_ready: Callable[[], object] = lambda: None,
    connections: int = 1,
) -> Load:
    """Start the client processes, let them warm up (then `on_ready` runs), then load all at once; the
    server's CPU is read around the load."""
    clients = [
        subprocess.Popen(
            [sys.executable, __file__, "--client", target, method, str(seconds), str(in_flight), str(connections)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for c in clients:
            assert c.stdout is not None
            if c.stdout.readline().strip() != "ready":
                raise RuntimeError("a gRPC client process failed to warm up")
        on_ready()
        before = tree_cpu_seconds(server_pid)
        for c in clients:
            assert c.stdin is not None
            c.stdin.write("go\n")
            c.stdin.flush()
        outs = [json.loads(c.communicate(timeout=seconds + 120)[0]) for c in clients]
        used = tree_cpu_seconds(server_pid) - before
    finally:
        for c in clients:
            if c.poll() is None:
                c.kill()
                c.wait(10)
    latencies = [x for o in outs for x in o["latencies"]]
    errors: dict[str, int] = {}
    for o in outs:
        for code, n in o["errors"].items():
            errors[code] = errors.get(code, 0) + n
    return Load(
        calls=len(latencies),
        errors=errors,
        seconds=max(o["wall"] for o in outs),
        latencies=latencies,
        server_cpu_s=used,
        client_cpu_shares=[o["cpu"] / o["wall"] for o in outs],
    )


@dataclass
class GrpcFigures:
    processes: int
    in_flight: int
    echo: Load
    create: Load
    persisted: int


def combine(loads: list[Load]) -> Load:
    """Several rounds as one: every call and latency, the rounds' total duration and server CPU."""
    errors: dict[str, int] = {}
    for one in loads:
        for code, n in one.errors.items():
            errors[code] = errors.get(code, 0) + n
    return Load(
        calls=sum(one.calls for one in loads),
        errors=errors,
        seconds=sum(one.seconds for one in loads),
        latencies=[x for one in loads for x in one.latencies],
        server_cpu_s=sum(one.server_cpu_s for one in loads),
        client_cpu_shares=[x for one in loads for x in one.client_cpu_shares],
    )


def measure(seconds: float = 8, processes: int = 2, in_flight: int = 16, rounds: int = 1) -> GrpcFigures:
    """Both servers run throughout; echo and CreateRun take turns `rounds` times (alternating order)."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-grpc-") as tmp,
        bare_grpc() as (echo_pid, echo_target),
        athena(Path(tmp)) as (server, db),
    ):
        echoes: list[Load] = []
        creates: list[Load] = []
        persisted = 0

        def echo() -> None:
            echoes.append(load(echo_target, echo_pid, ECHO, seconds, processes, in_flight))

        def create() -> None:
            nonlocal persisted
            before: list[int] = []  # after the clients' warm-up runs (WAL: a read beside the live server)
            creates.append(
                load(
                    server.grpc_target,
                    server.proc.pid,
                    CREATE_RUN,
                    seconds,
                    processes,
                    in_flight,
                    on_ready=lambda: before.append(count_rows(db, "runs")),
                )
            )
            # The clients waited for every call they made: every answered run is committed by now.
            persisted += count_rows(db, "runs") - before[0]

        for round_ in range(rounds):
            for step in (echo, create) if round_ % 2 == 0 else (create, echo):
                step()
    return GrpcFigures(processes, in_flight, combine(echoes), combine(creates), persisted)


def report(f: GrpcFigures) -> None:
    print(
        f"gRPC: {f.processes} client processes x {f.in_flight} in flight (grpc.aio); client CPU per process and round"
    )
    print(
        f"{'target':<28} {'calls/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>8} {'srv CPU ms/call':>15} "
        f"{'client CPU':>16}"
    )
    for name, r in [("bare grpc.aio echo", f.echo), ("CreateRun (mock)", f.create)]:
        shares = "/".join(f"{s:.0%}" for s in r.client_cpu_shares)
        print(
            f"{name:<28} {r.rps:>8.0f} {pct(r.latencies, 50):>8.1f} {pct(r.latencies, 99):>8.1f} "
            f"{sum(r.errors.values()):>8} {r.cpu_ms_per_call:>15.2f} {shares:>16}"
        )
    if f.create.errors:
        print(f"CreateRun errors: {f.create.errors}")
    print(f"runs persisted during the CreateRun load: {f.persisted} (OK answers: {f.create.calls})")


def rows(f: GrpcFigures) -> list[Row]:
    ratio = f.create.rps / f.echo.rps
    return [
        Row(
            f"gRPC CreateRun, {f.processes * f.in_flight} in flight from {f.processes} client processes",
            "658-716/s (0.16x of 4,067)",
            f"{f.create.rps:,.0f}/s ({ratio:.2f}x of {f.echo.rps:,.0f}), {sum(f.create.errors.values())} errors",
            ">= 1,200",
            f.create.rps >= 1200 and not f.create.errors,
        )
    ]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        target, method, seconds, in_flight, connections = sys.argv[2:7]
        asyncio.run(_client(target, method, float(seconds), int(in_flight), int(connections)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--in-flight", type=int, default=16, help="calls in flight per client process")
    parser.add_argument("--rounds", type=int, default=1, help="echo and CreateRun take turns this many times")
    opts = parser.parse_args()
    figures = measure(opts.seconds, opts.processes, opts.in_flight, opts.rounds)
    report(figures)
    print_rows(rows(figures))


if __name__ == "__main__":
    main()
