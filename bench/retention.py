"""Retention figures (issue 14): what the sweep costs, and whether event pages stay flat as the log grows.

    .venv/bin/python bench/retention.py [--rows 100000] [--batch 1000] [--big 1000000] [--pages 200]

- sweep: `--rows` old events, then `--rows` old ended runs (one evidence row each, so 2 x rows deleted), are
  written straight into a fresh SQLite store with executemany and swept by the real sweep
  (engine/retention.py, batches of `--batch`) in this process: wall time, CPU time (this process, the
  writer thread included), batches, and the latency of a one-row write issued every 5 ms while the sweep
  runs (what a run's write waits for behind a batch);
- pages: `GET /api/v1/events?cursor=...&limit=50` of a real server (sweep off) on a store holding 1,000 and
  then `--big` events (filled directly), for a page deep in the log (the cursor 500 events before the end)
  and for the first page: median and p95 over `--pages` requests.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import Connection, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from athena_server import cursors  # noqa: E402
from athena_server.config import Settings  # noqa: E402
from athena_server.engine.retention import RetentionSweep  # noqa: E402
from athena_server.storage.migrate import migrate  # noqa: E402
from athena_server.storage.store import Store  # noqa: E402
from athena_server.storage.tables import policy  # noqa: E402
from athena_server.timefmt import now_ms  # noqa: E402
from tests.support.processes import start_api  # noqa: E402

DAY_MS = 86_400_000
PAYLOAD = '{"runId":"r","status":"succeeded","provider":"mock","model":"default"}'


async def migrated(path: Path) -> None:
    store = Store(f"sqlite+pysqlite:///{path}")
    await migrate(store)
    await store.close()


def fill_events(path: Path, count: int, created_at_ms: int) -> None:
    db = sqlite3.connect(path)
    rows = ((("run.completed", "t", f"s{i % 1000}", f"r{i}", PAYLOAD, created_at_ms)) for i in range(count))
    db.executemany(
        "INSERT INTO events (type, trace_id, session_id, run_id, payload, created_at_ms) VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )
    db.commit()
    db.close()


def fill_runs(path: Path, count: int, finished_at_ms: int) -> None:
    db = sqlite3.connect(path)
    db.executemany(
        "INSERT INTO runs (id, session_id, status, provider, model, input, output, trace_id, created_at_ms, "
        "started_at_ms, finished_at_ms, attempts, evidence_count, timeout_ms) VALUES "
        "(?, ?, 'succeeded', 'mock', 'default', 'hello', 'Echo: hello', 't', ?, ?, ?, 1, 1, 0)",
        ((f"run-{i}", f"s{i % 1000}", finished_at_ms, finished_at_ms, finished_at_ms + i) for i in range(count)),
    )
    db.executemany(
        "INSERT INTO evidence (run_id, label, type, content, created_at_ms) VALUES (?, 'stderr', 'text', 'x', ?)",
        ((f"run-{i}", finished_at_ms) for i in range(count)),
    )
    db.commit()
    db.close()


async def sweep(path: Path, batch: int) -> dict[str, float]:
    """One sweep of the store, with a one-row write every 5 ms beside it."""
    store = Store(f"sqlite+pysqlite:///{path}")
    settings = Settings(retention_batch_rows=batch, run_history_retention_days=30, retention_sweep_seconds=3600)
    sweeper = RetentionSweep(store, settings, "bench")
    waits: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        def touch(conn: Connection) -> None:
            conn.execute(select(policy.c.id).limit(1))

        while not done.is_set():
            t = time.perf_counter()
            await store.write(touch)
            waits.append((time.perf_counter() - t) * 1000)
            await asyncio.sleep(0.005)

    await store.read(lambda conn: None)
    prober = asyncio.create_task(probe())
    cpu, wall = time.process_time(), time.perf_counter()
    report = await sweeper.sweep()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    done.set()
    await prober
    await store.close()
    assert report is not None
    rows = sum(report.deleted.values())
    waits.sort()
    return {
        "rows": rows,
        "batches": report.batches,
        "wall_s": wall,
        "cpu_s": cpu,
        "write_wait_p50_ms": statistics.median(waits),
        "write_wait_p99_ms": waits[int(len(waits) * 0.99) - 1] if len(waits) > 1 else waits[0],
        "write_wait_max_ms": waits[-1],
    }


def page_latency(count: int, pages: int) -> dict[str, float]:
    work = Path(tempfile.mkdtemp())
    db = work / ".athena" / "athena.db"
    db.parent.mkdir(parents=True)
    asyncio.run(migrated(db))
    fill_events(db, count, now_ms())
    server = start_api(work, env={"ATHENA_LOG_LEVEL": "WARNING", "ATHENA_RETENTION_SWEEP_SECONDS": "0"})
    try:
        out: dict[str, float] = {}
        with httpx.Client(base_url=server.rest_url, timeout=60) as client:
            cases: list[tuple[str, dict[str, str | int]]] = [
                ("deep", {"cursor": cursors.encode(count - 500), "limit": 50}),
                ("first", {"limit": 50}),
            ]
            for name, params in cases:
                for _ in range(20):  # warm-up
                    client.get("/api/v1/events", params=params).raise_for_status()
                took = []
                for _ in range(pages):
                    t = time.perf_counter()
                    resp = client.get("/api/v1/events", params=params)
                    took.append((time.perf_counter() - t) * 1000)
                    assert resp.status_code == 200 and len(resp.json()["data"]["events"]) == 50
                took.sort()
                out[f"{name}_p50_ms"] = statistics.median(took)
                out[f"{name}_p95_ms"] = took[int(len(took) * 0.95) - 1]
        return out
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--pages", type=int, default=200)
    args = parser.parse_args()
    old = now_ms() - 40 * DAY_MS

    for kind in ("events", "runs"):
        path = Path(tempfile.mkdtemp()) / "athena.db"
        asyncio.run(migrated(path))
        (fill_events if kind == "events" else fill_runs)(path, args.rows, old)
        got = asyncio.run(sweep(path, args.batch))
        per = 100_000 / got["rows"]
        print(
            f"sweep {kind}: {int(got['rows'])} rows in {int(got['batches'])} batches of <= {args.batch}: "
            f"{got['wall_s'] * 1000:.0f} ms wall, {got['cpu_s'] * 1000:.0f} ms CPU "
            f"({got['wall_s'] * 1000 * per:.0f} ms wall / {got['cpu_s'] * 1000 * per:.0f} ms CPU per 100,000 rows); "
            f"a one-row write meanwhile waits p50 {got['write_wait_p50_ms']:.2f} ms, "
            f"p99 {got['write_wait_p99_ms']:.2f} ms, max {got['write_wait_max_ms']:.2f} ms"
        )

    for count in (1000, args.big):
        got = page_latency(count, args.pages)
        print(
            f"GET /api/v1/events limit 50 at {count:,} events: deep page p50 {got['deep_p50_ms']:.2f} ms "
            f"p95 {got['deep_p95_ms']:.2f} ms; first page p50 {got['first_p50_ms']:.2f} ms "
            f"p95 {got['first_p95_ms']:.2f} ms"
        )


if __name__ == "__main__":
    main()
