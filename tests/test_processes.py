"""The server processes: gRPC and gateway apart, clean shutdown on signals, the loopback guard."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.processes import free_port, running_api, start, start_api, wait_grpc_ready, wait_rest_ready
from tests.support.shapes import new_session, ok_data
from tests.support.waiting import wait_until


def test_grpc_and_gateway_as_separate_processes(workdir: Path) -> None:
    grpc_port, rest_port = free_port(), free_port()
    server = start(["grpc", "serve", "--port", str(grpc_port), "--db", str(workdir / "s.db")], workdir, name="grpc")
    server.grpc_port = grpc_port
    gateway = start(
        ["gateway", "serve", "--port", str(rest_port), "--upstream", f"127.0.0.1:{grpc_port}"], workdir, name="gw"
    )
    gateway.rest_port = rest_port
    try:
        wait_grpc_ready(server)
        wait_rest_ready(gateway)
        data = ok_data(
            httpx.post(f"{gateway.rest_url}/api/v1/runs", json={"sessionId": new_session(), "input": "hello"})
        )
        assert data["output"] == "Echo: user: hello"
        assert (workdir / "s.db").exists()
    finally:
        assert gateway.stop(signal.SIGTERM) == 0, gateway.log()
        assert server.stop(signal.SIGTERM) == 0, server.log()


def test_gateway_without_upstream_answers_unavailable(workdir: Path) -> None:
    rest_port = free_port()
    gateway = start(
        ["gateway", "serve", "--port", str(rest_port), "--upstream", f"127.0.0.1:{free_port()}"], workdir, name="gw"
    )
    gateway.rest_port = rest_port

    def answered() -> httpx.Response | None:
        try:
            return httpx.get(f"{gateway.rest_url}/api/v1/capabilities", timeout=10)
        except httpx.HTTPError:  # not listening yet
            return None

    try:
        deadline_resp = wait_until(answered, "the gateway to answer")
        assert deadline_resp.status_code == 503
        assert deadline_resp.json()["error"]["code"] == "UNAVAILABLE"
        assert deadline_resp.json()["error"]["retryable"] is True
    finally:
        gateway.stop()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_api_serve_shuts_down_cleanly(workdir: Path, sig: int) -> None:
    p = start_api(workdir)
    ok_data(httpx.post(f"{p.rest_url}/api/v1/runs", json={"sessionId": new_session(), "input": "hello"}))
    assert p.stop(sig) == 0, p.log()
    assert "Traceback" not in p.log()


def test_default_store_is_sqlite_under_dot_athena(workdir: Path) -> None:
    with running_api(workdir):
        assert (workdir / ".athena" / "athena.db").exists()


def test_refuses_non_loopback_bind_without_auth(workdir: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "athena_client.cli", "api", "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode != 0
    assert "Refusing to bind '0.0.0.0' without authentication" in out.stderr


def serve_exit(workdir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`athena api serve` that is expected to refuse to start."""
    return subprocess.run(
        [sys.executable, "-m", "athena_client.cli", "api", "serve", "--port", str(free_port()), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **env},
    )


def test_external_bind_needs_credentials_the_server_verifies(workdir: Path) -> None:
    header_only = {"ATHENA_AUTH_ENABLED": "true", "ATHENA_AUTH_IDENTITY_ROLE_MAP": "*:Viewer"}
    out = serve_exit(workdir, header_only, "--host", "0.0.0.0")
    assert out.returncode != 0
    assert "Refusing to bind '0.0.0.0' with trusted-header auth only" in out.stderr
    tokens = {**header_only, "ATHENA_AUTH_API_TOKENS": f"ci:ci:Viewer:{'0' * 64}"}
    port, grpc_port = free_port(), free_port()
    p = start(
        ["api", "serve", "--host", "0.0.0.0", "--port", str(port), "--grpc-port", str(grpc_port)],
        workdir,
        env={**tokens, "ATHENA_ALLOWED_HOSTS": "localhost,127.0.0.1"},
    )
    p.rest_port = port
    try:
        wait_rest_ready(p)
    finally:
        assert p.stop() == 0, p.log()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"ATHENA_AUTH_IDENTITY_ROLE_MAP": "alice:Root"},
            "athena: ATHENA_AUTH_IDENTITY_ROLE_MAP entry 'alice:Root': unknown role 'Root' "
            "(allowed: Viewer, Operator, Admin).",
        ),
        ({"ATHENA_AUTH_DEFAULT_ROLE": "Superuser"}, "athena: ATHENA_AUTH_DEFAULT_ROLE: unknown role 'Superuser'"),
        (
            {"ATHENA_AUTH_API_TOKENS": "ci:bot:Admin:not-a-digest"},
            "athena: ATHENA_AUTH_API_TOKENS entry 'ci:bot:Admin:…': the last field must be the token's SHA-256 "
            "digest (64 hex digits).",
        ),
        ({"ATHENA_RATE_LIMIT_WRITE": "lots"}, "athena: ATHENA_RATE_LIMIT_WRITE 'lots': expected limits such as"),
        ({"ATHENA_TRUSTED_PROXIES": "gateway-host"}, "athena: ATHENA_TRUSTED_PROXIES entry 'gateway-host'"),
    ],
)
def test_bad_access_settings_stop_start_up_naming_the_entry(workdir: Path, env: dict[str, str], message: str) -> None:
    out = serve_exit(workdir, {"ATHENA_AUTH_ENABLED": "true", **env})
    assert out.returncode == 1
    assert out.stderr.strip().startswith(message), out.stderr
    assert "Traceback" not in out.stderr
    assert not (workdir / ".athena").exists()  # nothing was opened
