"""WorkflowService over gRPC."""

from __future__ import annotations

import grpc

from athena.v1 import workflows_pb2, workflows_pb2_grpc
from athena_server.plane import ControlPlane
from athena_server.servicers.outcomes import answer


class WorkflowServicer(workflows_pb2_grpc.WorkflowServiceServicer):
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def ListWorkflows(
        self, request: workflows_pb2.ListWorkflowsRequest, context: grpc.aio.ServicerContext
    ) -> workflows_pb2.ListWorkflowsResponse:
        return await self.plane.workflows.page(request)

    async def CreateWorkflow(
        self, request: workflows_pb2.CreateWorkflowRequest, context: grpc.aio.ServicerContext
    ) -> workflows_pb2.CreateWorkflowResponse:
        return workflows_pb2.CreateWorkflowResponse(workflow=await self.plane.workflows.create(request))

    async def GetWorkflowRun(
        self, request: workflows_pb2.GetWorkflowRunRequest, context: grpc.aio.ServicerContext
    ) -> workflows_pb2.GetWorkflowRunResponse:
        return await self.plane.workflows.get_run(request.id)

    async def ResumeWorkflowRun(
        self, request: workflows_pb2.ResumeWorkflowRunRequest, context: grpc.aio.ServicerContext
    ) -> workflows_pb2.ResumeWorkflowRunResponse:
        return workflows_pb2.ResumeWorkflowRunResponse(run=answer(await self.plane.workflows.resume(request)))
