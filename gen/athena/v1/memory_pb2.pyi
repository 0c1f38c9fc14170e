from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SearchMemoryRequest(_message.Message):
    __slots__ = ("query", "max_results", "min_score")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    MAX_RESULTS_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    query: str
    max_results: int
    min_score: float
    def __init__(self, query: _Optional[str] = ..., max_results: _Optional[int] = ..., min_score: _Optional[float] = ...) -> None: ...

class MemoryHit(_message.Message):
    __slots__ = ("id", "source_path", "snippet", "score", "line_start", "line_end", "citation")
    ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    SNIPPET_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    LINE_START_FIELD_NUMBER: _ClassVar[int]
    LINE_END_FIELD_NUMBER: _ClassVar[int]
    CITATION_FIELD_NUMBER: _ClassVar[int]
    id: str
    source_path: str
    snippet: str
    score: float
    line_start: int
    line_end: int
    citation: str
    def __init__(self, id: _Optional[str] = ..., source_path: _Optional[str] = ..., snippet: _Optional[str] = ..., score: _Optional[float] = ..., line_start: _Optional[int] = ..., line_end: _Optional[int] = ..., citation: _Optional[str] = ...) -> None: ...

class SearchMemoryResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[MemoryHit]
    def __init__(self, results: _Optional[_Iterable[_Union[MemoryHit, _Mapping]]] = ...) -> None: ...

class GetMemoryRequest(_message.Message):
    __slots__ = ("path", "from_line", "lines")
    PATH_FIELD_NUMBER: _ClassVar[int]
    FROM_LINE_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    path: str
    from_line: int
    lines: int
    def __init__(self, path: _Optional[str] = ..., from_line: _Optional[int] = ..., lines: _Optional[int] = ...) -> None: ...

class GetMemoryResponse(_message.Message):
    __slots__ = ("path", "text", "line_start", "line_end")
    PATH_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LINE_START_FIELD_NUMBER: _ClassVar[int]
    LINE_END_FIELD_NUMBER: _ClassVar[int]
    path: str
    text: str
    line_start: int
    line_end: int
    def __init__(self, path: _Optional[str] = ..., text: _Optional[str] = ..., line_start: _Optional[int] = ..., line_end: _Optional[int] = ...) -> None: ...
