"""SSE fan-out on one server (issue 13, rows 6-8):

    .venv/bin/python bench/streams.py [--seconds 6] [--rate 40] [--fanout-seconds 8]

Shapes (every subscriber is `GET /api/v1/events/stream?sessionId=...` on the same server, opened before
any run of its session is written; runs are mock runs over `POST /api/v1/runs`, 3 events each):

- rows 6 and 7: 200 subscribers, each following its own session; runs written at `--rate` runs/s
  round-robin over those 200 sessions for `--seconds`. The same writer first runs on other sessions with
  no subscriber attached: POST latency with 200 subscribers vs none (p50 and p99) and the delivery latency.
- row 8: 1,000 subscribers following 100 sessions (10 each), runs written at 200 events/s in total
  (66.7 runs/s round-robin over the 100 sessions) for `--fanout-seconds`; each event reaches 10 subscribers
  (2,000 frames/s).

Subscribers live in client processes (bench/sse_subscribers.py: raw asyncio sockets, 2 processes for
200, 4 for 1,000). Delivery latency = frame arrival minus the event's `createdAt`. Lost / duplicated:
every subscriber's received event ids against its session's events as the store lists them after the
load. Exits non-zero only on a harness error, never on a missed goal.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Row, athena, pct, print_rows, tree_cpu_seconds
from bench.sse_load import (
    Delivery,
    Subscribers,
    Written,
    delivery,
    describe,
    new_sessions,
    stored_events,
    write_runs,
)
from bench.sse_subscribers import raise_fd_limit


@dataclass
class Phase:
    written: Written
    server_cpu_s: float

    @property
    def p50(self) -> float:
        return pct(self.written.latencies_ms, 50)

    @property
    def p99(self) -> float:
        return pct(self.written.latencies_ms, 99)

    def describe(self) -> str:
        w = self.written
        runs = len(w.latencies_ms)
        return (
            f"{runs} runs in {w.seconds:.1f} s, POST p50 {self.p50:.1f} ms, p99 {self.p99:.1f} ms, "
            f"mean {statistics.fmean(w.latencies_ms or [0]):.1f} ms, {w.errors} errors; "
            f"server CPU {self.server_cpu_s * 1000 / max(runs, 1):.2f} ms/run"
            + (f"; answers {dict(list(w.statuses.items())[:3])}" if w.statuses else "")
        )


def _phase(rest_url: str, pid: int, sessions: list[str], rate: float, seconds: float) -> Phase:
    before = tree_cpu_seconds(pid)
    written = asyncio.run(write_runs(rest_url, sessions, rate, seconds))
    return Phase(written, tree_cpu_seconds(pid) - before)


@dataclass
class StreamFigures:
    rate: float
    none: Phase
    with200: Phase
    d200: Delivery
    fan_events_per_s: float
    fan: Phase
    d1000: Delivery


def subscribed_phase(
    rest_url: str, pid: int, sessions: list[str], subscribers: int, processes: int, rate: float, seconds: float
) -> tuple[Phase, Delivery]:
    """`subscribers` streams (the i-th on session i mod len(sessions)) open, then the writer; delivery after."""
    followed = [sessions[i % len(sessions)] for i in range(subscribers)]
    subs = Subscribers(rest_url, followed, processes)
    try:
        subs.open()
        phase = _phase(rest_url, pid, sessions, rate, seconds)
        return phase, delivery(subs, stored_events(rest_url, sessions))
    finally:
        subs.close()


def measure(seconds: float = 6, rate: float = 40, fanout_seconds: float = 8) -> StreamFigures:
    raise_fd_limit()  # the server inherits it: a thousand streams need a thousand sockets
    with tempfile.TemporaryDirectory(prefix="bench-streams-") as tmp:
        with athena(Path(tmp) / "a") as (server, _):
            url, pid = server.rest_url, server.proc.pid
            asyncio.run(write_runs(url, new_sessions(20, "warm"), 20, 1))
            none = _phase(url, pid, new_sessions(200, "none"), rate, seconds)
            with200, d200 = subscribed_phase(url, pid, new_sessions(200, "s200"), 200, 2, rate, seconds)
        with athena(Path(tmp) / "b") as (server, _):
            url, pid = server.rest_url, server.proc.pid
            asyncio.run(write_runs(url, new_sessions(20, "warm"), 20, 1))
            fan_rate = 200 / 3  # runs/s: 3 events each, 200 events/s
            fan, d1000 = subscribed_phase(url, pid, new_sessions(100, "fan"), 1000, 4, fan_rate, fanout_seconds)
    events_per_s = 3 * len(fan.written.latencies_ms) / fan.written.seconds
    return StreamFigures(rate, none, with200, d200, events_per_s, fan, d1000)


def report(f: StreamFigures) -> None:
    print(f"SSE, one server; writer: mock runs over REST at {f.rate:g} runs/s")
    print(f"  no subscribers:           {f.none.describe()}")
    print(f"  200 subscribers attached: {f.with200.describe()}")
    print(f"  delivery: {describe(f.d200)}")
    print(f"fan-out: 1,000 subscribers on 100 sessions, {f.fan_events_per_s:.0f} events/s written")
    print(f"  writer: {f.fan.describe()}")
    print(f"  delivery: {describe(f.d1000)}")


def rows(f: StreamFigures) -> list[Row]:
    ratio50 = f.with200.p50 / f.none.p50
    ratio99 = f.with200.p99 / f.none.p99
    d, fan = f.d200, f.d1000
    return [
        Row(
            "POST /api/v1/runs latency, 200 SSE subscribers vs none (p50)",
            "0.28 s vs 6 ms",
            f"{ratio50:.2f}x ({f.with200.p50:.1f} vs {f.none.p50:.1f} ms; p99 {ratio99:.2f}x)",
            "<= 1.5x",
            ratio50 <= 1.5,
        ),
        Row(
            "SSE delivery, 200 subscribers, p50 / p99 (lost, dup)",
            "341 / 616 ms (0, 0)",
            f"{d.p50_ms:.0f} / {d.p99_ms:.0f} ms ({d.lost}, {d.duplicated})",
            "p99 < 50 ms",
            d.p99_ms < 50 and d.lost == 0 and d.duplicated == 0 and d.unexpected == 0,
        ),
        Row(
            f"SSE fan-out, 1,000 subscribers, {f.fan_events_per_s:.0f} events/s: p99 (lost)",
            "(measure)",
            f"{fan.p99_ms:.0f} ms, p50 {fan.p50_ms:.0f} ({fan.lost} lost, {fan.duplicated} dup)",
            "p99 < 100, 0 lost",  # and the writer kept up: at least 190 of the 200 events/s
            f.fan_events_per_s >= 190
            and fan.p99_ms < 100
            and fan.lost == 0
            and fan.duplicated == 0
            and fan.unexpected == 0,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6, help="writer duration, 200-subscriber rows")
    parser.add_argument("--rate", type=float, default=40, help="runs/s, 200-subscriber rows")
    parser.add_argument("--fanout-seconds", type=float, default=8, help="writer duration, 1,000 subscribers")
    opts = parser.parse_args()
    figures = measure(opts.seconds, opts.rate, opts.fanout_seconds)
    report(figures)
    print_rows(rows(figures))


if __name__ == "__main__":
    main()
