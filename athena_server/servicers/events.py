"""EventService over gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from athena.v1 import events_pb2, events_pb2_grpc
from athena_server.interceptors import TRACE_HEADER
from athena_server.plane import ControlPlane
from athena_server.tracing import trace_id


class EventServicer(events_pb2_grpc.EventServiceServicer):
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def ListEvents(
        self, request: events_pb2.ListEventsRequest, context: grpc.aio.ServicerContext
    ) -> events_pb2.ListEventsResponse:
        return await self.plane.events.list(request)

    async def StreamEvents(
        self, request: events_pb2.StreamEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[events_pb2.StreamEventsResponse]:
        events = await self.plane.events.open_stream(request)
        # Headers go out only once the request is valid, so a bad request is a plain error status.
        await context.send_initial_metadata(((TRACE_HEADER, trace_id()),))
        async for event in events:
            yield events_pb2.StreamEventsResponse(event=event)
