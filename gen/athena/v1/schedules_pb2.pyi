from athena.v1 import options_pb2 as _options_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ScheduleRunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCHEDULE_RUN_STATUS_UNSPECIFIED: _ClassVar[ScheduleRunStatus]
    SCHEDULE_RUN_STATUS_OK: _ClassVar[ScheduleRunStatus]
    SCHEDULE_RUN_STATUS_FAILED: _ClassVar[ScheduleRunStatus]
    SCHEDULE_RUN_STATUS_ALREADY_RUNNING: _ClassVar[ScheduleRunStatus]
SCHEDULE_RUN_STATUS_UNSPECIFIED: ScheduleRunStatus
SCHEDULE_RUN_STATUS_OK: ScheduleRunStatus
SCHEDULE_RUN_STATUS_FAILED: ScheduleRunStatus
SCHEDULE_RUN_STATUS_ALREADY_RUNNING: ScheduleRunStatus

class ScheduledTask(_message.Message):
    __slots__ = ("schema_version", "id", "session_id", "input", "every_minutes", "enabled", "running", "created_at", "updated_at", "next_run_at", "last_run_at", "cron")
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    EVERY_MINUTES_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_RUN_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_RUN_AT_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    schema_version: int
    id: str
    session_id: str
    input: str
    every_minutes: int
    enabled: bool
    running: bool
    created_at: str
    updated_at: str
    next_run_at: str
    last_run_at: str
    cron: str
    def __init__(self, schema_version: _Optional[int] = ..., id: _Optional[str] = ..., session_id: _Optional[str] = ..., input: _Optional[str] = ..., every_minutes: _Optional[int] = ..., enabled: _Optional[bool] = ..., running: _Optional[bool] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ..., next_run_at: _Optional[str] = ..., last_run_at: _Optional[str] = ..., cron: _Optional[str] = ...) -> None: ...

