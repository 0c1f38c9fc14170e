"""Unpacking the `google.rpc.Status` an Athena gRPC error carries: its ErrorInfo (reason = the Athena error
code, metadata = traceId etc.) and its RetryInfo."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2


def _details(err: grpc.RpcError) -> list[status_pb2.Status]:
    return [
        status_pb2.Status.FromString(value)
        for key, value in err.trailing_metadata() or ()
        if key == "grpc-status-details-bin"
    ]


def error_info(err: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    """The ErrorInfo of a failed call; fails the test when the server sent none (every Athena error has one)."""
    for status in _details(err):
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                return info
    raise AssertionError(f"no ErrorInfo on {err!r}")


def retry_delay_seconds(err: grpc.RpcError) -> int | None:
    for status in _details(err):
        for detail in status.details:
            retry = error_details_pb2.RetryInfo()
            if detail.Unpack(retry):
                return int(retry.retry_delay.seconds)
    return None


def reason(err: grpc.RpcError) -> str:
    """The Athena error code of a failed call, or `grpc:<STATUS>` when a non-Athena layer refused it."""
    try:
        return error_info(err).reason
    except AssertionError:
        return f"grpc:{err.code().name}"
