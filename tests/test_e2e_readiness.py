"""Readiness answers for the store: ready while PostgreSQL is up, UNAVAILABLE (503 / gRPC UNAVAILABLE,
retryable) once it is gone, and ready again when it is back, on both transports; liveness (`GetHealth`)
stays up throughout, since the process itself is fine."""

from __future__ import annotations

from pathlib import Path

import grpc
import httpx
import pytest

from athena.v1 import system_pb2, system_pb2_grpc
from tests.support.grpc_errors import error_info
from tests.support.postgres import cluster, new_database
from tests.support.processes import running_api
from tests.support.shapes import error_of, ok_data
from tests.support.waiting import wait_until


def _grpc_readiness(channel: grpc.Channel) -> system_pb2.GetReadinessResponse:
    return system_pb2_grpc.SystemServiceStub(channel).GetReadiness(system_pb2.GetReadinessRequest(), timeout=60)


def test_readiness_fails_with_unavailable_while_the_store_is_down(tmp_path: Path) -> None:
    with cluster() as pg, new_database(pg.url) as url, running_api(tmp_path, extra=["--db", url]) as server:
        with (
            httpx.Client(base_url=server.rest_url, timeout=60) as rest,
            grpc.insecure_channel(server.grpc_target) as ch,
        ):
            ready = ok_data(rest.get("/api/v1/readiness"))
            assert ready["status"] == "ready" and [c["name"] for c in ready["checks"]] == ["store"]
            assert ready["checks"][0]["status"] == "ok"
            assert _grpc_readiness(ch).status == "ready"

            pg.stop()

            err = error_of(rest.get("/api/v1/readiness"), 503, "UNAVAILABLE")
            assert err["retryable"] is True
            assert err["message"].startswith("The store is unreachable")
            with pytest.raises(grpc.RpcError) as caught:
                _grpc_readiness(ch)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            info = error_info(caught.value)
            assert info.reason == "UNAVAILABLE"
            # Liveness is about the process, which still serves.
            assert ok_data(rest.get("/api/v1/health"))["status"] == "ok"
            pg.executor.start()  # the same data directory and port
            wait_until(lambda: rest.get("/api/v1/readiness").status_code == 200, "readiness once the store is back")
            assert ok_data(rest.get("/api/v1/readiness"))["status"] == "ready"
            assert _grpc_readiness(ch).status == "ready"
