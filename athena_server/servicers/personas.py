"""PersonaService over gRPC: a review is a run start, so it honours `Idempotency-Key` like CreateRun."""

from __future__ import annotations

import grpc

from athena.v1 import personas_pb2, personas_pb2_grpc
from athena_server.plane import ControlPlane
from athena_server.servicers.metadata import idempotency_key


class PersonaServicer(personas_pb2_grpc.PersonaServiceServicer):
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def RunPersona(
        self, request: personas_pb2.RunPersonaRequest, context: grpc.aio.ServicerContext
    ) -> personas_pb2.RunPersonaResponse:
        async def call() -> tuple[personas_pb2.RunPersonaResponse, int]:
            return await self.plane.personas.run(request), 200

        response, _ = await self.plane.idempotency.run(
            "personas.run", idempotency_key(context), request, personas_pb2.RunPersonaResponse, call
        )
        return response
