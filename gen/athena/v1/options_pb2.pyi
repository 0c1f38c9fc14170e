from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor
SSE_FIELD_NUMBER: _ClassVar[int]
sse: _descriptor.FieldDescriptor
JSON_VALUE_FIELD_NUMBER: _ClassVar[int]
json_value: _descriptor.FieldDescriptor
HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
http_status: _descriptor.FieldDescriptor
GRPC_CODE_FIELD_NUMBER: _ClassVar[int]
grpc_code: _descriptor.FieldDescriptor

class SseOptions(_message.Message):
    __slots__ = ("id_field", "event_field", "event_name", "resume_field", "retry_ms")
    ID_FIELD_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_FIELD_NUMBER: _ClassVar[int]
    EVENT_NAME_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_FIELD_NUMBER: _ClassVar[int]
    RETRY_MS_FIELD_NUMBER: _ClassVar[int]
    id_field: str
    event_field: str
    event_name: str
    resume_field: str
    retry_ms: int
    def __init__(self, id_field: _Optional[str] = ..., event_field: _Optional[str] = ..., event_name: _Optional[str] = ..., resume_field: _Optional[str] = ..., retry_ms: _Optional[int] = ...) -> None: ...
