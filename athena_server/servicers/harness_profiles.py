"""HarnessProfileService over gRPC."""

from __future__ import annotations

import grpc

from athena.v1 import harness_profiles_pb2, harness_profiles_pb2_grpc
from athena_server.plane import ControlPlane


class HarnessProfileServicer(harness_profiles_pb2_grpc.HarnessProfileServiceServicer):
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def ListHarnessProfiles(
        self, request: harness_profiles_pb2.ListHarnessProfilesRequest, context: grpc.aio.ServicerContext
    ) -> harness_profiles_pb2.ListHarnessProfilesResponse:
        return await self.plane.harness_profiles.list(request)

    async def CreateHarnessProfile(
        self, request: harness_profiles_pb2.CreateHarnessProfileRequest, context: grpc.aio.ServicerContext
    ) -> harness_profiles_pb2.CreateHarnessProfileResponse:
        profile = await self.plane.harness_profiles.create(request)
        return harness_profiles_pb2.CreateHarnessProfileResponse(harness_profile=profile)
