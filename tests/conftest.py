from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from tests.servers import AthenaProcess, start_api


@pytest.fixture(scope="session")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AthenaProcess]:
    """One `athena api serve` for the session. Tests that need a pristine store use their own sessions
    ids or start their own server. The short heartbeat lets SSE tests observe it."""
    p = start_api(
        tmp_path_factory.mktemp("api"),
        env={"ATHENA_SSE_HEARTBEAT_SECONDS": "1", "ATHENA_COMMAND_ALLOW": sys.executable},
    )
    yield p
    p.stop()


@pytest.fixture(scope="session")
def rest(api: AthenaProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.rest_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def channel(api: AthenaProcess) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(api.grpc_target) as ch:
        yield ch


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
