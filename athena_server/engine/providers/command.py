"""The `command` provider: runs an external agent program for a run.

The program (the harness profile's `config.command`) gets the compiled prompt on stdin and answers on
stdout; stderr is kept as evidence for verification policies. It runs in its own process group so that
stopping a run stops everything the agent started, not just the leader (`process_group.py`), and it asks
the kernel to SIGKILL it if the server dies, so a crashed server does not leave agents running with nobody
to stop them (`agent_launch.py`).

Only programs on the operator's allow-list run, with a minimal environment, in a private working
directory per attempt and under resource limits (`sandbox.py`); what is read back is bounded, so an agent
cannot exhaust the server's memory by writing (`agent_process.py`). This module decides what runs and
turns how it ended into the run's result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from athena_server.engine.providers.agent_launch import launch_argv
from athena_server.engine.providers.agent_process import Agent, Outcome
from athena_server.engine.providers.base import Evidence, ProviderRequest, ProviderResult
from athena_server.engine.providers.sandbox import (
    ALLOW_SETTING,
    AllowList,
    CommandConfigError,
    Limits,
    agent_env,
    make_workdir,
    parse_passthrough,
    remove_workdir,
    workdir_path,
)
from athena_server.errors import AthenaError, ErrorCode, config_error

if TYPE_CHECKING:
    from athena_server.config import Settings

log = logging.getLogger(__name__)

# How much of stderr a failure message quotes: enough to see the error, small enough for a status message.
_STDERR_TAIL_CHARS = 500


def _describe_exit(returncode: int) -> str:
    """The status message's account of how the agent ended: by a signal (named) or with an exit code."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"command was killed by {name} (exit code {returncode})"
    return f"command exited with code {returncode}"


@dataclass(frozen=True)
class Sandbox:
    """What every agent of this server runs under (from the `command_*` settings)."""

    allow: AllowList
    # Each attempt gets `<workdir_root>/<run id>.<attempt>`, removed when the attempt ends.
    workdir_root: Path
    limits: Limits = field(default_factory=Limits)
    # Server variables agents inherit besides the fixed minimal set.
    env_passthrough: tuple[str, ...] = ()
    # The most an agent may write to stdout (its answer); more fails the attempt and stops the agent.
    output_max_bytes: int = 1_000_000
    # How much of the end of stderr is kept as evidence.
    stderr_tail_bytes: int = 65_536

    def __post_init__(self) -> None:
        for name in ("output_max_bytes", "stderr_tail_bytes"):
            if getattr(self, name) < 0:
                raise CommandConfigError(f"ATHENA_COMMAND_{name.upper()} must be 0 or positive.")


