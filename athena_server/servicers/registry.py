"""Registers a servicer for every service of the contract.

Services are discovered from the generated modules, so an RPC added to the proto is served at once:
by its implementation when one exists, otherwise by the generated base class, which the interceptor
answers with NOT_IMPLEMENTED (REST 501) rather than a fake success.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

import grpc

import athena.v1
from athena_server.plane import ControlPlane
from athena_server.servicers.a2a import A2aDlqServicer, A2aServicer
from athena_server.servicers.directives import DirectiveServicer
from athena_server.servicers.events import EventServicer
from athena_server.servicers.fleet import FleetServicer
from athena_server.servicers.harness_profiles import HarnessProfileServicer
from athena_server.servicers.memory import MemoryServicer
from athena_server.servicers.personas import PersonaServicer
from athena_server.servicers.policy import PolicyServicer
from athena_server.servicers.run_templates import RunTemplateServicer
from athena_server.servicers.runs import RunServicer
from athena_server.servicers.schedules import ScheduleServicer
from athena_server.servicers.sessions import SessionServicer
from athena_server.servicers.system import SystemServicer
from athena_server.servicers.work import WorkServicer
from athena_server.servicers.workflows import WorkflowServicer

IMPLEMENTED: dict[str, Callable[[ControlPlane], Any]] = {
    "athena.v1.SystemService": SystemServicer,
    "athena.v1.RunService": RunServicer,
    "athena.v1.SessionService": SessionServicer,
    "athena.v1.EventService": EventServicer,
    "athena.v1.WorkService": WorkServicer,
    "athena.v1.PolicyService": PolicyServicer,
    "athena.v1.FleetService": FleetServicer,
    "athena.v1.DirectiveService": DirectiveServicer,
    "athena.v1.HarnessProfileService": HarnessProfileServicer,
    "athena.v1.RunTemplateService": RunTemplateServicer,
    "athena.v1.WorkflowService": WorkflowServicer,
    "athena.v1.ScheduleService": ScheduleServicer,
    "athena.v1.A2aService": A2aServicer,
    "athena.v1.A2aDlqService": A2aDlqServicer,
    "athena.v1.MemoryService": MemoryServicer,
    "athena.v1.PersonaService": PersonaServicer,
}


def contract_modules() -> list[Any]:
    """The generated `*_pb2_grpc` modules of athena.v1."""
    names = sorted(m.name for m in pkgutil.iter_modules(athena.v1.__path__) if m.name.endswith("_pb2_grpc"))
    return [importlib.import_module(f"athena.v1.{name}") for name in names]


def register_all(server: grpc.aio.Server, plane: ControlPlane) -> list[str]:
    """Add every athena.v1 service to `server`; returns their full names."""
    names: list[str] = []
    for grpc_module in contract_modules():
        pb2 = importlib.import_module(grpc_module.__name__.removesuffix("_grpc"))
        for service in pb2.DESCRIPTOR.services_by_name.values():
            add = getattr(grpc_module, f"add_{service.name}Servicer_to_server")
            factory = IMPLEMENTED.get(service.full_name)
            servicer = factory(plane) if factory else getattr(grpc_module, f"{service.name}Servicer")()
            add(servicer, server)
            names.append(service.full_name)
    return names
