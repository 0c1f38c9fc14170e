"""FleetService over gRPC."""

from __future__ import annotations

import grpc

from athena.v1 import fleet_pb2, fleet_pb2_grpc
from athena_server.plane import ControlPlane


class FleetServicer(fleet_pb2_grpc.FleetServiceServicer):
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def GetFleetSummary(
        self, request: fleet_pb2.GetFleetSummaryRequest, context: grpc.aio.ServicerContext
    ) -> fleet_pb2.GetFleetSummaryResponse:
        return await self.plane.fleet.summary()
