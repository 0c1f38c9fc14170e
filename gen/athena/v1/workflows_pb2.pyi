from athena.v1 import options_pb2 as _options_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkflowRunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKFLOW_RUN_STATUS_UNSPECIFIED: _ClassVar[WorkflowRunStatus]
    WORKFLOW_RUN_STATUS_PENDING: _ClassVar[WorkflowRunStatus]
    WORKFLOW_RUN_STATUS_RUNNING: _ClassVar[WorkflowRunStatus]
    WORKFLOW_RUN_STATUS_OK: _ClassVar[WorkflowRunStatus]
    WORKFLOW_RUN_STATUS_FAILED: _ClassVar[WorkflowRunStatus]
WORKFLOW_RUN_STATUS_UNSPECIFIED: WorkflowRunStatus
WORKFLOW_RUN_STATUS_PENDING: WorkflowRunStatus
WORKFLOW_RUN_STATUS_RUNNING: WorkflowRunStatus
WORKFLOW_RUN_STATUS_OK: WorkflowRunStatus
WORKFLOW_RUN_STATUS_FAILED: WorkflowRunStatus

class WorkflowStepExecution(_message.Message):
    __slots__ = ("max_attempts", "timeout_ms", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    max_attempts: int
    timeout_ms: int
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, max_attempts: _Optional[int] = ..., timeout_ms: _Optional[int] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class WorkflowStep(_message.Message):
    __slots__ = ("id", "directive_id", "harness_profile_id", "outputs", "execution")
    ID_FIELD_NUMBER: _ClassVar[int]
    DIRECTIVE_ID_FIELD_NUMBER: _ClassVar[int]
    HARNESS_PROFILE_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    directive_id: str
    harness_profile_id: str
    outputs: _containers.RepeatedScalarFieldContainer[str]
    execution: WorkflowStepExecution
    def __init__(self, id: _Optional[str] = ..., directive_id: _Optional[str] = ..., harness_profile_id: _Optional[str] = ..., outputs: _Optional[_Iterable[str]] = ..., execution: _Optional[_Union[WorkflowStepExecution, _Mapping]] = ...) -> None: ...

class WorkflowMapping(_message.Message):
    __slots__ = ("from_output", "to_input")
    FROM_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    TO_INPUT_FIELD_NUMBER: _ClassVar[int]
    from_output: str
    to_input: str
    def __init__(self, from_output: _Optional[str] = ..., to_input: _Optional[str] = ...) -> None: ...

class WorkflowDependency(_message.Message):
    __slots__ = ("from_step", "to_step", "mappings")
    FROM_STEP_FIELD_NUMBER: _ClassVar[int]
    TO_STEP_FIELD_NUMBER: _ClassVar[int]
    MAPPINGS_FIELD_NUMBER: _ClassVar[int]
    from_step: str
    to_step: str
    mappings: _containers.RepeatedCompositeFieldContainer[WorkflowMapping]
    def __init__(self, from_step: _Optional[str] = ..., to_step: _Optional[str] = ..., mappings: _Optional[_Iterable[_Union[WorkflowMapping, _Mapping]]] = ...) -> None: ...

class WorkflowDefinition(_message.Message):
    __slots__ = ("steps", "dependencies")
    STEPS_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    steps: _containers.RepeatedCompositeFieldContainer[WorkflowStep]
    dependencies: _containers.RepeatedCompositeFieldContainer[WorkflowDependency]
    def __init__(self, steps: _Optional[_Iterable[_Union[WorkflowStep, _Mapping]]] = ..., dependencies: _Optional[_Iterable[_Union[WorkflowDependency, _Mapping]]] = ...) -> None: ...

class Workflow(_message.Message):
    __slots__ = ("id", "definition", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    definition: WorkflowDefinition
    created_at: str
    def __init__(self, id: _Optional[str] = ..., definition: _Optional[_Union[WorkflowDefinition, _Mapping]] = ..., created_at: _Optional[str] = ...) -> None: ...

class WorkflowStepState(_message.Message):
    __slots__ = ("step_id", "status", "attempt", "run_id", "error", "started_at", "finished_at", "updated_at")
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    status: WorkflowRunStatus
    attempt: int
    run_id: str
    error: str
    started_at: str
    finished_at: str
    updated_at: str
    def __init__(self, step_id: _Optional[str] = ..., status: _Optional[_Union[WorkflowRunStatus, str]] = ..., attempt: _Optional[int] = ..., run_id: _Optional[str] = ..., error: _Optional[str] = ..., started_at: _Optional[str] = ..., finished_at: _Optional[str] = ..., updated_at: _Optional[str] = ...) -> None: ...

class WorkflowProgress(_message.Message):
    __slots__ = ("total_steps", "completed_steps", "running_steps", "failed_steps", "pending_steps", "percent_complete")
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_STEPS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_STEPS_FIELD_NUMBER: _ClassVar[int]
    FAILED_STEPS_FIELD_NUMBER: _ClassVar[int]
    PENDING_STEPS_FIELD_NUMBER: _ClassVar[int]
    PERCENT_COMPLETE_FIELD_NUMBER: _ClassVar[int]
    total_steps: int
    completed_steps: int
    running_steps: int
    failed_steps: int
    pending_steps: int
    percent_complete: float
    def __init__(self, total_steps: _Optional[int] = ..., completed_steps: _Optional[int] = ..., running_steps: _Optional[int] = ..., failed_steps: _Optional[int] = ..., pending_steps: _Optional[int] = ..., percent_complete: _Optional[float] = ...) -> None: ...

class WorkflowRun(_message.Message):
    __slots__ = ("id", "workflow_id", "status", "steps", "resumed_from_run_id", "created_at", "updated_at", "started_at", "finished_at", "progress")
    ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FROM_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    id: str
    workflow_id: str
    status: WorkflowRunStatus
    steps: _containers.RepeatedCompositeFieldContainer[WorkflowStepState]
    resumed_from_run_id: str
    created_at: str
    updated_at: str
    started_at: str
    finished_at: str
    progress: WorkflowProgress
    def __init__(self, id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., status: _Optional[_Union[WorkflowRunStatus, str]] = ..., steps: _Optional[_Iterable[_Union[WorkflowStepState, _Mapping]]] = ..., resumed_from_run_id: _Optional[str] = ..., created_at: _Optional[str] = ..., updated_at: _Optional[str] = ..., started_at: _Optional[str] = ..., finished_at: _Optional[str] = ..., progress: _Optional[_Union[WorkflowProgress, _Mapping]] = ...) -> None: ...

class ListWorkflowsRequest(_message.Message):
    __slots__ = ("cursor", "limit")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    limit: int
    def __init__(self, cursor: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListWorkflowsResponse(_message.Message):
    __slots__ = ("items", "next_cursor")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Workflow]
    next_cursor: str
    def __init__(self, items: _Optional[_Iterable[_Union[Workflow, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class CreateWorkflowRequest(_message.Message):
    __slots__ = ("definition",)
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    definition: WorkflowDefinition
    def __init__(self, definition: _Optional[_Union[WorkflowDefinition, _Mapping]] = ...) -> None: ...

class CreateWorkflowResponse(_message.Message):
    __slots__ = ("workflow",)
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    workflow: Workflow
    def __init__(self, workflow: _Optional[_Union[Workflow, _Mapping]] = ...) -> None: ...

class GetWorkflowRunRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetWorkflowRunResponse(_message.Message):
    __slots__ = ("workflow", "run", "progress")
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    workflow: Workflow
    run: WorkflowRun
    progress: WorkflowProgress
    def __init__(self, workflow: _Optional[_Union[Workflow, _Mapping]] = ..., run: _Optional[_Union[WorkflowRun, _Mapping]] = ..., progress: _Optional[_Union[WorkflowProgress, _Mapping]] = ...) -> None: ...

class ResumeWorkflowRunRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ResumeWorkflowRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: WorkflowRun
    def __init__(self, run: _Optional[_Union[WorkflowRun, _Mapping]] = ...) -> None: ...
