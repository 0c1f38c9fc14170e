"""The run path measured from outside, as issue 13's table: every row, its goal and pass/fail, with the
bare baselines started in the same run (about 4 minutes on 2 cores).

    scripts/bench-setup && .venv/bin/python bench/path.py [--quick] [--skip replicas,...] [--json table.json]

It runs, in turn, bench/rest_wrk.py (rows 1-3, 5: wrk, 32 connections, 8 s, 2 alternating rounds,
medians), bench/grpc_load.py (row 4: 2 client processes x 16 in flight, 2 rounds), bench/workers.py
(rows 2, 4 and 5 again for `api serve --workers 2`, beside one process), bench/streams.py (rows 6-8: 200
and 1,000 SSE subscribers) and bench/replicas.py (row 9: two servers on one PostgreSQL);
each prints its detail (including the client processes' CPU, so a pegged load generator shows), then the
table. `--quick` halves the durations for a smoke run. A missed goal is a FAIL row, not an error: the
exit status is non-zero only when the harness itself fails (a server that does not start, wrk missing...).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import grpc_load, replicas, rest_wrk, streams, workers
from bench.harness import Row, print_rows

PARTS = ("rest", "grpc", "workers", "streams", "replicas")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="half the durations (a smoke run)")
    parser.add_argument("--skip", default="", help=f"comma-separated parts to leave out: {','.join(PARTS)}")
    parser.add_argument("--json", type=Path, help="also write the table here (a list of rows)")
    opts = parser.parse_args()
    skip = {s for s in opts.skip.split(",") if s}
    scale = 0.5 if opts.quick else 1.0
    wrk_s = max(2, round(8 * scale))

    parts: list[tuple[str, Callable[[], list[Row]]]] = []

    def rest() -> list[Row]:
        f = rest_wrk.measure(wrk_s, 32, rounds=2)
        rest_wrk.report(f)
        return rest_wrk.rows(f)

    def grpc() -> list[Row]:
        g = grpc_load.measure(8 * scale, 2, 16, rounds=2)
        grpc_load.report(g)
        return grpc_load.rows(g)

    def sse() -> list[Row]:
        s = streams.measure(6 * scale, 40, 8 * scale)
        streams.report(s)
        return streams.rows(s)

    def worker() -> list[Row]:
        one, many = workers.measure(2, wrk_s, rounds=2)
        workers.report(one, many)
        return workers.rows(one, many)

    def replica() -> list[Row]:
        r = replicas.measure(20, 10, 8 * scale)
        replicas.report(r)
        return replicas.rows(r)

    parts = [("rest", rest), ("grpc", grpc), ("workers", worker), ("streams", sse), ("replicas", replica)]
    started = time.monotonic()
    rows: list[Row] = []
    failed: list[str] = []
    for name, part in parts:
        if name in skip:
            continue
        print(f"\n== {name} ==", flush=True)
        try:
            rows += part()
        except Exception:
            traceback.print_exc()
            failed.append(name)
        sys.stdout.flush()
    load = os.getloadavg()[0]
    print(f"\nissue 13 run-path table ({time.monotonic() - started:.0f} s; cpus {os.cpu_count()}, load avg {load:.1f})")
    if rows:
        print_rows(rows)
    if opts.json is not None:
        opts.json.write_text(json.dumps([dataclasses.asdict(r) for r in rows], indent=2) + "\n")
    if failed:
        print(f"\nharness error in: {', '.join(failed)}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
