"""RunService over gRPC. Run control (active runs, cancellation) arrives with the runs capability."""

from __future__ import annotations

import grpc

from athena.v1 import runs_pb2, runs_pb2_grpc
from athena_server.plane import ControlPlane


class RunServicer(runs_pb2_grpc.RunServiceServicer):
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def CreateRun(
        self, request: runs_pb2.CreateRunRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.CreateRunResponse:
        return runs_pb2.CreateRunResponse(result=await self.plane.runs.create(request))

    async def GetRun(
        self, request: runs_pb2.GetRunRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.GetRunResponse:
        return runs_pb2.GetRunResponse(run=await self.plane.runs.get(request.run_id))
