"""The one exception type domain code raises; interceptors turn it into a gRPC status."""

from __future__ import annotations

from athena.v1 import errors_pb2
from athena_client.contract import ERROR_CODES_BY_NUMBER

ErrorCode = errors_pb2.ErrorCode


class AthenaError(Exception):
    """A failure with a stable code. `code` is an `athena.v1.ErrorCode` value, so a code that is not in
    the contract cannot be raised."""

    def __init__(
        self,
        code: errors_pb2.ErrorCode.ValueType,
        message: str,
        *,
        retryable: bool = False,
        metadata: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        if code not in ERROR_CODES_BY_NUMBER:
            raise ValueError(f"unknown error code {code}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.metadata = metadata or {}

    @property
    def code_name(self) -> str:
        return ERROR_CODES_BY_NUMBER[self.code].code


def config_error(message: str) -> AthenaError:
    return AthenaError(ErrorCode.ERROR_CODE_CONFIG_ERROR, message)


def not_found(message: str) -> AthenaError:
    return AthenaError(ErrorCode.ERROR_CODE_NOT_FOUND, message)


def not_implemented(what: str) -> AthenaError:
    return AthenaError(
        ErrorCode.ERROR_CODE_NOT_IMPLEMENTED,
        f"{what} is not implemented by this server yet.",
    )