class ScheduleRunResult(_message.Message):
    __slots__ = ("id", "session_id", "status", "started_at", "finished_at", "error", "error_code", "run_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    session_id: str
    status: ScheduleRunStatus
    started_at: str
    finished_at: str
    error: str
    error_code: str
    run_id: str
    def __init__(self, id: _Optional[str] = ..., session_id: _Optional[str] = ..., status: _Optional[_Union[ScheduleRunStatus, str]] = ..., started_at: _Optional[str] = ..., finished_at: _Optional[str] = ..., error: _Optional[str] = ..., error_code: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class ScheduleRunLog(_message.Message):
    __slots__ = ("id", "schedule_id", "session_id", "started_at", "finished_at", "status", "error", "error_code", "run_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    schedule_id: str
    session_id: str
    started_at: str
    finished_at: str
    status: ScheduleRunStatus
    error: str
    error_code: str
    run_id: str
    def __init__(self, id: _Optional[str] = ..., schedule_id: _Optional[str] = ..., session_id: _Optional[str] = ..., started_at: _Optional[str] = ..., finished_at: _Optional[str] = ..., status: _Optional[_Union[ScheduleRunStatus, str]] = ..., error: _Optional[str] = ..., error_code: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class ListSchedulesRequest(_message.Message):
    __slots__ = ("cursor", "limit")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    limit: int
    def __init__(self, cursor: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListSchedulesResponse(_message.Message):
    __slots__ = ("items", "next_cursor")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ScheduledTask]
    next_cursor: str
    def __init__(self, items: _Optional[_Iterable[_Union[ScheduledTask, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class CreateScheduleRequest(_message.Message):
    __slots__ = ("id", "session_id", "input", "every_minutes", "enabled", "start_now", "cron")
    ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    EVERY_MINUTES_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    START_NOW_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    id: str
    session_id: str
    input: str
    every_minutes: int
    enabled: bool
    start_now: bool
    cron: str
    def __init__(self, id: _Optional[str] = ..., session_id: _Optional[str] = ..., input: _Optional[str] = ..., every_minutes: _Optional[int] = ..., enabled: _Optional[bool] = ..., start_now: _Optional[bool] = ..., cron: _Optional[str] = ...) -> None: ...

class CreateScheduleResponse(_message.Message):
    __slots__ = ("schedule",)
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    schedule: ScheduledTask
    def __init__(self, schedule: _Optional[_Union[ScheduledTask, _Mapping]] = ...) -> None: ...

class UpdateScheduleRequest(_message.Message):
    __slots__ = ("id", "session_id", "input", "every_minutes", "enabled", "start_now", "cron")
    ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    EVERY_MINUTES_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    START_NOW_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    id: str
    session_id: str
    input: str
    every_minutes: int
    enabled: bool
    start_now: bool
    cron: str
    def __init__(self, id: _Optional[str] = ..., session_id: _Optional[str] = ..., input: _Optional[str] = ..., every_minutes: _Optional[int] = ..., enabled: _Optional[bool] = ..., start_now: _Optional[bool] = ..., cron: _Optional[str] = ...) -> None: ...

class UpdateScheduleResponse(_message.Message):
    __slots__ = ("schedule",)
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    schedule: ScheduledTask
    def __init__(self, schedule: _Optional[_Union[ScheduledTask, _Mapping]] = ...) -> None: ...

class DeleteScheduleRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteScheduleResponse(_message.Message):
    __slots__ = ("id", "removed")
    ID_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    id: str
    removed: bool
    def __init__(self, id: _Optional[str] = ..., removed: _Optional[bool] = ...) -> None: ...

class GetScheduleRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetScheduleResponse(_message.Message):
    __slots__ = ("schedule",)
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    schedule: ScheduledTask
    def __init__(self, schedule: _Optional[_Union[ScheduledTask, _Mapping]] = ...) -> None: ...

class RunScheduleRequest(_message.Message):
    __slots__ = ("id", "provider", "model")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    id: str
    provider: str
    model: str
    def __init__(self, id: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class RunScheduleResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: ScheduleRunResult
    def __init__(self, result: _Optional[_Union[ScheduleRunResult, _Mapping]] = ...) -> None: ...

class EnableScheduleRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class EnableScheduleResponse(_message.Message):
    __slots__ = ("id", "updated", "schedule")
    ID_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    id: str
    updated: bool
    schedule: ScheduledTask
    def __init__(self, id: _Optional[str] = ..., updated: _Optional[bool] = ..., schedule: _Optional[_Union[ScheduledTask, _Mapping]] = ...) -> None: ...

class DisableScheduleRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DisableScheduleResponse(_message.Message):
    __slots__ = ("id", "updated", "schedule")
    ID_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    id: str
    updated: bool
    schedule: ScheduledTask
    def __init__(self, id: _Optional[str] = ..., updated: _Optional[bool] = ..., schedule: _Optional[_Union[ScheduledTask, _Mapping]] = ...) -> None: ...

class ListScheduleLogsRequest(_message.Message):
    __slots__ = ("id", "after", "limit")
    ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    id: str
    after: str
    limit: int
    def __init__(self, id: _Optional[str] = ..., after: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListScheduleLogsResponse(_message.Message):
    __slots__ = ("logs",)
    LOGS_FIELD_NUMBER: _ClassVar[int]
    logs: _containers.RepeatedCompositeFieldContainer[ScheduleRunLog]
    def __init__(self, logs: _Optional[_Iterable[_Union[ScheduleRunLog, _Mapping]]] = ...) -> None: ...

class TickSchedulesRequest(_message.Message):
    __slots__ = ("at", "provider", "model")
    AT_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    at: str
    provider: str
    model: str
    def __init__(self, at: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class TickSchedulesResponse(_message.Message):
    __slots__ = ("at", "run", "skipped")
    AT_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    at: str
    run: _containers.RepeatedCompositeFieldContainer[ScheduleRunResult]
    skipped: int
    def __init__(self, at: _Optional[str] = ..., run: _Optional[_Iterable[_Union[ScheduleRunResult, _Mapping]]] = ..., skipped: _Optional[int] = ...) -> None: ...
