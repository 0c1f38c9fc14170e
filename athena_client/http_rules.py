"""The REST binding of every RPC, read from the contract's `google.api.http` rules.

The gateway builds its routes from this table and the SDK's REST transport builds its requests from it, so
both sides of the HTTP hop read one source and cannot disagree on a path, a body or a response field.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor, ServiceDescriptor

from athena.v1 import options_pb2
from athena_client.contract import services

_PATH_PARAM = re.compile(r"\{([^}]*)\}")
_VERBS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class HttpRoute:
    """One REST binding of one RPC."""

    http_method: str
    path: str
    service: ServiceDescriptor
    method: MethodDescriptor
    body: str
    response_body: str
    sse: options_pb2.SseOptions | None
    # When the route may answer 202 instead of 200 (the method's `(athena.v1.accepted)` option).
    accepted: str | None = None

    @property
    def rpc_path(self) -> str:
        """The gRPC method path, e.g. `/athena.v1.RunService/GetRun`."""
        return f"/{self.service.full_name}/{self.method.name}"

    # Derived once per route (routes are built once per process), not per request.
    @functools.cached_property
    def path_params(self) -> tuple[str, ...]:
        return tuple(_PATH_PARAM.findall(self.path))

    def path_fields(self) -> list[FieldDescriptor]:
        return [self.method.input_type.fields_by_name[name] for name in self.path_params]

    @functools.cached_property
    def _query_fields(self) -> tuple[FieldDescriptor, ...]:
        if self.body == "*":
            return ()
        skip = {*self.path_params, self.body}
        return tuple(f for f in self.method.input_type.fields if f.name not in skip)

    def query_fields(self) -> tuple[FieldDescriptor, ...]:
        """Request fields filled from the query string: all but path fields and the body's share."""
        return self._query_fields


def _bindings(rule: http_pb2.HttpRule) -> list[http_pb2.HttpRule]:
    return [rule, *rule.additional_bindings]


def _verb_and_path(rule: http_pb2.HttpRule) -> tuple[str, str]:
    pattern = rule.WhichOneof("pattern")
    if pattern == "custom":
        return rule.custom.kind.upper(), rule.custom.path
    if pattern not in _VERBS:
        raise ValueError(f"http rule without a pattern: {rule}")
    return pattern.upper(), getattr(rule, pattern)


def _route(service: ServiceDescriptor, method: MethodDescriptor, rule: http_pb2.HttpRule) -> HttpRoute:
    verb, path = _verb_and_path(rule)
    opts = method.GetOptions()
    sse = opts.Extensions[options_pb2.sse] if opts.HasExtension(options_pb2.sse) else None
    accepted = opts.Extensions[options_pb2.accepted] if opts.HasExtension(options_pb2.accepted) else None
    route = HttpRoute(verb, path, service, method, rule.body, rule.response_body, sse, accepted)
    # Fail when the table is built (at start-up), not on the first request, when a rule names something the
    # request lacks.
    fields = method.input_type.fields_by_name
    for name in route.path_params:
        if name not in fields:
            raise ValueError(f"{method.full_name}: path parameter {{{name}}} is not a request field")
    if route.body not in ("", "*") and route.body not in fields:
        raise ValueError(f"{method.full_name}: body {route.body!r} is not a request field")
    if route.response_body and route.response_body.split(".")[0] not in method.output_type.fields_by_name:
        raise ValueError(f"{method.full_name}: response_body {route.response_body!r} is not a response field")
    if method.server_streaming and sse is None:
        raise ValueError(f"{method.full_name}: server-streaming RPC without an (athena.v1.sse) option")
    return route


def specificity(path: str) -> tuple[int, ...]:
    """Sort key: at the first segment where two paths differ in kind, the literal one comes first, so
    `/api/v1/runs/active` is tried before `/api/v1/runs/{run_id}`."""
    return tuple(1 if segment.startswith("{") else 0 for segment in path.strip("/").split("/"))


def method_routes(service: ServiceDescriptor, method: MethodDescriptor) -> list[HttpRoute]:
    """Every binding of one RPC, the primary one first; ValueError when the RPC has none."""
    opts = method.GetOptions()
    if not opts.HasExtension(annotations_pb2.http):
        raise ValueError(f"{method.full_name} has no google.api.http option")
    return [_route(service, method, rule) for rule in _bindings(opts.Extensions[annotations_pb2.http])]


@functools.cache
def http_routes() -> tuple[HttpRoute, ...]:
    """Every binding of every RPC, most specific path first."""
    routes = [route for service in services() for method in service.methods for route in method_routes(service, method)]
    routes.sort(key=lambda r: (specificity(r.path), r.path, r.http_method))
    return tuple(routes)


@functools.cache
def primary_routes() -> dict[str, HttpRoute]:
    """RPC full name (`athena.v1.RunService.GetRun`) -> the binding a client calls: the rule itself, not its
    additional bindings."""
    return {method.full_name: method_routes(service, method)[0] for service in services() for method in service.methods}
