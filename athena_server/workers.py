"""`athena api serve --workers N` and `athena grpc serve --workers N`: N server processes behind the same
ports, on the same database.

Why: one server process is bounded by its GIL (about one core, NOTES.md "Issue 13"), so a machine's other
cores only serve Athena through more processes. Every worker is a whole server, as a replica is: it
registers its own instance, heartbeats, reaps the runs of dead ones, and fires schedules and continues
workflows under the same row-level claims replicas use, so nothing here coordinates them. On SQLite the
workers queue for the file's write lock and wake each other's streams through it
(storage/sqlite_shared.py); on PostgreSQL they are replicas that share ports.

The supervisor (this process) brings the schema up to date once, then listens on the REST (and
`/metrics`) port itself and hands the socket to every worker, which all accept from it; gRPC cannot adopt a
socket, so each worker binds the gRPC port with SO_REUSEPORT and the kernel spreads connections over them
by address (a client with one connection talks to one worker). The supervisor holds the gRPC port bound
(not listening) for as long as it runs, so a second server cannot slip onto it, and `--grpc-port 0`
resolves to one port for all.

Workers run in processes of their own (spawned, not forked: no threads or loops inherited). The
supervisor starts a worker again when one dies (kill -9 included: its runs are failed by a sibling's
reaper, as for a dead replica), gives up when workers keep dying (RESTARTS_ALLOWED in RESTART_WINDOW
seconds: a broken set-up, not a crash), and on SIGTERM/SIGINT asks every worker to stop (each drains as a
lone server does) and waits for them. A worker whose supervisor vanished stops itself. Prometheus' figures
are merged across workers (PROMETHEUS_MULTIPROC_DIR, a directory of the supervisor's own unless set).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections import deque
from multiprocessing.process import BaseProcess
from typing import Literal

from athena_server.config import Settings

log = logging.getLogger("athena")

Kind = Literal["api", "grpc"]
MAX_WORKERS = 64
# A worker may be started again this many times per worker within RESTART_WINDOW seconds.
RESTARTS_ALLOWED = 3
RESTART_WINDOW = 60.0
# Beyond the servers' own grace period, how long the supervisor waits for a stopping worker before kill.
STOP_MARGIN_SECONDS = 10.0
# How often a worker checks that its supervisor is still there.
ORPHAN_CHECK_SECONDS = 1.0


def _reserve(host: str, port: int) -> socket.socket:
    """The gRPC port bound with SO_REUSEPORT and not listening: connections only reach the workers'
    listening sockets, and a server that does not share ports cannot bind it."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def check(settings: Settings) -> None:
    """Refuse what several workers cannot share."""
    from sqlalchemy.engine import make_url

    from athena_server.storage.sqlite_shared import database_file

    if not 1 <= settings.workers <= MAX_WORKERS:
        raise SystemExit(f"athena: --workers must be between 1 and {MAX_WORKERS}")
    url = make_url(settings.resolved_database_url())
    if url.get_backend_name() == "sqlite" and database_file(url) is None:
        raise SystemExit("athena: --workers needs a database file or PostgreSQL: an in-memory SQLite is one process's")


async def _migrate(settings: Settings) -> None:
    from athena_server.storage.migrate import migrate
    from athena_server.storage.store import Store

    store = Store(settings.resolved_database_url())
    try:
        await migrate(store)
    finally:
        await store.close()


def _worker(
    kind: Kind, index: int, settings: Settings, rest: socket.socket | None, metrics: socket.socket | None
) -> None:
    """A worker process's body: one whole server on the supervisor's sockets; its log lines name it."""
    from athena_server import serve

    serve.configure_logging(settings.log_level, settings.log_format, worker=index)
    supervisor = os.getppid()

    def orphaned() -> None:
        while os.getppid() == supervisor:
            time.sleep(ORPHAN_CHECK_SECONDS)
        log.warning("the supervisor (pid %d) is gone: stopping", supervisor)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=orphaned, name="athena-orphan-check", daemon=True).start()
    listening = serve.Listening(rest=rest, metrics=metrics, shared_grpc_port=True)
    run = serve.serve_api if kind == "api" else serve.serve_grpc
    with asyncio.Runner(loop_factory=serve.event_loop_factory()) as runner:
        runner.run(run(settings, listening))


