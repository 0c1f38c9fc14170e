"""`POST /api/v1/runs` under wrk (or gRPC `CreateRun`, `--transport grpc`) for two checkouts in turn: what
a change did to the run path, measured in one run on one machine (figures between sessions move with the
machine, and within a session by up to a fifth; this ratio moves less).

    scripts/bench-setup && .venv/bin/python bench/ab_runs.py --base REV [--rounds 3] [--seconds 8]
    .venv/bin/python bench/ab_runs.py --base REV --transport grpc --rounds 5

gRPC load is bench/grpc_load.py's: two client processes, `--connections` calls in flight between them.

REV (a commit, tag or branch) is checked out into a temporary git worktree; each server runs with its
own tree first on PYTHONPATH (the base's, or this checkout's). The two take turns, `--rounds` each, order
alternating, one server up at a time (each a fresh SQLite file, 1 s wrk warm-up). Reported per checkout:
the medians of persisted runs/s, server CPU per persisted run (process tree, /proc), the client p50 and p99;
then this checkout's ratio to the base. Exits non-zero only when the harness fails.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import grpc_load
from bench.harness import athena, count_rows, pct, require_wrk, wrk
from bench.rest_wrk import LUA, settled_count

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Round:
    runs_per_s: float
    cpu_ms_per_run: float
    p50_ms: float
    p99_ms: float


def one_round(tree: Path, seconds: int, connections: int) -> Round:
    # Each server imports its own tree first (ahead of the editable install, whichever checkout that is).
    env = {"PYTHONPATH": f"{tree}:{tree / 'gen'}"}
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp, athena(Path(tmp), env) as (server, db):
        url = f"{server.rest_url}/api/v1/runs"
        pid = server.proc.pid
        wrk(url, pid, 1, connections, LUA, (uuid.uuid4().hex[:8],))
        before = settled_count(db)
        result = wrk(url, pid, seconds, connections, LUA, (uuid.uuid4().hex[:8],))
        persisted = settled_count(db) - before
    return Round(
        persisted / result.seconds, result.server_cpu_s * 1000 / max(persisted, 1), result.p50_ms, result.p99_ms
    )


def one_grpc_round(tree: Path, seconds: int, connections: int) -> Round:
    env = {"PYTHONPATH": f"{tree}:{tree / 'gen'}"}
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp, athena(Path(tmp), env) as (server, db):
        before: list[int] = []
        load = grpc_load.load(
            server.grpc_target,
            server.proc.pid,
            grpc_load.CREATE_RUN,
            seconds,
            2,
            max(1, connections // 2),
            on_ready=lambda: before.append(count_rows(db, "runs")),
        )
        # The clients waited for every call they made: every answered run is committed by now.
        persisted = count_rows(db, "runs") - before[0]
    return Round(
        persisted / load.seconds,
        load.server_cpu_s * 1000 / max(persisted, 1),
        pct(load.latencies, 50),
        pct(load.latencies, 99),
    )


def summary(rounds: list[Round]) -> Round:
    return Round(
        statistics.median(r.runs_per_s for r in rounds),
        statistics.median(r.cpu_ms_per_run for r in rounds),
        statistics.median(r.p50_ms for r in rounds),
        statistics.median(r.p99_ms for r in rounds),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="the commit to compare this checkout with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32, help="wrk connections, or gRPC calls in flight")
    parser.add_argument("--transport", choices=("rest", "grpc"), default="rest")
    opts = parser.parse_args()
    measure = one_round if opts.transport == "rest" else one_grpc_round
    if opts.transport == "rest":
        require_wrk()
    with tempfile.TemporaryDirectory(prefix="bench-ab-tree-") as tmp:
        base_tree = Path(tmp) / "base"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base_tree), opts.base], check=True
        )
        try:
            results: dict[str, list[Round]] = {"base": [], "this": []}
            for i in range(opts.rounds):
                order = ["base", "this"] if i % 2 == 0 else ["this", "base"]
                for name in order:
                    r = measure(base_tree if name == "base" else ROOT, opts.seconds, opts.connections)
                    results[name].append(r)
                    print(
                        f"round {i + 1} {name:<4} {r.runs_per_s:7.0f} runs/s {r.cpu_ms_per_run:6.2f} ms CPU/run "
                        f"p50 {r.p50_ms:6.1f} p99 {r.p99_ms:6.1f} ms",
                        flush=True,
                    )
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base_tree)], check=False)
    base, this = summary(results["base"]), summary(results["this"])
    what = "connections" if opts.transport == "rest" else "gRPC calls in flight"
    print(f"\nmedians over {opts.rounds} rounds ({opts.connections} {what}, {opts.seconds} s each):")
    print(f"{'':<6} {'runs/s':>8} {'CPU ms/run':>11} {'p50 ms':>8} {'p99 ms':>8}")
    for name, r in (("base", base), ("this", this)):
        print(f"{name:<6} {r.runs_per_s:>8.0f} {r.cpu_ms_per_run:>11.2f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f}")
    print(
        f"this / base: runs/s {this.runs_per_s / base.runs_per_s:.2f}x, CPU per run "
        f"{this.cpu_ms_per_run / base.cpu_ms_per_run:.2f}x, p99 {this.p99_ms / base.p99_ms:.2f}x"
    )


if __name__ == "__main__":
    main()
