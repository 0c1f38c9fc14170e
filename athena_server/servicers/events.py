"""EventService over gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from athena.v1 import events_pb2, events_pb2_grpc
from athena_server.plane import ControlPlane
from athena_server.servicers.streaming import after_validation


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
        async for event in after_validation(context, events):
            yield events_pb2.StreamEventsResponse(event=event)
