"""Calling one RPC by name over both transports and getting what a client reads back: over gRPC the
response message (or its refusal), over REST the `data` of the envelope. `grpc_data` applies the route's
`response_body` to the gRPC answer, so REST and gRPC answers of the same call compare as equal JSON."""

from __future__ import annotations

from typing import Any

import grpc
import httpx
from google.protobuf.message import Message

from athena_client.rest_data import field_json
from tests.support.rpc_calls import grpc_callable, method_named, request_of, rest_call_args, route_of
from tests.support.shapes import ok_data


def grpc_call(channel: grpc.Channel, name: str, metadata: dict[str, str] | None = None, /, **fields: Any) -> Message:
    """`Service.Method` over gRPC with a request from seed-style JSON fields; raises grpc.RpcError."""
    method = method_named(name)
    response: Message = grpc_callable(channel, method)(
        request_of(method, **fields), metadata=tuple((metadata or {}).items()), timeout=60
    )
    return response


def response_body(name: str) -> str:
    return route_of(method_named(name)).response_body


def grpc_data(channel: grpc.Channel, name: str, metadata: dict[str, str] | None = None, /, **fields: Any) -> Any:
    """The gRPC answer as the JSON REST would return for it (the route's `response_body`)."""
    return field_json(grpc_call(channel, name, metadata, **fields), response_body(name))


def rest_response(
    client: httpx.Client, name: str, headers: dict[str, str] | None = None, /, **fields: Any
) -> httpx.Response:
    """`Service.Method` over REST, the request built from the RPC's http rule."""
    method = method_named(name)
    verb, path, kwargs = rest_call_args(method, request_of(method, **fields), headers or {})
    return client.request(verb, path, **kwargs)


def rest_data(
    client: httpx.Client, name: str, headers: dict[str, str] | None = None, status: int = 200, /, **fields: Any
) -> Any:
    return ok_data(rest_response(client, name, headers, **fields), status)
