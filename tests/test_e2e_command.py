"""The `command` provider end to end (a real agent subprocess named by a harness profile), cancellation of
its process group, and crash safety: a server killed with SIGKILL mid-run leaves no running run and no
agent process once it starts again."""

from __future__ import annotations

import signal
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import httpx

from tests.support.agents import agent_line, wait_dead
from tests.support.events import events_of
from tests.support.processes import running_api
from tests.support.runs import wait_status
from tests.support.shapes import error_of, new_session, ok_data
from tests.support.waiting import wait_until

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
            f.write(f"{os.getpid()} {child.pid}\\n")
        time.sleep(60)
    elif mode == "stubborn":
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with open(sys.argv[2], "w") as f:
            f.write(f"{os.getpid()} {os.getpid()}\\n")
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


def agent_pids(path: Path) -> tuple[int, int]:
    """The two pids an agent wrote to `path` once it started."""
    a, b = agent_line(path)
    return int(a), int(b)


def test_command_agent_output_evidence_verification_and_cancel(workdir: Path) -> None:
    script = workdir / "agent.py"
    script.write_text(AGENT)
    with running_api(workdir, env=ALLOW_PYTHON) as p, httpx.Client(base_url=p.rest_url, timeout=60) as client:
        checks = [{"id": "v1", "kind": "require-evidence", "label": "stderr"}]
        echo = make_profile(client, [sys.executable, str(script), "echo"], checks)
        sid = new_session()
        data = ok_data(client.post("/api/v1/runs", json={"sessionId": sid, "input": "hello", "harnessProfileId": echo}))
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

        # Cancelling a waited-for run answers the waiting request and ends the agent's whole process group.
        pidfile = workdir / "pids"
        sleeper = make_profile(client, [sys.executable, str(script), "sleep", str(pidfile)])
        out: list[httpx.Response] = []
        t = threading.Thread(
            target=lambda: out.append(
                client.post("/api/v1/runs", json={"sessionId": sid, "input": "zz", "harnessProfileId": sleeper})
            )
        )
        t.start()
        agent, grandchild = agent_pids(pidfile)

        def agent_run() -> dict[str, Any] | None:
            active = ok_data(client.get("/api/v1/runs/active", params={"sessionId": sid}))["items"]
            return active[0] if active and active[0]["pid"] == agent else None

        active = wait_until(agent_run, f"the run of agent {agent} to be listed as active")
        assert active["pid"] != p.proc.pid
        ok_data(client.post(f"/api/v1/run-control/by-run/{active['runId']}/cancel", json={"reason": "stop"}))
        wait_until(lambda: not t.is_alive(), "the waiting request to be answered")
        error_of(out[0], 409, "RUN_CANCELLED")
        wait_dead(agent, grandchild)

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
        agent, _ = agent_pids(stubborn_file)
        ok_data(client.post(f"/api/v1/run-control/by-run/{accepted['runId']}/cancel", json={"reason": "stop"}))
        listed = ok_data(client.get("/api/v1/runs/cancel-requests", params={"sessionId": sid}))["items"]
        assert [i["runId"] for i in listed] == [accepted["runId"]]
        item = listed[0]
        assert set(item) == {"sessionId", "requestedAt", "reason", "runId", "traceId", "startedAt"}
        assert item["reason"] == "stop" and item["sessionId"] == sid and item["traceId"] == accepted["traceId"]
        wait_dead(agent)
        wait_status(client, accepted["runId"], "cancelled")
        assert ok_data(client.get("/api/v1/runs/cancel-requests", params={"sessionId": sid}))["items"] == []


def test_sigkill_mid_run_then_restart_fails_the_run_and_leaves_no_agent(workdir: Path) -> None:
    script = workdir / "agent.py"
    script.write_text(AGENT)
    pidfile = workdir / "pids"
    sid, mock_sid = new_session(), new_session()
    with running_api(workdir, env=ALLOW_PYTHON) as p, httpx.Client(base_url=p.rest_url, timeout=60) as client:
        sleeper = make_profile(client, [sys.executable, str(script), "sleep", str(pidfile)])
        accepted = ok_data(
            client.post(
                "/api/v1/runs",
                json={"sessionId": sid, "input": "zz", "harnessProfileId": sleeper, "wait": False},
            ),
            202,
        )
        slow_mock = ok_data(
            client.post(
                "/api/v1/runs",
                json={"sessionId": mock_sid, "input": "m", "metadata": {"mock.delayMs": "60000"}, "wait": False},
            ),
            202,
        )
        agent, grandchild = agent_pids(pidfile)
        wait_status(client, slow_mock["runId"], "running")
        p.stop(signal.SIGKILL)
    # The agent dies with the server (parent-death signal); its own child is cleaned up at restart.
    wait_dead(agent)
    with running_api(workdir, env=ALLOW_PYTHON) as p, httpx.Client(base_url=p.rest_url, timeout=60) as client:
        for run_id in (accepted["runId"], slow_mock["runId"]):
            run = ok_data(client.get(f"/api/v1/runs/{run_id}"))
            assert run["status"] == "failed", run
            assert run["error"]["code"] == "UNAVAILABLE"
        wait_dead(agent, grandchild)
        for session, run_id in ((sid, accepted["runId"]), (mock_sid, slow_mock["runId"])):
            failed = events_of(client, session, "run.failed")
            assert [(e["runId"], e["payload"]["reason"]) for e in failed] == [(run_id, "owner-lost")]
        assert ok_data(client.get("/api/v1/runs/active"))["items"] == []
        # The session is usable again.
        ok_data(client.post("/api/v1/runs", json={"sessionId": mock_sid, "input": "again"}))
