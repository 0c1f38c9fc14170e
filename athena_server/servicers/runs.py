"""RunService over gRPC: thin adapters onto the control plane's runs."""

from __future__ import annotations

import grpc

from athena.v1 import runs_pb2, runs_pb2_grpc
from athena_server.control.outcomes import Outcome
from athena_server.plane import ControlPlane
from athena_server.servicers.metadata import idempotency_key
from athena_server.servicers.outcomes import answer


class RunServicer(runs_pb2_grpc.RunServiceServicer):
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def CreateRun(
        self, request: runs_pb2.CreateRunRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.CreateRunResponse:
        async def call() -> Outcome[runs_pb2.CreateRunResponse]:
            outcome = await self.plane.runs.create(request)
            return Outcome(runs_pb2.CreateRunResponse(result=outcome.value), outcome.accepted)

        return answer(
            await self.plane.idempotency.outcome(
                "runs.create", idempotency_key(context), request, runs_pb2.CreateRunResponse, call
            )
        )

    async def GetRun(
        self, request: runs_pb2.GetRunRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.GetRunResponse:
        return runs_pb2.GetRunResponse(run=await self.plane.runs.get(request.run_id))

    async def ListActiveRuns(
        self, request: runs_pb2.ListActiveRunsRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.ListActiveRunsResponse:
        return await self.plane.run_control.list_active(request)

    async def ListCancelRequests(
        self, request: runs_pb2.ListCancelRequestsRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.ListCancelRequestsResponse:
        return await self.plane.run_control.list_cancel_requests(request)

    async def CancelRunByRunId(
        self, request: runs_pb2.CancelRunByRunIdRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.CancelRunByRunIdResponse:
        return await self.plane.runs.cancel_by_run(request.run_id, request.reason.strip() or None)

    async def CancelRunBySessionId(
        self, request: runs_pb2.CancelRunBySessionIdRequest, context: grpc.aio.ServicerContext
    ) -> runs_pb2.CancelRunBySessionIdResponse:
        return await self.plane.runs.cancel_by_session(request.session_id, request.reason.strip() or None)
