"""Events across replicas (issue 13, row 9): two `athena api serve` processes on one PostgreSQL database,
runs written on replica A, SSE subscribers on replica B.

    .venv/bin/python bench/replicas.py [--subscribers 20] [--rate 10] [--seconds 8]

A throwaway PostgreSQL cluster is started from the installed server binaries (tests/support/postgres.py;
`scripts/test` or `scripts/bench-setup` installs them), with a new database for the two servers. The
subscribers (one client process, raw sockets) each follow their own session on B; the writer creates mock
runs on A at `--rate` runs/s round-robin over those sessions. Delivery latency = arrival at the subscriber
on B minus the event's `createdAt` (written by A; same machine, same clock). Lost / duplicated: every
subscriber's received ids against its session's events as the store lists them. Exits non-zero only on a
harness error, never on a missed goal.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import SERVER_ENV, Row, pct, print_rows
from bench.sse_load import Delivery, Subscribers, Written, delivery, describe, new_sessions, stored_events, write_runs
from tests.support.postgres import cluster, servers_on_one_database


@dataclass
class ReplicaFigures:
    written: Written
    d: Delivery


def measure(subscribers: int = 20, rate: float = 10, seconds: float = 8) -> ReplicaFigures:
    with (
        tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp,
        cluster() as pg,
        servers_on_one_database(pg.url, Path(tmp), count=2, env=SERVER_ENV) as (a, b),
    ):
        asyncio.run(write_runs(a.rest_url, new_sessions(10, "warm"), 10, 1))
        sessions = new_sessions(subscribers, "rep")
        subs = Subscribers(b.rest_url, sessions, 1)
        try:
            subs.open()
            written = asyncio.run(write_runs(a.rest_url, sessions, rate, seconds))
            return ReplicaFigures(written, delivery(subs, stored_events(a.rest_url, sessions)))
        finally:
            subs.close()


def report(f: ReplicaFigures) -> None:
    w = f.written
    print("replicas: two servers on one PostgreSQL database, runs written on A, SSE subscribers on B")
    print(
        f"  writer on A: {len(w.latencies_ms)} runs in {w.seconds:.1f} s, POST p50 {pct(w.latencies_ms, 50):.1f} ms, "
        f"p99 {pct(w.latencies_ms, 99):.1f} ms, {w.errors} errors"
    )
    print(f"  delivery on B: {describe(f.d)}")


def rows(f: ReplicaFigures) -> list[Row]:
    d = f.d
    return [
        Row(
            "events of a run on replica A seen on replica B (PostgreSQL)",
            "p50 519 / p99 1,006 ms",
            f"p50 {d.p50_ms:.0f} / p99 {d.p99_ms:.0f} ms ({d.lost} lost, {d.duplicated} dup)",
            "p99 < 100 ms",
            d.p99_ms < 100 and d.lost == 0 and d.duplicated == 0 and d.unexpected == 0,
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=20, help="on B, each following its own session")
    parser.add_argument(
        "--rate", type=float, default=10, help="runs/s written on A (low: a latency figure, not a load)"
    )
    parser.add_argument("--seconds", type=float, default=8)
    opts = parser.parse_args()
    figures = measure(opts.subscribers, opts.rate, opts.seconds)
    report(figures)
    print_rows(rows(figures))


if __name__ == "__main__":
    main()
