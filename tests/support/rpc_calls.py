"""Calling any RPC of the contract from a request message, over gRPC or over REST, for tests generated from
the descriptors. REST requests are built from the RPC's http rule (path parameters, then the body or the
query string), the way a client following the OpenAPI document would send them.

Both return an `Outcome`: the error code (None on success), so one assertion covers both transports.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import grpc
import httpx
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from athena_client.contract import json_to_message, message_to_json, services
from athena_gateway.routes import RouteSpec, build_routes
from tests.support.grpc_errors import reason, retry_delay_seconds


@dataclass(frozen=True)
class Outcome:
    """What a call came back with: `code` is the Athena error code, None when it succeeded."""

    code: str | None
    message: str = ""
    status: int | None = None  # REST status
    headers: dict[str, str] | None = None
    retry_delay_seconds: int | None = None  # gRPC RetryInfo


def methods() -> list[MethodDescriptor]:
    """Every RPC of the contract, in a stable order."""
    return [m for s in services() for m in s.methods]


def method_named(name: str) -> MethodDescriptor:
    """`RunService.CreateRun` -> its descriptor."""
    service, rpc = name.split(".")
    for s in services():
        if s.name == service:
            return s.methods_by_name[rpc]
    raise KeyError(name)


def request_of(method: MethodDescriptor, **fields: Any) -> Message:
    """The request message of `method` from seed-style JSON fields."""
    return json_to_message(fields, message_factory.GetMessageClass(method.input_type)())


@functools.cache
def _routes() -> dict[str, RouteSpec]:
    return {spec.method.full_name: spec for spec in reversed(build_routes())}  # the first binding wins


def route_of(method: MethodDescriptor) -> RouteSpec:
    return _routes()[method.full_name]


def rest_request(method: MethodDescriptor, request: Message) -> tuple[str, str, list[tuple[str, str]], Any]:
    """(HTTP method, path, query items, JSON body or None) for `request` under the RPC's first binding."""
    spec = route_of(method)
    data = message_to_json(request)
    path = spec.path
    for name in spec.path_params:
        field = method.input_type.fields_by_name[name]
        value = data.pop(field.json_name, "")
        path = path.replace("{" + name + "}", quote(str(value), safe=""))
    body: Any = None
    query: list[tuple[str, str]] = []
    if spec.body == "*":
        body = data
    else:
        if spec.body:
            body = data.pop(method.input_type.fields_by_name[spec.body].json_name, {})
        for key, value in data.items():
            if isinstance(value, list):
                query.extend((key, str(v)) for v in value)
            elif isinstance(value, bool):
                query.append((key, "true" if value else "false"))
            elif value not in ("", None):
                query.append((key, str(value)))
    return spec.http_method, path, query, body


def rest_call_args(
    method: MethodDescriptor, request: Message, headers: dict[str, str]
) -> tuple[str, str, dict[str, Any]]:
    """(HTTP method, path, httpx keyword arguments) of `request` sent as a client following the OpenAPI would."""
    verb, path, query, body = rest_request(method, request)
    kwargs: dict[str, Any] = {"params": query, "headers": headers}
    if body is not None:
        kwargs["json"] = body
    return verb, path, kwargs


def grpc_callable(channel: grpc.Channel, method: MethodDescriptor) -> Any:
    """The channel's multi-callable for `method` (unary or server-streaming), decoding its response message."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    output = message_factory.GetMessageClass(method.output_type)
    make = channel.unary_stream if method.server_streaming else channel.unary_unary
    return make(path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=output.FromString)


def call_rest(client: httpx.Client, method: MethodDescriptor, request: Message, headers: dict[str, str]) -> Outcome:
    verb, path, kwargs = rest_call_args(method, request, headers)
    if method.server_streaming:
        with client.stream(verb, path, **kwargs) as resp:
            if resp.headers.get("content-type", "").startswith("text/event-stream"):
                return Outcome(None, status=resp.status_code, headers=dict(resp.headers))
            resp.read()
            return _rest_outcome(resp)
    return _rest_outcome(client.request(verb, path, **kwargs))


def _rest_outcome(resp: httpx.Response) -> Outcome:
    body = resp.json()
    assert set(body) in ({"ok", "data"}, {"ok", "error"}), body
    if body["ok"]:
        return Outcome(None, status=resp.status_code, headers=dict(resp.headers))
    error = body["error"]
    return Outcome(error["code"], error["message"], resp.status_code, dict(resp.headers))


def call_grpc(
    channel: grpc.Channel, method: MethodDescriptor, request: Message, metadata: dict[str, str], timeout: float = 30
) -> Outcome:
    pairs = tuple(metadata.items())
    try:
        if method.server_streaming:
            stream = grpc_callable(channel, method)
            call = stream(request, metadata=pairs, timeout=timeout)
            # The server sends its initial metadata once it accepted the stream (or ends it with the refusal).
            call.initial_metadata()
            with contextlib.suppress(grpc.RpcError):
                call.cancel()
            if call.code() not in (grpc.StatusCode.CANCELLED, grpc.StatusCode.OK, None):
                raise call
            return Outcome(None)
        unary = grpc_callable(channel, method)
        unary(request, metadata=pairs, timeout=timeout)
        return Outcome(None)
    except grpc.RpcError as err:
        return grpc_outcome(err)


def grpc_outcome(err: grpc.RpcError) -> Outcome:
    """The Athena error code of a failed call (from its ErrorInfo) and its RetryInfo delay, if any."""
    return Outcome(reason(err), err.details() or "", retry_delay_seconds=retry_delay_seconds(err))
