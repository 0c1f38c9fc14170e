"""Signalling an agent's process group and waiting for it to die.

Each agent leads its own process group, so stopping a run stops everything the agent started, not just the
leader. Signal delivery is asynchronous and the kernel offers no notification for the death of processes
that are not our children, so "the group is gone" is polled, with /proc telling zombies from the living.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

log = logging.getLogger(__name__)


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Signal a process group that may already be gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def group_gone(pgid: int) -> bool:
    """True once no process of the group is alive. Members that are zombies (dead, waiting for whoever
    adopted them to reap them) do not count: they run nothing and hold nothing."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _only_zombies(pgid)


def _only_zombies(pgid: int) -> bool:
    """Linux /proc: whether every member of the process group is a zombie."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return False
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # `pid (comm) state ppid pgrp ...`; comm may contain spaces and parentheses, so split after the last ")".
        fields = stat.rsplit(b") ", 1)[-1].split()
        if len(fields) >= 3 and int(fields[2]) == pgid and fields[0] != b"Z":
            return False
    return True


async def wait_group_gone(pgid: int, within: float) -> None:
    """Wait (bounded) until the SIGKILLed group has died: signal delivery is asynchronous, and the run must
    not be reported finished while a process of it still runs."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    # Polling: the kernel offers no notification for the death of processes that are not our children.
    while not group_gone(pgid):
        if loop.time() >= deadline:
            log.warning("command provider: process group %d still has live members after SIGKILL", pgid)
            return
        await asyncio.sleep(0.01)
