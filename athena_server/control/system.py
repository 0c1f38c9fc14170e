"""Capabilities, health and readiness."""

from __future__ import annotations

import logging

from athena.v1 import system_pb2
from athena_server.engine.providers import ProviderRegistry
from athena_server.errors import AthenaError, ErrorCode
from athena_server.storage.store import Store
from athena_server.timefmt import iso, now_ms

log = logging.getLogger(__name__)


class SystemService:
    def __init__(self, store: Store, providers: ProviderRegistry) -> None:
        self.store = store
        self.providers = providers

    def capabilities(self) -> system_pb2.GetCapabilitiesResponse:
        # Runs execute in this process (and, later, its children): "local". No pods, no per-run CPU or
        # memory metrics. The agent-to-agent bus is served by every process on the store (server
        # processes deliver its messages).
        return system_pb2.GetCapabilitiesResponse(
            execution_backend="local",
            state_store=self.store.dialect,
            supports_pods=False,
            supports_cpu_mem_metrics=False,
            supports_a2a_bus=True,
            providers=self.providers.names(),
            supports_sandbox=False,
        )

    async def readiness(self) -> system_pb2.GetReadinessResponse:
        try:
            latency = await self.store.ping()
        except Exception as exc:
            log.warning("readiness: store unreachable: %s", exc)
            raise AthenaError(
                ErrorCode.ERROR_CODE_UNAVAILABLE, f"The store is unreachable: {exc}", retryable=True
            ) from exc
        return system_pb2.GetReadinessResponse(
            status="ready",
            now=iso(now_ms()),
            checks=[system_pb2.ReadinessCheck(name="store", status="ok", latency_ms=round(latency, 3))],
        )
