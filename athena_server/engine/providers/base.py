"""The one interface every model provider implements, and what a run hands it.

Cancellation and timeouts are delivered the asyncio way: the run engine cancels the task awaiting
`complete()`. A provider that holds outside resources (a subprocess, an HTTP request) releases them in
its cancellation path before re-raising, promptly: the engine reports a cancelled run as stopped only
once `complete()` has returned.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Evidence:
    """A record a run leaves behind for verification policies (`require-evidence`)."""

    label: str
    # "text", "json" or "binary", as in a verification policy's `evidenceType`.
    type: str
    content: str


@dataclass(frozen=True)
class ProviderRequest:
    run_id: str
    session_id: str
    model: str
    # The compiled context (history and the new input) in the "raw" form: `role: content` turns.
    prompt: str
    # The new input alone.
    input: str
    # The history turns the prompt was compiled from, oldest first, as (role, content): for chat APIs.
    history: tuple[tuple[str, str], ...] = ()
    # The run's request metadata (string values).
    metadata: Mapping[str, str] = field(default_factory=dict)
    # The harness profile's `config.command` (argv), for the `command` provider.
    command: tuple[str, ...] = ()
    # 1 for the first attempt, 2 for the first retry, ...
    attempt: int = 1
    # Called with the pid of a process started for this run, so `runs/active` can show it.
    on_process: Callable[[int], Awaitable[None]] | None = None


@dataclass(frozen=True)
class ProviderResult:
    output: str
    model: str
    input_tokens: int
    output_tokens: int
    evidence: tuple[Evidence, ...] = ()
    # Set by providers whose response states a cost; otherwise the engine prices the usage.
    cost_usd: float | None = None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class Provider(Protocol):
    name: str

    async def complete(self, request: ProviderRequest) -> ProviderResult:
        """The provider's answer. Failures raise AthenaError: PROVIDER_ERROR (retryable when a retry
        may succeed: timeouts, 429, 5xx), CONFIG_ERROR for a request it can never serve."""
        ...
