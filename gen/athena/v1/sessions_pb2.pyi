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

class TranscriptRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSCRIPT_ROLE_UNSPECIFIED: _ClassVar[TranscriptRole]
    TRANSCRIPT_ROLE_SYSTEM: _ClassVar[TranscriptRole]
    TRANSCRIPT_ROLE_USER: _ClassVar[TranscriptRole]
    TRANSCRIPT_ROLE_ASSISTANT: _ClassVar[TranscriptRole]
    TRANSCRIPT_ROLE_TOOL: _ClassVar[TranscriptRole]
TRANSCRIPT_ROLE_UNSPECIFIED: TranscriptRole
TRANSCRIPT_ROLE_SYSTEM: TranscriptRole
TRANSCRIPT_ROLE_USER: TranscriptRole
TRANSCRIPT_ROLE_ASSISTANT: TranscriptRole
TRANSCRIPT_ROLE_TOOL: TranscriptRole

class ListSessionsRequest(_message.Message):
    __slots__ = ("cursor", "limit")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    limit: int
    def __init__(self, cursor: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("id", "transcript_path", "provider", "model", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_PATH_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    transcript_path: str
    provider: str
    model: str
    created_at: str
    updated_at: str
    def __init__(self, id: _Optional[str] = ..., transcript_path: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("items", "next_cursor")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Session]
    next_cursor: str
    def __init__(self, items: _Optional[_Iterable[_Union[Session, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class TranscriptEntry(_message.Message):
    __slots__ = ("id", "role", "content", "created_at", "is_error", "metadata", "run_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    IS_ERROR_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    role: TranscriptRole
    content: str
    created_at: str
    is_error: bool
    metadata: _struct_pb2.Struct
    run_id: str
    def __init__(self, id: _Optional[str] = ..., role: _Optional[_Union[TranscriptRole, str]] = ..., content: _Optional[str] = ..., created_at: _Optional[str] = ..., is_error: _Optional[bool] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., run_id: _Optional[str] = ...) -> None: ...

class ListTranscriptEntriesRequest(_message.Message):
    __slots__ = ("session_id", "after", "limit")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    after: str
    limit: int
    def __init__(self, session_id: _Optional[str] = ..., after: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListTranscriptEntriesResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[TranscriptEntry]
    def __init__(self, items: _Optional[_Iterable[_Union[TranscriptEntry, _Mapping]]] = ...) -> None: ...

class StreamTranscriptRequest(_message.Message):
    __slots__ = ("session_id", "after")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    after: str
    def __init__(self, session_id: _Optional[str] = ..., after: _Optional[str] = ...) -> None: ...

class StreamTranscriptResponse(_message.Message):
    __slots__ = ("entry",)
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    entry: TranscriptEntry
    def __init__(self, entry: _Optional[_Union[TranscriptEntry, _Mapping]] = ...) -> None: ...
