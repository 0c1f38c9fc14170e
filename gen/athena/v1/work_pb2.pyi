from athena.v1 import options_pb2 as _options_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORK_MODE_UNSPECIFIED: _ClassVar[WorkMode]
    WORK_MODE_FOLLOWUP: _ClassVar[WorkMode]
    WORK_MODE_COLLECT: _ClassVar[WorkMode]

class DrainStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DRAIN_STATUS_UNSPECIFIED: _ClassVar[DrainStatus]
    DRAIN_STATUS_OK: _ClassVar[DrainStatus]
    DRAIN_STATUS_ALREADY_DRAINING: _ClassVar[DrainStatus]
WORK_MODE_UNSPECIFIED: WorkMode
WORK_MODE_FOLLOWUP: WorkMode
WORK_MODE_COLLECT: WorkMode
DRAIN_STATUS_UNSPECIFIED: DrainStatus
DRAIN_STATUS_OK: DrainStatus
DRAIN_STATUS_ALREADY_DRAINING: DrainStatus

class WorkItem(_message.Message):
    __slots__ = ("id", "session_id", "payload", "mode", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    session_id: str
    payload: str
    mode: WorkMode
    created_at: str
    def __init__(self, id: _Optional[str] = ..., session_id: _Optional[str] = ..., payload: _Optional[str] = ..., mode: _Optional[_Union[WorkMode, str]] = ..., created_at: _Optional[str] = ...) -> None: ...

class WorkQueueState(_message.Message):
    __slots__ = ("schema_version", "session_id", "items", "draining", "updated_at")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    schema_version: int
    session_id: str
    items: _containers.RepeatedCompositeFieldContainer[WorkItem]
    draining: bool
    updated_at: str
    def __init__(self, schema_version: _Optional[int] = ..., session_id: _Optional[str] = ..., items: _Optional[_Iterable[_Union[WorkItem, _Mapping]]] = ..., draining: _Optional[bool] = ..., updated_at: _Optional[str] = ...) -> None: ...

class GetWorkQueueRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class GetWorkQueueResponse(_message.Message):
    __slots__ = ("queue",)
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    queue: WorkQueueState
    def __init__(self, queue: _Optional[_Union[WorkQueueState, _Mapping]] = ...) -> None: ...

class EnqueueWorkRequest(_message.Message):
    __slots__ = ("session_id", "payload", "mode")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    payload: str
    mode: WorkMode
    def __init__(self, session_id: _Optional[str] = ..., payload: _Optional[str] = ..., mode: _Optional[_Union[WorkMode, str]] = ...) -> None: ...

class EnqueueWorkResponse(_message.Message):
    __slots__ = ("queue",)
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    queue: WorkQueueState
    def __init__(self, queue: _Optional[_Union[WorkQueueState, _Mapping]] = ...) -> None: ...

class DrainWorkRequest(_message.Message):
    __slots__ = ("session_id", "provider", "model")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    provider: str
    model: str
    def __init__(self, session_id: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class DrainWorkResponse(_message.Message):
    __slots__ = ("status", "drained_items", "queue_depth_before", "queue_depth_after")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DRAINED_ITEMS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_BEFORE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_AFTER_FIELD_NUMBER: _ClassVar[int]
    status: DrainStatus
    drained_items: int
    queue_depth_before: int
    queue_depth_after: int
    def __init__(self, status: _Optional[_Union[DrainStatus, str]] = ..., drained_items: _Optional[int] = ..., queue_depth_before: _Optional[int] = ..., queue_depth_after: _Optional[int] = ...) -> None: ...
