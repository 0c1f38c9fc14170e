"""RunTemplateService over gRPC."""

from __future__ import annotations

import grpc

from athena.v1 import run_templates_pb2, run_templates_pb2_grpc
from athena_server.plane import ControlPlane
from athena_server.servicers.metadata import idempotency_key
from athena_server.tracing import set_http_status


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
        async def call() -> tuple[run_templates_pb2.RunRunTemplateResponse, int]:
            result, status = await self.plane.runs.run_template(request)
            return run_templates_pb2.RunRunTemplateResponse(result=result), status

        response, status = await self.plane.idempotency.run(
            "runTemplates.run", idempotency_key(context), request, run_templates_pb2.RunRunTemplateResponse, call
        )
        set_http_status(status if status != 200 else None)
        return response
