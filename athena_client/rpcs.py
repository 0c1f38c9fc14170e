"""What a client needs to know of each RPC, read once from the contract: its classes, its REST binding,
whether it pages, streams or takes an idempotency key, and whether retrying it is safe by default."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from athena.v1 import options_pb2
from athena_client.contract import method_access, services
from athena_client.http_rules import HttpRoute, primary_routes

# The paging convention every list RPC follows: `cursor` in, `next_cursor` out, one repeated field of items.
CURSOR_FIELD = "cursor"
NEXT_CURSOR_FIELD = "next_cursor"


@dataclass(frozen=True)
class Rpc:
    """One RPC as a client calls it."""

    method: MethodDescriptor
    request_class: type[Message]
    response_class: type[Message]
    route: HttpRoute
    # The repeated field of the response a paged RPC's items are in; None when the RPC does not page.
    items_field: str | None
    # `(athena.v1.idempotency_key)`: a key per logical call makes its retries safe.
    idempotency_key: bool
    # Safe to retry without the caller asking: reads, probes, and RPCs deduplicated by the key.
    retry_safe: bool
    # `(athena.v1.rate_class)`: an `athena.v1.RateClass` value (the CLI gives run starts no deadline).
    rate_class: int

    @property
    def full_name(self) -> str:
        return str(self.method.full_name)

    @property
    def path(self) -> str:
        """The gRPC method path, `/athena.v1.RunService/GetRun`."""
        return self.route.rpc_path

    @property
    def streaming(self) -> bool:
        return bool(self.method.server_streaming)

    @property
    def sse(self) -> options_pb2.SseOptions | None:
        return self.route.sse


def _items_field(method: MethodDescriptor) -> str | None:
    request, response = method.input_type.fields_by_name, method.output_type.fields_by_name
    if CURSOR_FIELD not in request or NEXT_CURSOR_FIELD not in response:
        return None
    repeated = [
        f.name
        for f in method.output_type.fields
        if f.is_repeated and not (f.message_type is not None and f.message_type.GetOptions().map_entry)
    ]
    if len(repeated) != 1:
        raise ValueError(f"{method.full_name} pages but has {len(repeated)} repeated response fields")
    return repeated[0]


def _rpc(method: MethodDescriptor, route: HttpRoute) -> Rpc:
    access = method_access(method)
    keyed = bool(method.GetOptions().Extensions[options_pb2.idempotency_key])
    reads = access.rate_class in (options_pb2.RATE_CLASS_READ, options_pb2.RATE_CLASS_EXEMPT)
    return Rpc(
        method=method,
        request_class=message_factory.GetMessageClass(method.input_type),
        response_class=message_factory.GetMessageClass(method.output_type),
        route=route,
        items_field=_items_field(method),
        idempotency_key=keyed,
        retry_safe=reads or keyed,
        rate_class=access.rate_class,
    )


@functools.cache
def rpcs() -> dict[str, Rpc]:
    """Every RPC by full name (`athena.v1.RunService.GetRun`)."""
    routes = primary_routes()
    return {
        method.full_name: _rpc(method, routes[method.full_name]) for service in services() for method in service.methods
    }


def rpc(full_name: str) -> Rpc:
    """One RPC by full name; KeyError naming it when the contract has no such RPC."""
    try:
        return rpcs()[full_name]
    except KeyError:
        raise KeyError(f"no RPC {full_name!r} in the athena.v1 contract") from None
