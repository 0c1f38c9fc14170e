"""PersonaService over gRPC: a review is a run start, so it honours `Idempotency-Key` like CreateRun."""

from __future__ import annotations

import grpc

from athena.v1 import personas_pb2, personas_pb2_grpc
from athena_server.control.outcomes import Outcome, done
from athena_server.plane import ControlPlane
from athena_server.servicers.metadata import idempotency_key
from athena_server.servicers.outcomes import answer


class PersonaServicer(personas_pb2_grpc.PersonaServiceServicer):
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def RunPersona(
        self, request: personas_pb2.RunPersonaRequest, context: grpc.aio.ServicerContext
    ) -> personas_pb2.RunPersonaResponse:
        async def call() -> Outcome[personas_pb2.RunPersonaResponse]:
            return done(await self.plane.personas.run(request))

        return answer(
            await self.plane.idempotency.outcome(
                "personas.run", idempotency_key(context), request, personas_pb2.RunPersonaResponse, call
            )
        )
