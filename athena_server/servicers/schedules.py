"""ScheduleService over gRPC."""

from __future__ import annotations

from typing import TypeVar

import grpc

from athena.v1 import schedules_pb2, schedules_pb2_grpc
from athena_server.control.schedule_messages import schedule_message
from athena_server.plane import ControlPlane
from athena_server.storage.schedules import ScheduleRow

_Toggle = TypeVar("_Toggle", schedules_pb2.EnableScheduleResponse, schedules_pb2.DisableScheduleResponse)


def _toggled(resp: _Toggle, row: ScheduleRow | None) -> _Toggle:
    """The seed's `{id, updated}`, plus the schedule as it is now when it exists."""
    resp.updated = row is not None
    if row is not None:
        resp.schedule.CopyFrom(schedule_message(row))
    return resp


class ScheduleServicer(schedules_pb2_grpc.ScheduleServiceServicer):
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def ListSchedules(
        self, request: schedules_pb2.ListSchedulesRequest, context: grpc.aio.ServicerContext
    ) -> schedules_pb2.ListSchedulesResponse:
        return await self.plane.schedules.page(request)

    async def CreateSchedule(
        self, request: schedules_pb2.CreateScheduleRequest, context: grpc.aio.ServicerContext
    ) -> schedules_pb2.CreateScheduleResponse:
        schedule = await self.plane.schedules.upsert(request, "schedules.create")
        return schedules_pb2.CreateScheduleResponse(schedule=schedule)

    async def UpdateSchedule(
        self, request: schedules_pb2.UpdateScheduleRequest, context: grpc.aio.ServicerContext
    ) -> schedules_pb2.UpdateScheduleResponse:
        schedule = await self.plane.schedules.upsert(request, "schedules.update")
        return schedules_pb2.UpdateScheduleResponse(schedule=schedule)

    async def DeleteSchedule(
        self, request: schedules_pb2.DeleteScheduleRequest, context: grpc.aio.ServicerContext
    ) -> schedules_pb2.DeleteScheduleResponse:
        return await self.plane.schedules.delete(request.id)

    async def GetSchedule(
        self, request: schedules_pb2.GetScheduleRequest, context: grpc.aio.ServicerContext
    ) -> schedules_pb2.GetScheduleResponse:
        return schedules_pb2.GetScheduleResponse(schedule=await self.plane.schedules.get(request.id))

    async def RunSchedule(
        self, request: schedules_pb2.RunScheduleRequest, context: grpc.aio.ServicerContext
    ) -> schedules_pb2.RunScheduleResponse:
        return schedules_pb2.RunScheduleResponse(result=await self.plane.schedules.run_now(request))

    async def EnableSchedule(
        self, request: schedules_pb2.EnableScheduleRequest, context: grpc.aio.ServicerContext
    ) -> schedules_pb2.EnableScheduleResponse:
        sid, row = await self.plane.schedules.set_enabled(request.id, True)
        return _toggled(schedules_pb2.EnableScheduleResponse(id=sid), row)

    async def DisableSchedule(
        self, request: schedules_pb2.DisableScheduleRequest, context: grpc.aio.ServicerContext
    ) -> schedules_pb2.DisableScheduleResponse:
        sid, row = await self.plane.schedules.set_enabled(request.id, False)
        return _toggled(schedules_pb2.DisableScheduleResponse(id=sid), row)

    async def ListScheduleLogs(
        self, request: schedules_pb2.ListScheduleLogsRequest, context: grpc.aio.ServicerContext
    ) -> schedules_pb2.ListScheduleLogsResponse:
        return await self.plane.schedules.logs(request)

    async def TickSchedules(
        self, request: schedules_pb2.TickSchedulesRequest, context: grpc.aio.ServicerContext
    ) -> schedules_pb2.TickSchedulesResponse:
        return await self.plane.schedules.tick(request.at, request.provider, request.model)
