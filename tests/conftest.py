"""Fixtures every test module may use; helpers live in `tests/support/`.

`api`, `rest` and `channel` are one shared server per test process (per xdist worker): tests on it create
what they read under unique ids, so they pass in any order and beside each other. A test that needs a
pristine store or other settings starts its own with `tests.support.processes.serving` / `running_api`.
`postgres_cluster` is the session's own throwaway PostgreSQL (see `tests/support/postgres.py`)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from athena_server.config import normalise_database_url
from athena_server.storage.migrate import migrate
from athena_server.storage.store import Store
from tests.support.postgres import new_database, throwaway_cluster
from tests.support.processes import AthenaProcess, start_api


@pytest.fixture(scope="session")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AthenaProcess]:
    """One `athena api serve` for the session. The short heartbeat lets SSE tests observe it."""
    p = start_api(
        tmp_path_factory.mktemp("api"),
        env={"ATHENA_SSE_HEARTBEAT_SECONDS": "1", "ATHENA_COMMAND_ALLOW": sys.executable},
    )
    yield p
    p.stop()


@pytest.fixture(scope="session")
def rest(api: AthenaProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.rest_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
def channel(api: AthenaProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(api.grpc_target) as ch:
        yield ch


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[str]:
    """Base URL of this test process's own PostgreSQL cluster (started on first use)."""
    with throwaway_cluster() as url:
        yield url


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated SQLite store of the test's own, for in-process tests of logic (a real store, never a mock)."""
    s = Store(f"sqlite+pysqlite:///{tmp_path / 'athena.db'}")
    await migrate(s)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated store of each kind in turn, for rules that must hold on both (PostgreSQL: a new database
    on the session's own cluster)."""
    with contextlib.ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite+pysqlite:///{tmp_path / 'athena.db'}"
        else:
            cluster = request.getfixturevalue("postgres_cluster")
            url = normalise_database_url(stack.enter_context(new_database(cluster)), tmp_path)
        s = Store(url)
        await migrate(s)
        try:
            yield s
        finally:
            await s.close()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
