"""The SDK's one error type, read from either transport's answer.

A gRPC status carries Athena's `google.rpc.ErrorInfo` (reason = the contract's error code, metadata =
retryable, trace id, retry-after); a REST answer carries the error envelope and the `Retry-After` header.
Both become the same `AthenaError`, so code written against one transport handles the other's refusals
unchanged. `AthenaTransportError` is what never got an answer from Athena (nothing listening, the
connection dropped, the deadline passed): the caller cannot know whether the server acted on the request.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

from athena_client.contract import (
    ERROR_CODES,
    ERROR_DOMAIN,
    ERROR_META_RETRY_AFTER,
    ERROR_META_RETRYABLE,
    ERROR_META_TRACE_ID,
)

STATUS_DETAILS_KEY = "grpc-status-details-bin"

# Codes of transport failures: client-side, never sent by a server, so not in the contract's error table.
TRANSPORT_UNAVAILABLE = "UNAVAILABLE"
TRANSPORT_DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"


class AthenaError(Exception):
    """A refusal or failure of one call. `code` is the contract's spelling (`POLICY_CONCURRENCY_LIMIT_EXCEEDED`,
    a key of `contract.ERROR_CODES`), `http_status` its REST status, `retry_after` the seconds the server
    asked the caller to wait (None when it did not)."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        trace_id: str | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.trace_id = trace_id
        self.http_status = http_status if http_status is not None else _http_status(code)
        self.retry_after = retry_after

    def __eq__(self, other: object) -> bool:
        """Equal when the server said the same thing (the trace id differs per call)."""
        if not isinstance(other, AthenaError):
            return NotImplemented
        return (type(self), self.code, self.message, self.retryable, self.http_status) == (
            type(other),
            other.code,
            other.message,
            other.retryable,
            other.http_status,
        )

    def __hash__(self) -> int:
        return hash((type(self), self.code, self.message))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, retryable={self.retryable})"


class AthenaTransportError(AthenaError):
    """The call got no answer from Athena: `code` is UNAVAILABLE (could not connect, or the connection
    broke) or DEADLINE_EXCEEDED (the call's timeout passed). Always retryable in itself; whether a retry is
    safe depends on the RPC (the client retries only reads and idempotency-keyed calls)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message, retryable=True, http_status=None)
        self.http_status = None


def _http_status(code: str) -> int | None:
    info = ERROR_CODES.get(code)
    return info.http_status if info is not None else None


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


def _seconds(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value >= 0 else None


# gRPC statuses that did not come from Athena's error interceptor (no ErrorInfo): what they mean to a caller.
_FALLBACK: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.UNIMPLEMENTED: "NOT_IMPLEMENTED",
    grpc.StatusCode.INVALID_ARGUMENT: "CONFIG_ERROR",
    grpc.StatusCode.NOT_FOUND: "NOT_FOUND",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "PAYLOAD_TOO_LARGE",
    grpc.StatusCode.UNAUTHENTICATED: "AUTH_TOKEN_INVALID",
    grpc.StatusCode.PERMISSION_DENIED: "AUTHZ_DENIED",
}


def from_grpc(
    code: grpc.StatusCode, details: str | None, trailing_metadata: Iterable[tuple[str, str | bytes]] | None
) -> AthenaError:
    """The error of a failed gRPC call."""
    info = error_info(trailing_metadata)
    if info is not None:
        return AthenaError(
            info.reason,
            details or "",
            retryable=info.metadata.get(ERROR_META_RETRYABLE) == "true",
            trace_id=info.metadata.get(ERROR_META_TRACE_ID) or None,
            retry_after=_seconds(info.metadata.get(ERROR_META_RETRY_AFTER)),
        )
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        # CANCELLED without ErrorInfo: the server went away mid-call (shutdown), or the channel closed.
        return AthenaTransportError(TRANSPORT_UNAVAILABLE, details or "server unavailable")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return AthenaTransportError(TRANSPORT_DEADLINE_EXCEEDED, details or "deadline exceeded")
    fallback = _FALLBACK.get(code)
    if fallback is not None:
        return AthenaError(fallback, details or code.name)
    return AthenaError("UNKNOWN_ERROR", f"{code.name}: {details or ''}".strip())


def from_rpc_error(exc: grpc.RpcError) -> AthenaError:
    """`from_grpc` for a raised grpc.RpcError (sync `grpc.Call` or `grpc.aio.AioRpcError`)."""
    call: Any = exc
    return from_grpc(call.code(), call.details(), call.trailing_metadata())


def from_envelope(status: int, body: bytes, headers: Mapping[str, str]) -> AthenaError:
    """The error of a REST answer whose envelope says `ok: false` (or that is not an Athena envelope)."""
    try:
        document = json.loads(body)
        error = document["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        text = body[:200].decode("utf-8", "replace")
        if status in (502, 503, 504):
            return AthenaTransportError(TRANSPORT_UNAVAILABLE, f"HTTP {status} from a proxy: {text}")
        return AthenaError(
            "UNKNOWN_ERROR", f"HTTP {status} without an Athena error envelope: {text}", http_status=status
        )
    return AthenaError(
        code,
        message,
        retryable=bool(error.get("retryable", False)),
        trace_id=error.get("traceId") or headers.get("x-trace-id"),
        http_status=status,
        retry_after=_seconds(headers.get("retry-after")),
    )
