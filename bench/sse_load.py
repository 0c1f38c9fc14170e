"""The pieces of an SSE load that bench/streams.py and bench/replicas.py share: SSE subscribers held by a
few client processes (bench/sse_subscribers.py), a paced writer of mock runs over REST, and the delivery
figures (latency percentiles, events lost and duplicated per subscriber) checked against the store's own
event log of each session.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import pct  # noqa: E402
from tests.support.events import events_of  # noqa: E402

STREAM = "/api/v1/events/stream"


def new_sessions(count: int, prefix: str) -> list[str]:
    nonce = uuid.uuid4().hex[:8]
    return [f"{prefix}-{nonce}-{i}" for i in range(count)]


class Subscribers:
    """`len(sessions)` SSE subscribers on `rest_url`'s event stream, the i-th following `sessions[i]`,
    spread over `processes` client processes. `open()` returns once every stream answered (so every
    event written afterwards must reach it); `collect()` gives each subscriber what it received."""

    def __init__(self, rest_url: str, sessions: list[str], processes: int) -> None:
        self.sessions = sessions
        url = urlsplit(rest_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.parts = [list(range(i, len(sessions), processes)) for i in range(processes)]
        self.procs: list[subprocess.Popen[str]] = []
        self.cpu_shares: list[float] = []  # each client process's CPU time / wall time while subscribed
        self.latencies: list[float] = []  # delivery latency of every frame received, ms
        self.errors: list[str] = []

    def open(self) -> None:
        for part in self.parts:
            proc = subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "sse_subscribers.py")],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            self.procs.append(proc)
            paths = [f"{STREAM}?sessionId={quote(self.sessions[i])}" for i in part]
            self._send(proc, {"host": self.host, "port": self.port, "paths": paths})
        for proc in self.procs:
            answer = self._receive(proc)
            if "ready" not in answer:
                raise RuntimeError(f"SSE subscriber process failed: {answer}")

    def collect(self, expected: dict[str, list[int]], timeout: float) -> list[list[int]]:
        """Each subscriber's received event numbers, in arrival order, after waiting (up to `timeout`) for
        every one to receive the events its session has in the store; also fills `latencies`."""
        for proc, part in zip(self.procs, self.parts, strict=True):
            self._send(proc, {"expect": [expected[self.sessions[i]] for i in part], "timeout": timeout})
        received: list[list[int]] = [[] for _ in self.sessions]
        for proc, part in zip(self.procs, self.parts, strict=True):
            out = self._receive(proc)
            self.errors += out["errors"]
            self.cpu_shares.append(out["cpu"] / max(out["wall"], 1e-9))
            for i, sub in zip(part, out["subs"], strict=True):
                received[i] = sub["ids"]
                self.latencies += sub["lat"]
        return received

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)

    @staticmethod
    def _send(proc: subprocess.Popen[str], doc: dict[str, Any]) -> None:
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(doc) + "\n")
        proc.stdin.flush()

    @staticmethod
    def _receive(proc: subprocess.Popen[str]) -> dict[str, Any]:
        assert proc.stdout is not None
        text = proc.stdout.readline()
        if not text:
            raise RuntimeError(f"SSE subscriber process exited with {proc.wait(10)}")
        return dict(json.loads(text))


@dataclass
class Written:
    latencies_ms: list[float]
    errors: int
    seconds: float
    statuses: dict[str, int]  # answers other than 200 by status and error code


async def write_runs(rest_url: str, sessions: list[str], rate: float, seconds: float, in_flight: int = 16) -> Written:
    """`rate` mock runs a second for `seconds` (`POST /api/v1/runs`, round-robin over `sessions`), each sent
    at its slot of the schedule with at most `in_flight` outstanding; latency is from send to answer."""
    count = max(1, round(rate * seconds))
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    gate = asyncio.Semaphore(in_flight)
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(base_url=rest_url, limits=limits, timeout=60) as client:
        loop = asyncio.get_running_loop()
        t0 = loop.time() + 0.05

        async def one(i: int) -> None:
            await asyncio.sleep(max(0.0, t0 + i / rate - loop.time()))
            body = {"sessionId": sessions[i % len(sessions)], "input": "hello", "provider": "mock"}
            async with gate:
                start = time.perf_counter()
                resp = await client.post("/api/v1/runs", json=body)
                if resp.status_code == 200:
                    latencies.append((time.perf_counter() - start) * 1000)
                else:
                    key = f"{resp.status_code} {resp.text[:120]}"
                    statuses[key] = statuses.get(key, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(count)))
        return Written(latencies, sum(statuses.values()), time.perf_counter() - started, statuses)


def stored_events(rest_url: str, sessions: list[str]) -> dict[str, list[int]]:
    """Each session's event numbers as the store lists them (every page)."""
    with httpx.Client(base_url=rest_url, timeout=60) as client:
        return {s: [int(e["id"].removeprefix("evt_")) for e in events_of(client, s)] for s in set(sessions)}


@dataclass
class Delivery:
    subscribers: int
    frames: int  # frames received (every arrival counts, duplicates too)
    lost: int
    duplicated: int
    unexpected: int  # frames of events the store does not list for the subscriber's session
    p50_ms: float
    p99_ms: float
    max_ms: float
    client_cpu_shares: list[float]
    errors: list[str]


def delivery(subs: Subscribers, expected: dict[str, list[int]], timeout: float = 20.0) -> Delivery:
    received = subs.collect(expected, timeout)
    lost = duplicated = unexpected = 0
    for session, ids in zip(subs.sessions, received, strict=True):
        want = set(expected[session])
        lost += len(want - set(ids))
        duplicated += len(ids) - len(set(ids))
        unexpected += len(set(ids) - want)
    lat = subs.latencies
    return Delivery(
        subscribers=len(subs.sessions),
        frames=len(lat),
        lost=lost,
        duplicated=duplicated,
        unexpected=unexpected,
        p50_ms=pct(lat, 50),
        p99_ms=pct(lat, 99),
        max_ms=max(lat, default=float("nan")),
        client_cpu_shares=subs.cpu_shares,
        errors=subs.errors,
    )


def describe(d: Delivery) -> str:
    shares = "/".join(f"{s:.0%}" for s in d.client_cpu_shares)
    return (
        f"{d.subscribers} subscribers: {d.frames} frames, delivery p50 {d.p50_ms:.1f} ms, p99 {d.p99_ms:.1f} ms, "
        f"max {d.max_ms:.1f} ms; lost {d.lost}, duplicated {d.duplicated}, unexpected {d.unexpected}; "
        f"subscriber process CPU {shares}" + (f"; errors {d.errors[:3]}" if d.errors else "")
    )
