"""DAG workflows end to end: validation that names the problem, a diamond with a failing branch (parallel
branches, a failure stopping only its dependents) resumed after the fix without re-running what
succeeded, output-to-input mappings, `wait: false`, gRPC, and a server killed mid-workflow that continues
the run when it starts again."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

from athena.v1 import workflows_pb2, workflows_pb2_grpc
from tests.support.processes import AthenaProcess, Served, running_api, serving
from tests.support.runs import RUN_ENDED, all_events, peak_concurrency
from tests.support.shapes import assert_iso, error_of, ok_data
from tests.support.waiting import wait_until

PROFILE = {
    "displayName": "Workflow step",
    "version": "v1",
    "config": {"provider": "mock", "model": "default", "tools": ["shell"]},
    "policies": {"timeoutMs": 60000, "retryLimit": 1, "budgetUsd": 0},
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(tmp_path_factory.mktemp("workflows")) as s:
        yield s


@pytest.fixture(scope="module")
def server(served: Served) -> AthenaProcess:
    return served.process


@pytest.fixture(scope="module")
def client(served: Served) -> httpx.Client:
    return served.rest


@pytest.fixture(scope="module")
def refs(client: httpx.Client) -> dict[str, str]:
    profile = ok_data(client.post("/api/v1/harness-profiles", json=PROFILE))["id"]
    directive = ok_data(client.post("/api/v1/directives", json={"input": "work on it"}))["id"]
    return {"profile": profile, "directive": directive}


def step(refs: dict[str, str], step_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "directiveId": refs["directive"], "harnessProfileId": refs["profile"], **extra}


def create(client: httpx.Client, steps: list[dict[str, Any]], deps: list[dict[str, Any]]) -> dict[str, Any]:
    return ok_data(client.post("/api/v1/workflows", json={"definition": {"steps": steps, "dependencies": deps}}))


def states(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["stepId"]: s for s in run["steps"]}


@pytest.mark.parametrize(
    ("steps", "deps", "message"),
    [
        ([], [], "workflows.create.definition.steps must contain at least one step."),
        (["a", "a"], [], "workflows.create.definition.steps[1].id 'a' is a duplicate step id."),
        (["a"], [("a", "x")], "workflows.create.definition.dependencies[0].to references unknown step 'x'."),
        (["a"], [("a", "a")], "workflows.create.definition.dependencies[0] is a self edge on step 'a'."),
        (["a", "b"], [("a", "b"), ("a", "b")], "workflows.create.definition.dependencies[1] duplicates the edge"),
        (
            ["a", "b", "c", "d"],
            [("a", "b"), ("c", "b"), ("b", "c"), ("c", "d")],
            "workflows.create.definition.dependencies must form a DAG; cycle detected among: b, c, d.",
        ),
    ],
)
def test_graph_validation_names_the_problem(
    client: httpx.Client, refs: dict[str, str], steps: list[str], deps: list[tuple[str, str]], message: str
) -> None:
    body = {
        "definition": {
            "steps": [step(refs, s) for s in steps],
            "dependencies": [{"from": a, "to": b} for a, b in deps],
        }
    }
    err = error_of(client.post("/api/v1/workflows", json=body), 400, "CONFIG_ERROR")
    assert err["message"].startswith(message), err["message"]


def test_references_and_mappings_are_checked(client: httpx.Client, refs: dict[str, str]) -> None:
    body = {"definition": {"steps": [step(refs, "a", directiveId="nope")], "dependencies": []}}
    err = error_of(client.post("/api/v1/workflows", json=body), 400, "CONFIG_ERROR")
    assert err["message"] == (
        "workflows.create.definition.steps[0].directiveId must reference an existing directive. Received: nope."
    )
    body = {"definition": {"steps": [step(refs, "a", harnessProfileId="nope")], "dependencies": []}}
    err = error_of(client.post("/api/v1/workflows", json=body), 400, "CONFIG_ERROR")
    assert "harnessProfileId must reference an existing harness profile" in err["message"]
    mapping = [{"from": "a", "to": "b", "mappings": [{"fromOutput": "summary", "toInput": "ctx"}]}]
    err = error_of(
        client.post(
            "/api/v1/workflows",
            json={"definition": {"steps": [step(refs, "a"), step(refs, "b")], "dependencies": mapping}},
        ),
        400,
        "CONFIG_ERROR",
    )
    assert "fromOutput 'summary' is not an output of step 'a' (outputs: output)" in err["message"]
    error_of(client.post("/api/v1/workflows/run/nope/resume", json={}), 404, "NOT_FOUND")
    error_of(client.get("/api/v1/workflows/run/nope"), 404, "NOT_FOUND")


def test_create_list_and_no_runs_yet(client: httpx.Client, refs: dict[str, str]) -> None:
    older = create(client, [step(refs, "z")], [])
    wf = create(client, [step(refs, "a", outputs=["x", "x"])], [])
    assert set(wf) == {"id", "definition", "createdAt"}
    assert_iso(wf["createdAt"])
    [a] = wf["definition"]["steps"]
    assert a["outputs"] == ["x"] and a["execution"] == {"maxAttempts": 1, "metadata": {}}
    newest = ok_data(client.get("/api/v1/workflows", params={"limit": 1}))
    assert newest["items"] == [wf] and "nextCursor" in newest
    following = ok_data(client.get("/api/v1/workflows", params={"limit": 1, "cursor": newest["nextCursor"]}))
    assert following["items"] == [older]
    err = error_of(client.get(f"/api/v1/workflows/run/{wf['id']}"), 404, "NOT_FOUND")
    assert err["message"] == "workflows.status.id has no workflow runs."


def test_diamond_with_a_failing_branch_resumed_after_the_fix(client: httpx.Client, refs: dict[str, str]) -> None:
    # B is slow enough that C certainly starts while B runs, however loaded the machine.
    slow = {"metadata": {"mock.delayMs": "2000"}}
    # C's provider fails its first 3 attempts; the default retry budget (1) gives it 2 per run.
    flaky = {"metadata": {"mock.delayMs": "400", "mock.failAttempts": "3"}}
    wf = create(
        client,
        [step(refs, "A"), step(refs, "B", execution=slow), step(refs, "C", execution=flaky), step(refs, "D")],
        [{"from": "A", "to": "B"}, {"from": "A", "to": "C"}, {"from": "B", "to": "D"}, {"from": "C", "to": "D"}],
    )
    first = ok_data(client.post(f"/api/v1/workflows/run/{wf['id']}/resume", json={}))
    assert first["status"] == "failed" and first["schemaVersion"] == 1 and first["workflowId"] == wf["id"]
    s = states(first)
    assert [s[k]["status"] for k in "ABCD"] == ["ok", "ok", "failed", "pending"]
    assert s["C"]["errorCode"] == "PROVIDER_ERROR" and s["D"]["blockingStepIds"] == ["C"]
    assert "runId" not in s["D"] and s["D"]["attempt"] == 0
    # B and C ran at the same time: in the totally ordered log, both started before either ended.
    log = all_events(client, "run.started", *RUN_ENDED)
    assert peak_concurrency(log, [s["B"]["runId"], s["C"]["runId"]]) == 2
    assert first["progress"] == {
        "totalSteps": 4,
        "completedSteps": 2,
        "runningSteps": 0,
        "failedSteps": 1,
        "pendingSteps": 1,
        "percentComplete": 50,
    }
    run_of_a = ok_data(client.get(f"/api/v1/runs/{s['A']['runId']}"))
    assert run_of_a["status"] == "succeeded" and run_of_a["directiveId"] == refs["directive"]
    assert run_of_a["metadata"]["workflowStepId"] == "A" and run_of_a["metadata"]["workflowRunId"] == first["id"]
    status = ok_data(client.get(f"/api/v1/workflows/run/{wf['id']}"))
    assert set(status) == {"workflow", "run", "progress"} and status["run"] == first
    assert status["workflow"] == wf and status["progress"] == first["progress"]

    # The fix: a larger retry budget lets C's run reach its 4th provider attempt.
    ok_data(client.put("/api/v1/policy", json={"schemaVersion": 1, "retryBudgetPerRun": 5}))
    try:
        second = ok_data(client.post(f"/api/v1/workflows/run/{wf['id']}/resume", json={}))
        # A finished run is not resumed: the next call starts a new run, linked to the previous one.
        third = ok_data(client.post(f"/api/v1/workflows/run/{wf['id']}/resume", json={}))
    finally:
        ok_data(client.put("/api/v1/policy", json={"schemaVersion": 1}))
    assert second["id"] == first["id"] and second["status"] == "ok"
    t = states(second)
    for kept in "AB":  # succeeded steps are not run again
        assert (t[kept]["runId"], t[kept]["attempt"]) == (s[kept]["runId"], 1)
    assert t["C"]["attempt"] == 2 and t["C"]["runId"] != s["C"]["runId"] and t["D"]["attempt"] == 1
    assert all(t[k]["status"] == "ok" for k in "ABCD")
    assert second["progress"]["percentComplete"] == 100 and "finishedAt" in second

    assert third["id"] != second["id"] and third["resumedFromRunId"] == second["id"] and third["status"] == "ok"
    kinds = [
        e["type"]
        for e in all_events(client, "workflow.failed", "workflow.completed")
        if e["payload"].get("workflowId") == wf["id"]
    ]
    assert kinds == ["workflow.failed", "workflow.completed", "workflow.completed"]


def test_outputs_map_into_inputs(client: httpx.Client, refs: dict[str, str]) -> None:
    first = ok_data(client.post("/api/v1/directives", json={"input": "summarise"}))["id"]
    second = ok_data(client.post("/api/v1/directives", json={"input": "Use {{ summary }} now"}))["id"]
    wf = create(
        client,
        [step(refs, "a", directiveId=first, outputs=["summary"]), step(refs, "b", directiveId=second)],
        [{"from": "a", "to": "b", "mappings": [{"fromOutput": "summary", "toInput": "summary"}]}],
    )
    run = ok_data(client.post(f"/api/v1/workflows/run/{wf['id']}/resume", json={}))
    b = ok_data(client.get(f"/api/v1/runs/{states(run)['b']['runId']}"))
    assert b["input"] == "Use Echo: user: summarise now"
    assert b["directiveId"] == second


def test_wait_false_and_grpc(client: httpx.Client, refs: dict[str, str], server: AthenaProcess) -> None:
    wf = create(client, [step(refs, "only", execution={"metadata": {"mock.delayMs": "300"}})], [])
    started = ok_data(client.post(f"/api/v1/workflows/run/{wf['id']}/resume", json={"wait": False}), 202)
    assert started["status"] == "running"
    with grpc.insecure_channel(server.grpc_target) as ch:
        stub = workflows_pb2_grpc.WorkflowServiceStub(ch)
        # A resume of a run this process is executing waits for it rather than starting another.
        done = stub.ResumeWorkflowRun(workflows_pb2.ResumeWorkflowRunRequest(id=wf["id"])).run
        assert done.id == started["id"] and done.status == workflows_pb2.WORKFLOW_RUN_STATUS_OK
        got = stub.GetWorkflowRun(workflows_pb2.GetWorkflowRunRequest(id=wf["id"]))
        assert got.run.id == started["id"] and got.progress.completed_steps == 1
        with pytest.raises(grpc.RpcError) as exc:
            stub.GetWorkflowRun(workflows_pb2.GetWorkflowRunRequest(id="missing"))
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND


def test_killed_mid_workflow_continues_on_restart_without_rerunning(workdir: Path) -> None:
    def run_of(client: httpx.Client, workflow_id: str) -> dict[str, Any]:
        run: dict[str, Any] = ok_data(client.get(f"/api/v1/workflows/run/{workflow_id}"))["run"]
        return run

    with running_api(workdir) as p, httpx.Client(base_url=p.rest_url, timeout=60) as client:
        refs = {
            "profile": ok_data(client.post("/api/v1/harness-profiles", json=PROFILE))["id"],
            "directive": ok_data(client.post("/api/v1/directives", json={"input": "go"}))["id"],
        }
        wf = create(
            client,
            [step(refs, "first"), step(refs, "second", execution={"metadata": {"mock.delayMs": "5000"}})],
            [{"from": "first", "to": "second"}],
        )
        ok_data(client.post(f"/api/v1/workflows/run/{wf['id']}/resume", json={"wait": False}), 202)
        wait_until(lambda: states(run_of(client, wf["id"]))["second"]["status"] == "running", "the second step to run")
        before = states(run_of(client, wf["id"]))
        p.stop(signal.SIGKILL)
    # The server was killed while the second step's 5 s provider call ran; started again, it runs that step again.
    with running_api(workdir) as p, httpx.Client(base_url=p.rest_url, timeout=60) as client:
        run = wait_until(
            lambda: (r := run_of(client, wf["id"]))["status"] != "running" and r, "the workflow run to finish"
        )
        assert run["status"] == "ok"
        after = states(run)
        assert (after["first"]["runId"], after["first"]["attempt"]) == (before["first"]["runId"], 1)
        assert after["second"]["attempt"] == 2 and after["second"]["runId"] != before["second"]["runId"]
        lost = ok_data(client.get(f"/api/v1/runs/{before['second']['runId']}"))
        assert lost["status"] == "failed" and lost["error"]["code"] == "UNAVAILABLE"
