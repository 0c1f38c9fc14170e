"""WorkService over gRPC."""

from __future__ import annotations

import grpc

from athena.v1 import work_pb2, work_pb2_grpc
from athena_server.plane import ControlPlane


class WorkServicer(work_pb2_grpc.WorkServiceServicer):
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def GetWorkQueue(
        self, request: work_pb2.GetWorkQueueRequest, context: grpc.aio.ServicerContext
    ) -> work_pb2.GetWorkQueueResponse:
        return work_pb2.GetWorkQueueResponse(queue=await self.plane.work.get_queue(request.session_id))

    async def EnqueueWork(
        self, request: work_pb2.EnqueueWorkRequest, context: grpc.aio.ServicerContext
    ) -> work_pb2.EnqueueWorkResponse:
        return work_pb2.EnqueueWorkResponse(queue=await self.plane.work.enqueue(request))

    async def DrainWork(
        self, request: work_pb2.DrainWorkRequest, context: grpc.aio.ServicerContext
    ) -> work_pb2.DrainWorkResponse:
        return await self.plane.work.drain(request)
