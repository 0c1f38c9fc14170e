"""The gRPC transport: generic callables per method path on one channel (no generated stubs, so the
contract's descriptors alone decide what can be called), statuses read into `AthenaError`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
from google.protobuf.message import Message

from athena_client.errors import from_rpc_error
from athena_client.rpcs import Rpc
from athena_client.transport import ClientClosedError, Headers

CHANNEL_OPTIONS = (
    # Responses may be larger than requests: a page is cut at about 1 MiB, a run's output can be large.
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    # gRPC's own reconnect back-off (1 s growing to 120 s, shared by every channel to the same target)
    # fails calls at once, without trying to connect, while it runs: after a server restart, calls kept
    # failing for up to two minutes, past the client's retries and stream reconnects. Kept below what the
    # default RetryPolicy's pauses add up to (0.35 s at least), so a retried call reaches a server that
    # is back; the RetryPolicy paces the attempts.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 250),
)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


class GrpcTransport:
    """Calls over a blocking `grpc.Channel` to `target` (`host:port`, or `unix:/path`)."""

    def __init__(self, target: str, channel: grpc.Channel | None = None) -> None:
        self.target = target
        self._channel = channel or grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        self._owned = channel is None
        self._closed = False
        self._callables: dict[str, Any] = {}

    def _callable(self, rpc: Rpc) -> Any:
        if self._closed:
            raise ClientClosedError()
        found = self._callables.get(rpc.path)
        if found is None:
            factory = self._channel.unary_stream if rpc.streaming else self._channel.unary_unary
            found = factory(
                rpc.path, request_serializer=_serialize, response_deserializer=rpc.response_class.FromString
            )
            self._callables[rpc.path] = found
        return found

    def unary(self, rpc: Rpc, request: Message, headers: Headers, timeout: float | None) -> Message:
        try:
            response: Message = self._callable(rpc)(request, metadata=tuple(headers), timeout=timeout)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        return response

    def stream(self, rpc: Rpc, request: Message, headers: Headers, timeout: float | None) -> Iterator[Message]:
        call = self._callable(rpc)(request, metadata=tuple(headers), timeout=timeout)
        try:
            yield from call
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None
        finally:
            call.cancel()

    def close(self) -> None:
        self._closed = True
        if self._owned:
            self._channel.close()


class AsyncGrpcTransport:
    """Calls over a `grpc.aio` channel, opened on first use inside the running event loop (an aio channel
    belongs to the loop that made it)."""

    def __init__(self, target: str, channel: grpc.aio.Channel | None = None) -> None:
        self.target = target
        self._channel = channel
        self._owned = channel is None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._callables: dict[str, Any] = {}

    def _callable(self, rpc: Rpc) -> Any:
        if self._closed:  # the channel is gone: opening another would leak it
            raise ClientClosedError()
        loop = asyncio.get_running_loop()
        if self._channel is None or (self._owned and self._loop is not loop):
            self._channel = grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS)
            self._loop = loop
            self._callables.clear()
        found = self._callables.get(rpc.path)
        if found is None:
            factory = self._channel.unary_stream if rpc.streaming else self._channel.unary_unary
            found = factory(
                rpc.path, request_serializer=_serialize, response_deserializer=rpc.response_class.FromString
            )
            self._callables[rpc.path] = found
        return found

    async def unary(self, rpc: Rpc, request: Message, headers: Headers, timeout: float | None) -> Message:
        try:
            response: Message = await self._callable(rpc)(request, metadata=tuple(headers), timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
        return response

    async def stream(
        self, rpc: Rpc, request: Message, headers: Headers, timeout: float | None
    ) -> AsyncIterator[Message]:
        call = self._callable(rpc)(request, metadata=tuple(headers), timeout=timeout)
        try:
            async for message in call:
                yield message
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc) from None
        finally:
            call.cancel()

    async def close(self) -> None:
        self._closed = True
        if self._owned and self._channel is not None:
            await self._channel.close()
            self._channel = None
