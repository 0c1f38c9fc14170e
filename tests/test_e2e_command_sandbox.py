"""The `command` provider runs only what the operator allowed (`ATHENA_COMMAND_ALLOW`), with a minimal
environment, a private working directory per attempt and resource limits, against real servers.

The issue's reproduction: any client could create a profile running `/bin/sh -c 'id > /tmp/pwned'` and the
next run executed it as the server's user, with the server's secrets in its environment.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.agents import agent_line, wait_dead
from tests.support.events import events_of
from tests.support.processes import Served, free_port, serving, start
from tests.support.runs import wait_status
from tests.support.shapes import error_of, new_session, ok_data
from tests.support.waiting import wait_until

PY = sys.executable
RUN_VARS = {"ATHENA_RUN_ID", "ATHENA_SESSION_ID", "ATHENA_MODEL", "ATHENA_ATTEMPT"}
NOT_ALLOWED = (
    "harnessProfiles.create.config.command[0] must be a program on the server's allow-list (ATHENA_COMMAND_ALLOW)."
)

AGENT = textwrap.dedent(
    """
    import json, os, resource, stat, sys, time
    mode = sys.argv[1]
    sys.stdin.read()
    if mode == "inspect":
        # The environment as exec'd (/proc: before Python itself adds anything), the working directory, limits.
        with open("/proc/self/environ", "rb") as f:
            env = dict(e.decode().split("=", 1) for e in f.read().split(b"\\0") if e)
        with open("scratch.txt", "w") as f:
            f.write("the agent may write in its directory")
        limits = {n: resource.getrlimit(getattr(resource, n)) for n in ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_NOFILE")}
        bits = stat.S_IMODE(os.stat(".").st_mode)
        print(json.dumps({"env": env, "cwd": os.getcwd(), "mode": bits, "limits": limits, "files": os.listdir(".")}))
    elif mode == "mark":
        with open(sys.argv[2], "w") as f:
            f.write("executed")
        print("marked")
    elif mode == "hog":
        big = bytearray(2 * 1024 * 1024 * 1024)
        print(len(big))
    elif mode == "flood":
        with open(sys.argv[2], "w") as f:
            f.write(f"{os.getpid()} {os.getcwd()}\\n")
        while True:
            sys.stdout.write("y" * 65536)
    elif mode == "sleep":
        with open(sys.argv[2], "w") as f:
            f.write(f"{os.getpid()} {os.getcwd()}\\n")
        time.sleep(60)
    """
)


def profile_body(argv: list[str]) -> dict[str, Any]:
    return {
        "displayName": "agent",
        "version": "v1",
        "config": {"provider": "command", "model": "default", "tools": ["shell"], "command": argv},
        "policies": {"timeoutMs": 60000, "retryLimit": 1, "budgetUsd": 0},
    }


def make_profile(client: httpx.Client, argv: list[str]) -> str:
    return str(ok_data(client.post("/api/v1/harness-profiles", json=profile_body(argv)))["id"])


def run(client: httpx.Client, profile: str, **extra: Any) -> httpx.Response:
    return client.post(
        "/api/v1/runs", json={"sessionId": new_session(), "input": "go", "harnessProfileId": profile, **extra}
    )


def pwned_argv() -> tuple[list[str], Path]:
    target = Path(f"/tmp/pwned-{uuid.uuid4().hex}")
    return ["/bin/sh", "-c", f"id > {target}"], target


# ---------------------------------------------------------------------------------------------- no allow-list


def test_default_server_has_no_command_provider(workdir: Path) -> None:
    with serving(workdir) as served:
        client = served.rest
        assert ok_data(client.get("/api/v1/capabilities"))["providers"] == ["mock", "openai"]
        argv, target = pwned_argv()
        err = error_of(client.post("/api/v1/harness-profiles", json=profile_body(argv)), 400, "CONFIG_ERROR")
        assert err["message"] == (
            "harnessProfiles.create.config.provider must reference a configured provider. Received: command."
        )
        err = error_of(
            client.post("/api/v1/runs", json={"sessionId": new_session(), "input": "x", "provider": "command"}),
            404,
            "PROVIDER_NOT_FOUND",
        )
        assert err["message"] == "No usable provider found in order: command"
        assert ok_data(client.get("/api/v1/harness-profiles"))["items"] == []  # the server's own, pristine store
        assert not target.exists()


def test_allow_list_entry_that_is_not_an_executable_stops_start_up(workdir: Path) -> None:
    plain = workdir / "agent.sh"
    plain.write_text("#!/bin/sh\necho hi\n")
    plain.chmod(0o644)
    port, grpc_port = str(free_port()), str(free_port())
    for entry, reason in (
        ("no-such-agent-xyz", "was not found on PATH: list absolute paths or program names found on PATH."),
        (str(plain), f"is not an executable file ({plain.resolve()})."),
    ):
        p = start(
            ["api", "serve", "--port", port, "--grpc-port", grpc_port],
            workdir,
            env={"ATHENA_COMMAND_ALLOW": f"{PY}, {entry}"},
        )
        try:
            assert p.proc.wait(60) == 1
        finally:
            p.stop(signal.SIGKILL)
        log = p.log()
        assert f"athena: ATHENA_COMMAND_ALLOW entry {entry!r} {reason}\n" in log
        assert "Traceback" not in log


# ---------------------------------------------------------------------------------------------- allow-list


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server allowing only this interpreter, with limits, an output bound and secrets in its own
    environment that no agent may see."""
    workdir = tmp_path_factory.mktemp("sandboxed")
    (workdir / "agent.py").write_text(AGENT)
    env = {
        "ATHENA_COMMAND_ALLOW": PY,
        "ATHENA_COMMAND_WORKDIR": str(workdir / "agent-root"),
        "ATHENA_COMMAND_CPU_SECONDS": "77",
        "ATHENA_COMMAND_MEMORY_MB": "512",
        "ATHENA_COMMAND_OPEN_FILES": "64",
        "ATHENA_COMMAND_OUTPUT_MAX_BYTES": "100000",
        "ATHENA_COMMAND_ENV_PASSTHROUGH": "SANDBOX_TEST_VISIBLE",
        "SANDBOX_TEST_VISIBLE": "passed-through",
        "SANDBOX_TEST_HIDDEN": "sekrit-hidden",
        "ATHENA_OPENAI_API_KEY": "sekrit-xyz",
        "ATHENA_DATABASE_URL": str(workdir / "sekrit-store.db"),
    }
    with serving(workdir, env=env) as served:
        yield served


def agent(sandboxed: Served, *args: str) -> list[str]:
    return [PY, str(sandboxed.process.workdir / "agent.py"), *args]


def agent_root(sandboxed: Served) -> Path:
    return (sandboxed.process.workdir / "agent-root").resolve()


def directories_of(sandboxed: Served, run_id: str) -> list[str]:
    """The working directories of a run's attempts (`<runId>.<attempt>`) still in the agent root."""
    return [name for name in os.listdir(agent_root(sandboxed)) if name.startswith(f"{run_id}.")]


def test_programs_not_on_the_list_are_refused_at_creation(sandboxed: Served) -> None:
    client = sandboxed.rest
    assert "command" in ok_data(client.get("/api/v1/capabilities"))["providers"]
    argv, target = pwned_argv()
    for program, rest in ((argv[0], argv[1:]), ("sh", argv[1:]), ("/usr/bin/env", ["python3"])):
        err = error_of(
            client.post("/api/v1/harness-profiles", json=profile_body([program, *rest])), 400, "CONFIG_ERROR"
        )
        assert err["message"] == f"{NOT_ALLOWED} Received: {program}."
        assert err["retryable"] is False
    assert not target.exists()


def test_allowed_agent_runs_with_a_minimal_environment_its_own_directory_and_limits(sandboxed: Served) -> None:
    client = sandboxed.rest
    data = ok_data(run(client, make_profile(client, agent(sandboxed, "inspect"))))
    seen = json.loads(data["output"])
    workdir = agent_root(sandboxed) / f"{data['runId']}.1"
    assert seen["cwd"] == str(workdir) and seen["mode"] == 0o700 and seen["files"] == ["scratch.txt"]
    inherited = {name for name in ("LANG", "LC_ALL", "TZ") if name in os.environ}
    assert set(seen["env"]) == {"PATH", "HOME", "TMPDIR", "SANDBOX_TEST_VISIBLE", *RUN_VARS, *inherited}
    assert seen["env"]["HOME"] == seen["env"]["TMPDIR"] == str(workdir)
    assert seen["env"]["PATH"] == os.environ["PATH"]
    assert seen["env"]["SANDBOX_TEST_VISIBLE"] == "passed-through"
    assert (seen["env"]["ATHENA_RUN_ID"], seen["env"]["ATHENA_SESSION_ID"]) == (data["runId"], data["sessionId"])
    assert (seen["env"]["ATHENA_MODEL"], seen["env"]["ATHENA_ATTEMPT"]) == ("default", "1")
    assert not any("sekrit" in value for value in seen["env"].values())
    mib512 = 512 * 1024 * 1024
    assert seen["limits"] == {"RLIMIT_CPU": [77, 77], "RLIMIT_AS": [mib512, mib512], "RLIMIT_NOFILE": [64, 64]}
    # The directory went with the run.
    assert not workdir.exists()
    assert directories_of(sandboxed, data["runId"]) == []


def test_agent_over_the_memory_limit_fails_the_run(sandboxed: Served) -> None:
    client = sandboxed.rest
    session = new_session()
    err = error_of(run(client, make_profile(client, agent(sandboxed, "hog")), sessionId=session), 502, "PROVIDER_ERROR")
    assert err["message"].startswith("command exited with code 1: Traceback")
    assert err["message"].endswith("MemoryError\n")
    assert err["retryable"] is False
    [failed] = events_of(client, session, "run.failed")
    assert directories_of(sandboxed, failed["runId"]) == []


def test_agent_output_over_the_bound_fails_the_run_and_stops_the_agent(sandboxed: Served) -> None:
    client = sandboxed.rest
    started = sandboxed.process.workdir / f"flood-{uuid.uuid4().hex}"
    session = new_session()
    flood = make_profile(client, agent(sandboxed, "flood", str(started)))
    err = error_of(run(client, flood, sessionId=session), 502, "PROVIDER_ERROR")
    assert err["message"] == (
        "command output exceeded 100000 bytes (ATHENA_COMMAND_OUTPUT_MAX_BYTES); the agent was stopped."
    )
    pid, workdir = agent_line(started)
    wait_dead(int(pid))
    assert not Path(workdir).exists()
    [failed] = events_of(client, session, "run.failed")
    assert directories_of(sandboxed, failed["runId"]) == []


def test_working_directory_is_removed_after_cancel_and_timeout(sandboxed: Served) -> None:
    client = sandboxed.rest
    started = sandboxed.process.workdir / f"sleep-{uuid.uuid4().hex}"
    sleeper = make_profile(client, agent(sandboxed, "sleep", str(started)))
    accepted = ok_data(run(client, sleeper, wait=False), 202)
    pid, workdir = agent_line(started)
    assert workdir == str(agent_root(sandboxed) / f"{accepted['runId']}.1") and Path(workdir).is_dir()
    ok_data(client.post(f"/api/v1/run-control/by-run/{accepted['runId']}/cancel", json={"reason": "stop"}))
    wait_status(client, accepted["runId"], "cancelled")
    wait_dead(int(pid))
    assert not Path(workdir).exists()
    assert directories_of(sandboxed, accepted["runId"]) == []

    # A run timing out: the agent may not even have started when the (short) timeout ends its attempt, so
    # the attempt's directory is named from the run id, not read from the agent.
    started.unlink()
    session = new_session()
    ok_data(client.put("/api/v1/policy", json={"schemaVersion": 1, "defaultRunTimeoutMs": 1000}))
    try:
        out: list[httpx.Response] = []
        waiting = threading.Thread(target=lambda: out.append(run(client, sleeper, sessionId=session)))
        waiting.start()
        wait_until(lambda: not waiting.is_alive(), "the run that times out to be answered")
    finally:
        ok_data(client.put("/api/v1/policy", json={"schemaVersion": 1}))
    error_of(out[0], 408, "RUN_TIMEOUT")
    [created] = events_of(client, session, "run.created")
    assert directories_of(sandboxed, created["runId"]) == []
    if started.exists():  # the agent had started: it was stopped with its attempt
        wait_dead(int(agent_line(started)[0]))


# ---------------------------------------------------------------------------------------------- restarts


def test_profile_is_refused_at_run_start_when_the_list_changed(workdir: Path) -> None:
    (workdir / "agent.py").write_text(AGENT)
    marker = workdir / "marker"
    true = shutil.which("true")
    assert true is not None
    with serving(workdir, env={"ATHENA_COMMAND_ALLOW": PY}) as served:
        profile = make_profile(served.rest, [PY, str(workdir / "agent.py"), "mark", str(marker)])
        assert ok_data(run(served.rest, profile))["output"] == "marked"
    marker.unlink()

    # Another list: the stored profile's program is no longer allowed, and nothing runs.
    with serving(workdir, env={"ATHENA_COMMAND_ALLOW": true}) as served:
        err = error_of(run(served.rest, profile), 400, "CONFIG_ERROR")
        assert err["message"] == (
            "The harness profile's config.command[0] is not a program on the server's allow-list "
            f"(ATHENA_COMMAND_ALLOW), so nothing was run. Received: {PY}."
        )
        assert err["retryable"] is False
        assert not marker.exists()

    # No list at all: the provider does not exist.
    with serving(workdir) as served:
        err = error_of(run(served.rest, profile), 404, "PROVIDER_NOT_FOUND")
        assert err["message"] == "No usable provider found in order: command"
        assert not marker.exists()
