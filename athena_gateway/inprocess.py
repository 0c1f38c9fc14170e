"""The gateway's call path when it shares a process with the gRPC server: a REST request reaches the
servicer through the server's own interceptor chain (trace id, header bounds, the access gate, request
bounds, error mapping, access log), without the loopback hop (HTTP/2 framing, serialising the request
and the answer twice, two event-loop round trips through gRPC's C core).

It speaks the gateway's `Upstream` protocol, so routes, the envelope and SSE do not know which path they
use: a handler's abort comes back as the same `grpc.aio.AioRpcError` (code, details, trailers with the
`ErrorInfo`) a channel would raise, and the REST status rides in the same trailer. What the interceptor
reads from a `ServicerContext` is served by `LocalContext`; the peer is `unix:in-process`, which the gate
trusts like a local socket, so it takes the HTTP client's address from the forwarded header exactly as it
does for a gateway on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, NoReturn

import grpc
from google.protobuf.message import Message

from athena_gateway.metadata import Metadata
from athena_gateway.routes import RouteSpec
from athena_gateway.upstream import status_from_trailers

# A method handler with the server's interceptors applied, by full method path (`/athena.v1.X/Y`).
Resolve = Callable[[str], Awaitable[grpc.RpcMethodHandler]]
Trailers = tuple[tuple[str, str | bytes], ...]

IN_PROCESS_PEER = "unix:in-process"
log = logging.getLogger("athena.gateway")
_STREAM_BUFFER = 64  # messages a stream may run ahead of its reader, like the gateway's SSE queue


class _Aborted(grpc.aio.AbortError):
    """What `LocalContext.abort` raises: the interceptor lets AbortError through unchanged."""

    def __init__(self, code: grpc.StatusCode, details: str, trailers: Trailers) -> None:
        super().__init__(details)
        self.code = code
        self.details = details
        self.trailers = trailers

    def rpc_error(self) -> grpc.aio.AioRpcError:
        return grpc.aio.AioRpcError(self.code, grpc.aio.Metadata(), grpc.aio.Metadata(*self.trailers), self.details)


class LocalContext:
    """The part of `grpc.aio.ServicerContext` Athena's interceptor and servicers use."""

    def __init__(self, metadata: Metadata) -> None:
        self._metadata = metadata
        self.trailers: Trailers = ()
        self.started: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def invocation_metadata(self) -> Metadata:
        return self._metadata

    def peer(self) -> str:
        return IN_PROCESS_PEER

    def set_trailing_metadata(self, trailing_metadata: Sequence[tuple[str, str | bytes]]) -> None:
        self.trailers = tuple(trailing_metadata)

    async def send_initial_metadata(self, initial_metadata: Sequence[tuple[str, str | bytes]]) -> None:
        if not self.started.done():
            self.started.set_result(None)

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Sequence[tuple[str, str | bytes]] = ()
    ) -> NoReturn:
        raise _Aborted(code, details, tuple(trailing_metadata))


class LocalStreamCall:
    """A server-streaming call run as a task beside the reader, with the `grpc.aio.UnaryStreamCall`
    methods the SSE writer uses. The handler runs in its own task (its own copy of the request's context
    variables), as it would in the server; a bounded queue holds it back when the HTTP client is slow."""

    def __init__(self, responses: AsyncIterator[Message], context: LocalContext) -> None:
        self._context = context
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue(_STREAM_BUFFER)
        self._code = grpc.StatusCode.OK
        self._details = ""
        self._trailers: Trailers = ()
        self._task = asyncio.ensure_future(self._pump(responses))

    async def _pump(self, responses: AsyncIterator[Message]) -> None:
        try:
            async for item in responses:
                self._start()
                await self._queue.put(item)
        except _Aborted as exc:
            self._code, self._details, self._trailers = exc.code, exc.details, exc.trailers
        except asyncio.CancelledError:
            self._code, self._details = grpc.StatusCode.CANCELLED, "Locally cancelled by application!"
            raise
        except Exception:  # the interceptor turns a handler's errors into aborts: this is the path's own bug
            log.exception("in-process stream failed")
            self._code, self._details = grpc.StatusCode.INTERNAL, "in-process stream failed"
        else:
            self._trailers = self._context.trailers
        finally:
            self._start()
            with contextlib.suppress(asyncio.QueueFull):
                self._queue.put_nowait(None)  # a full queue: read() sees the task done instead

    def _start(self) -> None:
        if not self._context.started.done():
            self._context.started.set_result(None)

    async def initial_metadata(self) -> grpc.aio.Metadata:
        await asyncio.shield(self._context.started)
        return grpc.aio.Metadata()

    def done(self) -> bool:
        return self._task.done()

    async def _finished(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self._task)

    async def code(self) -> grpc.StatusCode:
        await self._finished()
        return self._code

    async def details(self) -> str:
        await self._finished()
        return self._details

    async def trailing_metadata(self) -> grpc.aio.Metadata:
        await self._finished()
        return grpc.aio.Metadata(*self._trailers)

    async def read(self) -> Any:
        """The next message, `grpc.aio.EOF` at a clean end; AioRpcError when the handler failed."""
        if self._task.done() and self._queue.empty():
            return self._end()
        item = await self._queue.get()
        if item is None:
            return self._end()
        return item

    def _end(self) -> Any:
        if self._code == grpc.StatusCode.OK:
            return grpc.aio.EOF
        raise grpc.aio.AioRpcError(self._code, grpc.aio.Metadata(), grpc.aio.Metadata(*self._trailers), self._details)

    def cancel(self) -> bool:
        return self._task.cancel()


class InProcessUpstream:
    """The `Upstream` of a gateway serving in the gRPC server's process; `resolve` comes from the server
    (athena_server/server.py `GrpcServer.local_handler`)."""

    target = "in-process"

    def __init__(self, resolve: Resolve) -> None:
        self._resolve = resolve

    async def unary(self, spec: RouteSpec, request: Message, metadata: Metadata) -> tuple[Message, int]:
        handler = await self._resolve(spec.rpc_path)
        context = LocalContext(metadata)
        try:
            response: Message = await handler.unary_unary(request, context)
        except _Aborted as exc:
            raise exc.rpc_error() from None
        return response, status_from_trailers(context.trailers)

    def stream(self, spec: RouteSpec, request: Message, metadata: Metadata) -> LocalStreamCall:
        context = LocalContext(metadata)

        async def responses() -> AsyncIterator[Message]:
            handler = await self._resolve(spec.rpc_path)
            async for item in handler.unary_stream(request, context):
                yield item

        return LocalStreamCall(responses(), context)

    async def close(self) -> None:
        """Nothing to close: the server's owner stops it."""
