"""Starting real Athena processes for end-to-end tests: free ports, a private working directory, and a
readiness wait that proves the process answering is ours. Nothing here is mocked.

A port picked by binding port 0 is free when picked, not when the server binds it (another test worker may
take it in between). So readiness means: the process is alive, it is the one listening on its ports (read
from the kernel with psutil, so a neighbour's server on a stolen port never passes for ours), and it
answers; `start_api` starts again on new ports when the bind was lost."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import psutil

ROOT = Path(__file__).resolve().parents[2]

#: How long a server may take to start on a loaded 2-core machine before the test fails.
START_TIMEOUT_S = 60.0
#: Starting again on new ports after a lost port race; more than two in a row means something else is wrong.
START_ATTEMPTS = 3
_BIND_LOST = ("address already in use", "errno 98", "failed to bind", "bind to address")


class PortLost(RuntimeError):
    """The server could not bind a port picked for it: another process took it first."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (exited, not yet reaped by a parent that is gone)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


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

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def listening(self) -> set[int]:
        """The TCP ports this process (or a child of it) listens on."""
        try:
            procs = [psutil.Process(self.proc.pid)]
            procs += procs[0].children(recursive=True)
            return {
                c.laddr.port for p in procs for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
            }
        except psutil.NoSuchProcess:
            return set()


def start(args: list[str], workdir: Path, env: dict[str, str] | None = None, name: str = "athena") -> AthenaProcess:
    """`athena <args>` in `workdir`, its output in `workdir/<name>.log`; not waited for."""
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


def _check_started(p: AthenaProcess, port: int | None) -> bool:
    """Raise when the process died (PortLost when it lost its port); True once it listens on `port`."""
    if p.proc.poll() is not None:
        log = p.log()
        if any(marker in log.lower() for marker in _BIND_LOST):
            raise PortLost(f"port {port} was taken:\n{log}")
        raise RuntimeError(f"athena exited with {p.proc.returncode}:\n{log}")
    return port is None or port in p.listening()


def wait_rest_ready(p: AthenaProcess, timeout: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _check_started(p, p.rest_port):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{p.rest_url}/api/v1/readiness", timeout=2).status_code == 200:
                    return
        time.sleep(0.05)
    raise RuntimeError(f"athena REST not ready in {timeout}s:\n{p.log()}")


def wait_grpc_ready(p: AthenaProcess, timeout: float = START_TIMEOUT_S) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _check_started(p, p.grpc_port):
            with contextlib.suppress(grpc.RpcError), grpc.insecure_channel(p.grpc_target) as ch:
                resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2)
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        time.sleep(0.05)
    raise RuntimeError(f"athena gRPC not ready in {timeout}s:\n{p.log()}")


def launch_api(workdir: Path, env: dict[str, str] | None = None, extra: list[str] | None = None) -> AthenaProcess:
    """`athena api serve` on newly picked ports, not yet waited for (so several servers start side by side)."""
    rest, grpc_port = free_port(), free_port()
    p = start(["api", "serve", "--port", str(rest), "--grpc-port", str(grpc_port), *(extra or [])], workdir, env, "api")
    p.rest_port, p.grpc_port = rest, grpc_port
    return p


def wait_api_ready(p: AthenaProcess) -> None:
    """Both of an `api serve` process's ports are its own and answer."""
    try:
        wait_grpc_ready(p)
        wait_rest_ready(p)
    except Exception:
        p.stop(signal.SIGKILL)
        raise


def start_api(workdir: Path, env: dict[str, str] | None = None, extra: list[str] | None = None) -> AthenaProcess:
    """`athena api serve` on free ports with its SQLite store in `workdir/.athena` (unless `extra` says
    otherwise), ready to serve; started again on new ports if another process took one first."""
    for attempt in range(START_ATTEMPTS):
        p = launch_api(workdir, env, extra)
        try:
            wait_api_ready(p)
            return p
        except PortLost:
            if attempt == START_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


@contextlib.contextmanager
def running_api(
    workdir: Path, env: dict[str, str] | None = None, extra: list[str] | None = None
) -> Iterator[AthenaProcess]:
    """A server for the `with` block, stopped however the block ends."""
    p = start_api(workdir, env, extra)
    try:
        yield p
    finally:
        p.stop()


@dataclass
class Served:
    """A server with a REST client and a gRPC channel to it, for a module's or a test's own server."""

    process: AthenaProcess
    rest: httpx.Client
    channel: grpc.Channel


@contextlib.contextmanager
def serving(workdir: Path, env: dict[str, str] | None = None, extra: list[str] | None = None) -> Iterator[Served]:
    with (
        running_api(workdir, env, extra) as p,
        httpx.Client(base_url=p.rest_url, timeout=60) as rest,
        grpc.insecure_channel(p.grpc_target) as channel,
    ):
        yield Served(p, rest, channel)
