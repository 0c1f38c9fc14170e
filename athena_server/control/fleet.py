"""The fleet summary from real run counts (the original counted marker files, with quirks)."""

from __future__ import annotations

from athena.v1 import fleet_pb2
from athena_server.storage import fleet
from athena_server.storage.store import Store


class FleetService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def summary(self) -> fleet_pb2.GetFleetSummaryResponse:
        counts = await self.store.read(fleet.counts_by_status)
        running = counts.get("running", 0)
        pending = counts.get("pending", 0)
        succeeded = counts.get("succeeded", 0)
        failed = counts.get("failed", 0) + counts.get("timed-out", 0)
        cancelled = counts.get("cancelled", 0)
        return fleet_pb2.GetFleetSummaryResponse(
            total=running + pending + succeeded + failed + cancelled,
            running=running,
            pending=pending,
            succeeded=succeeded,
            failed=failed,
            cancelled=cancelled,
            capabilities=fleet_pb2.FleetCapabilities(supports_pod_status=False, supports_cpu_mem_metrics=False),
        )
