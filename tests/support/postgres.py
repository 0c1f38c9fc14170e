"""The suite's own PostgreSQL: a throwaway cluster started from the installed server binaries on a free port
for the test session (pytest-postgresql's executor runs `pg_ctl`), and a new database per use, dropped
afterwards. A machine without the binaries fails the tests that need them, loudly: `scripts/test`
installs them, and a PostgreSQL test that skipped silently would hide a broken replica path.

PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user (which the Debian
package creates) through `runuser`."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pytest_postgresql.executors.proc import PostgreSQLExecutor
from pytest_postgresql.janitor import DatabaseJanitor

from tests.support.processes import AthenaProcess, free_port, start_api

USER = "postgres"


def server_bindir() -> Path:
    """Where `pg_ctl` lives: $ATHENA_PG_BINDIR, else the newest Debian cluster version, else $PATH."""
    if os.environ.get("ATHENA_PG_BINDIR"):
        return Path(os.environ["ATHENA_PG_BINDIR"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    pytest.fail(
        "PostgreSQL server binaries (pg_ctl) not found: run ./scripts/test, which installs them, "
        "or set ATHENA_PG_BINDIR",
        pytrace=False,
    )


def _pg_ctl(base: Path, bindir: Path) -> str:
    """`pg_ctl` itself, or as root a wrapper that runs it as the `postgres` user."""
    if os.geteuid() != 0:
        return str(bindir / "pg_ctl")
    wrapper = base / "pg_ctl"
    wrapper.write_text(f'#!/bin/sh\nexec runuser -u {USER} -- "{bindir}/pg_ctl" "$@"\n')
    wrapper.chmod(0o755)
    shutil.chown(base, user=USER)
    return str(wrapper)


def _start_cluster(base: Path, bindir: Path) -> PostgreSQLExecutor:
    """`pg_ctl start` on a newly picked port, again on another when it fails (a port taken between the pick
    and the bind, as with the Athena servers)."""
    for attempt in range(3):
        executor = PostgreSQLExecutor(
            executable=_pg_ctl(base, bindir),
            host="127.0.0.1",
            port=free_port(),
            datadir=str(base / "data"),
            unixsocketdir=str(base),
            logfile=str(base / "postgresql.log"),
            startparams="-w",
            dbname="postgres",
            user=USER,
            postgres_options="-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100",
        )
        try:
            return executor.start()
        except Exception:
            with contextlib.suppress(Exception):
                executor.stop()
            if attempt == 2:
                log = base / "postgresql.log"
                raise RuntimeError(f"PostgreSQL did not start:\n{log.read_text() if log.exists() else ''}") from None
    raise AssertionError("unreachable")


@dataclass
class Cluster:
    """A running throwaway cluster: its base URL, and `stop()` for tests of a store going away."""

    url: str
    executor: PostgreSQLExecutor

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.executor.stop()


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    """A new cluster on a free port for as long as the block runs (stopped and deleted afterwards)."""
    bindir = server_bindir()
    base = Path(tempfile.mkdtemp(prefix="athena-pg-"))
    try:
        executor = _start_cluster(base, bindir)
        running = Cluster(f"postgresql://{USER}@127.0.0.1:{executor.port}", executor)
        try:
            yield running
        finally:
            running.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[str]:
    """A new cluster for as long as the block runs; yields its base URL (no database)."""
    with cluster() as running:
        yield running.url


@contextlib.contextmanager
def new_database(cluster_url: str) -> Iterator[str]:
    """A new, empty database on the cluster; yields its URL and drops it (connections and all) afterwards."""
    port = int(cluster_url.rsplit(":", 1)[1])
    name = f"athena_test_{uuid.uuid4().hex[:10]}"
    with DatabaseJanitor(user=USER, host="127.0.0.1", port=port, dbname=name):
        yield f"{cluster_url}/{name}"


@contextlib.contextmanager
def servers_on_one_database(
    cluster_url: str, tmp_path: Path, count: int = 2, env: dict[str, str] | None = None
) -> Iterator[list[AthenaProcess]]:
    """`count` servers sharing a new database of the cluster."""
    with new_database(cluster_url) as url:
        servers: list[AthenaProcess] = []
        try:
            for i in range(count):
                servers.append(start_api(tmp_path / f"server{i}", env=env, extra=["--db", url]))
            yield servers
        finally:
            for p in servers:
                p.stop()
