"""The fleet summary, from real run counts.

The original counted marker files (running = active markers, failed = pending cancel requests, total =
max(#sessions, ...)); here every figure is a count of runs by status, so `total` is the sum of the others.
"""

from __future__ import annotations

from athena.v1 import fleet_pb2
from athena_client.vocab import RunStatus
from athena_server.storage import fleet
from athena_server.storage.store import Store

# The local backend runs in-process: there are no pods to report on, nor per-run CPU or memory figures.
_CAPABILITIES = fleet_pb2.FleetCapabilities(supports_pod_status=False, supports_cpu_mem_metrics=False)


class FleetService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def summary(self) -> fleet_pb2.GetFleetSummaryResponse:
        """`failed` takes timed-out runs too (both ended without a result, not by request); `cancelled` is
        reported apart, as the contract says, so a user's cancels do not read as failures."""
        counts = await self.store.read(fleet.counts_by_status)
        running = counts.get(RunStatus.RUNNING, 0)
        pending = counts.get(RunStatus.PENDING, 0)
        succeeded = counts.get(RunStatus.SUCCEEDED, 0)
        failed = counts.get(RunStatus.FAILED, 0) + counts.get(RunStatus.TIMED_OUT, 0)
        cancelled = counts.get(RunStatus.CANCELLED, 0)
        return fleet_pb2.GetFleetSummaryResponse(
            total=running + pending + succeeded + failed + cancelled,
            running=running,
            pending=pending,
            succeeded=succeeded,
            failed=failed,
            cancelled=cancelled,
            capabilities=_CAPABILITIES,
        )
