"""RunTemplateService over gRPC."""

from __future__ import annotations

import grpc

from athena.v1 import run_templates_pb2, run_templates_pb2_grpc
from athena_server.control.outcomes import Outcome
from athena_server.plane import ControlPlane
from athena_server.servicers.metadata import idempotency_key
from athena_server.servicers.outcomes import answer


class RunTemplateServicer(run_templates_pb2_grpc.RunTemplateServiceServicer):
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def ListRunTemplates(
        self, request: run_templates_pb2.ListRunTemplatesRequest, context: grpc.aio.ServicerContext
    ) -> run_templates_pb2.ListRunTemplatesResponse:
        return await self.plane.run_templates.list(request)

    async def CreateRunTemplate(
        self, request: run_templates_pb2.CreateRunTemplateRequest, context: grpc.aio.ServicerContext
    ) -> run_templates_pb2.CreateRunTemplateResponse:
        return run_templates_pb2.CreateRunTemplateResponse(run_template=await self.plane.run_templates.create(request))

    async def RunRunTemplate(
        self, request: run_templates_pb2.RunRunTemplateRequest, context: grpc.aio.ServicerContext
    ) -> run_templates_pb2.RunRunTemplateResponse:
        async def call() -> Outcome[run_templates_pb2.RunRunTemplateResponse]:
            outcome = await self.plane.runs.run_template(request)
            return Outcome(run_templates_pb2.RunRunTemplateResponse(result=outcome.value), outcome.accepted)

        return answer(
            await self.plane.idempotency.outcome(
                "runTemplates.run", idempotency_key(context), request, run_templates_pb2.RunRunTemplateResponse, call
            )
        )
