"""The `command` provider: runs an external agent program for a run.

The program (the harness profile's `config.command`) gets the compiled prompt on stdin and answers on
stdout; stderr is kept as evidence for verification policies. It runs in its own process group so that
stopping a run stops everything the agent started, not just the leader, and it asks the kernel to SIGKILL
it if the server dies, so a crashed server does not leave agents running with nobody to stop them.

Only programs on the operator's allow-list run, with a minimal environment, in a private working
directory per attempt and under resource limits (`sandbox.py`); what is read back is bounded, so an agent
cannot exhaust the server's memory by writing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from athena_server.engine.providers.base import Evidence, ProviderRequest, ProviderResult
from athena_server.engine.providers.sandbox import (
    ALLOW_SETTING,
    AllowedProgram,
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
# asyncio's default buffer limit for subprocess streams (64 KiB): the most a pipe buffers before asyncio
# stops reading it. Our readers take at most this much at a time.
_STREAM_LIMIT = 2**16
# After the whole group is SIGKILLed, how long to wait for the pipes to reach EOF. Only a process that left
# the group (setsid) and kept our pipes can hold them longer; we stop reading rather than hang the run.
_DRAIN_SECONDS = 2.0


# The agent is started through this launcher rather than with a `preexec_fn`: Python code between fork and
# exec is unsafe in a multi-threaded server (the store's threads may hold the allocator's locks at fork
# time; crashes were seen). The launcher is a fresh single-threaded interpreter: it asks the kernel for
# SIGKILL on the server's death (PR_SET_PDEATHSIG, kept across exec), gives up if the server already died,
# applies the resource limits (kept across exec; soft = hard so the agent cannot raise them), then execs
# the allowed program by its real path. A limit it cannot apply stops it: the agent never runs unlimited.
# Python's start-up sets LC_CTYPE under the C locale (PEP 538), so the launcher puts back the value the
# server chose (empty: unset): the agent gets exactly the environment the server built.
# argv: server pid, LC_CTYPE, RLIMIT_CPU seconds, RLIMIT_AS bytes, RLIMIT_NOFILE (0 = unlimited), path, argv...
_LAUNCHER = textwrap.dedent(
    """
    import ctypes, os, resource, sys
    try:
        ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)
    except Exception:
        pass
    if os.getppid() != int(sys.argv[1]):
        os._exit(137)
    try:
        for name, value in zip(("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_NOFILE"), map(int, sys.argv[3:6])):
            if value > 0:
                which = getattr(resource, name)
                hard = resource.getrlimit(which)[1]
                if hard != resource.RLIM_INFINITY:
                    value = min(value, hard)
                resource.setrlimit(which, (value, value))
    except (OSError, ValueError) as e:
        sys.stderr.write(f"cannot apply the resource limits: {e}")
        os._exit(126)
    env = {k: v for k, v in os.environ.items() if k != "LC_CTYPE"}
    if sys.argv[2]:
        env["LC_CTYPE"] = sys.argv[2]
    try:
        os.execve(sys.argv[6], sys.argv[7:], env)
    except OSError as e:
        sys.stderr.write(f"cannot start {sys.argv[6]!r}: {e}")
        os._exit(127)
    """
)


def _launch_argv(program: AllowedProgram, args: list[str], limits: Limits, env: dict[str, str]) -> list[str]:
    return [
        sys.executable,
        "-S",
        "-I",
        "-c",
        _LAUNCHER,
        str(os.getpid()),
        env.get("LC_CTYPE", ""),
        *limits.launcher_args(),
        program.path,
        program.argv0,
        *args,
    ]


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    """Signal a process group that may already be gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_gone(pgid: int) -> bool:
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


async def _wait_group_gone(pgid: int, within: float) -> None:
    """Wait (bounded) until the SIGKILLed group has died: signal delivery is asynchronous, and the run must
    not be reported finished while a process of it still runs."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    # Polling: the kernel offers no notification for the death of processes that are not our children.
    while not _group_gone(pgid):
        if loop.time() >= deadline:
            log.warning("command provider: process group %d still has live members after SIGKILL", pgid)
            return
        await asyncio.sleep(0.01)


def _describe_exit(returncode: int) -> str:
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
            launch = _launch_argv(program, argv[1:], self.sandbox.limits, env)
            agent = await _Agent.start(launch, argv[0], workdir, env)
            outcome = await self._supervise(agent, request)
        return self._result(outcome, request)

    async def _supervise(self, agent: _Agent, request: ProviderRequest) -> _Outcome:
        """Run the agent to its end; whatever way this is left, nothing of the agent is still running."""
        try:
            if request.on_process is not None:
                await request.on_process(agent.pid)
            return await agent.run(request.prompt.encode("utf-8"), self.sandbox)
        except asyncio.CancelledError:
            await _finish_shielded(agent.stop(self.kill_grace_seconds))
            raise
        except BaseException:
            # on_process failed, or something unexpected: do not leave the agent running.
            await _finish_shielded(agent.stop(0.0))
            raise

    def _result(self, outcome: _Outcome, request: ProviderRequest) -> ProviderResult:
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


@dataclass(frozen=True)
class _Outcome:
    returncode: int
    # None when the agent wrote more than the output bound.
    stdout: bytes | None
    # The last `stderr_tail_bytes` of stderr.
    stderr: bytes


class _ExitAwareProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """asyncio's own subprocess protocol, plus an event set the moment the leader exits.

    `Process.wait()` returns only once the leader has exited *and* every pipe is closed; a background child
    that inherited stdout keeps it open indefinitely. The exit itself is what tells us to clean up."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited = asyncio.Event()

    def process_exited(self) -> None:
        super().process_exited()
        self.exited.set()


