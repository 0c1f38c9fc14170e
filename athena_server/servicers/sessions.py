"""SessionService over gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from athena.v1 import sessions_pb2, sessions_pb2_grpc
from athena_server.plane import ControlPlane
from athena_server.servicers.streaming import after_validation


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
        async for entry in after_validation(context, entries):
            yield sessions_pb2.StreamTranscriptResponse(entry=entry)
