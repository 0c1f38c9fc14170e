"""The control plane: the domain services over one store, shared by every transport."""

from __future__ import annotations

import asyncio
from typing import Any

from athena_server.config import Settings
from athena_server.control.a2a import A2aService
from athena_server.control.a2a_dispatch import A2aDispatcher
from athena_server.control.directives import DirectiveService
from athena_server.control.events import EventService
from athena_server.control.fleet import FleetService
from athena_server.control.harness_profiles import HarnessProfileService
from athena_server.control.idempotency import Idempotency
from athena_server.control.memory import MemoryService
from athena_server.control.policy import PolicyService
from athena_server.control.run_control import RunControlService
from athena_server.control.run_templates import RunTemplateService
from athena_server.control.runs import RunService
from athena_server.control.schedules import ScheduleService
from athena_server.control.sessions import SessionService
from athena_server.control.system import SystemService
from athena_server.control.work import WorkService
from athena_server.control.workflows import WorkflowService
from athena_server.engine.cancels import CancelWatcher
from athena_server.engine.liveness import Liveness
from athena_server.engine.providers import ProviderRegistry
from athena_server.engine.providers.command import CommandProvider
from athena_server.engine.providers.registry import build_registry
from athena_server.engine.providers.sandbox import CommandConfigError
from athena_server.engine.retention import RetentionSweep
from athena_server.personas.service import PersonaService
from athena_server.storage import work as work_store
from athena_server.storage.migrate import migrate
from athena_server.storage.store import Store


class ControlPlane:
    def __init__(self, settings: Settings, providers: ProviderRegistry | None = None) -> None:
        self.settings = settings
        # Before the store: a configuration the providers cannot use stops start-up with nothing opened.
        self.providers = providers or _build_providers(settings)
        self.store = Store(settings.resolved_database_url())
        # Every metric of this plane (athena_server/metrics.py): its store records into them, so they live there.
        self.metrics = self.store.metrics
        self.system = SystemService(self.store, self.providers)
        self.liveness = Liveness(self.store, settings.heartbeat_seconds, settings.instance_stale_seconds)
        self.watcher = CancelWatcher(self.store, settings.cancel_poll_seconds)
        self.memory = MemoryService(settings)
        self.runs = RunService(
            self.store, settings, self.providers, self.watcher, self.liveness.instance_id, memory=self.memory
        )
        self.run_control = RunControlService(self.store)
        self.idempotency = Idempotency(self.store, self.liveness.instance_id, settings.idempotency_ttl_hours)
        self.liveness.housekeeping.append(self.idempotency.expire)
        self.work = WorkService(self.store, self.runs, self.liveness.instance_id)
        self.liveness.on_reap.append(work_store.release_owned)
        self.policy = PolicyService(self.store)
        self.fleet = FleetService(self.store)
        self.directives = DirectiveService(self.store)
        self.harness_profiles = HarnessProfileService(
            self.store, self.providers.names, self._allowed_models, self._allowed_program
        )
        self.run_templates = RunTemplateService(self.store)
        self.sessions = SessionService(self.store, settings)
        self.events = EventService(self.store, settings)
        self.schedules = ScheduleService(self.store, settings, self.runs, self.liveness.instance_id)
        self.liveness.on_reap.append(self.schedules.release_owned)
        self.workflows = WorkflowService(self.store, settings, self.runs, self.liveness.instance_id)
        self.liveness.on_reap.append(self.workflows.release_owned)
        self.a2a_dispatcher = A2aDispatcher(self.store, settings, self.runs, self.liveness.instance_id)
        self.liveness.on_reap.append(self.a2a_dispatcher.release_owned)
        self.a2a = A2aService(self.store, settings, self.providers, self.a2a_dispatcher.wake)
        self.personas = PersonaService(self.store, settings, self.runs)
        self.retention = RetentionSweep(self.store, settings, self.liveness.instance_id)

    def _allowed_models(self, provider: str) -> list[str]:
        """Models a harness profile may name: the default model (the original's only one) and every model
        with a configured price for that provider."""
        return sorted({self.settings.default_model, *self.runs.pricing.models(provider)})

    def _allowed_program(self, program: str) -> bool:
        """Whether a `command` profile may name `program`: the registered command provider's allow-list."""
        command = self.providers.find(CommandProvider.name)
        return isinstance(command, CommandProvider) and command.allows(program)

    async def start(self, *, background: bool = True) -> None:
        """Bring the store's schema up to date (safe from several processes at once), register this
        process and fail the runs of processes that died. A server also works on its own (`background`):
        it continues the workflow runs stopped processes left and fires due schedules. A process that serves
        one command (the CLI's local transport) does neither: it would start work it then has to wait for
        or abandon, on behalf of a command that did not ask for it."""
        await migrate(self.store)
        await self.liveness.start()
        if background:
            await self.workflows.recover()
            self.schedules.start_ticker()
            self.a2a_dispatcher.start()
            self.retention.start()

    def background_work(self) -> list[asyncio.Task[Any]]:
        """Work this process carries on after answering the request that started it: runs started without
        waiting, workflow runs, schedule runs. `close` stops it (recorded as cancelled, or left for the
        next process to continue); a short-lived process waits for it first."""
        return [*self.runs.in_flight(), *self.workflows.in_flight(), *self.schedules.in_flight()]

    async def close(self) -> None:
        """After the transports stopped: end background runs, stop watching, deregister."""
        await self.retention.close()
        await self.a2a_dispatcher.close()
        await self.schedules.close()
        await self.workflows.close()
        await self.runs.close()
        await self.watcher.close()
        await self.liveness.close()
        await self.providers.aclose()
        await self.memory.close()
        await self.store.close()


def _build_providers(settings: Settings) -> ProviderRegistry:
    """The provider registry; a `command_*` setting it cannot use (an allow-list entry that is not an
    executable file, say) stops start-up with the reason rather than a traceback."""
    try:
        return build_registry(settings)
    except CommandConfigError as exc:
        raise SystemExit(f"athena: {exc}") from None