class _Agent:
    """One running agent program: its process, its process group and the pipes to it."""

    def __init__(
        self, transport: asyncio.SubprocessTransport, protocol: _ExitAwareProtocol, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.transport = transport
        self.protocol = protocol
        self.proc = asyncio.subprocess.Process(transport, protocol, loop)
        self.pid = self.proc.pid
        # start_new_session: the agent leads a new session and process group whose id is its pid.
        self.pgid = self.pid
        # Set when stdout passed the output bound: the group was killed and the output is dropped.
        self.overflowed = False

    @classmethod
    async def start(cls, launch: list[str], program: str, cwd: Path, env: dict[str, str]) -> _Agent:
        """`asyncio.create_subprocess_exec` of the launcher, with our protocol. The launcher is this
        server's own interpreter: a program that cannot be executed makes it exit 127 with the reason on
        stderr, which the run reports like any other failed agent."""
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _ExitAwareProtocol(limit=_STREAM_LIMIT, loop=loop),
                *launch,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise AthenaError(
                ErrorCode.ERROR_CODE_PROVIDER_ERROR, f"command provider: cannot start {program!r}: {exc}"
            ) from None
        return cls(transport, protocol, loop)

    def _overflow(self) -> None:
        """Stdout passed the bound: stop the whole group now (the answer is lost anyway)."""
        self.overflowed = True
        _kill_group(self.pgid, signal.SIGKILL)

    async def run(self, prompt: bytes, sandbox: Sandbox) -> _Outcome:
        """Feed stdin while reading stdout and stderr concurrently (both bounded), until the leader exits;
        then kill what it left behind in its group, so no agent child outlives its run."""
        proc = self.proc
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        tasks = (
            asyncio.create_task(_feed(proc.stdin, prompt)),
            asyncio.create_task(_read_bounded(proc.stdout, sandbox.output_max_bytes, self._overflow)),
            asyncio.create_task(_read_tail(proc.stderr, sandbox.stderr_tail_bytes)),
            asyncio.create_task(proc.wait()),
        )
        out, err = tasks[1], tasks[2]
        try:
            await self.protocol.exited.wait()
            _kill_group(self.pgid, signal.SIGKILL)
            # With the group gone the pipes reach EOF, unless a process that left the group holds them:
            # then stop reading rather than hang the run.
            _, pending = await asyncio.wait(tasks, timeout=_DRAIN_SECONDS)
            if pending:
                self.transport.close()
                await asyncio.wait(tasks, timeout=_DRAIN_SECONDS)
            await _wait_group_gone(self.pgid, _DRAIN_SECONDS)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        returncode = proc.returncode
        assert returncode is not None, "the leader has exited"
        stdout = None if self.overflowed else _result_or_empty(out)
        return _Outcome(returncode, stdout, _result_or_empty(err))

    async def stop(self, grace: float) -> None:
        """SIGTERM the group, wait up to the grace for the leader, SIGKILL the group, reap the leader."""
        if grace > 0 and not self.protocol.exited.is_set():
            _kill_group(self.pgid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.protocol.exited.wait(), grace)
        _kill_group(self.pgid, signal.SIGKILL)
        await _wait_group_gone(self.pgid, _DRAIN_SECONDS)
        # The child watcher reaps the leader and records its status; waiting for that before closing the
        # transport keeps `close()` (which polls the child) from racing the watcher's waitpid.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.protocol.exited.wait(), _DRAIN_SECONDS)
        # The output no longer matters, and a reader that stopped (full buffer) would keep `wait()` from
        # ever seeing EOF: close our pipe ends, then let `wait()` finish the transport.
        self.transport.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), _DRAIN_SECONDS)


async def _read_bounded(stream: asyncio.StreamReader, limit: int, on_overflow: Callable[[], None]) -> bytes:
    """Stdout, up to `limit` bytes. Past it, `on_overflow` stops the agent and the rest is read and
    dropped (so the pipe reaches EOF promptly); memory stays bounded by `limit` whatever the agent writes."""
    kept = bytearray()
    overflowed = False
    while chunk := await stream.read(_STREAM_LIMIT):
        if overflowed:
            continue
        if len(kept) + len(chunk) > limit:
            overflowed = True
            kept.clear()
            on_overflow()
        else:
            kept += chunk
    return bytes(kept)


async def _read_tail(stream: asyncio.StreamReader, keep: int) -> bytes:
    """The last `keep` bytes of a stream (stderr: where the error usually is), read to EOF."""
    tail = bytearray()
    while chunk := await stream.read(_STREAM_LIMIT):
        tail += chunk
        if len(tail) > keep:
            del tail[: len(tail) - keep]
    return bytes(tail)


async def _feed(stdin: asyncio.StreamWriter, data: bytes) -> None:
    """Write the prompt and close stdin; an agent that exits without reading it is not an error."""
    try:
        if data:
            stdin.write(data)
            await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        stdin.close()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await stdin.wait_closed()


def _result_or_empty(task: asyncio.Task[bytes]) -> bytes:
    if task.done() and not task.cancelled() and task.exception() is None:
        return task.result()
    return b""


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
