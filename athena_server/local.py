"""The control plane inside the `athena` command itself: the CLI's `--transport local`.

The CLI talks to it as it talks to a server, through the real grpc.aio server with the same interceptors
(the auth gate, request bounds, rate limits), so a local command runs exactly the code a served one does.
The server listens on a unix socket in a private temporary directory (mode 0700), which no other user can
reach, and runs on a thread of its own with its own event loop because the CLI is blocking code.

It does only what the command asks: no schedule ticker (`athena schedule tick` fires due schedules
explicitly) and no continuing of workflow runs other processes left (a server or `athena workflow resume`
does that). Work a command started that finishes after the answer (`run --no-wait`, a workflow resumed
without waiting) would die with the process, so `settle` waits for it before `close`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from athena_server.config import Settings

if TYPE_CHECKING:
    from athena_server.plane import ControlPlane
    from athena_server.server import GrpcServer

log = logging.getLogger("athena.local")

T = TypeVar("T")

# AF_UNIX paths are limited to 108 bytes on Linux (104 on macOS); a long TMPDIR falls back to /tmp.
_MAX_SOCKET_PATH = 100
# How long start-up (migrations included) and shutdown may take before the CLI gives up on the plane.
START_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 30.0


class LocalPlaneError(Exception):
    """The in-process control plane could not start: a setting it cannot use, or a store it cannot open.
    The message names the cause in one line."""


def _socket_dir() -> str:
    path = tempfile.mkdtemp(prefix="athena-")
    if len(os.path.join(path, "grpc.sock")) <= _MAX_SOCKET_PATH:
        return path
    os.rmdir(path)
    return tempfile.mkdtemp(prefix="athena-", dir="/tmp")


class LocalPlane:
    """`start()`, call `target` with a gRPC client, `settle()`, `close()` (or use `with`)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._dir: str | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._plane: ControlPlane | None = None
        self._server: GrpcServer | None = None

    @property
    def target(self) -> str:
        """The gRPC target to dial: `unix:/tmp/athena-.../grpc.sock`."""
        if self._dir is None:
            raise RuntimeError("the local control plane is not started")
        return f"unix:{os.path.join(self._dir, 'grpc.sock')}"

    def start(self) -> str:
        """Migrate the store, start the plane and its server; returns `target`. LocalPlaneError when the
        settings or the store cannot be used."""
        from athena_server.access.gate import check_settings

        try:
            check_settings(self.settings)
        except ValueError as exc:
            raise LocalPlaneError(str(exc)) from None
        self._dir = _socket_dir()
        self._thread = threading.Thread(target=self._main, name="athena-local-plane", daemon=True)
        self._thread.start()
        try:
            self._ready.result(START_TIMEOUT_SECONDS)
        except BaseException:
            self.close()
            raise
        return self.target

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # never reached by the caller otherwise: report it through _ready
            if not self._ready.done():
                self._ready.set_exception(LocalPlaneError(f"the local control plane stopped: {exc!r}"))
            else:
                log.exception("the local control plane stopped abnormally")

    async def _serve(self) -> None:
        from athena_server.plane import ControlPlane
        from athena_server.server import start_grpc_server

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            try:
                self._plane = ControlPlane(self.settings)
            except SystemExit as exc:  # a provider setting it cannot use: the message is in the exit code
                raise LocalPlaneError(str(exc.code)) from None
            await self._plane.start(background=False)
            self._server = await start_grpc_server(self._plane, "", 0, address=self.target)
        except BaseException as exc:
            await self._teardown()
            error = exc if isinstance(exc, LocalPlaneError) else LocalPlaneError(f"{type(exc).__name__}: {exc}")
            self._ready.set_exception(error)
            return
        self._ready.set_result(None)
        await self._stop.wait()
        await self._teardown()

    async def _teardown(self) -> None:
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.stop(self.settings.shutdown_grace_seconds)
            self._server = None
        if self._plane is not None:
            try:
                await self._plane.close()
            except Exception:
                log.exception("closing the local control plane failed")
            self._plane = None

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("the local control plane is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _pending(self) -> int:
        return len(self._plane.background_work()) if self._plane is not None else 0

    async def _drain(self) -> None:
        # Until none is left: a workflow run starts its steps' runs as it goes.
        while self._plane is not None and (tasks := self._plane.background_work()):
            await asyncio.wait(tasks)

    def pending(self) -> int:
        """How many runs (or workflow and schedule runs) started by this process are still going."""
        running = self._thread is not None and self._thread.is_alive() and self._ready.done()
        return self._call(self._pending()) if running else 0

    def settle(self) -> None:
        """Wait until the work this process started has finished (no timeout: each run has its own). An
        interrupt (Ctrl-C) stops waiting; `close` then cancels what is left, recorded as cancelled."""
        if self.pending():
            self._call(self._drain())

    def close(self) -> None:
        """Stop the server and the plane (work still going is cancelled), remove the socket directory."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is not None and loop is not None and stop is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
            thread.join(STOP_TIMEOUT_SECONDS)
        elif thread is not None:
            thread.join(STOP_TIMEOUT_SECONDS)
        self._thread = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> LocalPlane:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
