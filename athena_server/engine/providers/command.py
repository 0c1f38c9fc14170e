"""The `command` provider: runs an external agent program for a run.

The program (the harness profile's `config.command`) gets the compiled prompt on stdin and answers on
stdout; stderr is kept as evidence for verification policies. It runs in its own process group so that
stopping a run stops everything the agent started, not just the leader, and it asks the kernel to SIGKILL
it if the server dies, so a crashed server does not leave agents running with nobody to stop them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from athena_server.engine.providers.base import Evidence, ProviderRequest, ProviderResult
from athena_server.errors import AthenaError, ErrorCode, config_error

if TYPE_CHECKING:
    from athena_server.config import Settings

log = logging.getLogger(__name__)

# <linux/prctl.h>
_PR_SET_PDEATHSIG = 1
# How much of stderr a failure message quotes: enough to see the error, small enough for a status message.
_STDERR_TAIL_CHARS = 500
# asyncio's default buffer limit for subprocess streams (64 KiB); `read()` to EOF is not bound by it.
_STREAM_LIMIT = 2**16
# After the whole group is SIGKILLed, how long to wait for the pipes to reach EOF. Only a process that left
# the group (setsid) and kept our pipes can hold them longer; we stop reading rather than hang the run.
_DRAIN_SECONDS = 2.0


# The agent is started through this launcher rather than with a `preexec_fn`: Python code between fork and
# exec is unsafe in a multi-threaded server (the store's threads may hold the allocator's locks at fork
# time; crashes were seen). The launcher is a fresh single-threaded interpreter: it asks the kernel for
# SIGKILL on the server's death (PR_SET_PDEATHSIG, kept across exec), gives up if the server already died,
# then execs the agent program.
_LAUNCHER = (
    "import ctypes,os,sys\n"
    "try:\n"
    "    ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)\n"
    "except Exception:\n"
    "    pass\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    os._exit(137)\n"
    "try:\n"
    "    os.execvp(sys.argv[2], sys.argv[2:])\n"
    "except OSError as e:\n"
    "    sys.stderr.write(f'cannot start {sys.argv[2]!r}: {e}')\n"
    "    os._exit(127)\n"
)


def _launch_argv(argv: list[str]) -> list[str]:
    if not sys.platform.startswith("linux"):
        return argv
    return [sys.executable, "-S", "-I", "-c", _LAUNCHER, str(os.getpid()), *argv]


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


class CommandProvider:
    """Runs `request.command` with the prompt on stdin; the output is its stdout.

    Cancellation (run cancel or timeout) sends SIGTERM to the agent's process group, gives it
    `kill_grace_seconds` to exit, then SIGKILLs the group, reaps it and only then re-raises: the engine
    reports the run stopped once `complete()` returns, so nothing of the run may still be running then.
    """

    name = "command"

    def __init__(self, kill_grace_seconds: float = 2.0) -> None:
        self.kill_grace_seconds = kill_grace_seconds

    @classmethod
    def from_settings(cls, settings: Settings) -> CommandProvider:
        return cls(kill_grace_seconds=settings.command_kill_grace_seconds)

    async def complete(self, request: ProviderRequest) -> ProviderResult:
        argv = list(request.command)
        if not argv:
            raise config_error("The command provider needs harness profile config.command (the agent program's argv).")
        agent = await _Agent.start(argv, request)
        try:
            if request.on_process is not None:
                await request.on_process(agent.pid)
            returncode, stdout, stderr = await agent.run(request.prompt.encode("utf-8"))
        except asyncio.CancelledError:
            await _finish_shielded(agent.stop(self.kill_grace_seconds))
            raise
        except BaseException:
            # on_process failed, or something unexpected: do not leave the agent running.
            await _finish_shielded(agent.stop(0.0))
            raise
        stderr_text = stderr.decode("utf-8", errors="replace")
        if returncode != 0:
            tail = stderr_text[-_STDERR_TAIL_CHARS:]
            raise AthenaError(
                ErrorCode.ERROR_CODE_PROVIDER_ERROR,
                f"{_describe_exit(returncode)}: {tail}",
                retryable=False,
            )
        output = stdout.decode("utf-8", errors="replace").rstrip("\r\n")
        return ProviderResult(
            output=output,
            model=request.model,
            input_tokens=len(request.prompt),
            output_tokens=len(output),
            evidence=(Evidence(label="stderr", type="text", content=stderr_text),),
        )


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

    @classmethod
    async def start(cls, argv: list[str], request: ProviderRequest) -> _Agent:
        """`asyncio.create_subprocess_exec`, with our protocol."""
        loop = asyncio.get_running_loop()
        env = {
            **os.environ,
            "ATHENA_RUN_ID": request.run_id,
            "ATHENA_SESSION_ID": request.session_id,
            "ATHENA_MODEL": request.model,
            "ATHENA_ATTEMPT": str(request.attempt),
        }
        program = argv[0]
        resolved = shutil.which(program)
        if resolved is None:
            raise AthenaError(
                ErrorCode.ERROR_CODE_PROVIDER_ERROR,
                f"command provider: program not found or not executable: {program!r}",
            )
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _ExitAwareProtocol(limit=_STREAM_LIMIT, loop=loop),
                *_launch_argv([resolved, *argv[1:]]),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise AthenaError(
                ErrorCode.ERROR_CODE_PROVIDER_ERROR, f"command provider: program not found: {program!r}"
            ) from None
        except PermissionError:
            raise AthenaError(
                ErrorCode.ERROR_CODE_PROVIDER_ERROR, f"command provider: program is not executable: {program!r}"
            ) from None
        except OSError as exc:
            raise AthenaError(
                ErrorCode.ERROR_CODE_PROVIDER_ERROR, f"command provider: cannot start {program!r}: {exc}"
            ) from None
        return cls(transport, protocol, loop)

    async def run(self, prompt: bytes) -> tuple[int, bytes, bytes]:
        """Feed stdin while reading stdout and stderr concurrently, until the leader exits; then kill what
        it left behind in its group, so no agent child outlives its run."""
        proc = self.proc
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        tasks = (
            asyncio.create_task(_feed(proc.stdin, prompt)),
            asyncio.create_task(proc.stdout.read()),
            asyncio.create_task(proc.stderr.read()),
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
        return returncode, _result_or_empty(out), _result_or_empty(err)

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
