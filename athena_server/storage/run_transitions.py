"""Which run status may follow which: the one table every status write is checked against.

A run is recorded `pending` (waiting for its session's turn) or straight `running` (the session was free),
moves from `pending` to `running` when it takes the turn, and ends once: `succeeded`, `failed`, `cancelled`
or `timed-out`. A pending run can end without running (cancelled while waiting, refused at its turn, the
session lock timed out, its process died); only a running run succeeds or times out. A final status has no
successor, so no path can move a finished run back to `running` or record a second ending: storage/runs.py
turns this table into conditional UPDATEs (`WHERE status IN (allowed predecessors)`), and the store decides
a race between two endings (the executor's and the reaper's, say) by letting exactly one of them match.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from athena_client.vocab import RunStatus

# The statuses a run is recorded with when it is created.
INITIAL: frozenset[RunStatus] = frozenset({RunStatus.PENDING, RunStatus.RUNNING})
# Holding or waiting for its session's turn; every other status is final.
ACTIVE: tuple[RunStatus, ...] = (RunStatus.PENDING, RunStatus.RUNNING)

RUN_TRANSITIONS: Mapping[RunStatus, frozenset[RunStatus]] = MappingProxyType(
    {
        RunStatus.PENDING: frozenset({RunStatus.RUNNING, RunStatus.FAILED, RunStatus.CANCELLED}),
        RunStatus.RUNNING: frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT}),
        RunStatus.SUCCEEDED: frozenset(),
        RunStatus.FAILED: frozenset(),
        RunStatus.CANCELLED: frozenset(),
        RunStatus.TIMED_OUT: frozenset(),
    }
)

FINAL: frozenset[RunStatus] = frozenset(s for s, after in RUN_TRANSITIONS.items() if not after)


def allowed(old: str, new: RunStatus) -> bool:
    """Whether a run recorded `old` may be written `new` (never from a status the contract does not name)."""
    try:
        current = RunStatus(old)
    except ValueError:
        return False
    return new in RUN_TRANSITIONS[current]


def predecessors(new: RunStatus) -> tuple[RunStatus, ...]:
    """The statuses a run may hold when it is written `new`, in table order (empty: nothing moves there)."""
    return tuple(old for old, after in RUN_TRANSITIONS.items() if new in after)
