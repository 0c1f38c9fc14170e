"""PolicyService over gRPC."""

from __future__ import annotations

import grpc

from athena.v1 import policy_pb2, policy_pb2_grpc
from athena_server.plane import ControlPlane


class PolicyServicer(policy_pb2_grpc.PolicyServiceServicer):
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def GetPolicy(
        self, request: policy_pb2.GetPolicyRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.GetPolicyResponse:
        return await self.plane.policy.get()

    async def PutPolicy(
        self, request: policy_pb2.PutPolicyRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.PutPolicyResponse:
        return await self.plane.policy.put(request)

    async def ListPolicyRejections(
        self, request: policy_pb2.ListPolicyRejectionsRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.ListPolicyRejectionsResponse:
        return await self.plane.policy.rejections(request)
