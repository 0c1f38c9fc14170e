from athena.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_CODE_UNSPECIFIED: _ClassVar[ErrorCode]
    ERROR_CODE_CONFIG_ERROR: _ClassVar[ErrorCode]
    ERROR_CODE_AUTH_IDENTITY_MISSING: _ClassVar[ErrorCode]
    ERROR_CODE_AUTH_TOKEN_MISSING: _ClassVar[ErrorCode]
    ERROR_CODE_AUTH_TOKEN_INVALID: _ClassVar[ErrorCode]
    ERROR_CODE_AUTHZ_DENIED: _ClassVar[ErrorCode]
    ERROR_CODE_NOT_FOUND: _ClassVar[ErrorCode]
    ERROR_CODE_PROVIDER_NOT_FOUND: _ClassVar[ErrorCode]
    ERROR_CODE_RUN_TIMEOUT: _ClassVar[ErrorCode]
    ERROR_CODE_SCHEDULE_TIMEOUT: _ClassVar[ErrorCode]
    ERROR_CODE_SESSION_LOCK_TIMEOUT: _ClassVar[ErrorCode]
    ERROR_CODE_RUN_CANCELLED: _ClassVar[ErrorCode]
    ERROR_CODE_PAYLOAD_TOO_LARGE: _ClassVar[ErrorCode]
    ERROR_CODE_CONTEXT_OVERFLOW: _ClassVar[ErrorCode]
    ERROR_CODE_IDEMPOTENCY_KEY_REUSED: _ClassVar[ErrorCode]
    ERROR_CODE_POLICY_CONCURRENCY_LIMIT_EXCEEDED: _ClassVar[ErrorCode]
    ERROR_CODE_POLICY_COST_BUDGET_EXCEEDED: _ClassVar[ErrorCode]
    ERROR_CODE_RATE_LIMITED: _ClassVar[ErrorCode]
    ERROR_CODE_SESSION_IO_ERROR: _ClassVar[ErrorCode]
    ERROR_CODE_INTERNAL_ERROR: _ClassVar[ErrorCode]
    ERROR_CODE_UNKNOWN_ERROR: _ClassVar[ErrorCode]
    ERROR_CODE_NOT_IMPLEMENTED: _ClassVar[ErrorCode]
    ERROR_CODE_PROVIDER_ERROR: _ClassVar[ErrorCode]
    ERROR_CODE_UNAVAILABLE: _ClassVar[ErrorCode]
ERROR_CODE_UNSPECIFIED: ErrorCode
ERROR_CODE_CONFIG_ERROR: ErrorCode
ERROR_CODE_AUTH_IDENTITY_MISSING: ErrorCode
ERROR_CODE_AUTH_TOKEN_MISSING: ErrorCode
ERROR_CODE_AUTH_TOKEN_INVALID: ErrorCode
ERROR_CODE_AUTHZ_DENIED: ErrorCode
ERROR_CODE_NOT_FOUND: ErrorCode
ERROR_CODE_PROVIDER_NOT_FOUND: ErrorCode
ERROR_CODE_RUN_TIMEOUT: ErrorCode
ERROR_CODE_SCHEDULE_TIMEOUT: ErrorCode
ERROR_CODE_SESSION_LOCK_TIMEOUT: ErrorCode
ERROR_CODE_RUN_CANCELLED: ErrorCode
ERROR_CODE_PAYLOAD_TOO_LARGE: ErrorCode
ERROR_CODE_CONTEXT_OVERFLOW: ErrorCode
ERROR_CODE_IDEMPOTENCY_KEY_REUSED: ErrorCode
ERROR_CODE_POLICY_CONCURRENCY_LIMIT_EXCEEDED: ErrorCode
ERROR_CODE_POLICY_COST_BUDGET_EXCEEDED: ErrorCode
ERROR_CODE_RATE_LIMITED: ErrorCode
ERROR_CODE_SESSION_IO_ERROR: ErrorCode
ERROR_CODE_INTERNAL_ERROR: ErrorCode
ERROR_CODE_UNKNOWN_ERROR: ErrorCode
ERROR_CODE_NOT_IMPLEMENTED: ErrorCode
ERROR_CODE_PROVIDER_ERROR: ErrorCode
ERROR_CODE_UNAVAILABLE: ErrorCode

class ErrorBody(_message.Message):
    __slots__ = ("code", "message", "retryable", "trace_id")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRYABLE_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    code: ErrorCode
    message: str
    retryable: bool
    trace_id: str
    def __init__(self, code: _Optional[_Union[ErrorCode, str]] = ..., message: _Optional[str] = ..., retryable: _Optional[bool] = ..., trace_id: _Optional[str] = ...) -> None: ...
