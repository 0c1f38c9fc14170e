"""Model providers behind one interface, chosen by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from athena_server.errors import AthenaError, ErrorCode


@dataclass(frozen=True)
class ProviderRequest:
    run_id: str
    session_id: str
    model: str
    # The compiled context (history and the new input), as the provider sees it.
    prompt: str
    input: str


@dataclass(frozen=True)
class ProviderResult:
    output: str
    model: str
    input_tokens: int
    output_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class Provider(Protocol):
    name: str

    async def complete(self, request: ProviderRequest) -> ProviderResult: ...


class MockProvider:
    """The original's deterministic echo: answers `Echo: <compiled context>`; usage counts characters."""

    name = "mock"

    async def complete(self, request: ProviderRequest) -> ProviderResult:
        output = f"Echo: {request.prompt}"
        return ProviderResult(
            output=output,
            model=request.model or "mock-model",
            input_tokens=len(request.prompt),
            output_tokens=len(output),
        )


class ProviderRegistry:
    def __init__(self, providers: list[Provider]) -> None:
        self._providers = {p.name: p for p in providers}

    def get(self, name: str) -> Provider:
        provider = self._providers.get(name)
        if provider is None:
            raise AthenaError(ErrorCode.ERROR_CODE_PROVIDER_NOT_FOUND, f"No usable provider found in order: {name}")
        return provider

    def names(self) -> list[str]:
        return sorted(self._providers)


def default_registry() -> ProviderRegistry:
    return ProviderRegistry([MockProvider()])
