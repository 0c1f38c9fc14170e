"""What every stage of a run works with: the store, the settings, the providers and the process's cancel
watcher. The run service builds one and hands it to the stage functions (run_admission, run_turns,
run_execution, run_endings), which keep no state of their own."""

from __future__ import annotations

from dataclasses import dataclass

from athena_server.config import Settings
from athena_server.control.memory import MemoryService
from athena_server.engine.cancels import CancelWatcher
from athena_server.engine.pricing import Pricing
from athena_server.engine.providers import ProviderRegistry
from athena_server.storage.store import Store


@dataclass
class RunContext:
    store: Store
    settings: Settings
    providers: ProviderRegistry
    watcher: CancelWatcher
    # This server process (instances.id): the owner recorded on the runs it executes.
    owner_id: str
    pricing: Pricing
    memory: MemoryService | None = None
    # Set once the server is stopping, so a run stopped then says why ("the server is stopping").
    closing: bool = False
