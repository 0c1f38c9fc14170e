"""A2aService and A2aDlqService over gRPC: thin adapters onto the control plane's bus."""

from __future__ import annotations

import grpc

from athena.v1 import a2a_dlq_pb2, a2a_dlq_pb2_grpc, a2a_pb2, a2a_pb2_grpc
from athena_server.control.outcomes import Outcome
from athena_server.plane import ControlPlane
from athena_server.servicers.metadata import idempotency_key
from athena_server.servicers.outcomes import answer


class A2aServicer(a2a_pb2_grpc.A2aServiceServicer):
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def SendA2aMessage(
        self, request: a2a_pb2.SendA2aMessageRequest, context: grpc.aio.ServicerContext
    ) -> a2a_pb2.SendA2aMessageResponse:
        async def call() -> Outcome[a2a_pb2.SendA2aMessageResponse]:
            outcome = await self.plane.a2a.accept(request)
            return Outcome(a2a_pb2.SendA2aMessageResponse(message=outcome.value), outcome.accepted)

        return answer(
            await self.plane.idempotency.outcome(
                "a2a.send", idempotency_key(context), request, a2a_pb2.SendA2aMessageResponse, call
            )
        )

    async def GetA2aMessage(
        self, request: a2a_pb2.GetA2aMessageRequest, context: grpc.aio.ServicerContext
    ) -> a2a_pb2.GetA2aMessageResponse:
        return a2a_pb2.GetA2aMessageResponse(message=await self.plane.a2a.get(request.id))

    async def ListA2aMessages(
        self, request: a2a_pb2.ListA2aMessagesRequest, context: grpc.aio.ServicerContext
    ) -> a2a_pb2.ListA2aMessagesResponse:
        return await self.plane.a2a.page(request)


class A2aDlqServicer(a2a_dlq_pb2_grpc.A2aDlqServiceServicer):
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def ListA2aDlqItems(
        self, request: a2a_dlq_pb2.ListA2aDlqItemsRequest, context: grpc.aio.ServicerContext
    ) -> a2a_dlq_pb2.ListA2aDlqItemsResponse:
        return await self.plane.a2a.dead_letters(request)

    async def RequeueA2aDlqItem(
        self, request: a2a_dlq_pb2.RequeueA2aDlqItemRequest, context: grpc.aio.ServicerContext
    ) -> a2a_dlq_pb2.RequeueA2aDlqItemResponse:
        audit_note = request.audit_note if request.HasField("audit_note") else None
        return await self.plane.a2a.requeue(request.id, audit_note)

    async def DiscardA2aDlqItem(
        self, request: a2a_dlq_pb2.DiscardA2aDlqItemRequest, context: grpc.aio.ServicerContext
    ) -> a2a_dlq_pb2.DiscardA2aDlqItemResponse:
        audit_note = request.audit_note if request.HasField("audit_note") else None
        return await self.plane.a2a.discard(request.id, audit_note)
