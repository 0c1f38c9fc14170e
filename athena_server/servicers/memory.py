"""MemoryService over gRPC."""

from __future__ import annotations

import grpc

from athena.v1 import memory_pb2, memory_pb2_grpc
from athena_server.plane import ControlPlane


class MemoryServicer(memory_pb2_grpc.MemoryServiceServicer):
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def SearchMemory(
        self, request: memory_pb2.SearchMemoryRequest, context: grpc.aio.ServicerContext
    ) -> memory_pb2.SearchMemoryResponse:
        return await self.plane.memory.search(request)

    async def GetMemory(
        self, request: memory_pb2.GetMemoryRequest, context: grpc.aio.ServicerContext
    ) -> memory_pb2.GetMemoryResponse:
        return await self.plane.memory.get(request)
