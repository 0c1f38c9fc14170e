"""The route table, read from the contract: one HTTP route per `google.api.http` binding.

Nothing here names a path or an RPC. Every service of every `athena.v1` module is walked, so an RPC added
to a proto file gets its REST route (and its OpenAPI entry) without touching the gateway.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor, ServiceDescriptor

from athena.v1 import options_pb2
from athena_client.contract import services
from athena_gateway.params import Param, params_by_name

_PATH_PARAM = re.compile(r"\{([^}]*)\}")
_VERBS = ("get", "put", "post", "delete", "patch")


@dataclass(frozen=True)
class RouteSpec:
    """One REST binding of one RPC, with everything the handler and the OpenAPI builder need."""

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
        """The gRPC method path the gateway calls, e.g. `/athena.v1.RunService/GetRun`."""
        return f"/{self.service.full_name}/{self.method.name}"

    # Derived once per route (routes are built at start-up), not per request.
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

    @functools.cached_property
    def query_params(self) -> dict[str, Param]:
        """Query parameter name (json name or proto name) -> the scalar request field it fills."""
        return params_by_name(self._query_fields)

    @functools.cached_property
    def path_param_parsers(self) -> dict[str, Param]:
        """Path parameter name -> the request field it fills."""
        by_name = self.method.input_type.fields_by_name
        return {name: params_by_name([by_name[name]])[name] for name in self.path_params}

    @functools.cached_property
    def fields_by_json_name(self) -> dict[str, FieldDescriptor]:
        return {field.json_name: field for field in self.method.input_type.fields}

    def prepare(self) -> RouteSpec:
        """Derive the per-request lookups now, at start-up, rather than on the route's first request."""
        _ = self.query_params, self.path_param_parsers, self.fields_by_json_name  # cached_property: computed once
        return self


def _bindings(rule: http_pb2.HttpRule) -> list[http_pb2.HttpRule]:
    return [rule, *rule.additional_bindings]


def _verb_and_path(rule: http_pb2.HttpRule) -> tuple[str, str]:
    pattern = rule.WhichOneof("pattern")
    if pattern == "custom":
        return rule.custom.kind.upper(), rule.custom.path
    if pattern not in _VERBS:
        raise ValueError(f"http rule without a pattern: {rule}")
    return pattern.upper(), getattr(rule, pattern)


def _spec(service: ServiceDescriptor, method: MethodDescriptor, rule: http_pb2.HttpRule) -> RouteSpec:
    verb, path = _verb_and_path(rule)
    opts = method.GetOptions()
    sse = opts.Extensions[options_pb2.sse] if opts.HasExtension(options_pb2.sse) else None
    accepted = opts.Extensions[options_pb2.accepted] if opts.HasExtension(options_pb2.accepted) else None
    spec = RouteSpec(verb, path, service, method, rule.body, rule.response_body, sse, accepted)
    # Fail at start-up, not on the first request, when a rule names something the request lacks.
    fields = method.input_type.fields_by_name
    for name in spec.path_params:
        if name not in fields:
            raise ValueError(f"{method.full_name}: path parameter {{{name}}} is not a request field")
    if spec.body not in ("", "*") and spec.body not in fields:
        raise ValueError(f"{method.full_name}: body {spec.body!r} is not a request field")
    if spec.response_body and spec.response_body.split(".")[0] not in method.output_type.fields_by_name:
        raise ValueError(f"{method.full_name}: response_body {spec.response_body!r} is not a response field")
    if method.server_streaming and sse is None:
        raise ValueError(f"{method.full_name}: server-streaming RPC without an (athena.v1.sse) option")
    return spec


def specificity(path: str) -> tuple[int, ...]:
    """Sort key: at the first segment where two paths differ in kind, the literal one comes first, so
    `/api/v1/runs/active` is tried before `/api/v1/runs/{run_id}`."""
    return tuple(1 if segment.startswith("{") else 0 for segment in path.strip("/").split("/"))


@functools.cache
def build_routes() -> tuple[RouteSpec, ...]:
    """Every binding of every RPC, most specific path first."""
    specs: list[RouteSpec] = []
    for service in services():
        for method in service.methods:
            opts = method.GetOptions()
            if not opts.HasExtension(annotations_pb2.http):
                raise ValueError(f"{method.full_name} has no google.api.http option")
            specs.extend(_spec(service, method, rule) for rule in _bindings(opts.Extensions[annotations_pb2.http]))
    specs.sort(key=lambda s: (specificity(s.path), s.path, s.http_method))
    return tuple(specs)


def route_table() -> list[tuple[str, str, str, str]]:
    """(http_method, path_template, service_full_name, method_name) per route, in registration order;
    what a parity test compares with the seed route list."""
    return [(s.http_method, s.path, s.service.full_name, s.method.name) for s in build_routes()]
