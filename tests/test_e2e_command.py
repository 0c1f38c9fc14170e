"""The `command` provider end to end (a real agent subprocess named by a harness profile), cancellation of
its process group, and crash safety: a server killed with SIGKILL mid-run leaves no running run and no
agent process once it starts again."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.servers import AthenaProcess, start_api
from tests.shapes import error_of, new_session, ok_data

# The agents here are Python scripts run by this interpreter: the only program the servers allow.
ALLOW_PYTHON = {"ATHENA_COMMAND_ALLOW": sys.executable}

AGENT = textwrap.dedent(
    """
    import os, subprocess, sys, time
    mode = sys.argv[1]
    prompt = sys.stdin.read()
    if mode == "echo":
        sys.stderr.write("checked " + os.environ["ATHENA_RUN_ID"])
        print("agent saw: " + prompt.splitlines()[-1])
    elif mode == "sleep":
        child = subprocess.Popen(["sleep", "60"])
        with open(sys.argv[2], "w") as f:
            f.write(f"{os.getpid()} {child.pid}")
        time.sleep(60)
    elif mode == "stubborn":
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with open(sys.argv[2], "w") as f:
            f.write(f"{os.getpid()} {os.getpid()}")
        time.sleep(60)
    elif mode == "fail":
        sys.stderr.write("no luck")
        sys.exit(3)
    """
)


def make_profile(client: httpx.Client, argv: list[str], checks: list[dict[str, Any]] | None = None) -> str:
    body: dict[str, Any] = {
        "displayName": "agent",
        "version": "v1",
        "config": {"provider": "command", "model": "default", "tools": ["shell"], "command": argv},
        "policies": {"timeoutMs": 60000, "retryLimit": 1, "budgetUsd": 0},
    }
    if checks:
        body["verificationPolicies"] = checks
    return str(ok_data(client.post("/api/v1/harness-profiles", json=body))["id"])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by a parent that is gone) counts as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def wait_file(path: Path, timeout: float = 10) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            a, b = path.read_text().split()
            return int(a), int(b)
        time.sleep(0.02)
    raise AssertionError("agent did not start")


def wait_dead(pids: list[int], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return
        time.sleep(0.05)
    raise AssertionError(f"processes still alive: {[p for p in pids if alive(p)]}")


def test_command_agent_output_evidence_verification_and_cancel(workdir: Path) -> None:
    script = workdir / "agent.py"
    script.write_text(AGENT)
    p = start_api(workdir, env=ALLOW_PYTHON)
    try:
        with httpx.Client(base_url=p.rest_url, timeout=60) as client:
            checks = [{"id": "v1", "kind": "require-evidence", "label": "stderr"}]
            echo = make_profile(client, [sys.executable, str(script), "echo"], checks)
            sid = new_session()
            data = ok_data(
                client.post("/api/v1/runs", json={"sessionId": sid, "input": "hello", "harnessProfileId": echo})
            )
            assert data["output"] == "agent saw: user: hello"
            assert data["provider"] == "command" and data["harnessProfileId"] == echo
            assert data["harnessProfileSnapshot"]["id"] == echo
            assert data["evidenceCount"] == 1 and data["verificationStatus"] == "passed"

            strict = make_profile(
                client,
                [sys.executable, str(script), "echo"],
                [{"id": "needs-report", "kind": "require-evidence", "label": "report", "evidenceType": "json"}],
            )
            data = ok_data(
                client.post("/api/v1/runs", json={"sessionId": sid, "input": "again", "harnessProfileId": strict})
            )
            assert data["verificationStatus"] == "verification-failed"
            assert data["verificationFailures"] == [
                {
                    "policyId": "needs-report",
                    "kind": "require-evidence",
                    "message": "Required evidence was not found for label 'report'.",
                    "details": {"label": "report", "evidenceType": "json"},
                }
            ]

            fail = make_profile(client, [sys.executable, str(script), "fail"])
            err = error_of(
                client.post("/api/v1/runs", json={"sessionId": sid, "input": "x", "harnessProfileId": fail}),
                502,
                "PROVIDER_ERROR",
            )
            assert "no luck" in err["message"]

            pidfile = workdir / "pids"
            sleeper = make_profile(client, [sys.executable, str(script), "sleep", str(pidfile)])
            out: list[httpx.Response] = []
            t = threading.Thread(
                target=lambda: out.append(
                    client.post("/api/v1/runs", json={"sessionId": sid, "input": "zz", "harnessProfileId": sleeper})
                )
            )
            t.start()
            agent, grandchild = wait_file(pidfile)
            active: list[dict[str, Any]] = []
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                active = ok_data(client.get("/api/v1/runs/active", params={"sessionId": sid}))["items"]
                if active and active[0]["pid"] == agent:
                    break
                time.sleep(0.02)
            assert active and active[0]["pid"] == agent != p.proc.pid
            requested = time.monotonic()
            ok_data(client.post(f"/api/v1/run-control/by-run/{active[0]['runId']}/cancel", json={"reason": "stop"}))
            t.join(5)
            assert time.monotonic() - requested < 1.0
            error_of(out[0], 409, "RUN_CANCELLED")
            wait_dead([agent, grandchild], timeout=2)

            # An agent that ignores SIGTERM: the request stays listed (seed 002 #5) until the grace period
            # ends with SIGKILL and the run is recorded as cancelled.
            stubborn_file = workdir / "stubborn"
            stubborn = make_profile(client, [sys.executable, str(script), "stubborn", str(stubborn_file)])
            accepted = ok_data(
                client.post(
                    "/api/v1/runs", json={"sessionId": sid, "input": "s", "harnessProfileId": stubborn, "wait": False}
                ),
                202,
            )
            agent, _ = wait_file(stubborn_file)
            ok_data(client.post(f"/api/v1/run-control/by-run/{accepted['runId']}/cancel", json={"reason": "stop"}))
            listed = ok_data(client.get("/api/v1/runs/cancel-requests", params={"sessionId": sid}))["items"]
            assert [i["runId"] for i in listed] == [accepted["runId"]]
            item = listed[0]
            assert set(item) == {"sessionId", "requestedAt", "reason", "runId", "traceId", "startedAt"}
            assert item["reason"] == "stop" and item["sessionId"] == sid and item["traceId"] == accepted["traceId"]
            wait_dead([agent], timeout=5)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                run = ok_data(client.get(f"/api/v1/runs/{accepted['runId']}"))
                if run["status"] == "cancelled":
                    break
                time.sleep(0.05)
            assert run["status"] == "cancelled"
            assert ok_data(client.get("/api/v1/runs/cancel-requests", params={"sessionId": sid}))["items"] == []
    finally:
        p.stop()


def test_sigkill_mid_run_then_restart_fails_the_run_and_leaves_no_agent(workdir: Path) -> None:
    script = workdir / "agent.py"
    script.write_text(AGENT)
    pidfile = workdir / "pids"
    p: AthenaProcess = start_api(workdir, env=ALLOW_PYTHON)
    try:
        with httpx.Client(base_url=p.rest_url, timeout=60) as client:
            sleeper = make_profile(client, [sys.executable, str(script), "sleep", str(pidfile)])
            sid = new_session()
            accepted = ok_data(
                client.post(
                    "/api/v1/runs",
                    json={"sessionId": sid, "input": "zz", "harnessProfileId": sleeper, "wait": False},
                ),
                202,
            )
            mock_sid = new_session()
            slow_mock = ok_data(
                client.post(
                    "/api/v1/runs",
                    json={"sessionId": mock_sid, "input": "m", "metadata": {"mock.delayMs": "60000"}, "wait": False},
                ),
                202,
            )
            agent, grandchild = wait_file(pidfile)
        p.stop(signal.SIGKILL)
        # The agent dies with the server (parent-death signal); its own child is cleaned up at restart.
        wait_dead([agent], timeout=3)
        p = start_api(workdir, env=ALLOW_PYTHON)
        with httpx.Client(base_url=p.rest_url, timeout=60) as client:
            for run_id in (accepted["runId"], slow_mock["runId"]):
                run = ok_data(client.get(f"/api/v1/runs/{run_id}"))
                assert run["status"] == "failed", run
                assert run["error"]["code"] == "UNAVAILABLE"
            wait_dead([agent, grandchild], timeout=3)
            failed = ok_data(client.get("/api/v1/events", params={"types": "run.failed", "limit": 500}))["events"]
            assert {e["runId"] for e in failed} >= {accepted["runId"], slow_mock["runId"]}
            assert all(e["payload"]["reason"] == "owner-lost" for e in failed)
            assert ok_data(client.get("/api/v1/runs/active"))["items"] == []
            # The session is usable again.
            ok_data(client.post("/api/v1/runs", json={"sessionId": mock_sid, "input": "again"}))
    finally:
        p.stop()
