from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HarnessConfig(_message.Message):
    __slots__ = ("provider", "model", "tools", "command")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    tools: _containers.RepeatedScalarFieldContainer[str]
    command: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ..., tools: _Optional[_Iterable[str]] = ..., command: _Optional[_Iterable[str]] = ...) -> None: ...

class HarnessPolicies(_message.Message):
    __slots__ = ("timeout_ms", "retry_limit", "budget_usd")
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    RETRY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    BUDGET_USD_FIELD_NUMBER: _ClassVar[int]
    timeout_ms: int
    retry_limit: int
    budget_usd: float
    def __init__(self, timeout_ms: _Optional[int] = ..., retry_limit: _Optional[int] = ..., budget_usd: _Optional[float] = ...) -> None: ...

class EgressRule(_message.Message):
    __slots__ = ("host", "port")
    HOST_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    host: str
    port: int
    def __init__(self, host: _Optional[str] = ..., port: _Optional[int] = ...) -> None: ...

class VerificationPolicy(_message.Message):
    __slots__ = ("id", "kind", "label", "evidence_type")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    label: str
    evidence_type: str
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., label: _Optional[str] = ..., evidence_type: _Optional[str] = ...) -> None: ...

class HarnessProfile(_message.Message):
    __slots__ = ("id", "display_name", "version", "config", "policies", "allowed_egress", "verification_policies", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_EGRESS_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_POLICIES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    display_name: str
    version: str
    config: HarnessConfig
    policies: HarnessPolicies
    allowed_egress: _containers.RepeatedCompositeFieldContainer[EgressRule]
    verification_policies: _containers.RepeatedCompositeFieldContainer[VerificationPolicy]
    created_at: str
    def __init__(self, id: _Optional[str] = ..., display_name: _Optional[str] = ..., version: _Optional[str] = ..., config: _Optional[_Union[HarnessConfig, _Mapping]] = ..., policies: _Optional[_Union[HarnessPolicies, _Mapping]] = ..., allowed_egress: _Optional[_Iterable[_Union[EgressRule, _Mapping]]] = ..., verification_policies: _Optional[_Iterable[_Union[VerificationPolicy, _Mapping]]] = ..., created_at: _Optional[str] = ...) -> None: ...

class ListHarnessProfilesRequest(_message.Message):
    __slots__ = ("cursor", "limit")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    limit: int
    def __init__(self, cursor: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListHarnessProfilesResponse(_message.Message):
    __slots__ = ("items", "next_cursor")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[HarnessProfile]
    next_cursor: str
    def __init__(self, items: _Optional[_Iterable[_Union[HarnessProfile, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class CreateHarnessProfileRequest(_message.Message):
    __slots__ = ("display_name", "version", "config", "policies", "allowed_egress", "verification_policies")
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_EGRESS_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_POLICIES_FIELD_NUMBER: _ClassVar[int]
    display_name: str
    version: str
    config: HarnessConfig
    policies: HarnessPolicies
    allowed_egress: _containers.RepeatedCompositeFieldContainer[EgressRule]
    verification_policies: _containers.RepeatedCompositeFieldContainer[VerificationPolicy]
    def __init__(self, display_name: _Optional[str] = ..., version: _Optional[str] = ..., config: _Optional[_Union[HarnessConfig, _Mapping]] = ..., policies: _Optional[_Union[HarnessPolicies, _Mapping]] = ..., allowed_egress: _Optional[_Iterable[_Union[EgressRule, _Mapping]]] = ..., verification_policies: _Optional[_Iterable[_Union[VerificationPolicy, _Mapping]]] = ...) -> None: ...

class CreateHarnessProfileResponse(_message.Message):
    __slots__ = ("harness_profile",)
    HARNESS_PROFILE_FIELD_NUMBER: _ClassVar[int]
    harness_profile: HarnessProfile
    def __init__(self, harness_profile: _Optional[_Union[HarnessProfile, _Mapping]] = ...) -> None: ...
