"""Several server processes on one SQLite file, end to end: two `athena api serve` on the same file see each
other's commits on their streams at once (their own poll is 600 s), and `athena api serve --workers 2`
serves REST and gRPC from two workers behind the same ports, every run persisted once, its figures merged
in `/metrics`; a worker killed with SIGKILL is replaced, SIGTERM stops them all, and workers whose
supervisor died stop themselves."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import psutil
import pytest

from athena.v1 import runs_pb2, runs_pb2_grpc
from athena_server.workers import RESTARTS_ALLOWED
from tests.support.collected import session_events
from tests.support.events import events_of
from tests.support.processes import ROOT, AthenaProcess, alive, start_api
from tests.support.shapes import new_session, ok_data
from tests.support.waiting import wait_until
from tests.test_e2e_metrics import CREATE_RUN, scrape, value

QUIET = {"ATHENA_EVENT_POLL_SECONDS": "600"}


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    """A query on the live server's SQLite file (WAL: a reader beside the writers)."""
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql).fetchall())


def workers_of(p: AthenaProcess) -> set[int]:
    """The supervisor's children that listen on the gRPC port: its workers."""
    found = set()
    for child in psutil.Process(p.proc.pid).children():
        try:
            ports = {c.laddr.port for c in child.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
        except psutil.NoSuchProcess:
            continue
        if p.grpc_port in ports and p.rest_port in ports:
            found.add(child.pid)
    return found


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[tuple[AthenaProcess, Path]]:
    db = tmp_path / "shared.db"
    p = start_api(tmp_path / "srv", env=QUIET, extra=["--db", str(db), "--workers", "2"])
    try:
        wait_until(lambda: len(workers_of(p)) == 2, "both workers listening", 60)
        yield p, db
    finally:
        p.stop()


def test_two_servers_on_one_sqlite_file_see_each_others_commits_at_once(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    a = start_api(tmp_path / "a", env=QUIET, extra=["--db", str(db)])
    b = start_api(tmp_path / "b", env=QUIET, extra=["--db", str(db)])
    session = new_session()
    try:
        with (
            httpx.Client(base_url=a.rest_url, timeout=60) as ca,
            grpc.insecure_channel(b.grpc_target) as channel,
        ):
            events = session_events(channel, session)
            try:
                for n, text in enumerate(["one", "two", "three"], start=1):
                    ok_data(ca.post("/api/v1/runs", json={"sessionId": session, "input": text, "provider": "mock"}))
                    # Only B's writer seeing A's commit can wake B's stream within this (B polls every 600 s).
                    wait_until(lambda n=n: len(events.items) >= 3 * n, f"run {text} on B's stream", 20)
            finally:
                events.close()
            logged = events_of(ca, session)
        assert [e.id for e in events.items] == [e["id"] for e in logged]
        assert [e.type for e in events.items] == ["run.created", "run.started", "run.completed"] * 3
    finally:
        a.stop()
        b.stop()


def test_workers_serve_rest_and_grpc_on_shared_ports_and_persist_every_run_once(
    supervised: tuple[AthenaProcess, Path],
) -> None:
    p, db = supervised
    workers = workers_of(p)
    session = new_session()
    made: list[str] = []
    for i in range(16):  # a new connection each: the kernel spreads connections, not requests
        with httpx.Client(base_url=p.rest_url, timeout=60) as client:
            data = ok_data(client.post("/api/v1/runs", json={"sessionId": f"{session}-r{i}", "input": "hi"}))
            assert data["status"] == "succeeded"
            made.append(data["runId"])
    for i in range(16):
        with grpc.insecure_channel(p.grpc_target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
            result = (
                runs_pb2_grpc.RunServiceStub(channel)
                .CreateRun(runs_pb2.CreateRunRequest(session_id=f"{session}-g{i}", input="hi"), timeout=60)
                .result
            )
            assert result.status == runs_pb2.RUN_STATUS_SUCCEEDED
            made.append(result.run_id)
    assert len(set(made)) == 32
    stored = _rows(db, f"SELECT id, pid FROM runs WHERE session_id LIKE '{session}-%'")
    assert sorted(r[0] for r in stored) == sorted(made)
    # Both workers executed runs: each records the pid that ran it.
    assert {r[1] for r in stored} == workers
    live = {r[0] for r in _rows(db, "SELECT pid FROM instances")}
    assert workers <= live
    # Each worker's lines name it.
    started = [line for line in p.log().splitlines() if "gRPC listening on" in line]
    assert sorted(line.rsplit(" ", 1)[-1] for line in started) == ["[worker=0]", "[worker=1]"]
    # Whichever worker answers the scrape shows both workers' figures.
    samples, _ = scrape(p.rest_url)
    assert value(samples, "athena_rpc_requests_total", rpc=CREATE_RUN, transport="rest", code="OK") == 16
    assert value(samples, "athena_rpc_requests_total", rpc=CREATE_RUN, transport="grpc", code="OK") == 16


def test_a_killed_worker_is_replaced_and_sigterm_stops_them_all(supervised: tuple[AthenaProcess, Path]) -> None:
    p, _ = supervised
    before = workers_of(p)
    victim = min(before)
    psutil.Process(victim).send_signal(signal.SIGKILL)

    def replaced_listening() -> bool:
        now = workers_of(p)  # one look: the victim may still be listed by a first call and gone from a second
        return len(now) == 2 and victim not in now

    wait_until(replaced_listening, "a new worker listening", 60)
    replaced = workers_of(p)
    assert len(replaced) == 2 and len(replaced & before) == 1
    assert f"(pid {victim}) exited (code -9); started pid" in p.log()
    for _ in range(6):
        with httpx.Client(base_url=p.rest_url, timeout=60) as client:
            assert ok_data(client.post("/api/v1/runs", json={"sessionId": new_session(), "input": "hi"}))
    assert p.stop(signal.SIGTERM) == 0
    assert not any(alive(pid) for pid in replaced)


def test_workers_whose_supervisor_died_stop_themselves(supervised: tuple[AthenaProcess, Path]) -> None:
    p, _ = supervised
    workers = workers_of(p)
    p.proc.send_signal(signal.SIGKILL)
    p.proc.wait(10)
    wait_until(lambda: not any(alive(pid) for pid in workers), "the orphaned workers to stop", 30)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--db", "sqlite://"], "--workers needs a database file or PostgreSQL"),
        (["--workers", "0"], "Invalid value for '--workers'"),
        (["--workers", "65"], "Invalid value for '--workers'"),
    ],
)
def test_workers_that_cannot_work_are_refused_at_start(tmp_path: Path, args: list[str], message: str) -> None:
    extra = ["--workers", "2"] if "--workers" not in args else []
    done = subprocess.run(
        [sys.executable, "-m", "athena_client.cli", "api", "serve", *extra, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode != 0
    assert message in done.stderr


def test_workers_that_keep_dying_make_the_supervisor_give_up(tmp_path: Path) -> None:
    """Every worker process exits at once (a sitecustomize only spawned children run): the supervisor starts
    them again RESTARTS_ALLOWED times per worker, then stops with exit code 1 instead of looping."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(
        "import os, sys\nif '--multiprocessing-fork' in sys.orig_argv:\n    os._exit(3)\n"
    )
    path = os.pathsep.join(p for p in (str(hooks), os.environ.get("PYTHONPATH", "")) if p)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "athena_client.cli",
            "api",
            "serve",
            "--workers",
            "2",
            "--port",
            "0",
            "--grpc-port",
            "0",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": path},
    )
    assert done.returncode == 1, done.stderr
    restarted = [line for line in done.stderr.splitlines() if "exited (code 3); started pid" in line]
    assert len(restarted) == RESTARTS_ALLOWED * 2, done.stderr
    assert "workers keep exiting" in done.stderr
