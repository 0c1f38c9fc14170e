"""The grpc.aio server: every athena.v1 service, server reflection and the standard health service."""

from __future__ import annotations

import logging

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from athena_server.access.gate import Gate
from athena_server.interceptors import AthenaServerInterceptor
from athena_server.plane import ControlPlane
from athena_server.servicers.registry import register_all

log = logging.getLogger("athena.server")

# See start_grpc_server: the largest request message gRPC hands to the interceptor.
MAX_RECEIVE_BYTES = 4 * 1024 * 1024


class GrpcServer:
    """A started gRPC server bound to `port` (the real one when 0 was asked for)."""

    def __init__(self, server: grpc.aio.Server, port: int, health_servicer: health.aio.HealthServicer) -> None:
        self.server = server
        self.port = port
        self.health = health_servicer

    async def stop(self, grace: float) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def start_grpc_server(plane: ControlPlane, host: str, port: int, *, address: str | None = None) -> GrpcServer:
    """Serve every athena.v1 service and the health service; reflection unless the settings switch it off.
    `address` binds something other than `host:port`: `unix:/path/to/socket` for the CLI's in-process
    plane (athena_server/local.py), which no other user can connect to."""
    server = grpc.aio.server(
        interceptors=[AthenaServerInterceptor(Gate(plane.settings, plane.store))],
        options=[
            # Fail loudly when the port is taken instead of silently sharing it with another process.
            ("grpc.so_reuseport", 0),
            # Requests up to this size reach the interceptor, which refuses those over MAX_REQUEST_BYTES
            # (1,000,000) with PAYLOAD_TOO_LARGE like the gateway; larger ones are refused by gRPC itself
            # (RESOURCE_EXHAUSTED "Received message larger than max", no Athena ErrorInfo). gRPC's 4 MiB
            # default, made explicit: ~4x headroom over the bound, and the most a request can make us parse.
            ("grpc.max_receive_message_length", MAX_RECEIVE_BYTES),
        ],
    )
    services = register_all(server, plane)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if plane.settings.grpc_reflection:
        reflection.enable_server_reflection(
            [*services, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server
        )
    where = address or f"{host}:{port}"
    bound = server.add_insecure_port(where)
    if bound == 0:
        raise OSError(f"cannot bind gRPC to {where}")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    for name in services:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("gRPC listening on %s", address or f"{host}:{bound}")
    return GrpcServer(server, bound, health_servicer)
