"""The grpc.aio server: every athena.v1 service, server reflection and the standard health service; and
the same handlers, behind the same interceptors, for a gateway in this process (`local_handler`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, NamedTuple, cast

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


class _CallDetails(NamedTuple):
    """grpc.HandlerCallDetails for a method looked up in-process."""

    method: str
    invocation_metadata: tuple[tuple[str, str], ...]


class _Registrations:
    """Stands in for the server while the generated `add_*Servicer_to_server` functions register the
    servicers, keeping their method handlers by full path."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers: Sequence[Any]) -> None:
        """Unused: every generated module also registers its methods one by one below."""

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]) -> None:
        for name, handler in handlers.items():
            self.handlers[f"/{service}/{name}"] = handler


class LocalHandlers:
    """Every athena.v1 method handler wrapped by the server's interceptors, exactly as the server wraps
    them for a call from the network (the first interceptor outermost). The same interceptor instances, so
    a REST call in this process and a gRPC call share the gate's rate-limit buckets."""

    def __init__(self, plane: ControlPlane, interceptors: Sequence[grpc.aio.ServerInterceptor]) -> None:
        registrations = _Registrations()
        register_all(cast(grpc.aio.Server, registrations), plane)
        self._raw = registrations.handlers
        self.metrics = plane.metrics
        self._interceptors = tuple(interceptors)
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def handler(self, method: str) -> grpc.RpcMethodHandler:
        """The wrapped handler of `method` (`/athena.v1.RunService/CreateRun`); KeyError for a method
        the contract does not have (the gateway only calls routes it built from the contract)."""
        found = self._wrapped.get(method)
        if found is None:
            raw = self._raw[method]

            async def terminal(_: Any) -> grpc.RpcMethodHandler:
                return raw

            continuation: Callable[[Any], Awaitable[grpc.RpcMethodHandler]] = terminal
            for interceptor in reversed(self._interceptors):
                continuation = _chained(interceptor, continuation)
            found = await continuation(_CallDetails(method, ()))
            self._wrapped[method] = found
        return found


def _chained(
    interceptor: grpc.aio.ServerInterceptor, continuation: Callable[[Any], Awaitable[grpc.RpcMethodHandler]]
) -> Callable[[Any], Awaitable[grpc.RpcMethodHandler]]:
    async def next_handler(details: Any) -> grpc.RpcMethodHandler:
        wrapped: grpc.RpcMethodHandler = await interceptor.intercept_service(continuation, details)
        return wrapped

    return next_handler


class GrpcServer:
    """A started gRPC server bound to `port` (the real one when 0 was asked for), and its handlers for a
    gateway in the same process."""

    def __init__(
        self, server: grpc.aio.Server, port: int, health_servicer: health.aio.HealthServicer, local: LocalHandlers
    ) -> None:
        self.server = server
        self.port = port
        self.health = health_servicer
        self.local_handler = local.handler
        self.metrics = local.metrics

    async def stop(self, grace: float) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def start_grpc_server(
    plane: ControlPlane, host: str, port: int, *, address: str | None = None, shared_port: bool = False
) -> GrpcServer:
    """Serve every athena.v1 service and the health service; reflection unless the settings switch it off.
    `address` binds something other than `host:port`: `unix:/path/to/socket` for the CLI's in-process
    plane (athena_server/local.py), which no other user can connect to. `shared_port`: a worker of
    `--workers`, binding the port its siblings bind too (SO_REUSEPORT; the supervisor holds it reserved)."""
    interceptors = [AthenaServerInterceptor(Gate(plane.settings, plane.store), plane.metrics)]
    server = grpc.aio.server(
        interceptors=interceptors,
        options=[
            # Fail loudly when the port is taken instead of silently sharing it with another process.
            ("grpc.so_reuseport", 1 if shared_port else 0),
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
    return GrpcServer(server, bound, health_servicer, LocalHandlers(plane, interceptors))
