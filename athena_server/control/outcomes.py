"""What a domain operation answers besides its value: whether the work is done, or accepted and still
going on after the answer (a run started in the background, a workflow resumed). The domain says which;
only the servicer layer turns `accepted` into a transport status (REST 202), in one place
(athena_server/servicers/outcomes.py), so no domain module chooses HTTP statuses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    value: T
    accepted: bool = False


def done(value: T) -> Outcome[T]:
    """The work finished before the answer."""
    return Outcome(value, accepted=False)


def accepted(value: T) -> Outcome[T]:
    """The work goes on after the answer; its resource is the authority on how it ends."""
    return Outcome(value, accepted=True)
