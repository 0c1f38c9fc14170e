"""The `athena` command end to end: the installed command as a subprocess against real servers (the
session's `api` server, and one of this module's own with auth on), over each transport.

- `--transport api` goes through the REST API; `-o json` prints the REST body's `data` byte for byte.
- `--transport local` runs the control plane in the command's process on the working directory's
  `.athena/` store; `auto` uses the API when it answers and that store otherwise.
- Failures print `CODE: message` and the trace id on stderr and exit with the code of their class.
- `events tail` follows the live stream and resumes after the server restarted.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import AthenaProcess, free_port, running_api, start, wait_rest_ready
from tests.support.shapes import new_session
from tests.support.waiting import wait_until

ENVELOPE = re.compile(r'^\{"ok":true,"data":(.*)\}$', re.S)


def rest_data(response: httpx.Response) -> str:
    """The `data` part of a REST body, as bytes on the wire (decoded)."""
    assert response.status_code == 200, response.text
    match = ENVELOPE.match(response.text)
    assert match, response.text
    return match.group(1)


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def athena(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60) -> Result:
    """`athena ARGS` in `cwd`; the environment's ATHENA_* client settings are the test's alone."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ATHENA_")}
    proc = subprocess.run(
        [sys.executable, "-m", "athena_client.cli", *args],
        cwd=cwd,
        env={**base, "PYTHONUNBUFFERED": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def spawn(*args: str, cwd: Path, env: dict[str, str], out: Path) -> subprocess.Popen[bytes]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ATHENA_")}
    with open(out, "wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "athena_client.cli", *args],
            cwd=cwd,
            env={**base, "PYTHONUNBUFFERED": "1", **env},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture(scope="module")
def cwd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working directory of client commands against the shared server: nothing may land here."""
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def api_env(api: AthenaProcess) -> dict[str, str]:
    return {"ATHENA_API_BASE_URL": api.rest_url, "ATHENA_CLI_TRANSPORT": "api"}


# ---- api transport ---------------------------------------------------------------------------------------


def test_run_over_the_api_prints_output_then_json_equal_to_rest(
    api: AthenaProcess, api_env: dict[str, str], cwd: Path
) -> None:
    sid = new_session()
    people = athena("run", "hello", "--session-id", sid, cwd=cwd, env=api_env)
    assert people.code == 0, people.err
    assert people.out == "Echo: user: hello\n"
    assert re.search(r"run \S+ succeeded · mock/default · 1 attempt", people.err)

    machine = athena("run", "again", "--session-id", sid, "-o", "json", cwd=cwd, env=api_env)
    assert machine.code == 0, machine.err
    run = machine.json()
    assert run["status"] == "succeeded" and run["sessionId"] == sid

    got = athena("runs", "get", run["runId"], "-o", "json", cwd=cwd, env=api_env)
    assert got.code == 0, got.err
    assert got.out.endswith("\n") and got.out.count("\n") == 1
    assert got.out[:-1] == rest_data(httpx.get(f"{api.rest_url}/api/v1/runs/{run['runId']}"))
    assert not (cwd / ".athena").exists()


def test_schedule_add_and_read_back_as_rest(api: AthenaProcess, api_env: dict[str, str], cwd: Path) -> None:
    # Short unique ids: the table wraps longer ones across lines.
    job, sid = "j" + uuid.uuid4().hex[:6], "s" + uuid.uuid4().hex[:6]
    added = athena(
        "schedule",
        "add",
        "--id",
        job,
        "--session-id",
        sid,
        "--input",
        "tick",
        "--cron",
        "0 9 * * 1-5",
        "--metadata",
        "team=infra",
        "-o",
        "json",
        cwd=cwd,
        env=api_env,
    )
    assert added.code == 0, added.err
    assert added.json()["cron"] == "0 9 * * 1-5" and added.json()["metadata"] == {"team": "infra"}
    # Options before the command work as well as after it.
    got = athena("-o", "json", "schedule", "get", "--id", job, cwd=cwd, env=api_env)
    assert got.code == 0, got.err
    assert got.out[:-1] == rest_data(httpx.get(f"{api.rest_url}/api/v1/schedules/{job}"))
    table = athena("schedule", "list", cwd=cwd, env=api_env)
    assert table.code == 0 and job in table.out and sid in table.out


def test_errors_exit_by_class_with_code_and_trace_id(api: AthenaProcess, api_env: dict[str, str], cwd: Path) -> None:
    missing = athena("runs", "get", "no-such-run", cwd=cwd, env=api_env)
    assert missing.code == 3
    assert missing.out == ""
    assert missing.err.splitlines()[0] == "NOT_FOUND: Run 'no-such-run' not found."
    assert re.search(r"^trace id: \S+$", missing.err, re.M)

    invalid = athena("run", "x", "--session-id", "not valid!", cwd=cwd, env=api_env)
    assert invalid.code == 2
    assert invalid.err.startswith("CONFIG_ERROR: ")

    usage = athena("schedule", "add", "--id", "j", "--session-id", "s", "--input", "i", cwd=cwd, env=api_env)
    assert usage.code == 2
    assert "exactly one of --every-minutes or --cron" in usage.err

    nobody = f"http://127.0.0.1:{free_port()}"
    down = athena("--api-base-url", nobody, "system", "health", cwd=cwd, env=api_env)
    assert down.code == 5
    assert down.err.startswith("UNAVAILABLE: ")
    assert f"no answer from the API at {nobody}" in down.err


def test_version_and_help(cwd: Path) -> None:
    version = athena("--version", cwd=cwd)
    assert version.code == 0
    assert version.out == f"athena {importlib.metadata.version('athena-control-plane')}\n"
    helped = athena("events", "tail", "--help", cwd=cwd)
    assert helped.code == 0
    assert "Example:" in helped.out and "athena events tail --session-id" in helped.out
    assert "GET /api/v1/events/stream" in helped.out


def test_auto_uses_a_server_that_answers(api: AthenaProcess, cwd: Path) -> None:
    result = athena(
        "run",
        "via auto",
        "--session-id",
        new_session(),
        "-o",
        "json",
        cwd=cwd,
        env={"ATHENA_API_BASE_URL": api.rest_url},
    )
    assert result.code == 0, result.err
    run_id = result.json()["runId"]
    assert httpx.get(f"{api.rest_url}/api/v1/runs/{run_id}").json()["data"]["status"] == "succeeded"
    assert not (cwd / ".athena").exists()


def test_cancelled_run_exits_refused(api: AthenaProcess, api_env: dict[str, str], cwd: Path, tmp_path: Path) -> None:
    """A waiting `athena run` whose run is cancelled by `runs cancel-session` reports RUN_CANCELLED (409):
    exit 4."""
    sid = new_session()
    waiting = spawn(
        "run",
        "slow",
        "--session-id",
        sid,
        "--metadata",
        "mock.delayMs=30000",
        cwd=cwd,
        env=api_env,
        out=tmp_path / "run.out",
    )
    try:

        def active() -> bool:
            items = httpx.get(f"{api.rest_url}/api/v1/runs/active", params={"sessionId": sid}).json()["data"]
            return bool(items["items"])

        wait_until(active, "the run to start")
        cancel = athena("runs", "cancel-session", sid, "--reason", "test", "-o", "json", cwd=cwd, env=api_env)
        assert cancel.code == 0, cancel.err
        assert cancel.json()["status"] == "cancelled"
        assert waiting.wait(30) == 4
    finally:
        waiting.kill()
        waiting.wait()
    assert (tmp_path / "run.out").read_text().startswith("RUN_CANCELLED: ")


# ---- local and auto without a server --------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("local")


@pytest.fixture(scope="module")
def no_wait_run(local_dir: Path) -> dict[str, Any]:
    """`athena run --no-wait` with `auto` and no API: runs in-process on the working directory's store, and
    waits for the run before the process (and its control plane) ends."""
    nobody = {"ATHENA_API_BASE_URL": f"http://127.0.0.1:{free_port()}"}
    result = athena(
        "run",
        "later",
        "--session-id",
        "cli-local",
        "--no-wait",
        "--metadata",
        "mock.delayMs=700",
        "-o",
        "json",
        cwd=local_dir,
        env=nobody,
    )
    assert result.code == 0, result.err
    accepted = result.json()
    assert accepted["status"] in ("pending", "running")
    assert f"waiting for run {accepted['runId']} to finish" in result.err
    assert f"run {accepted['runId']} succeeded" in result.err
    return accepted


def test_auto_without_a_server_runs_locally_and_no_wait_loses_nothing(
    local_dir: Path, no_wait_run: dict[str, Any]
) -> None:
    assert (local_dir / ".athena" / "athena.db").is_file()
    got = athena("--transport", "local", "runs", "get", no_wait_run["runId"], "-o", "json", cwd=local_dir)
    assert got.code == 0, got.err
    run = got.json()
    assert run["status"] == "succeeded"
    assert run["output"] == "Echo: user: later"


GUARDED_ENV = {"ATHENA_AUTH_ENABLED": "true", "ATHENA_AUTH_IDENTITY_ROLE_MAP": "alice:Admin,bob:Viewer"}


@pytest.fixture(scope="module")
def guarded(local_dir: Path, no_wait_run: dict[str, Any]) -> Iterator[AthenaProcess]:
    """A server with auth on (trusted identity header), on the store the local commands wrote."""
    with running_api(local_dir, env=GUARDED_ENV) as server:
        yield server


ALICE = {"x-athena-identity": "alice"}


def test_local_json_equals_the_servers_rest_data(
    guarded: AthenaProcess, local_dir: Path, no_wait_run: dict[str, Any]
) -> None:
    run_id = no_wait_run["runId"]
    local = athena(
        "--transport", "local", "-o", "json", "runs", "get", run_id, cwd=local_dir, env={"ATHENA_IDENTITY": "alice"}
    )
    assert local.code == 0, local.err
    assert local.out[:-1] == rest_data(httpx.get(f"{guarded.rest_url}/api/v1/runs/{run_id}", headers=ALICE))


def test_credentials_and_refusals(guarded: AthenaProcess, local_dir: Path) -> None:
    env = {"ATHENA_API_BASE_URL": guarded.rest_url, "ATHENA_CLI_TRANSPORT": "api"}
    anonymous = athena("policy", "get", cwd=local_dir, env=env)
    assert anonymous.code == 4
    assert anonymous.err.startswith("AUTH_IDENTITY_MISSING: ")
    viewer = athena("policy", "set", "--schema-version", "1", "--identity", "bob", cwd=local_dir, env=env)
    assert viewer.code == 4
    assert viewer.err.startswith("AUTHZ_DENIED: ")
    admin = athena(
        "policy",
        "set",
        "--schema-version",
        "1",
        "--max-concurrent-runs",
        "4",
        "-o",
        "json",
        cwd=local_dir,
        env={**env, "ATHENA_IDENTITY": "alice"},
    )
    assert admin.code == 0, admin.err
    assert admin.json()["maxConcurrentRuns"] == 4


def test_all_pages_as_one_array(guarded: AthenaProcess, local_dir: Path) -> None:
    for session in ("cli-page-1", "cli-page-2", "cli-page-3"):
        assert (
            httpx.post(
                f"{guarded.rest_url}/api/v1/runs", json={"sessionId": session, "input": "x"}, headers=ALICE
            ).status_code
            == 200
        )
    env = {"ATHENA_API_BASE_URL": guarded.rest_url, "ATHENA_IDENTITY": "alice"}
    result = athena("sessions", "list", "--limit", "1", "--all", "-o", "json", cwd=local_dir, env=env)
    assert result.code == 0, result.err
    items: list[Any] = []
    cursor = None
    while True:
        params = {"limit": "1", **({"cursor": cursor} if cursor else {})}
        page = json.loads(rest_data(httpx.get(f"{guarded.rest_url}/api/v1/sessions", params=params, headers=ALICE)))
        items += page["items"]
        cursor = page.get("nextCursor")
        if not cursor:
            break
    assert result.out == json.dumps(items, separators=(",", ":"), ensure_ascii=False) + "\n"
    assert len(items) >= 4


def test_events_tail_follows_and_resumes_after_a_restart(
    guarded: AthenaProcess, local_dir: Path, tmp_path: Path
) -> None:
    url = guarded.rest_url
    sid = new_session()

    def run(session: str) -> None:
        answer = httpx.post(f"{url}/api/v1/runs", json={"sessionId": session, "input": "x"}, headers=ALICE, timeout=30)
        assert answer.status_code == 200, answer.text

    run(sid)
    events = httpx.get(f"{url}/api/v1/events", params={"sessionId": sid}, headers=ALICE).json()["data"]["events"]
    after = events[-1]["id"]
    out = tmp_path / "tail.out"
    env = {"ATHENA_API_BASE_URL": url, "ATHENA_CLI_TRANSPORT": "api", "ATHENA_IDENTITY": "alice"}
    tail = spawn(
        "events",
        "tail",
        "--session-id",
        sid,
        "--after",
        after,
        "--count",
        "6",
        "-o",
        "json",
        cwd=local_dir,
        env=env,
        out=out,
    )
    try:
        run(sid)
        wait_until(lambda: out.read_text().count("\n") >= 3, "the first run's events")
        guarded.stop(signal.SIGKILL)  # the connection drops mid-stream
        restarted = start(
            ["api", "serve", "--port", str(guarded.rest_port), "--grpc-port", str(guarded.grpc_port)],
            local_dir,
            GUARDED_ENV,
            "api-restarted",
        )
        restarted.rest_port, restarted.grpc_port = guarded.rest_port, guarded.grpc_port
        guarded.proc, guarded.log_path = restarted.proc, restarted.log_path
        wait_rest_ready(guarded)
        run(sid)
        assert tail.wait(60) == 0, out.read_text()
    finally:
        tail.kill()
        tail.wait()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["type"] for e in lines] == ["run.created", "run.started", "run.completed"] * 2
    numbers = [int(e["id"].removeprefix("evt_")) for e in lines]
    assert numbers == sorted(set(numbers)) and numbers[0] > int(after.removeprefix("evt_"))


def test_transcript_follow(guarded: AthenaProcess, local_dir: Path, tmp_path: Path) -> None:
    url = guarded.rest_url
    sid = new_session()
    env = {"ATHENA_API_BASE_URL": url, "ATHENA_IDENTITY": "alice"}
    assert athena("run", "first", "--session-id", sid, cwd=local_dir, env=env).code == 0
    out = tmp_path / "follow.out"
    follow = spawn(
        "sessions",
        "transcript",
        sid,
        "--follow",
        "--count",
        "2",
        "-o",
        "json",
        cwd=local_dir,
        env=env,
        out=out,
    )
    try:
        wait_until(lambda: out.read_text().count("\n") >= 2, "the listed entries")
        answer = httpx.post(f"{url}/api/v1/runs", json={"sessionId": sid, "input": "second"}, headers=ALICE)
        assert answer.status_code == 200
        assert follow.wait(30) == 0, out.read_text()
    finally:
        follow.kill()
        follow.wait()
    entries = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(e["role"], e["content"]) for e in entries] == [
        ("user", "first"),
        ("assistant", "Echo: user: first"),
        ("user", "second"),
        ("assistant", "Echo: user: first\n\nassistant: Echo: user: first\n\nuser: second"),
    ]
