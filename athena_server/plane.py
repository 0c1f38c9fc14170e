"""The control plane: the domain services over one store, shared by every transport."""

from __future__ import annotations

from athena_server.config import Settings
from athena_server.control.events import EventService
from athena_server.control.runs import RunService
from athena_server.control.sessions import SessionService
from athena_server.control.system import SystemService
from athena_server.engine.providers import ProviderRegistry, default_registry
from athena_server.storage.migrate import migrate
from athena_server.storage.store import Store


class ControlPlane:
    def __init__(self, settings: Settings, providers: ProviderRegistry | None = None) -> None:
        self.settings = settings
        self.store = Store(settings.resolved_database_url())
        self.providers = providers or default_registry()
        self.system = SystemService(self.store)
        self.runs = RunService(self.store, settings, self.providers)
        self.sessions = SessionService(self.store, settings)
        self.events = EventService(self.store, settings)

    async def start(self) -> None:
        """Bring the store's schema up to date; safe to run from several processes at once."""
        await migrate(self.store)

    async def close(self) -> None:
        await self.store.close()
