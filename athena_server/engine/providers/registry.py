"""Providers by name."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from athena_server.config import Settings
from athena_server.engine.providers.base import Provider
from athena_server.engine.providers.command import CommandProvider
from athena_server.engine.providers.mock import MockProvider
from athena_server.engine.providers.openai import OpenAIProvider
from athena_server.errors import AthenaError, ErrorCode

log = logging.getLogger(__name__)


class ProviderRegistry:
    def __init__(self, providers: list[Provider]) -> None:
        self._providers = {p.name: p for p in providers}

    def get(self, name: str) -> Provider:
        provider = self._providers.get(name)
        if provider is None:
            raise AthenaError(ErrorCode.ERROR_CODE_PROVIDER_NOT_FOUND, f"No usable provider found in order: {name}")
        return provider

    def find(self, name: str) -> Provider | None:
        """The provider registered as `name`, if any (for checks that depend on one provider's rules)."""
        return self._providers.get(name)

    def names(self) -> list[str]:
        return sorted(self._providers)

    async def aclose(self) -> None:
        """Release what providers hold (HTTP connection pools) on shutdown. Every provider gets its turn:
        one failing to close must not keep the others' resources open."""
        for name, provider in sorted(self._providers.items()):
            close: Callable[[], Awaitable[None]] | None = getattr(provider, "aclose", None)
            if close is None:
                continue
            try:
                await close()
            except Exception:
                log.exception("closing provider %s failed", name)


def build_registry(settings: Settings) -> ProviderRegistry:
    """Every built-in provider, configured from settings. Providers are cheap to build (the OpenAI client is
    created on first use), so unused ones cost nothing. `command` is registered only with a non-empty
    allow-list: without one it does not exist for capabilities, profiles or runs. Raises CommandConfigError
    for `command_*` settings the server cannot use (checked even when the provider stays disabled)."""
    command = CommandProvider.from_settings(settings)
    providers: list[Provider] = [MockProvider(), OpenAIProvider.from_settings(settings)]
    if command.enabled:
        log.info("command provider: agents may run %s", command.sandbox.allow.describe())
        providers.append(command)
    else:
        log.info("command provider: disabled (ATHENA_COMMAND_ALLOW is empty)")
    return ProviderRegistry(providers)


def default_registry() -> ProviderRegistry:
    """The registry for default settings (tests and embedded use)."""
    return build_registry(Settings())
