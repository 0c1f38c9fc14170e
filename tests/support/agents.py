"""Following the agent processes a `command`-provider run starts: the line an agent script writes once it
started (its pid and the like), and waiting for processes to end."""

from __future__ import annotations

from pathlib import Path

from tests.support.processes import alive
from tests.support.waiting import wait_until


def agent_line(path: Path) -> list[str]:
    """The fields of the newline-terminated line an agent writes to `path` once it started."""

    def written() -> list[str] | None:
        text = path.read_text() if path.exists() else ""
        return text.split() if text.endswith("\n") else None

    return wait_until(written, f"the agent to write {path}")


def wait_dead(*pids: int) -> None:
    """Until none of `pids` is alive (a zombie counts as dead)."""
    wait_until(lambda: not any(alive(p) for p in pids), f"processes {pids} to end")
