"""What a run is between the stages that move it: admitted (it exists, started or waiting for its
session's turn), queued (it became a work item instead), finished (the provider answered, not yet
recorded). Each stage takes one of these and returns the next; none is stored as such."""

from __future__ import annotations

from dataclasses import dataclass

from athena_server.control.run_specs import RunSpec
from athena_server.engine.execution import Verification
from athena_server.engine.providers import ProviderResult
from athena_server.storage import work


@dataclass(frozen=True)
class Admitted:
    """A run that exists: started (it holds the session's turn) or pending (waiting for it)."""

    run_id: str
    trace: str
    spec: RunSpec
    created_ms: int
    timeout_ms: int
    retry_budget: int
    started_ms: int | None = None
    # The session's transcript before this run (role, content), read when it started.
    history: tuple[tuple[str, str], ...] = ()
    # The session's run this one asked to cancel (`runningRunBehavior: "interrupt"`).
    interrupted: str | None = None


@dataclass(frozen=True)
class Queued:
    """`runningRunBehavior: "enqueue"` on a busy session: the input became a follow-up work item."""

    item: work.WorkItemRow
    depth: int


@dataclass(frozen=True)
class Finished:
    output: str
    result: ProviderResult
    attempts: int
    cost_usd: float | None
    verification: Verification
    finished_ms: int
