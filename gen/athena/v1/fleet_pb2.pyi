from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetFleetSummaryRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FleetCapabilities(_message.Message):
    __slots__ = ("supports_pod_status", "supports_cpu_mem_metrics")
    SUPPORTS_POD_STATUS_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_CPU_MEM_METRICS_FIELD_NUMBER: _ClassVar[int]
    supports_pod_status: bool
    supports_cpu_mem_metrics: bool
    def __init__(self, supports_pod_status: _Optional[bool] = ..., supports_cpu_mem_metrics: _Optional[bool] = ...) -> None: ...

class GetFleetSummaryResponse(_message.Message):
    __slots__ = ("total", "running", "pending", "succeeded", "failed", "capabilities")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    total: int
    running: int
    pending: int
    succeeded: int
    failed: int
    capabilities: FleetCapabilities
    def __init__(self, total: _Optional[int] = ..., running: _Optional[int] = ..., pending: _Optional[int] = ..., succeeded: _Optional[int] = ..., failed: _Optional[int] = ..., capabilities: _Optional[_Union[FleetCapabilities, _Mapping]] = ...) -> None: ...
