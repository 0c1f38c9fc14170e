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
import signal
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import uvicorn

from athena_server.config import Settings

if TYPE_CHECKING:
    from athena_server.server import GrpcServer

log = logging.getLogger("athena")


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the process installs one handler for both servers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, settings: Settings) -> None:
    """Refuse to expose an unauthenticated control plane beyond this machine unless told to."""
    if not is_loopback(host) and not settings.allow_external_unauthenticated:
        raise SystemExit(
            f"Refusing to bind {host!r} without authentication. Bind 127.0.0.1, or set "
            "ATHENA_ALLOW_EXTERNAL_UNAUTHENTICATED=true if something in front of Athena authenticates callers."
        )


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _uvicorn(app: object, host: str, port: int, settings: Settings) -> _Uvicorn:
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=int(max(1, settings.shutdown_grace_seconds)),
    )
    return _Uvicorn(config)


async def _run_rest(server: _Uvicorn, stop: asyncio.Event) -> None:
    task = asyncio.create_task(server.serve())
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
async def _grpc_running(settings: Settings) -> AsyncIterator[GrpcServer]:
    """The control plane and its gRPC server, stopped (grace period, then store closed) on exit."""
    from athena_server.plane import ControlPlane
    from athena_server.server import start_grpc_server

    plane = ControlPlane(settings)
    await plane.start()
    grpc_server = await start_grpc_server(plane, settings.grpc_host, settings.grpc_port)
    try:
        yield grpc_server
    finally:
        await grpc_server.stop(settings.shutdown_grace_seconds)
        await plane.close()
        log.info("stopped")


async def serve_api(settings: Settings) -> None:
    """gRPC and REST in one process, the gateway calling gRPC over loopback."""
    from athena_gateway.app import create_app

    check_bind(settings.host, settings)
    check_bind(settings.grpc_host, settings)
    stop = _stop_event()
    async with _grpc_running(settings) as grpc_server:
        upstream = f"{settings.grpc_host}:{grpc_server.port}"
        app = create_app(upstream, heartbeat_seconds=settings.sse_heartbeat_seconds)
        rest = _uvicorn(app, settings.host, settings.port, settings)
        log.info("REST listening on http://%s:%d (upstream gRPC %s)", settings.host, settings.port, upstream)
        await _run_rest(rest, stop)


async def serve_grpc(settings: Settings) -> None:
    check_bind(settings.grpc_host, settings)
    stop = _stop_event()
    async with _grpc_running(settings):
        await stop.wait()


async def serve_gateway(settings: Settings, upstream: str) -> None:
    from athena_gateway.app import create_app

    check_bind(settings.host, settings)
    stop = _stop_event()
    app = create_app(upstream, heartbeat_seconds=settings.sse_heartbeat_seconds)
    log.info("REST listening on http://%s:%d (upstream gRPC %s)", settings.host, settings.port, upstream)
    await _run_rest(_uvicorn(app, settings.host, settings.port, settings), stop)
    log.info("stopped")
