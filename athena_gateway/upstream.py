"""The gateway's calls to the server, behind one protocol with two paths: over a gRPC channel to a server
elsewhere (`GrpcUpstream`: generic multi-callables per method, no generated stubs, so the route table alone
decides what can be called), or in-process when both share a process (athena_gateway/inprocess.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Protocol

import grpc
from google.protobuf import message_factory
from google.protobuf.message import Message

from athena_client.contract import HTTP_STATUS_HEADER
from athena_gateway.metadata import Metadata
from athena_gateway.routes import RouteSpec
from athena_server import otel


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def status_from_trailers(trailers: Iterable[tuple[str, str | bytes]]) -> int:
    """The REST status a successful call asked for in its trailers (the interceptor sets it for accepted
    work); 200 when it asked for none."""
    status = 200
    for key, value in trailers:
        if key == HTTP_STATUS_HEADER and isinstance(value, str) and value.isdigit():
            status = int(value)
    return status


class StreamCall(Protocol):
    """The part of `grpc.aio.UnaryStreamCall` the SSE writer uses."""

    async def initial_metadata(self) -> Any: ...
    def done(self) -> bool: ...
    async def code(self) -> grpc.StatusCode: ...
    async def details(self) -> str: ...
    async def trailing_metadata(self) -> Any: ...
    async def read(self) -> Any: ...
    def cancel(self) -> bool: ...


class Upstream(Protocol):
    """Where the gateway's calls go. Failures are `grpc.aio.AioRpcError` on both paths."""

    target: str

    async def unary(self, spec: RouteSpec, request: Message, metadata: Metadata) -> tuple[Message, int]: ...
    def stream(self, spec: RouteSpec, request: Message, metadata: Metadata) -> StreamCall: ...
    async def close(self) -> None: ...


class GrpcUpstream:
    """A channel to the upstream server, opened on first use inside the running event loop (grpc.aio
    channels belong to the loop that created them), unless one was handed in."""

    def __init__(self, target: str, channel: grpc.aio.Channel | None = None) -> None:
        self.target = target
        self._channel = channel
        self._owned = channel is None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._callables: dict[str, Any] = {}

    def channel(self) -> grpc.aio.Channel:
        loop = asyncio.get_running_loop()
        if self._channel is None or (self._owned and self._loop is not loop):
            self._channel = grpc.aio.insecure_channel(self.target)
            self._loop = loop
            self._callables.clear()
        return self._channel

    def _callable(self, spec: RouteSpec) -> Any:
        channel = self.channel()
        found = self._callables.get(spec.rpc_path)
        if found is None:
            factory = channel.unary_stream if spec.method.server_streaming else channel.unary_unary
            found = factory(
                spec.rpc_path,
                request_serializer=_serialize,
                response_deserializer=message_factory.GetMessageClass(spec.method.output_type).FromString,
            )
            self._callables[spec.rpc_path] = found
        return found

    async def unary(self, spec: RouteSpec, request: Message, metadata: Metadata) -> tuple[Message, int]:
        """The response and the REST status the server asked for (200 unless it said otherwise).
        Raises grpc.aio.AioRpcError on a non-OK status. With tracing on, the request span goes along as
        `traceparent`, so the server's RPC span is its child."""
        if otel.ENABLED:
            metadata = otel.inject(metadata)
        call = self._callable(spec)(request, metadata=metadata)
        response: Message = await call
        return response, status_from_trailers(await call.trailing_metadata() or ())

    def stream(self, spec: RouteSpec, request: Message, metadata: Metadata) -> grpc.aio.UnaryStreamCall:
        if otel.ENABLED:
            metadata = otel.inject(metadata)
        call: grpc.aio.UnaryStreamCall = self._callable(spec)(request, metadata=metadata)
        return call

    async def close(self) -> None:
        if self._owned and self._channel is not None:
            await self._channel.close()
            self._channel = None