class CommandProvider:
    """Runs `request.command` with the prompt on stdin; the output is its stdout.

    The program must be on the allow-list when the attempt starts (checked again here: the list may have
    changed since the profile was created); the file that passed the check is what is executed.

    Cancellation (run cancel or timeout) sends SIGTERM to the agent's process group, gives it
    `kill_grace_seconds` to exit, then SIGKILLs the group, reaps it and only then re-raises: the engine
    reports the run stopped once `complete()` returns, so nothing of the run may still be running then.
    """

    name = "command"

    def __init__(self, sandbox: Sandbox, kill_grace_seconds: float = 2.0) -> None:
        self.sandbox = sandbox
        self.kill_grace_seconds = kill_grace_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> CommandProvider:
        """Raises CommandConfigError (naming the setting and entry) for settings the server cannot use."""
        root = settings.command_workdir or settings.data_dir / "agents"
        sandbox = Sandbox(
            allow=AllowList.parse(settings.command_allow),
            workdir_root=root.resolve(),
            limits=Limits(settings.command_cpu_seconds, settings.command_memory_mb, settings.command_open_files),
            env_passthrough=parse_passthrough(settings.command_env_passthrough),
            output_max_bytes=settings.command_output_max_bytes,
            stderr_tail_bytes=settings.command_stderr_tail_bytes,
        )
        return cls(sandbox, kill_grace_seconds=settings.command_kill_grace_seconds)

    @property
    def enabled(self) -> bool:
        """An empty allow-list disables the provider: it is not registered at all."""
        return bool(self.sandbox.allow)

    def allows(self, program: str) -> bool:
        """Whether a profile may name `program` as its `config.command[0]`."""
        return self.sandbox.allow.resolve(program) is not None

    async def complete(self, request: ProviderRequest) -> ProviderResult:
        argv = list(request.command)
        if not argv:
            raise config_error("The command provider needs harness profile config.command (the agent program's argv).")
        program = self.sandbox.allow.resolve(argv[0])
        if program is None:
            raise config_error(
                f"The harness profile's config.command[0] is not a program on the server's allow-list "
                f"({ALLOW_SETTING}), so nothing was run. Received: {argv[0]}."
            )
        async with _attempt_workdir(self.sandbox.workdir_root, request) as workdir:
            env = agent_env(workdir, _run_env(request), self.sandbox.env_passthrough)
            launch = launch_argv(program, argv[1:], self.sandbox.limits, env)
            agent = await Agent.start(launch, argv[0], workdir, env)
            outcome = await self._supervise(agent, request)
        return self._result(outcome, request)

    async def _supervise(self, agent: Agent, request: ProviderRequest) -> Outcome:
        """Run the agent to its end; whatever way this is left, nothing of the agent is still running."""
        try:
            if request.on_process is not None:
                await request.on_process(agent.pid)
            return await agent.run(
                request.prompt.encode("utf-8"), self.sandbox.output_max_bytes, self.sandbox.stderr_tail_bytes
            )
        except asyncio.CancelledError:
            await _finish_shielded(agent.stop(self.kill_grace_seconds))
            raise
        except BaseException:
            # on_process failed, or something unexpected: do not leave the agent running.
            await _finish_shielded(agent.stop(0.0))
            raise

    def _result(self, outcome: Outcome, request: ProviderRequest) -> ProviderResult:
        stderr_text = outcome.stderr.decode("utf-8", errors="replace")
        if outcome.stdout is None:
            raise AthenaError(
                ErrorCode.ERROR_CODE_PROVIDER_ERROR,
                f"command output exceeded {self.sandbox.output_max_bytes} bytes "
                "(ATHENA_COMMAND_OUTPUT_MAX_BYTES); the agent was stopped.",
                retryable=False,
            )
        if outcome.returncode != 0:
            tail = stderr_text[-_STDERR_TAIL_CHARS:]
            raise AthenaError(
                ErrorCode.ERROR_CODE_PROVIDER_ERROR,
                f"{_describe_exit(outcome.returncode)}: {tail}",
                retryable=False,
            )
        output = outcome.stdout.decode("utf-8", errors="replace").rstrip("\r\n")
        return ProviderResult(
            output=output,
            model=request.model,
            input_tokens=len(request.prompt),
            output_tokens=len(output),
            evidence=(Evidence(label="stderr", type="text", content=stderr_text),),
        )


def _run_env(request: ProviderRequest) -> dict[str, str]:
    """What the agent learns about its run."""
    return {
        "ATHENA_RUN_ID": request.run_id,
        "ATHENA_SESSION_ID": request.session_id,
        "ATHENA_MODEL": request.model,
        "ATHENA_ATTEMPT": str(request.attempt),
    }


@contextlib.asynccontextmanager
async def _attempt_workdir(root: Path, request: ProviderRequest) -> AsyncIterator[Path]:
    """The attempt's private working directory, removed however the attempt ends (the agent is gone by
    then: `_supervise` returns only once its group is). Removal runs off the loop (an agent may leave a
    large tree) and to completion even if the run is cancelled again meanwhile."""
    path = workdir_path(root, request.run_id, request.attempt)
    try:
        make_workdir(path)
    except OSError as exc:
        raise AthenaError(
            ErrorCode.ERROR_CODE_PROVIDER_ERROR, f"command provider: cannot create the agent's working directory: {exc}"
        ) from None
    try:
        yield path
    finally:
        await _finish_shielded(asyncio.to_thread(remove_workdir, path))


async def _finish_shielded(cleanup: Coroutine[Any, Any, None]) -> None:
    """Run `cleanup` to completion even if we are cancelled again meanwhile. The cleanup is bounded (grace
    plus drain timeouts), so the cancelled task still finishes promptly, and only once nothing is left
    running. A failing cleanup is logged, not raised: it must not replace the error being propagated."""
    task = asyncio.ensure_future(cleanup)
    while not task.done():
        # `asyncio.wait` neither cancels the task when we are cancelled nor raises the task's error.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait({task})
    if not task.cancelled() and task.exception() is not None:
        log.error("command provider: cleaning up the agent process failed", exc_info=task.exception())
