"""Concurrent clients: the event log stays gap-free, duplicate-free and causally ordered while many runs
commit at once and a live stream follows it."""

from __future__ import annotations

import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.support.processes import running_api
from tests.support.runs import all_events
from tests.support.shapes import ok_data
from tests.support.sse import read_sse

RUNS = 30


def test_concurrent_runs_and_a_live_stream_see_every_event_once_in_order(workdir: Path) -> None:
    with running_api(workdir) as p:
        frames: list[dict] = []
        # Resume after evt_0: the stream must deliver the whole log, live, as the runs commit.
        reader = threading.Thread(
            target=lambda: frames.extend(
                read_sse(
                    f"{p.rest_url}/api/v1/events/stream",
                    {},
                    headers={"Last-Event-ID": "evt_0"},
                    frames=3 * RUNS,
                )[0]
            )
        )
        reader.start()
        with httpx.Client(base_url=p.rest_url, timeout=60) as client, ThreadPoolExecutor(max_workers=10) as pool:

            def one(i: int) -> dict:
                # Runs come in pairs per session, so runs of one session commit concurrently too.
                body = {"sessionId": f"c-{i // 2}", "input": f"n{i}", "provider": "mock"}
                return ok_data(client.post("/api/v1/runs", json=body))

            results = list(pool.map(one, range(RUNS)))
        reader.join(120)
        assert not reader.is_alive()

        assert [f["id"] for f in frames] == [f"evt_{i}" for i in range(1, 3 * RUNS + 1)]
        by_run: dict[str, list[str]] = defaultdict(list)
        for f in frames:
            by_run[f["data"]["data"]["runId"]].append(f["event"])
        assert set(by_run) == {r["runId"] for r in results}
        assert all(types == ["run.created", "run.started", "run.completed"] for types in by_run.values())
        with httpx.Client(base_url=p.rest_url, timeout=60) as client:
            listed = all_events(client)
        assert [e["id"] for e in listed] == [f["id"] for f in frames]
        assert listed == [f["data"]["data"] for f in frames]
