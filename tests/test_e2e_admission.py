"""The operational policy enforced at admission, end to end: maxConcurrentRuns exact under 50 parallel
requests, the run timeout, the retry budget, the daily cost budget; each refusal recorded and announced."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from tests.support.events import events_of
from tests.support.pages import every_item
from tests.support.processes import serving
from tests.support.runs import RUN_ENDED, all_events, peak_concurrency, run_events
from tests.support.shapes import error_of, new_session, ok_data


def put_policy(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    return ok_data(client.put("/api/v1/policy", json={"schemaVersion": 1, **fields}))


def test_max_concurrent_runs_is_exact_under_50_parallel_requests(workdir: Path) -> None:
    with serving(workdir) as served:
        client = served.rest
        put_policy(client, maxConcurrentRuns=3)

        def one(i: int) -> httpx.Response:
            body = {"sessionId": f"c{i}", "input": "go", "metadata": {"mock.delayMs": "2000", "agentRole": "tester"}}
            return client.post("/api/v1/runs", json=body)

        with ThreadPoolExecutor(50) as pool:
            responses = list(pool.map(one, range(50)))
        ok = [r for r in responses if r.status_code == 200]
        refused = [r for r in responses if r.status_code != 200]
        assert 3 <= len(ok) < 50 and len(ok) + len(refused) == 50
        # The exact peak, from the totally ordered log: three at once, never a fourth.
        assert peak_concurrency(all_events(client, "run.started", *RUN_ENDED)) == 3
        for r in refused:
            err = error_of(r, 429, "POLICY_CONCURRENCY_LIMIT_EXCEEDED")
            assert err["retryable"] is True
            assert err["message"].startswith("policy.maxConcurrentRuns exceeded: 3 active run(s) >= configured limit 3")
            assert r.headers["retry-after"] == "1"
        rejections = every_item(client, "/api/v1/policy/rejections")
        assert len(rejections) == len(refused)
        first = rejections[0]
        assert first["id"] == "rej_1" and first["reason"] == "max-concurrent-runs-exceeded"
        assert first["activeRuns"] == 3 and first["maxConcurrentRuns"] == 3
        labels = first["policy"]["workload"]["labels"]
        assert labels["athena.dev/agent-role"] == "tester" and labels["athena.dev/control-plane"] == "v1"
        assert labels["athena.dev/session-id"] == first["sessionId"]
        kinds = all_events(client, "policy.concurrency.rejected", "policy.rejected")
        assert len(kinds) == 2 * len(refused)
        ev = kinds[0]
        assert ev["type"] == "policy.concurrency.rejected"
        assert ev["policy"]["decision"] == "rejected"
        assert ev["policy"]["origin"]["policyName"] == "policy.maxConcurrentRuns"
        assert ev["payload"]["rejection"]["id"] == "rej_1"
        # Refused requests left no run behind.
        assert ok_data(client.get("/api/v1/fleet/summary"))["total"] == len(ok)


def test_timeout_retry_budget_and_cost_budget(workdir: Path) -> None:
    prices = {"mock/default": {"inputPerMillion": 1_000_000, "outputPerMillion": 0}}
    with serving(workdir, env={"ATHENA_MODEL_PRICES": json.dumps(prices)}) as served:
        client = served.rest
        # Cost: "user: a" is 7 input tokens at 1 USD each.
        put_policy(client, costBudgetDailyUsd=10)
        first = ok_data(client.post("/api/v1/runs", json={"sessionId": new_session(), "input": "a"}))
        assert first["costUsd"] == 7
        second = ok_data(client.post("/api/v1/runs", json={"sessionId": new_session(), "input": "b"}))
        assert second["costUsd"] == 7
        refused = client.post("/api/v1/runs", json={"sessionId": new_session(), "input": "c"})
        err = error_of(refused, 429, "POLICY_COST_BUDGET_EXCEEDED")
        assert "14.000000 USD" in err["message"]
        assert int(refused.headers["retry-after"]) > 0
        rejection = every_item(client, "/api/v1/policy/rejections")[-1]
        assert rejection["reason"] == "cost-budget-exceeded"
        assert rejection["event"]["costTodayUsd"] == 14
        # Raising the budget admits runs again (the PUT replaces the whole document).
        put_policy(client, defaultRunTimeoutMs=300, retryBudgetPerRun=2, costBudgetDailyUsd=1000)
        sid = new_session()
        err = error_of(
            client.post("/api/v1/runs", json={"sessionId": sid, "input": "x", "metadata": {"mock.delayMs": "5000"}}),
            408,
            "RUN_TIMEOUT",
        )
        assert err["message"] == "Run timed out after 300ms"
        runs = ok_data(client.get("/api/v1/runs/active", params={"sessionId": sid}))["items"]
        assert runs == []
        # Retries: two failures then success, within a budget of 2.
        data = ok_data(
            client.post("/api/v1/runs", json={"sessionId": sid, "input": "y", "metadata": {"mock.failAttempts": "2"}})
        )
        assert data["attempts"] == 3
        # Over budget: the error comes back after 3 attempts, counted on the run.
        err = error_of(
            client.post("/api/v1/runs", json={"sessionId": sid, "input": "z", "metadata": {"mock.failAttempts": "9"}}),
            502,
            "PROVIDER_ERROR",
        )
        events = events_of(client, sid, "run.failed")
        assert [e["payload"]["attempts"] for e in events] == [1, 3]
        failed_run = ok_data(client.get(f"/api/v1/runs/{events[-1]['runId']}"))
        assert failed_run["status"] == "failed" and failed_run["attempts"] == 3
        timed_out = ok_data(client.get(f"/api/v1/runs/{events[0]['runId']}"))
        # The run was stopped by its timeout (not by the 5 s mock call ending): timed out, never completed.
        assert timed_out["status"] == "timed-out" and timed_out["error"]["code"] == "RUN_TIMEOUT"
        assert run_events(client, timed_out["runId"]) == ["run.created", "run.started", "run.failed"]
