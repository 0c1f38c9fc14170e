"""The run path of `athena api serve --workers N` beside the same server with one process, in one run:

    scripts/bench-setup && .venv/bin/python bench/workers.py [--workers 2] [--seconds 8] [--rounds 2]

Both servers (SQLite, each its own file) run throughout; in each round, alternating which goes first, each
takes:
- `POST /api/v1/runs` under wrk (32 connections, bench/runs.lua: mock provider, a new session each): the
  runs persisted in its file per second, the server's CPU per persisted run (its whole process tree:
  supervisor and workers, /proc), p99;
- gRPC `CreateRun` from 2 client processes x 16 in flight, each client spreading its calls over 4
  connections (the kernel spreads connections over the workers, not calls: bench/grpc_load.py).

The figures are medians of the rounds, and the ratio of N workers to one is reported beside them. On
SQLite the workers queue for the file's write lock (athena_server/storage/sqlite_shared.py), so what more
processes buy is bounded by the time a run's transactions hold it. Exits non-zero only on a harness error.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import uuid
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import grpc_load
from bench.harness import Row, athena, pct, print_rows, require_wrk, wrk
from bench.rest_wrk import LUA, settled_count
from tests.support.processes import AthenaProcess

CONNECTIONS = 32
GRPC_PROCESSES, GRPC_IN_FLIGHT, GRPC_CONNECTIONS = 2, 16, 4


@dataclass(frozen=True)
class Figures:
    """One server's figures: of one round, or the medians over the rounds (errors summed)."""

    workers: int
    runs_per_s: float  # persisted, under wrk
    cpu_ms_per_run: float
    p99_ms: float
    non_2xx: int
    grpc_per_s: float
    grpc_p99_ms: float
    grpc_errors: int


def _one_round(workers: int, server: AthenaProcess, db: Path, seconds: int) -> Figures:
    pid = server.proc.pid
    before = settled_count(db)
    rest = wrk(f"{server.rest_url}/api/v1/runs", pid, seconds, CONNECTIONS, LUA, (uuid.uuid4().hex[:8],))
    persisted = settled_count(db) - before
    load = grpc_load.load(
        server.grpc_target,
        pid,
        grpc_load.CREATE_RUN,
        seconds,
        GRPC_PROCESSES,
        GRPC_IN_FLIGHT,
        connections=GRPC_CONNECTIONS,
    )
    return Figures(
        workers=workers,
        runs_per_s=persisted / rest.seconds,
        cpu_ms_per_run=rest.server_cpu_s * 1000 / max(persisted, 1),
        p99_ms=rest.p99_ms,
        non_2xx=rest.non_2xx + rest.socket_errors,
        grpc_per_s=load.rps,
        grpc_p99_ms=pct(load.latencies, 99),
        grpc_errors=sum(load.errors.values()),
    )


def _medians(rounds: list[Figures]) -> Figures:
    def med(values: Iterable[float]) -> float:
        return statistics.median(values)

    return Figures(
        workers=rounds[0].workers,
        runs_per_s=med(r.runs_per_s for r in rounds),
        cpu_ms_per_run=med(r.cpu_ms_per_run for r in rounds),
        p99_ms=med(r.p99_ms for r in rounds),
        non_2xx=sum(r.non_2xx for r in rounds),
        grpc_per_s=med(r.grpc_per_s for r in rounds),
        grpc_p99_ms=med(r.grpc_p99_ms for r in rounds),
        grpc_errors=sum(r.grpc_errors for r in rounds),
    )


def measure(workers: int = 2, seconds: int = 8, rounds: int = 2) -> tuple[Figures, Figures]:
    """(one process, `workers` processes)."""
    require_wrk()
    counts = (1, workers)
    results: dict[int, list[Figures]] = {n: [] for n in counts}
    with ExitStack() as stack:
        servers = {}
        for n in counts:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"bench-workers{n}-")))
            servers[n] = stack.enter_context(athena(tmp, workers=n))
        for n in counts:  # warm-up: every worker's connections, imports on first use, caches
            server, _db = servers[n]
            wrk(f"{server.rest_url}/api/v1/runs", server.proc.pid, 1, CONNECTIONS, LUA, ("warm",))
        for round_ in range(rounds):
            for n in counts if round_ % 2 == 0 else counts[::-1]:
                results[n].append(_one_round(n, *servers[n], seconds))
    return _medians(results[1]), _medians(results[workers])


def report(one: Figures, many: Figures) -> None:
    print(
        f"api serve, 1 process vs --workers {many.workers} (SQLite): REST wrk {CONNECTIONS} connections; gRPC "
        f"{GRPC_PROCESSES} client processes x {GRPC_IN_FLIGHT} in flight over {GRPC_CONNECTIONS} connections each"
    )
    print(
        f"{'server':<14} {'REST runs/s':>12} {'CPU ms/run':>11} {'p99 ms':>8} {'errors':>7} "
        f"{'gRPC runs/s':>12} {'p99 ms':>8} {'errors':>7}"
    )
    for f in (one, many):
        name = "1 process" if f.workers == 1 else f"{f.workers} workers"
        print(
            f"{name:<14} {f.runs_per_s:>12.0f} {f.cpu_ms_per_run:>11.2f} {f.p99_ms:>8.1f} {f.non_2xx:>7} "
            f"{f.grpc_per_s:>12.0f} {f.grpc_p99_ms:>8.1f} {f.grpc_errors:>7}"
        )
    print(
        f"{many.workers} workers / 1 process: REST {many.runs_per_s / one.runs_per_s:.2f}x runs/s, "
        f"{many.cpu_ms_per_run / one.cpu_ms_per_run:.2f}x CPU per run, {many.p99_ms / one.p99_ms:.2f}x p99; "
        f"gRPC {many.grpc_per_s / one.grpc_per_s:.2f}x"
    )


def rows(one: Figures, many: Figures) -> list[Row]:
    w = f"--workers {many.workers}"
    return [
        Row(
            f"POST /api/v1/runs persisted runs/s, api serve {w}",
            "(new)",
            f"{many.runs_per_s:,.0f} ({many.runs_per_s / one.runs_per_s:.2f}x of 1 process), {many.non_2xx} errors",
            ">= 1,000, 0 non-2xx",
            many.runs_per_s >= 1000 and many.non_2xx == 0,
        ),
        Row(
            f"p99 latency of POST /api/v1/runs at 32 connections, {w}",
            "(new)",
            f"{many.p99_ms:.1f} ms ({many.p99_ms / one.p99_ms:.2f}x of 1 process)",
            "<= 50 ms",
            many.p99_ms <= 50,
        ),
        Row(
            f"gRPC CreateRun, 32 in flight from 2 client processes, {w}",
            "(new)",
            f"{many.grpc_per_s:,.0f}/s ({many.grpc_per_s / one.grpc_per_s:.2f}x of 1 process), "
            f"{many.grpc_errors} errors",
            ">= 1,200",
            many.grpc_per_s >= 1200 and many.grpc_errors == 0,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    opts = parser.parse_args()
    one, many = measure(opts.workers, opts.seconds, opts.rounds)
    report(one, many)
    print_rows(rows(one, many))


if __name__ == "__main__":
    main()
