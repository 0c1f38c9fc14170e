"""From a gRPC status to the REST error: the server's ErrorInfo names the code, the contract's one table
(`contract.ERROR_CODES`) names the HTTP status. Only statuses that carry no ErrorInfo (the upstream is
down, or is not an Athena server) fall back to a mapping by gRPC code."""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.rpc import error_details_pb2, status_pb2

from athena_client.contract import ERROR_CODES, ERROR_DOMAIN, ERROR_META_RETRY_AFTER, ERROR_META_RETRYABLE

STATUS_DETAILS_KEY = "grpc-status-details-bin"


class GatewayError(Exception):
    """An error the gateway answers with the error envelope; `code` is a key of `ERROR_CODES`."""

    def __init__(self, code: str, message: str, *, retryable: bool = False, retry_after: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after

    @property
    def http_status(self) -> int:
        return ERROR_CODES[self.code].http_status


def config_error(message: str) -> GatewayError:
    return GatewayError("CONFIG_ERROR", message)


def not_found(method: str, path: str) -> GatewayError:
    return GatewayError("NOT_FOUND", f"Not found: {method} {path}")


def internal_error(trace_id: str) -> GatewayError:
    return GatewayError("INTERNAL_ERROR", f"Internal error (trace id {trace_id}).")


def error_info(trailing_metadata: Iterable[tuple[str, str | bytes]] | None) -> error_details_pb2.ErrorInfo | None:
    """The Athena ErrorInfo in a status's `grpc-status-details-bin` trailer, if there is one."""
    for key, value in trailing_metadata or ():
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info) and info.domain == ERROR_DOMAIN and info.reason in ERROR_CODES:
                return info
    return None


def from_status(
    code: grpc.StatusCode,
    details: str | None,
    trailing_metadata: Iterable[tuple[str, str | bytes]] | None,
    rpc_name: str,
    trace_id: str,
) -> GatewayError:
    """The REST error for a failed upstream call."""
    info = error_info(trailing_metadata)
    if info is not None:
        retry_after = info.metadata.get(ERROR_META_RETRY_AFTER)
        return GatewayError(
            info.reason,
            details or "",
            retryable=info.metadata.get(ERROR_META_RETRYABLE) == "true",
            retry_after=retry_after if retry_after and retry_after.isdigit() else None,
        )
    # The fallback table: statuses that did not come from Athena's error interceptor.
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return GatewayError("NOT_IMPLEMENTED", f"{rpc_name} is not implemented by the upstream server.")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return GatewayError("UNAVAILABLE", "upstream gRPC server unavailable", retryable=True)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return GatewayError("CONFIG_ERROR", details or "Invalid request.")
    if code == grpc.StatusCode.NOT_FOUND:
        return GatewayError("NOT_FOUND", details or "Not found.")
    return internal_error(trace_id)


def from_rpc_error(exc: grpc.aio.AioRpcError, rpc_name: str, trace_id: str) -> GatewayError:
    return from_status(exc.code(), exc.details(), exc.trailing_metadata(), rpc_name, trace_id)
