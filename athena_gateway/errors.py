"""From a gRPC status to the REST error: the server's ErrorInfo names the code, the contract's one table
(`contract.ERROR_CODES`) names the HTTP status. Only statuses that carry no ErrorInfo (the upstream is
down, or is not an Athena server) fall back to a mapping by gRPC code."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import grpc

from athena_client.contract import (
    ERROR_CODES,
    ERROR_META_RATE_LIMIT,
    ERROR_META_RATE_REMAINING,
    ERROR_META_RATE_RESET,
    ERROR_META_RETRY_AFTER,
    ERROR_META_RETRYABLE,
)
from athena_client.errors import error_info

# ErrorInfo metadata the REST answer repeats as response headers (whole numbers only: anything else in
# them is not something a client could act on, so it is left out rather than passed through).
_HEADERS_FROM_METADATA = (
    (ERROR_META_RETRY_AFTER, "retry-after"),
    (ERROR_META_RATE_LIMIT, "x-ratelimit-limit"),
    (ERROR_META_RATE_REMAINING, "x-ratelimit-remaining"),
    (ERROR_META_RATE_RESET, "x-ratelimit-reset"),
)


class GatewayError(Exception):
    """An error the gateway answers with the error envelope; `code` is a key of `ERROR_CODES`. `headers`
    go on the response (Retry-After and the X-RateLimit-* figures of a refusal)."""

    def __init__(
        self, code: str, message: str, *, retryable: bool = False, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.headers: Mapping[str, str] = headers or {}

    @property
    def http_status(self) -> int:
        return ERROR_CODES[self.code].http_status

    @property
    def retry_after(self) -> str | None:
        return self.headers.get("retry-after")


def config_error(message: str) -> GatewayError:
    return GatewayError("CONFIG_ERROR", message)


def not_found(method: str, path: str) -> GatewayError:
    return GatewayError("NOT_FOUND", f"Not found: {method} {path}")


def internal_error(trace_id: str) -> GatewayError:
    return GatewayError("INTERNAL_ERROR", f"Internal error (trace id {trace_id}).")


def shown(value: str, limit: int = 64) -> str:
    """A client-sent value quoted for an error message, cut short so a long header is not echoed whole."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _response_headers(metadata: Mapping[str, str]) -> dict[str, str]:
    return {
        header: value
        for key, header in _HEADERS_FROM_METADATA
        if (value := metadata.get(key, "")).isascii() and value.isdigit()
    }


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
        return GatewayError(
            info.reason,
            details or "",
            retryable=info.metadata.get(ERROR_META_RETRYABLE) == "true",
            headers=_response_headers(info.metadata),
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
