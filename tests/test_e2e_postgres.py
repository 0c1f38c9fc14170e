"""Two server processes on one PostgreSQL database behave like one server: the concurrency limit is exact
across them, a cancel sent to one stops a run executing in the other, and a session stays serial."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.pages import every_item
from tests.support.postgres import servers_on_one_database
from tests.support.processes import AthenaProcess
from tests.support.runs import RUN_ENDED, all_events, peak_concurrency, run_events, wait_active
from tests.support.shapes import error_of, new_session, ok_data


@pytest.fixture
def two_servers(postgres_cluster: str, tmp_path: Path) -> Iterator[tuple[AthenaProcess, AthenaProcess]]:
    with servers_on_one_database(postgres_cluster, tmp_path) as (a, b):
        yield a, b


def test_two_processes_share_the_limit_the_cancel_and_the_session(
    two_servers: tuple[AthenaProcess, AthenaProcess],
) -> None:
    a, b = two_servers
    with httpx.Client(base_url=a.rest_url, timeout=60) as ca, httpx.Client(base_url=b.rest_url, timeout=60) as cb:
        assert ok_data(ca.get("/api/v1/capabilities"))["stateStore"] == "postgresql"
        ok_data(ca.put("/api/v1/policy", json={"schemaVersion": 1, "maxConcurrentRuns": 2}))
        # The policy written through A governs B.
        assert ok_data(cb.get("/api/v1/policy"))["maxConcurrentRuns"] == 2

        def one(i: int) -> httpx.Response:
            client = ca if i % 2 else cb
            body = {"sessionId": f"pg{i}", "input": "go", "metadata": {"mock.delayMs": "2000"}}
            return client.post("/api/v1/runs", json=body)

        with ThreadPoolExecutor(20) as pool:
            responses = list(pool.map(one, range(20)))
        ok = [r for r in responses if r.status_code == 200]
        refused = [r for r in responses if r.status_code != 200]
        assert len(ok) >= 2 and refused, len(ok)
        for r in refused:
            error_of(r, 429, "POLICY_CONCURRENCY_LIMIT_EXCEEDED")
        # The exact peak over both processes, from the one totally ordered log: two at once, never a third.
        assert peak_concurrency(all_events(cb, "run.started", *RUN_ENDED)) == 2
        assert len(every_item(cb, "/api/v1/policy/rejections")) == len(refused)

        # A cancel sent to A stops a run that B executes.
        ok_data(ca.put("/api/v1/policy", json={"schemaVersion": 1}))
        sid = new_session()
        out: list[httpx.Response] = []
        t = threading.Thread(
            target=lambda: out.append(
                cb.post("/api/v1/runs", json={"sessionId": sid, "input": "x", "metadata": {"mock.delayMs": "20000"}})
            )
        )
        t.start()
        active = wait_active(ca, sid)
        assert active["pid"] == b.proc.pid
        assert ok_data(ca.post(f"/api/v1/run-control/by-run/{active['runId']}/cancel", json={}))["status"] == (
            "cancelled"
        )
        # B stopped its 20 s run (it did not run to the end): its caller gets RUN_CANCELLED.
        t.join(60)
        assert not t.is_alive()
        error_of(out[0], 409, "RUN_CANCELLED")
        assert run_events(cb, active["runId"]) == [
            "run.created",
            "run.started",
            "run.cancel.requested",
            "run.cancelled",
        ]

        # One session, runs through both processes: serial, each sees the turns before it.
        sid = new_session()
        with ThreadPoolExecutor(4) as pool:
            results = list(
                pool.map(
                    lambda i: (ca if i % 2 else cb).post(
                        "/api/v1/runs", json={"sessionId": sid, "input": f"n{i}", "metadata": {"mock.delayMs": "100"}}
                    ),
                    range(4),
                )
            )
        for r in results:
            ok_data(r)
        transcript = ok_data(ca.get(f"/api/v1/sessions/{sid}/transcript"))["items"]
        assert [e["role"] for e in transcript] == ["user", "assistant"] * 4
        for i in range(0, 8, 2):
            turns = [f"{e['role']}: {e['content']}" for e in transcript[: i + 1]]
            assert transcript[i + 1]["content"] == "Echo: " + "\n\n".join(turns)
