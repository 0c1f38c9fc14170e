"""Git, run safely for a review: an argument list (never a shell), a minimal environment, no hooks,
external diff drivers or fsmonitor, a timeout, and a cap on what is read back. Refs a client sends are
checked for shape, then resolved with `rev-parse --verify --end-of-options`, so nothing they hold can
become an option or reach anything but git's revision parser."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from athena_server.errors import config_error
from athena_server.personas.constants import GIT_TIMEOUT_SECONDS

# Revision syntax git understands (names, object ids, `~`, `^`, `@{...}`, `:`), nothing a shell or an option
# parser would treat specially. Checked before git sees the value; git's own parser decides the rest.
REF_PATTERN = re.compile(r"^[A-Za-z0-9._/@{}~^:+-]+$")
_STDERR_MAX_BYTES = 4_096
# Settings that would make git run programs from the repository's configuration.
_SAFE_CONFIG = ("-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "--no-optional-locks")


class GitError(Exception):
    def __init__(self, returncode: int, stderr: str) -> None:
        super().__init__(stderr)
        self.returncode = returncode
        self.stderr = stderr


@dataclass(frozen=True)
class GitOutput:
    data: bytes
    # True when the output was longer than the cap and the command was stopped.
    truncated: bool


def _env(ceiling: Path) -> dict[str, str]:
    """Only what git needs: no GIT_DIR or GIT_WORK_TREE of the server's own environment, no prompts, and a
    ceiling so discovery never climbs above the allowed root into a repository there."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"}
    if "HOME" in os.environ:
        env["HOME"] = os.environ["HOME"]
    env["GIT_CEILING_DIRECTORIES"] = str(ceiling)
    return env


async def _read_capped(stream: asyncio.StreamReader, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await stream.read(65_536)
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True


def _resolved(path: str) -> Path:
    """A path git printed, symlinks resolved (a quick local call: git already touched it)."""
    return Path(path).resolve()


class Git:
    """Git commands in one repository directory."""

    def __init__(self, cwd: Path, ceiling: Path) -> None:
        self.cwd = cwd
        self.ceiling = ceiling

    async def run(self, *args: str, max_bytes: int = 1_000_000) -> GitOutput:
        """stdout of `git <args>`; GitError on a non-zero exit. Output beyond `max_bytes` stops the command
        and comes back truncated."""
        proc = await asyncio.create_subprocess_exec(
            "git",
            *_SAFE_CONFIG,
            *args,
            cwd=self.cwd,
            env=_env(self.ceiling),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        try:
            async with asyncio.timeout(GIT_TIMEOUT_SECONDS):
                out_task = asyncio.ensure_future(_read_capped(proc.stdout, max_bytes))
                err_task = asyncio.ensure_future(_read_capped(proc.stderr, _STDERR_MAX_BYTES))
                (data, truncated) = await out_task
                if truncated:
                    with contextlib.suppress(ProcessLookupError):  # it may have exited already (uvloop raises)
                        proc.kill()
                (err, _) = await err_task
                returncode = await proc.wait()
        except TimeoutError:
            raise config_error(f"git {args[0]} took longer than {GIT_TIMEOUT_SECONDS:g}s.") from None
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if returncode != 0 and not truncated:
            raise GitError(returncode, err.decode("utf-8", "replace").strip())
        return GitOutput(data, truncated)

    async def text(self, *args: str) -> str:
        return (await self.run(*args)).data.decode("utf-8", "replace").strip()

    async def toplevel(self) -> Path | None:
        """The repository's top directory, None when `cwd` is not inside a work tree."""
        try:
            inside = await self.text("rev-parse", "--is-inside-work-tree")
            top = await self.text("rev-parse", "--show-toplevel")
        except GitError:
            return None
        return _resolved(top) if inside == "true" and top else None

    async def has_tracked_changes(self) -> bool:
        """Staged or unstaged changes to tracked files. Untracked files do not count: the review reads only
        commits, and the server's own `.athena/` may well sit untracked in the workspace."""
        status = await self.run("status", "--porcelain", "--untracked-files=no", "--ignore-submodules=all")
        return bool(status.data.strip())

    async def resolve(self, ref: str) -> str | None:
        """The commit `ref` names, None when it names none. `ref` must have passed `check_ref`."""
        try:
            sha = await self.text("rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
        except GitError:
            return None
        return sha or None


def check_ref(value: str, field: str, context: str) -> str:
    """A revision a client sent, before git sees it: non-empty, not an option, only revision characters."""
    ref = value.strip()
    if not ref:
        raise config_error(f"{context}.{field} must be a non-empty string.")
    if ref.startswith("-"):
        raise config_error(f"{context}.{field} must not start with '-'. Received: {ref}.")
    if not REF_PATTERN.match(ref) or ".." in ref:
        raise config_error(
            f"{context}.{field} must be a single git revision (letters, digits and . _ / @ {{ }} ~ ^ : + -, "
            f"no '..'). Received: {ref}."
        )
    return ref
