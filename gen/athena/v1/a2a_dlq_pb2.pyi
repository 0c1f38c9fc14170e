from athena.v1 import options_pb2 as _options_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class A2aDlqStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    A2A_DLQ_STATUS_UNSPECIFIED: _ClassVar[A2aDlqStatus]
    A2A_DLQ_STATUS_PENDING: _ClassVar[A2aDlqStatus]
    A2A_DLQ_STATUS_REQUEUED: _ClassVar[A2aDlqStatus]
    A2A_DLQ_STATUS_DISCARDED: _ClassVar[A2aDlqStatus]
A2A_DLQ_STATUS_UNSPECIFIED: A2aDlqStatus
A2A_DLQ_STATUS_PENDING: A2aDlqStatus
A2A_DLQ_STATUS_REQUEUED: A2aDlqStatus
A2A_DLQ_STATUS_DISCARDED: A2aDlqStatus

class A2aDlqItem(_message.Message):
    __slots__ = ("id", "status", "created_at", "updated_at", "payload", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    status: A2aDlqStatus
    created_at: str
    updated_at: str
    payload: _struct_pb2.Struct
    reason: str
    def __init__(self, id: _Optional[str] = ..., status: _Optional[_Union[A2aDlqStatus, str]] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class ListA2aDlqItemsRequest(_message.Message):
    __slots__ = ("cursor", "limit", "status")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    limit: int
    status: A2aDlqStatus
    def __init__(self, cursor: _Optional[str] = ..., limit: _Optional[int] = ..., status: _Optional[_Union[A2aDlqStatus, str]] = ...) -> None: ...

class ListA2aDlqItemsResponse(_message.Message):
    __slots__ = ("items", "next_cursor")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[A2aDlqItem]
    next_cursor: str
    def __init__(self, items: _Optional[_Iterable[_Union[A2aDlqItem, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class RequeueA2aDlqItemRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RequeueA2aDlqItemResponse(_message.Message):
    __slots__ = ("updated", "item")
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    updated: bool
    item: A2aDlqItem
    def __init__(self, updated: _Optional[bool] = ..., item: _Optional[_Union[A2aDlqItem, _Mapping]] = ...) -> None: ...

class DiscardA2aDlqItemRequest(_message.Message):
    __slots__ = ("id", "audit_note")
    ID_FIELD_NUMBER: _ClassVar[int]
    AUDIT_NOTE_FIELD_NUMBER: _ClassVar[int]
    id: str
    audit_note: str
    def __init__(self, id: _Optional[str] = ..., audit_note: _Optional[str] = ...) -> None: ...

class DiscardA2aDlqItemResponse(_message.Message):
    __slots__ = ("updated", "item")
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    updated: bool
    item: A2aDlqItem
    def __init__(self, updated: _Optional[bool] = ..., item: _Optional[_Union[A2aDlqItem, _Mapping]] = ...) -> None: ...