class _Stop:
    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self, signum: int, _frame: object) -> None:
        log.info("%s: stopping the workers", signal.Signals(signum).name)
        self.event.set()


def serve_workers(kind: Kind, settings: Settings) -> None:
    """Supervise `settings.workers` server processes until SIGTERM/SIGINT (see the module's notes)."""
    from athena_server.serve import check_bind

    check(settings)
    check_bind(settings.grpc_host, settings)
    if kind == "api":
        check_bind(settings.host, settings)
    asyncio.run(_migrate(settings))

    try:
        grpc_guard = _reserve(settings.grpc_host, settings.grpc_port)
        rest = _listen(settings.host, settings.port) if kind == "api" else None
        metrics = _listen(settings.host, settings.metrics_port) if settings.metrics_port is not None else None
    except OSError as exc:
        raise SystemExit(f"athena: cannot bind: {exc}") from None
    ports: dict[str, int] = {"grpc_port": _port(grpc_guard)}
    if rest is not None:
        ports["port"] = _port(rest)
    if metrics is not None:
        ports["metrics_port"] = _port(metrics)
    settings = settings.model_copy(update=ports)

    own_metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own_metrics_dir = tempfile.mkdtemp(prefix="athena-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_metrics_dir

    stop = _Stop()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    context = multiprocessing.get_context("spawn")

    def start(index: int) -> BaseProcess:
        process = context.Process(
            target=_worker, args=(kind, index, settings, rest, metrics), name=f"athena-worker-{index}", daemon=False
        )
        process.start()
        return process

    workers = [start(i) for i in range(settings.workers)]
    log.info(
        "%d workers (pids %s): gRPC port %d%s",
        len(workers),
        ", ".join(str(w.pid) for w in workers),
        settings.grpc_port,
        f", REST port {settings.port}" if rest is not None else "",
    )
    failed = False
    restarts: deque[float] = deque()
    try:
        while not stop.event.wait(0.2):
            for index, process in enumerate(workers):
                if process.is_alive():
                    continue
                _forget(process)
                now = time.monotonic()
                restarts.append(now)
                while restarts and now - restarts[0] > RESTART_WINDOW:
                    restarts.popleft()
                if len(restarts) > RESTARTS_ALLOWED * len(workers):
                    log.error("workers keep exiting (last: pid %s, code %s): stopping", process.pid, process.exitcode)
                    failed = True
                    stop.event.set()
                    break
                workers[index] = start(index)
                log.warning(
                    "worker %d (pid %s) exited (code %s); started pid %s",
                    index,
                    process.pid,
                    process.exitcode,
                    workers[index].pid,
                )
    finally:
        _stop_all(workers, settings.shutdown_grace_seconds + STOP_MARGIN_SECONDS)
        for sock in (grpc_guard, rest, metrics):
            if sock is not None:
                sock.close()
        if own_metrics_dir is not None:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)
    log.info("stopped")
    if failed:
        raise SystemExit(1)


def _stop_all(workers: list[BaseProcess], seconds: float) -> None:
    for process in workers:
        if process.is_alive() and process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + seconds
    for process in workers:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            log.error("worker pid %s did not stop within %.0f s: killed", process.pid, seconds)
            process.kill()
            process.join(5)
        _forget(process)


def _forget(process: BaseProcess) -> None:
    """Drop a dead worker's live gauges from the merged figures (prometheus-client's multiprocess files)."""
    if process.pid is None or not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    from prometheus_client import multiprocess

    with contextlib.suppress(OSError):
        multiprocess.mark_process_dead(process.pid)
