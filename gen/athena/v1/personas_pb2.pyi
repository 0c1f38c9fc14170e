from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunPersonaRequest(_message.Message):
    __slots__ = ("name", "repo_path", "head_ref", "base_ref", "stdout", "session_id", "provider", "model")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REPO_PATH_FIELD_NUMBER: _ClassVar[int]
    HEAD_REF_FIELD_NUMBER: _ClassVar[int]
    BASE_REF_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    name: str
    repo_path: str
    head_ref: str
    base_ref: str
    stdout: str
    session_id: str
    provider: str
    model: str
    def __init__(self, name: _Optional[str] = ..., repo_path: _Optional[str] = ..., head_ref: _Optional[str] = ..., base_ref: _Optional[str] = ..., stdout: _Optional[str] = ..., session_id: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class PersonaFinding(_message.Message):
    __slots__ = ("priority", "confidence", "title", "message", "suggestion", "file", "line")
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SUGGESTION_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    priority: str
    confidence: float
    title: str
    message: str
    suggestion: str
    file: str
    line: int
    def __init__(self, priority: _Optional[str] = ..., confidence: _Optional[float] = ..., title: _Optional[str] = ..., message: _Optional[str] = ..., suggestion: _Optional[str] = ..., file: _Optional[str] = ..., line: _Optional[int] = ...) -> None: ...

class PersonaRunResult(_message.Message):
    __slots__ = ("schema_version", "status", "persona_name", "run_id", "session_id", "repo_path", "head_ref", "base_ref", "started_at", "finished_at", "merge_gate", "findings", "report_markdown", "error")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PERSONA_NAME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REPO_PATH_FIELD_NUMBER: _ClassVar[int]
    HEAD_REF_FIELD_NUMBER: _ClassVar[int]
    BASE_REF_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    MERGE_GATE_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    REPORT_MARKDOWN_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    schema_version: int
    status: str
    persona_name: str
    run_id: str
    session_id: str
    repo_path: str
    head_ref: str
    base_ref: str
    started_at: str
    finished_at: str
    merge_gate: str
    findings: _containers.RepeatedCompositeFieldContainer[PersonaFinding]
    report_markdown: str
    error: str
    def __init__(self, schema_version: _Optional[int] = ..., status: _Optional[str] = ..., persona_name: _Optional[str] = ..., run_id: _Optional[str] = ..., session_id: _Optional[str] = ..., repo_path: _Optional[str] = ..., head_ref: _Optional[str] = ..., base_ref: _Optional[str] = ..., started_at: _Optional[str] = ..., finished_at: _Optional[str] = ..., merge_gate: _Optional[str] = ..., findings: _Optional[_Iterable[_Union[PersonaFinding, _Mapping]]] = ..., report_markdown: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class RunPersonaResponse(_message.Message):
    __slots__ = ("result", "stdout")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    result: PersonaRunResult
    stdout: str
    def __init__(self, result: _Optional[_Union[PersonaRunResult, _Mapping]] = ..., stdout: _Optional[str] = ...) -> None: ...
