"""Model providers behind one interface, chosen by name."""

from __future__ import annotations

from athena_server.engine.providers.base import Evidence, Provider, ProviderRequest, ProviderResult
from athena_server.engine.providers.mock import MockProvider
from athena_server.engine.providers.registry import ProviderRegistry, default_registry

__all__ = [
    "Evidence",
    "MockProvider",
    "Provider",
    "ProviderRegistry",
    "ProviderRequest",
    "ProviderResult",
    "default_registry",
]
