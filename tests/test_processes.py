"""The server processes: gRPC and gateway apart, clean shutdown on signals, the loopback guard."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port, start, start_api, wait_grpc_ready, wait_rest_ready
from tests.shapes import ok_data


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
        data = ok_data(httpx.post(f"{gateway.rest_url}/api/v1/runs", json={"sessionId": "apart", "input": "hello"}))
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
    try:
        deadline_resp = None
        for _ in range(100):
            try:
                deadline_resp = httpx.get(f"{gateway.rest_url}/api/v1/capabilities", timeout=10)
                break
            except httpx.HTTPError:
                import time

                time.sleep(0.1)
        assert deadline_resp is not None
        assert deadline_resp.status_code == 503
        assert deadline_resp.json()["error"]["code"] == "UNAVAILABLE"
        assert deadline_resp.json()["error"]["retryable"] is True
    finally:
        gateway.stop()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_api_serve_shuts_down_cleanly(workdir: Path, sig: int) -> None:
    p = start_api(workdir)
    ok_data(httpx.post(f"{p.rest_url}/api/v1/runs", json={"sessionId": "bye", "input": "hello"}))
    assert p.stop(sig) == 0, p.log()
    assert "Traceback" not in p.log()


def test_default_store_is_sqlite_under_dot_athena(workdir: Path) -> None:
    p = start_api(workdir)
    try:
        assert (workdir / ".athena" / "athena.db").exists()
    finally:
        p.stop()


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
