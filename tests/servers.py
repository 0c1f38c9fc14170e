"""Starting real Athena processes for end-to-end tests: free ports, a private working directory, and a
readiness wait. Nothing here is mocked."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class AthenaProcess:
    proc: subprocess.Popen[bytes]
    workdir: Path
    rest_port: int | None = None
    grpc_port: int | None = None
    log_path: Path = field(default_factory=Path)

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def start(args: list[str], workdir: Path, env: dict[str, str] | None = None, name: str = "athena") -> AthenaProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}.log"
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "athena_client.cli", *args],
            cwd=workdir,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return AthenaProcess(proc=proc, workdir=workdir, log_path=log_path)


def wait_rest_ready(p: AthenaProcess, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.proc.poll() is not None:
            raise RuntimeError(f"athena exited with {p.proc.returncode}:\n{p.log()}")
        try:
            if httpx.get(f"{p.rest_url}/api/v1/readiness", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"athena REST not ready in {timeout}s:\n{p.log()}")


def wait_grpc_ready(p: AthenaProcess, timeout: float = 30) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.proc.poll() is not None:
            raise RuntimeError(f"athena exited with {p.proc.returncode}:\n{p.log()}")
        try:
            with grpc.insecure_channel(p.grpc_target) as ch:
                resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        except grpc.RpcError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"athena gRPC not ready in {timeout}s:\n{p.log()}")


def start_api(workdir: Path, env: dict[str, str] | None = None, extra: list[str] | None = None) -> AthenaProcess:
    """`athena api serve` on free ports with its SQLite store in `workdir/.athena`."""
    rest, grpc_port = free_port(), free_port()
    p = start(["api", "serve", "--port", str(rest), "--grpc-port", str(grpc_port), *(extra or [])], workdir, env, "api")
    p.rest_port, p.grpc_port = rest, grpc_port
    try:
        wait_rest_ready(p)
    except Exception:
        p.stop(signal.SIGKILL)
        raise
    return p
