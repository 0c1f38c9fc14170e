"""One running `command` agent: its process, its process group and the bounded pipes to it.

The agent's whole group is killed once its leader exits or it is stopped, so no agent child outlives its
run; what is read back from it is bounded, so an agent cannot exhaust the server's memory by writing.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from athena_server.engine.providers.process_group import signal_group, wait_group_gone
from athena_server.errors import AthenaError, ErrorCode

# asyncio's default buffer limit for subprocess streams (64 KiB): the most a pipe buffers before asyncio
# stops reading it. Our readers take at most this much at a time.
_STREAM_LIMIT = 2**16
# After the whole group is SIGKILLed, how long to wait for the pipes to reach EOF. Only a process that left
# the group (setsid) and kept our pipes can hold them longer; we stop reading rather than hang the run.
_DRAIN_SECONDS = 2.0


@dataclass(frozen=True)
class Outcome:
    """How an agent ended and what it wrote."""

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


class Agent:
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
    async def start(cls, launch: list[str], program: str, cwd: Path, env: dict[str, str]) -> Agent:
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
        signal_group(self.pgid, signal.SIGKILL)

    async def run(self, prompt: bytes, output_max_bytes: int, stderr_tail_bytes: int) -> Outcome:
        """Feed stdin while reading stdout (up to `output_max_bytes`) and the last `stderr_tail_bytes` of
        stderr concurrently, until the leader exits; then kill what it left behind in its group, so no agent
        child outlives its run."""
        proc = self.proc
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        tasks = (
            asyncio.create_task(_feed(proc.stdin, prompt)),
            asyncio.create_task(_read_bounded(proc.stdout, output_max_bytes, self._overflow)),
            asyncio.create_task(_read_tail(proc.stderr, stderr_tail_bytes)),
            asyncio.create_task(proc.wait()),
        )
        out, err = tasks[1], tasks[2]
        try:
            await self.protocol.exited.wait()
            signal_group(self.pgid, signal.SIGKILL)
            # With the group gone the pipes reach EOF, unless a process that left the group holds them:
            # then stop reading rather than hang the run.
            _, pending = await asyncio.wait(tasks, timeout=_DRAIN_SECONDS)
            if pending:
                self.transport.close()
                await asyncio.wait(tasks, timeout=_DRAIN_SECONDS)
            await wait_group_gone(self.pgid, _DRAIN_SECONDS)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        returncode = proc.returncode
        assert returncode is not None, "the leader has exited"
        stdout = None if self.overflowed else _result_or_empty(out)
        return Outcome(returncode, stdout, _result_or_empty(err))

    async def stop(self, grace: float) -> None:
        """SIGTERM the group, wait up to the grace for the leader, SIGKILL the group, reap the leader."""
        if grace > 0 and not self.protocol.exited.is_set():
            signal_group(self.pgid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.protocol.exited.wait(), grace)
        signal_group(self.pgid, signal.SIGKILL)
        await wait_group_gone(self.pgid, _DRAIN_SECONDS)
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
    """What a reader task read, or nothing if it was stopped before the end (a pipe held past the drain)."""
    if task.done() and not task.cancelled() and task.exception() is None:
        return task.result()
    return b""
