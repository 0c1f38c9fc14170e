"""Server processes on a throw-away PostgreSQL database (the machine's cluster at 127.0.0.1:5432)."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

from tests.servers import AthenaProcess, start_api

PG = "postgresql://postgres@127.0.0.1:5432"


def psql(sql: str) -> None:
    subprocess.run(["psql", f"{PG}/postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True, timeout=60)


@contextlib.contextmanager
def servers_on_one_database(
    tmp_path: Path, count: int = 2, env: dict[str, str] | None = None
) -> Iterator[list[AthenaProcess]]:
    """`count` servers sharing a new database, which is dropped afterwards."""
    db = f"athena_test_{uuid.uuid4().hex[:10]}"
    psql(f"CREATE DATABASE {db}")
    url = f"{PG}/{db}"
    servers: list[AthenaProcess] = []
    try:
        for i in range(count):
            servers.append(start_api(tmp_path / f"server{i}", env=env, extra=["--db", url]))
        yield servers
    finally:
        for p in servers:
            p.stop()
        psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
