"""Running the server processes: gRPC and REST together (`athena api serve`) or apart.

Shutdown order on SIGINT/SIGTERM: stop taking REST requests, let in-flight ones finish within the grace
period, then stop gRPC the same way, then close the store, so no accepted request loses its answer
mid-commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import uvicorn

from athena_client.contract import DEFAULT_IDENTITY_HEADER
from athena_server import heap
from athena_server.config import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from athena_gateway.upstream import Upstream
    from athena_server.metrics import Metrics
    from athena_server.server import GrpcServer

log = logging.getLogger("athena")


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the process installs one handler for both servers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True)
class Listening:
    """What a worker of `--workers` serves on (athena_server/workers.py): the REST and `/metrics` sockets
    its supervisor listens on (every worker accepts from them), and gRPC on a port every worker binds."""

    rest: socket.socket | None = None
    metrics: socket.socket | None = None
    shared_grpc_port: bool = False


ALONE = Listening()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, settings: Settings) -> None:
    """Refuse to expose the control plane beyond this machine unless callers must prove who they are: auth
    on with API tokens or JWT. Trusted-header auth alone does not count (anyone who reaches the port can
    send the header); ATHENA_ALLOW_EXTERNAL_UNAUTHENTICATED is for a fronting proxy that authenticates."""
    if is_loopback(host) or settings.allow_external_unauthenticated:
        return
    from athena_server.access.config import AuthConfigError, load_auth

    try:
        auth = load_auth(settings)
    except AuthConfigError as exc:
        raise SystemExit(f"athena: {exc}") from None
    if auth.enabled and auth.verifiable:
        return
    why = "with trusted-header auth only" if auth.enabled else "without authentication"
    raise SystemExit(
        f"Refusing to bind {host!r} {why}. Bind 127.0.0.1; or turn on auth with credentials the server "
        "verifies (ATHENA_AUTH_ENABLED=true with ATHENA_AUTH_API_TOKENS or ATHENA_AUTH_JWT_KEY_FILE / "
        "ATHENA_AUTH_JWT_JWKS_FILE); or set ATHENA_ALLOW_EXTERNAL_UNAUTHENTICATED=true if something in front "
        "of Athena authenticates callers."
    )


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (it is a dependency; ATHENA_EVENT_LOOP=asyncio opts out):
    the loop every request, gRPC call and store wake-up runs on, so its cost per callback is the
    server's floor. None: asyncio's own."""
    if os.environ.get("ATHENA_EVENT_LOOP", "uvloop") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def configure_logging(level: str, log_format: str = "text", worker: int | None = None) -> None:
    """Every record (uvicorn's too) through one stderr handler in `log_format` (`text` or `json`), and a
    quiet start-up at INFO (athena_server/logs.py); `worker`: the number of a worker of `--workers N`, on
    every line. ValueError names an unknown level or format."""
    from athena_server.logs import configure

    configure(level, log_format, worker)


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


# The request line and headers h11 reads before giving up with its own plain-text 400 (its default is
# 16 KiB): room for one 64 KiB header beside ordinary ones, so an over-long forwarded header reaches the
# gateway and gets its CONFIG_ERROR envelope naming the header.
MAX_REQUEST_HEAD_BYTES = 80 * 1024


def _uvicorn(app: object, host: str, port: int, settings: Settings) -> _Uvicorn:
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        log_config=None,
        log_level=None,  # its loggers propagate to the root handler (configure_logging)
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=int(max(1, settings.shutdown_grace_seconds)),
        # h11, not httptools, though httptools parses faster: uvicorn's httptools protocol bounds no request
        # head (any size is buffered) and answers a malformed header with its own plain-text 400, where
        # h11 keeps MAX_REQUEST_HEAD_BYTES and lets the gateway answer in the envelope.
        http="h11",
        h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,
    )
    return _Uvicorn(config)


def gateway_app(upstream: str | Upstream, settings: Settings, metrics: Metrics | None = None) -> FastAPI:
    """The REST gateway with the operator's settings: the hosts it answers (the loopback names and the bind
    address unless ATHENA_ALLOWED_HOSTS says otherwise), the CORS origins and the identity header's name;
    `metrics` (the plane's, in `athena api serve`) are the ones its `/metrics` shows."""
    from athena_gateway.app import create_app
    from athena_gateway.guard import default_allowed_hosts, split_setting

    try:
        return create_app(
            upstream,
            heartbeat_seconds=settings.sse_heartbeat_seconds,
            allowed_hosts=split_setting(settings.allowed_hosts) or default_allowed_hosts(settings.host),
            cors_origins=split_setting(settings.cors_origins),
            identity_header=settings.auth_identity_header.strip().lower() or DEFAULT_IDENTITY_HEADER,
            metrics=metrics,
        )
    except ValueError as exc:
        raise SystemExit(f"ATHENA_ALLOWED_HOSTS: {exc}") from None


