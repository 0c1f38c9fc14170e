"""Server-streaming RPCs as server-sent events, shaped by the method's `(athena.v1.sse)` option.

Stream start: an SSE response commits to status 200 with its first byte, so the gateway first waits for
the call's initial metadata. The server sends it as soon as its handler has validated the request (or
with its first message); a request the server rejects ends as a trailers-only status instead, which the
gateway answers with the ordinary JSON error envelope. A server that sends neither within
`STREAM_START_GRACE_SECONDS` gets the stream started anyway; a later failure becomes an `event: error` frame.

The gRPC stream is read by a background task into a queue, so the writer can wait on the queue with the
heartbeat timeout without ever cancelling a `read()` (which would cancel the call).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncGenerator
from typing import Any

import grpc
from google.protobuf.message import Message
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from athena_client.rest_data import field_json
from athena_gateway.envelope import error_body, success_body
from athena_gateway.errors import GatewayError, from_rpc_error, from_status, internal_error
from athena_gateway.metadata import Metadata
from athena_gateway.routes import RouteSpec
from athena_gateway.upstream import Upstream

STREAM_START_GRACE_SECONDS = 1.0
SSE_HEADERS = {
    "content-type": "text/event-stream",  # set here, not as media_type, so Starlette adds no charset
    "cache-control": "no-cache",
    "connection": "keep-alive",
    "x-accel-buffering": "no",
}
_QUEUE_SIZE = 64  # a slow HTTP client pauses the reader, and gRPC flow control the server

log = logging.getLogger("athena.gateway")

# Frames rendered lately, by route and message bytes. A frame is a function of the two, and one event
# usually goes to many streams at once (every subscriber of its session, every unfiltered tail), so it
# is rendered once instead of once per stream: protobuf JSON is the costly part of a frame.
FRAME_CACHE_SIZE = 4096


class FrameCache:
    """A bounded least-recently-used map of rendered frames."""

    def __init__(self, size: int = FRAME_CACHE_SIZE) -> None:
        self._size = size
        self._frames: OrderedDict[tuple[str, bytes], str] = OrderedDict()

    def get(self, key: tuple[str, bytes]) -> str | None:
        frame = self._frames.get(key)
        if frame is not None:
            self._frames.move_to_end(key)
        return frame

    def put(self, key: tuple[str, bytes], frame: str) -> None:
        self._frames[key] = frame
        if len(self._frames) > self._size:
            self._frames.popitem(last=False)

    def __len__(self) -> int:
        return len(self._frames)


_FRAMES = FrameCache()


def _one_line(value: Any) -> str:
    return str(value).replace("\r", " ").replace("\n", " ")


def _consume(task: asyncio.Future[Any]) -> None:
    """Mark a finished helper task's outcome as seen (a cancelled call fails its pending futures)."""
    if not task.cancelled():
        task.exception()


class EventStream:
    """One SSE response: the gRPC call, its reader task, and the frames written from its messages."""

    def __init__(
        self,
        call: grpc.aio.UnaryStreamCall,
        started: asyncio.Future[Any],
        spec: RouteSpec,
        trace_id: str,
        heartbeat: float,
    ) -> None:
        assert spec.sse is not None
        self._call = call
        self._started = started
        self._spec = spec
        self._sse = spec.sse
        self._trace_id = trace_id
        self._heartbeat = heartbeat
        self._queue: asyncio.Queue[Message | GatewayError | None] = asyncio.Queue(_QUEUE_SIZE)
        self._reader: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        """Copy the stream into the queue, ending with None (finished) or a GatewayError (failed)."""
        try:
            while (item := await self._call.read()) is not grpc.aio.EOF:
                await self._queue.put(item)
            await self._queue.put(None)
        except grpc.aio.AioRpcError as exc:
            await self._queue.put(from_rpc_error(exc, self._spec.method.name, self._trace_id))
        except Exception:
            log.exception("reading %s failed (trace %s)", self._spec.rpc_path, self._trace_id)
            await self._queue.put(internal_error(self._trace_id))

    def frame(self, message: Message) -> str:
        """The SSE frame of one message: rendered once per distinct message, then served from the cache."""
        key = (self._spec.rpc_path, message.SerializeToString(deterministic=True))
        frame = _FRAMES.get(key)
        if frame is None:
            frame = self._render(message)
            _FRAMES.put(key, frame)
        return frame

    def _render(self, message: Message) -> str:
        lines = []
        if self._sse.id_field:
            event_id = field_json(message, self._sse.id_field)
            if event_id not in (None, ""):
                lines.append(f"id: {_one_line(event_id)}")
        event = field_json(message, self._sse.event_field) if self._sse.event_field else self._sse.event_name
        if event:
            lines.append(f"event: {_one_line(event)}")
        lines.append(f"data: {success_body(field_json(message, self._spec.response_body))}")
        return "\n".join(lines) + "\n\n"

    async def frames(self) -> AsyncGenerator[str, None]:
        self._reader = asyncio.create_task(self._read())
        try:
            if self._sse.retry_ms > 0:
                yield f"retry: {self._sse.retry_ms}\n\n"
            while True:
                try:
                    # An item already queued is taken without wait_for's task and timer.
                    item = (
                        self._queue.get_nowait()
                        if self._queue.qsize()
                        else await asyncio.wait_for(self._queue.get(), self._heartbeat)
                    )
                except TimeoutError:
                    yield ": heartbeat\n\n"
                    continue
                if item is None:
                    return
                if isinstance(item, GatewayError):
                    yield f"event: error\ndata: {error_body(item, self._trace_id)}\n\n"
                    return
                yield self.frame(item)
        finally:
            await self.close()

    async def close(self) -> None:
        """Cancel the call and wait for the helper tasks; safe to call more than once."""
        self._call.cancel()
        tasks = [t for t in (self._reader, self._started) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class SseResponse(StreamingResponse):
    """A streaming response that always releases its gRPC call, however the HTTP side ends (client gone,
    server shutting down, stream finished)."""

    def __init__(self, stream: EventStream) -> None:
        self._stream = stream
        self._frames = stream.frames()
        super().__init__(self._frames, headers=SSE_HEADERS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with contextlib.suppress(RuntimeError):  # still running: its own finally will close
                await self._frames.aclose()
            await self._stream.close()


async def open_stream(
    upstream: Upstream,
    spec: RouteSpec,
    request: Message,
    metadata: Metadata,
    trace_id: str,
    heartbeat: float,
) -> SseResponse:
    """Start the call; raise GatewayError if the server rejects it before the stream starts."""
    call = upstream.stream(spec, request, metadata)
    started = asyncio.ensure_future(call.initial_metadata())
    started.add_done_callback(_consume)
    try:
        await asyncio.wait({started}, timeout=STREAM_START_GRACE_SECONDS)
        if call.done():
            code = await call.code()
            if code != grpc.StatusCode.OK:
                details, trailers = await call.details(), await call.trailing_metadata()
                raise from_status(code, details, trailers, spec.method.name, trace_id)
    except BaseException:
        call.cancel()
        started.cancel()
        raise
    return SseResponse(EventStream(call, started, spec, trace_id, heartbeat))
