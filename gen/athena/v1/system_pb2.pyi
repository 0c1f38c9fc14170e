from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetCapabilitiesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetCapabilitiesResponse(_message.Message):
    __slots__ = ("execution_backend", "state_store", "supports_pods", "supports_cpu_mem_metrics", "supports_a2a_bus")
    EXECUTION_BACKEND_FIELD_NUMBER: _ClassVar[int]
    STATE_STORE_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_PODS_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_CPU_MEM_METRICS_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_A2A_BUS_FIELD_NUMBER: _ClassVar[int]
    execution_backend: str
    state_store: str
    supports_pods: bool
    supports_cpu_mem_metrics: bool
    supports_a2a_bus: bool
    def __init__(self, execution_backend: _Optional[str] = ..., state_store: _Optional[str] = ..., supports_pods: _Optional[bool] = ..., supports_cpu_mem_metrics: _Optional[bool] = ..., supports_a2a_bus: _Optional[bool] = ...) -> None: ...

class GetAdminHealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetAdminHealthResponse(_message.Message):
    __slots__ = ("status", "now")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NOW_FIELD_NUMBER: _ClassVar[int]
    status: str
    now: str
    def __init__(self, status: _Optional[str] = ..., now: _Optional[str] = ...) -> None: ...

class GetHealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetHealthResponse(_message.Message):
    __slots__ = ("status", "now")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NOW_FIELD_NUMBER: _ClassVar[int]
    status: str
    now: str
    def __init__(self, status: _Optional[str] = ..., now: _Optional[str] = ...) -> None: ...

class GetReadinessRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetReadinessResponse(_message.Message):
    __slots__ = ("status", "now", "checks")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NOW_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    status: str
    now: str
    checks: _containers.RepeatedCompositeFieldContainer[ReadinessCheck]
    def __init__(self, status: _Optional[str] = ..., now: _Optional[str] = ..., checks: _Optional[_Iterable[_Union[ReadinessCheck, _Mapping]]] = ...) -> None: ...

class ReadinessCheck(_message.Message):
    __slots__ = ("name", "status", "latency_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    status: str
    latency_ms: float
    def __init__(self, name: _Optional[str] = ..., status: _Optional[str] = ..., latency_ms: _Optional[float] = ...) -> None: ...