def _serving(server: _Uvicorn, sock: socket.socket | None) -> asyncio.Task[None]:
    """uvicorn serving, on its own port or on `sock` (a supervisor's socket, bound and listening)."""
    return asyncio.create_task(server.serve(sockets=[sock] if sock is not None else None))


async def _run_rest(server: _Uvicorn, stop: asyncio.Event, sock: socket.socket | None = None) -> None:
    heap.settle()
    task = _serving(server, sock)
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        stopper.cancel()
        task.result()  # re-raise a start-up failure (port taken, ...)
        if not server.started:
            raise SystemExit("REST server failed to start")
        return
    server.should_exit = True
    await task


@contextlib.asynccontextmanager
async def _grpc_running(settings: Settings, listening: Listening) -> AsyncIterator[GrpcServer]:
    """The control plane and its gRPC server, stopped (grace period, then store closed) on exit."""
    from athena_server.plane import ControlPlane
    from athena_server.server import start_grpc_server

    plane = ControlPlane(settings)
    await plane.start()
    grpc_server = await start_grpc_server(
        plane, settings.grpc_host, settings.grpc_port, shared_port=listening.shared_grpc_port
    )
    try:
        async with _metrics_port(settings, plane.metrics, listening.metrics):
            yield grpc_server
    finally:
        await grpc_server.stop(settings.shutdown_grace_seconds)
        await plane.close()
        log.info("stopped")


@contextlib.asynccontextmanager
async def _metrics_port(settings: Settings, metrics: Metrics, sock: socket.socket | None) -> AsyncIterator[None]:
    """`/metrics` on a port of its own on `host` when `metrics_port` is set (ATHENA_METRICS_PORT), stopped
    on exit; a port it cannot bind stops start-up. `sock`: the supervisor's socket for it."""
    if settings.metrics_port is None:
        yield
        return
    from athena_server.metrics import exposition_app

    check_bind(settings.host, settings)
    server = _uvicorn(exposition_app(metrics), settings.host, settings.metrics_port, settings)
    task = _serving(server, sock)
    while not server.started:
        if task.done():
            task.result()  # re-raise its failure (port taken, ...)
            raise SystemExit("metrics server failed to start")
        await asyncio.sleep(0.01)
    log.info("metrics on http://%s:%d/metrics", settings.host, settings.metrics_port)
    try:
        yield
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def _traces(service: str) -> AsyncIterator[None]:
    """OpenTelemetry traces when the `OTEL_*` variables ask for an exporter (athena_server/otel.py), their
    last spans flushed on exit; a variable Athena cannot honour stops start-up."""
    from athena_server import otel

    try:
        otel.configure(service)
    except ValueError as exc:
        raise SystemExit(f"athena: {exc}") from None
    try:
        yield
    finally:
        await asyncio.to_thread(otel.shutdown)


async def serve_api(settings: Settings, listening: Listening = ALONE) -> None:
    """gRPC and REST in one process, the gateway calling the servicers in-process through the server's
    interceptor chain (athena_gateway/inprocess.py): the same answers as over gRPC, without the hop."""
    from athena_gateway.inprocess import InProcessUpstream

    check_bind(settings.host, settings)
    check_bind(settings.grpc_host, settings)
    stop = _stop_event()
    async with _traces("athena"), _grpc_running(settings, listening) as grpc_server:
        upstream = InProcessUpstream(grpc_server.local_handler)
        rest = _uvicorn(gateway_app(upstream, settings, grpc_server.metrics), settings.host, settings.port, settings)
        log.info(
            "REST listening on http://%s:%d (in-process, gRPC on port %d)",
            settings.host,
            settings.port,
            grpc_server.port,
        )
        await _run_rest(rest, stop, listening.rest)


async def serve_grpc(settings: Settings, listening: Listening = ALONE) -> None:
    check_bind(settings.grpc_host, settings)
    stop = _stop_event()
    async with _traces("athena"), _grpc_running(settings, listening):
        heap.settle()
        await stop.wait()


async def serve_gateway(settings: Settings, upstream: str) -> None:
    check_bind(settings.host, settings)
    stop = _stop_event()
    app = gateway_app(upstream, settings)
    async with _traces("athena-gateway"):
        log.info("REST listening on http://%s:%d (upstream gRPC %s)", settings.host, settings.port, upstream)
        await _run_rest(_uvicorn(app, settings.host, settings.port, settings), stop)
    log.info("stopped")
