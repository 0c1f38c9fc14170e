"""The REST run path under wrk, beside the bare FastAPI GET/POST echo started in the same run (issue 13,
rows 1-3 and 5):

    scripts/bench-setup && .venv/bin/python bench/rest_wrk.py [--seconds 8] [--connections 32] [--rounds 1]

- `GET /api/v1/capabilities` vs the bare FastAPI `GET /bare` (req/s ratio);
- `POST /api/v1/runs` (mock provider, a new session each: bench/runs.lua) vs the bare `POST /bare` with the
  same body; "persisted runs/s" counts the runs in the server's SQLite file (read beside the live server,
  WAL, before each measured load and after it once the count stops moving: the runs wrk left in flight
  finish), compared with wrk's 2xx count; non-2xx and socket errors are reported;
- the server's CPU per persisted run: utime+stime of the server's process tree from /proc around the load,
  divided by the persisted runs;
- p99 latency of `POST /api/v1/runs` at `--connections` connections (wrk's `--latency`).

Each target gets a 1 s wrk warm-up first; with `--rounds` the targets take turns (alternating order) and
medians are reported. Figures vary by ±10 % between runs on a shared machine: read
the ratios to the baselines of the same run. Exits non-zero only when the harness fails, never on a goal.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Row, WrkResult, athena, bare_rest, count_rows, print_rows, require_wrk, wrk

LUA = Path(__file__).resolve().parent / "runs.lua"


@dataclass
class RestFigures:
    seconds: int
    connections: int
    rounds: int
    bare_get: WrkResult
    caps: WrkResult
    bare_post: WrkResult
    runs: WrkResult
    persisted: int  # runs in the store written during the measured POST loads (every round)
    runs_seconds: float  # the measured POST loads' total duration
    runs_cpu_s: float  # the server's CPU during them

    @property
    def persisted_per_s(self) -> float:
        return self.persisted / self.runs_seconds

    @property
    def cpu_ms_per_run(self) -> float:
        return self.runs_cpu_s * 1000 / max(self.persisted, 1)


def median(results: list[WrkResult]) -> WrkResult:
    """Field by field median of several rounds (sums for the counts)."""

    def med(values: list[float]) -> float:
        return statistics.median(values)

    return WrkResult(
        requests=sum(r.requests for r in results),
        seconds=sum(r.seconds for r in results),
        rps=med([r.rps for r in results]),
        p50_ms=med([r.p50_ms for r in results]),
        p90_ms=med([r.p90_ms for r in results]),
        p99_ms=med([r.p99_ms for r in results]),
        non_2xx=sum(r.non_2xx for r in results),
        socket_errors=sum(r.socket_errors for r in results),
        server_cpu_s=sum(r.server_cpu_s for r in results),
        client_cpu_s=sum(r.client_cpu_s for r in results),
    )


def settled_count(db: Path) -> int:
    """The runs in the live server's file once the count stops moving (the runs wrk left in flight when it
    stopped finish and commit): WAL lets this reader beside the server see committed runs."""
    last = count_rows(db, "runs")
    for _ in range(50):
        time.sleep(0.2)
        now = count_rows(db, "runs")
        if now == last:
            return now
        last = now
    return last


def measure(seconds: int = 8, connections: int = 32, rounds: int = 1) -> RestFigures:
    require_wrk()
    with tempfile.TemporaryDirectory(prefix="bench-rest-") as tmp, bare_rest() as (bare_pid, bare_url):
        with athena(Path(tmp)) as (server, db):
            pid = server.proc.pid
            caps_url = f"{server.rest_url}/api/v1/capabilities"
            runs_url = f"{server.rest_url}/api/v1/runs"
            persisted = 0

            def get(url: str, pid: int) -> Callable[[int], WrkResult]:
                return lambda secs: wrk(url, pid, secs, connections)

            def post(url: str, pid: int) -> Callable[[int], WrkResult]:
                return lambda secs: wrk(url, pid, secs, connections, LUA, (uuid.uuid4().hex[:8],))

            def runs(secs: int) -> WrkResult:
                nonlocal persisted
                before = settled_count(db)
                result = post(runs_url, pid)(secs)
                persisted += settled_count(db) - before
                return result

            targets: dict[str, Callable[[int], WrkResult]] = {
                "bare_get": get(f"{bare_url}/bare", bare_pid),
                "caps": get(caps_url, pid),
                "bare_post": post(f"{bare_url}/bare", bare_pid),
                "runs": post(runs_url, pid),
            }
            for target in targets.values():  # warm-up: connections, imports on first use, caches
                target(1)
            targets["runs"] = runs
            results: dict[str, list[WrkResult]] = {name: [] for name in targets}
            # Rounds take turns in alternating order, so a machine that slows down meanwhile hits all alike.
            for round_ in range(rounds):
                order = list(targets) if round_ % 2 == 0 else list(targets)[::-1]
                for name in order:
                    results[name].append(targets[name](seconds))
        # The server stopped gracefully (in-flight runs finished); the last count above already settled.
    runs_results = results["runs"]
    return RestFigures(
        seconds,
        connections,
        rounds,
        median(results["bare_get"]),
        median(results["caps"]),
        median(results["bare_post"]),
        median(runs_results),
        persisted,
        sum(r.seconds for r in runs_results),
        sum(r.server_cpu_s for r in runs_results),
    )


def report(f: RestFigures) -> None:
    print(
        f"REST under wrk: {f.connections} connections, {f.seconds} s per target and round, {f.rounds} round(s) "
        "(medians), 2 wrk threads; wrk CPU in % of one core"
    )
    print(
        f"{'target':<36} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'sock err':>8} "
        f"{'srv CPU ms/req':>14} {'wrk CPU':>8}"
    )
    for name, r in [
        ("bare FastAPI GET /bare", f.bare_get),
        ("GET /api/v1/capabilities", f.caps),
        ("bare FastAPI POST /bare (echo)", f.bare_post),
        ("POST /api/v1/runs (mock)", f.runs),
    ]:
        print(
            f"{name:<36} {r.rps:>8.0f} {r.p50_ms:>8.1f} {r.p90_ms:>8.1f} {r.p99_ms:>8.1f} {r.non_2xx:>8} "
            f"{r.socket_errors:>8} {r.cpu_ms_per_request:>14.2f} {r.client_cpu_s / r.seconds:>8.0%}"
        )
    print(
        f"runs persisted during the POST loads: {f.persisted} ({f.persisted_per_s:.0f}/s); wrk 2xx: {f.runs.ok}; "
        f"server CPU per persisted run {f.cpu_ms_per_run:.2f} ms"
    )


def rows(f: RestFigures) -> list[Row]:
    caps_ratio = f.caps.rps / f.bare_get.rps
    post_ratio = f.persisted_per_s / f.bare_post.rps
    return [
        Row(
            f"GET /api/v1/capabilities vs bare FastAPI GET (wrk, {f.connections} conn, {f.seconds} s)",
            "0.20x (951 vs 4,641)",
            f"{caps_ratio:.2f}x ({f.caps.rps:,.0f} vs {f.bare_get.rps:,.0f})",
            ">= 0.6x",
            caps_ratio >= 0.6,
        ),
        Row(
            "POST /api/v1/runs persisted runs/s (mock, new session each)",
            "368 (0.11x of 3,292)",
            f"{f.persisted_per_s:,.0f} ({post_ratio:.2f}x of {f.bare_post.rps:,.0f}), "
            f"{f.runs.non_2xx + f.runs.socket_errors} non-2xx",
            ">= 1,000, 0 non-2xx",
            f.persisted_per_s >= 1000 and f.runs.non_2xx == 0 and f.runs.socket_errors == 0,
        ),
        Row(
            "server CPU per persisted run over REST",
            "2.95 ms",
            f"{f.cpu_ms_per_run:.2f} ms",
            "<= 1.0 ms",
            f.cpu_ms_per_run <= 1.0,
        ),
        Row(
            f"p99 latency of POST /api/v1/runs at {f.connections} connections",
            "(measure)",
            f"{f.runs.p99_ms:.1f} ms (p50 {f.runs.p50_ms:.1f})",
            "<= 50 ms",
            f.runs.p99_ms <= 50,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1, help="the targets take turns this many times; medians")
    opts = parser.parse_args()
    figures = measure(opts.seconds, opts.connections, opts.rounds)
    report(figures)
    print_rows(rows(figures))


if __name__ == "__main__":
    main()
