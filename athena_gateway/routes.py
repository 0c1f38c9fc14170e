"""The gateway's route table: the contract's REST bindings (`athena_client.http_rules`, shared with the
SDK) with the parsers each route's handler needs.

Nothing here names a path or an RPC. Every service of every `athena.v1` module is walked, so an RPC added
to a proto file gets its REST route (and its OpenAPI entry) without touching the gateway.
"""

from __future__ import annotations

import dataclasses
import functools

from google.protobuf.descriptor import FieldDescriptor

from athena_client.http_rules import HttpRoute, http_routes
from athena_gateway.params import Param, params_by_name


@dataclasses.dataclass(frozen=True)
class RouteSpec(HttpRoute):
    """One REST binding of one RPC, with everything the handler and the OpenAPI builder need."""

    @functools.cached_property
    def query_params(self) -> dict[str, Param]:
        """Query parameter name (json name or proto name) -> the scalar request field it fills."""
        return params_by_name(self.query_fields())

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


@functools.cache
def build_routes() -> tuple[RouteSpec, ...]:
    """Every binding of every RPC, most specific path first."""
    fields = [f.name for f in dataclasses.fields(HttpRoute)]
    return tuple(RouteSpec(**{name: getattr(route, name) for name in fields}) for route in http_routes())


def route_table() -> list[tuple[str, str, str, str]]:
    """(http_method, path_template, service_full_name, method_name) per route, in registration order;
    what a parity test compares with the seed route list."""
    return [(s.http_method, s.path, s.service.full_name, s.method.name) for s in build_routes()]
