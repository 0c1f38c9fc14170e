from athena.v1 import runs_pb2 as _runs_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunTemplate(_message.Message):
    __slots__ = ("id", "harness_profile_id", "directive_template", "default_params", "created_at")
    class DefaultParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    HARNESS_PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTIVE_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_PARAMS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    harness_profile_id: str
    directive_template: str
    default_params: _containers.ScalarMap[str, str]
    created_at: str
    def __init__(self, id: _Optional[str] = ..., harness_profile_id: _Optional[str] = ..., directive_template: _Optional[str] = ..., default_params: _Optional[_Mapping[str, str]] = ..., created_at: _Optional[str] = ...) -> None: ...

class ListRunTemplatesRequest(_message.Message):
    __slots__ = ("cursor", "limit")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    limit: int
    def __init__(self, cursor: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListRunTemplatesResponse(_message.Message):
    __slots__ = ("items", "next_cursor")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[RunTemplate]
    next_cursor: str
    def __init__(self, items: _Optional[_Iterable[_Union[RunTemplate, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class CreateRunTemplateRequest(_message.Message):
    __slots__ = ("harness_profile_id", "directive_template", "default_params")
    class DefaultParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HARNESS_PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTIVE_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_PARAMS_FIELD_NUMBER: _ClassVar[int]
    harness_profile_id: str
    directive_template: str
    default_params: _containers.ScalarMap[str, str]
    def __init__(self, harness_profile_id: _Optional[str] = ..., directive_template: _Optional[str] = ..., default_params: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CreateRunTemplateResponse(_message.Message):
    __slots__ = ("run_template",)
    RUN_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    run_template: RunTemplate
    def __init__(self, run_template: _Optional[_Union[RunTemplate, _Mapping]] = ...) -> None: ...

class RunRunTemplateRequest(_message.Message):
    __slots__ = ("id", "params", "session_id")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    params: _containers.ScalarMap[str, str]
    session_id: str
    def __init__(self, id: _Optional[str] = ..., params: _Optional[_Mapping[str, str]] = ..., session_id: _Optional[str] = ...) -> None: ...

class RunRunTemplateResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: _runs_pb2.RunResult
    def __init__(self, result: _Optional[_Union[_runs_pb2.RunResult, _Mapping]] = ...) -> None: ...
