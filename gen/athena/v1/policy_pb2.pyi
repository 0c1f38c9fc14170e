from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Policy(_message.Message):
    __slots__ = ("schema_version", "updated_at", "max_concurrent_runs", "default_run_timeout_ms", "default_schedule_timeout_ms", "retry_budget_per_run", "cost_budget_daily_usd")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_RUNS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_RUN_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_SCHEDULE_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    RETRY_BUDGET_PER_RUN_FIELD_NUMBER: _ClassVar[int]
    COST_BUDGET_DAILY_USD_FIELD_NUMBER: _ClassVar[int]
    schema_version: int
    updated_at: str
    max_concurrent_runs: int
    default_run_timeout_ms: int
    default_schedule_timeout_ms: int
    retry_budget_per_run: int
    cost_budget_daily_usd: float
    def __init__(self, schema_version: _Optional[int] = ..., updated_at: _Optional[str] = ..., max_concurrent_runs: _Optional[int] = ..., default_run_timeout_ms: _Optional[int] = ..., default_schedule_timeout_ms: _Optional[int] = ..., retry_budget_per_run: _Optional[int] = ..., cost_budget_daily_usd: _Optional[float] = ...) -> None: ...

class GetPolicyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetPolicyResponse(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: Policy
    def __init__(self, policy: _Optional[_Union[Policy, _Mapping]] = ...) -> None: ...

class PutPolicyRequest(_message.Message):
    __slots__ = ("schema_version", "updated_at", "max_concurrent_runs", "default_run_timeout_ms", "default_schedule_timeout_ms", "retry_budget_per_run", "cost_budget_daily_usd", "policy", "audit_comment")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_RUNS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_RUN_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_SCHEDULE_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    RETRY_BUDGET_PER_RUN_FIELD_NUMBER: _ClassVar[int]
    COST_BUDGET_DAILY_USD_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    AUDIT_COMMENT_FIELD_NUMBER: _ClassVar[int]
    schema_version: int
    updated_at: str
    max_concurrent_runs: int
    default_run_timeout_ms: int
    default_schedule_timeout_ms: int
    retry_budget_per_run: int
    cost_budget_daily_usd: float
    policy: Policy
    audit_comment: str
    def __init__(self, schema_version: _Optional[int] = ..., updated_at: _Optional[str] = ..., max_concurrent_runs: _Optional[int] = ..., default_run_timeout_ms: _Optional[int] = ..., default_schedule_timeout_ms: _Optional[int] = ..., retry_budget_per_run: _Optional[int] = ..., cost_budget_daily_usd: _Optional[float] = ..., policy: _Optional[_Union[Policy, _Mapping]] = ..., audit_comment: _Optional[str] = ...) -> None: ...

class PutPolicyResponse(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: Policy
    def __init__(self, policy: _Optional[_Union[Policy, _Mapping]] = ...) -> None: ...

class ListPolicyRejectionsRequest(_message.Message):
    __slots__ = ("cursor", "limit", "session_id", "created_after", "created_before")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    limit: int
    session_id: str
    created_after: str
    created_before: str
    def __init__(self, cursor: _Optional[str] = ..., limit: _Optional[int] = ..., session_id: _Optional[str] = ..., created_after: _Optional[str] = ..., created_before: _Optional[str] = ...) -> None: ...

class PolicyRejection(_message.Message):
    __slots__ = ("id", "created_at", "session_id", "active_runs", "max_concurrent_runs", "reason", "policy")
    ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_RUNS_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_RUNS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    id: str
    created_at: str
    session_id: str
    active_runs: int
    max_concurrent_runs: int
    reason: str
    policy: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., created_at: _Optional[str] = ..., session_id: _Optional[str] = ..., active_runs: _Optional[int] = ..., max_concurrent_runs: _Optional[int] = ..., reason: _Optional[str] = ..., policy: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ListPolicyRejectionsResponse(_message.Message):
    __slots__ = ("items", "next_cursor")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[PolicyRejection]
    next_cursor: str
    def __init__(self, items: _Optional[_Iterable[_Union[PolicyRejection, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...
