"""SessionService over gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from athena.v1 import sessions_pb2, sessions_pb2_grpc
from athena_server.interceptors import TRACE_HEADER
from athena_server.plane import ControlPlane
from athena_server.tracing import trace_id


class SessionServicer(sessions_pb2_grpc.SessionServiceServicer):
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def ListSessions(
        self, request: sessions_pb2.ListSessionsRequest, context: grpc.aio.ServicerContext
    ) -> sessions_pb2.ListSessionsResponse:
        return await self.plane.sessions.list(request)

    async def ListTranscriptEntries(
        self, request: sessions_pb2.ListTranscriptEntriesRequest, context: grpc.aio.ServicerContext
    ) -> sessions_pb2.ListTranscriptEntriesResponse:
        return await self.plane.sessions.transcript(request)

    async def StreamTranscript(
        self, request: sessions_pb2.StreamTranscriptRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[sessions_pb2.StreamTranscriptResponse]:
        entries = await self.plane.sessions.open_transcript_stream(request)
        # Headers go out only once the request is valid, so a bad request is a plain error status.
        await context.send_initial_metadata(((TRACE_HEADER, trace_id()),))
        async for entry in entries:
            yield sessions_pb2.StreamTranscriptResponse(entry=entry)
