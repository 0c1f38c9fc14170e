"""One source of truth: every documented route is an RPC with an http rule, every RPC has one, and the
gateway serves exactly that table."""

from __future__ import annotations

import importlib
import re

from google.api import annotations_pb2, http_pb2

from athena_gateway.routes import route_table
from athena_server.servicers.registry import contract_modules
from tests.seed_routes import ALL_ROUTES, SEED_001_ROUTES


def _shape(path: str) -> str:
    return re.sub(r"(:[A-Za-z]+|\{[^}]+\})", "{}", path)


def _rules() -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for grpc_module in contract_modules():
        pb2 = importlib.import_module(grpc_module.__name__.removesuffix("_grpc"))
        for service in pb2.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                rule: http_pb2.HttpRule = method.GetOptions().Extensions[annotations_pb2.http]
                kind = rule.WhichOneof("pattern")
                assert kind is not None, f"{method.full_name} has no google.api.http rule"
                key = (kind.upper(), _shape(getattr(rule, kind)))
                assert key not in out, f"{key} is served by both {out[key]} and {method.full_name}"
                out[key] = method.full_name
    return out


def test_every_seed_route_is_an_rpc() -> None:
    rules = _rules()
    missing = [(m, p) for m, p in ALL_ROUTES if (m, _shape(p)) not in rules]
    assert missing == []
    assert len(SEED_001_ROUTES) == 44


def test_every_rpc_is_a_documented_route() -> None:
    documented = {(m, _shape(p)) for m, p in ALL_ROUTES}
    undocumented = [key for key in _rules() if key not in documented]
    assert undocumented == []


def test_gateway_serves_exactly_the_rules() -> None:
    served = {(r[0].upper(), _shape(r[1])) for r in route_table()}
    assert served == set(_rules())
