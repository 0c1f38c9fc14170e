"""DirectiveService over gRPC."""

from __future__ import annotations

import grpc

from athena.v1 import directives_pb2, directives_pb2_grpc
from athena_server.plane import ControlPlane


class DirectiveServicer(directives_pb2_grpc.DirectiveServiceServicer):
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def ListDirectives(
        self, request: directives_pb2.ListDirectivesRequest, context: grpc.aio.ServicerContext
    ) -> directives_pb2.ListDirectivesResponse:
        return await self.plane.directives.list(request)

    async def CreateDirective(
        self, request: directives_pb2.CreateDirectiveRequest, context: grpc.aio.ServicerContext
    ) -> directives_pb2.CreateDirectiveResponse:
        return directives_pb2.CreateDirectiveResponse(directive=await self.plane.directives.create(request))
