"""gRPC callers and grpcurl: the same contract without the gateway."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from athena.v1 import (
    a2a_dlq_pb2,
    a2a_dlq_pb2_grpc,
    runs_pb2,
    runs_pb2_grpc,
    sessions_pb2,
    sessions_pb2_grpc,
    system_pb2,
    system_pb2_grpc,
)
from tests.support.grpc_errors import error_info
from tests.support.shapes import new_session

GRPCURL = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")


def test_create_and_get_run(channel: grpc.Channel) -> None:
    stub = runs_pb2_grpc.RunServiceStub(channel)
    session = new_session()
    result = stub.CreateRun(runs_pb2.CreateRunRequest(session_id=session, input="hello", provider="mock")).result
    assert (result.output, result.provider, result.model) == ("Echo: user: hello", "mock", "default")
    run = stub.GetRun(runs_pb2.GetRunRequest(run_id=result.run_id)).run
    assert run.status == runs_pb2.RUN_STATUS_SUCCEEDED
    sessions = sessions_pb2_grpc.SessionServiceStub(channel)
    entries = sessions.ListTranscriptEntries(sessions_pb2.ListTranscriptEntriesRequest(session_id=session)).items
    assert [e.role for e in entries] == [sessions_pb2.TRANSCRIPT_ROLE_USER, sessions_pb2.TRANSCRIPT_ROLE_ASSISTANT]


@pytest.mark.parametrize(
    ("request_", "code", "reason"),
    [
        (runs_pb2.CreateRunRequest(session_id="bad id", input="x"), grpc.StatusCode.INVALID_ARGUMENT, "CONFIG_ERROR"),
        (
            runs_pb2.CreateRunRequest(session_id=new_session(), input="x", provider="zz"),
            grpc.StatusCode.NOT_FOUND,
            "PROVIDER_NOT_FOUND",
        ),
    ],
)
def test_errors_carryerror_info(channel: grpc.Channel, request_, code, reason) -> None:
    with pytest.raises(grpc.RpcError) as exc:
        runs_pb2_grpc.RunServiceStub(channel).CreateRun(request_)
    assert exc.value.code() == code
    info = error_info(exc.value)
    assert (info.reason, info.domain, info.metadata["retryable"]) == (reason, "athena.dev", "false")
    trailing = dict(exc.value.trailing_metadata())
    assert info.metadata["traceId"] == trailing["x-trace-id"]


def test_caller_trace_id_is_used(channel: grpc.Channel) -> None:
    stub = system_pb2_grpc.SystemServiceStub(channel)
    _, call = stub.GetCapabilities.with_call(system_pb2.GetCapabilitiesRequest(), metadata=[("x-trace-id", "t-123")])
    assert dict(call.trailing_metadata())["x-trace-id"] == "t-123"


def test_dead_letter_queue_is_served(channel: grpc.Channel) -> None:
    """The DLQ answers (issue 11); a bad status is CONFIG_ERROR, as over REST."""
    stub = a2a_dlq_pb2_grpc.A2aDlqServiceStub(channel)
    assert isinstance(stub.ListA2aDlqItems(a2a_dlq_pb2.ListA2aDlqItemsRequest()), a2a_dlq_pb2.ListA2aDlqItemsResponse)
    with pytest.raises(grpc.RpcError) as exc:
        stub.ListA2aDlqItems(a2a_dlq_pb2.ListA2aDlqItemsRequest(status=-1))  # type: ignore[arg-type]
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(exc.value).reason == "CONFIG_ERROR"


def grpcurl(api, *args: str) -> str:
    out = subprocess.run([GRPCURL, "-plaintext", api.grpc_target, *args], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_grpcurl_lists_the_services(api) -> None:
    services = set(grpcurl(api, "list").split())
    assert {
        "athena.v1.SystemService",
        "athena.v1.RunService",
        "athena.v1.EventService",
        "athena.v1.SessionService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= services


def test_grpcurl_describes_a_service(api) -> None:
    out = grpcurl(api, "describe", "athena.v1.RunService")
    assert "rpc CreateRun ( .athena.v1.CreateRunRequest ) returns ( .athena.v1.CreateRunResponse )" in out


def test_grpcurl_calls_get_capabilities(api) -> None:
    out = grpcurl(api, "athena.v1.SystemService/GetCapabilities")
    assert json.loads(out) == {
        "executionBackend": "local",
        "stateStore": "sqlite",
        "supportsA2ABus": True,
        "providers": ["command", "mock", "openai"],
    }


def test_grpcurl_health_check(api) -> None:
    out = grpcurl(api, "grpc.health.v1.Health/Check")
    assert json.loads(out) == {"status": "SERVING"}
