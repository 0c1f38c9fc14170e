"""SystemService over gRPC."""

from __future__ import annotations

import grpc

from athena.v1 import system_pb2, system_pb2_grpc
from athena_server.plane import ControlPlane
from athena_server.timefmt import iso, now_ms


class SystemServicer(system_pb2_grpc.SystemServiceServicer):
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def GetCapabilities(
        self, request: system_pb2.GetCapabilitiesRequest, context: grpc.aio.ServicerContext
    ) -> system_pb2.GetCapabilitiesResponse:
        return self.plane.system.capabilities()

    async def GetAdminHealth(
        self, request: system_pb2.GetAdminHealthRequest, context: grpc.aio.ServicerContext
    ) -> system_pb2.GetAdminHealthResponse:
        return system_pb2.GetAdminHealthResponse(status="ok", now=iso(now_ms()))

    async def GetHealth(
        self, request: system_pb2.GetHealthRequest, context: grpc.aio.ServicerContext
    ) -> system_pb2.GetHealthResponse:
        return system_pb2.GetHealthResponse(status="ok", now=iso(now_ms()))

    async def GetReadiness(
        self, request: system_pb2.GetReadinessRequest, context: grpc.aio.ServicerContext
    ) -> system_pb2.GetReadinessResponse:
        return await self.plane.system.readiness()
