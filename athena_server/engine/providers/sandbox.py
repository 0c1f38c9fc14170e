"""What a `command` agent may run and what it runs with: the operator's allow-list of programs, a minimal
environment, a private working directory per attempt, and the resource limits the launcher applies.

Harness profiles come from API clients and name the program a run executes. Without these rules the API
would be a remote shell running as the server's user, with the server's secrets (tokens, the database URL,
provider keys) in its environment. This is not a sandbox in the isolation sense (the agent still sees the
filesystem and the network as the server's user): it decides *which* programs run and what they inherit.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

ALLOW_SETTING = "ATHENA_COMMAND_ALLOW"
PASSTHROUGH_SETTING = "ATHENA_COMMAND_ENV_PASSTHROUGH"
# Server variables an agent inherits as they are (when set); everything else of the server's
# environment stays out unless the operator lists it.
INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "TZ")
# Server-generated run ids (UUIDs); checked so a directory name can never climb out of the root.
_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class CommandConfigError(ValueError):
    """A `command_*` setting the server cannot start with; the message names the setting and the entry."""


@dataclass(frozen=True)
class AllowedProgram:
    """A program a profile may run: the file to execute and the argv[0] it gets."""

    # The real path (symlinks resolved): what is executed, so no later PATH lookup or symlink change can
    # swap in another program between the check and the exec.
    path: str
    # An absolute spelling the operator allowed: programs that read argv[0] (Python finding its virtual
    # environment, a multi-call binary choosing its applet) see a name the operator listed.
    argv0: str


def _locate(program: str) -> str | None:
    """An absolute path for `program`: itself when absolute, the PATH lookup of a bare name. None for a
    relative path (it would depend on the server's working directory) and for a name not on PATH."""
    if os.path.isabs(program):
        return os.path.normpath(program)
    if "/" in program:
        return None
    return shutil.which(program)


def _allowed_entry(entry: str) -> AllowedProgram:
    located = _locate(entry)
    if located is None:
        reason = "is a relative path" if "/" in entry else "was not found on PATH"
        raise CommandConfigError(
            f"{ALLOW_SETTING} entry {entry!r} {reason}: list absolute paths or program names found on PATH."
        )
    real = os.path.realpath(located)
    if not (os.path.isfile(real) and os.access(real, os.X_OK)):
        raise CommandConfigError(f"{ALLOW_SETTING} entry {entry!r} is not an executable file ({real}).")
    return AllowedProgram(path=real, argv0=located)


class AllowList:
    """The executables `command` profiles may name, resolved once at start-up.

    A profile's program is allowed when it resolves (PATH lookup for a bare name, then symlinks) to the
    same real file as an entry. Resolving both sides means `python3`, `/usr/bin/python3` and its target
    are one program, and a symlink planted later elsewhere cannot widen the list.
    """

    def __init__(self, programs: Iterable[AllowedProgram] = ()) -> None:
        # real path -> the argv[0] of the first entry naming it; the entries' own absolute spellings.
        self._argv0_by_path: dict[str, str] = {}
        self._spellings: set[str] = set()
        for program in programs:
            self._argv0_by_path.setdefault(program.path, program.argv0)
            self._spellings.add(program.argv0)

    @classmethod
    def parse(cls, spec: str) -> AllowList:
        """`ATHENA_COMMAND_ALLOW`: comma-separated absolute paths or names on PATH; an entry that is not an
        executable file raises CommandConfigError naming it, so a typo stops start-up instead of silently
        allowing less (or, after a PATH change, something else)."""
        return cls(_allowed_entry(entry) for entry in (e.strip() for e in spec.split(",")) if entry)

    def __bool__(self) -> bool:
        return bool(self._argv0_by_path)

    def describe(self) -> str:
        """The allowed programs for the start-up log: `argv0 (real path)` or the path alone."""
        return ", ".join(a if a == p else f"{a} ({p})" for p, a in sorted(self._argv0_by_path.items()))

    def resolve(self, program: str) -> AllowedProgram | None:
        """The allowed program `program` names now, or None. Called when a profile is created and again
        when each attempt starts: the list or the filesystem may have changed in between."""
        located = _locate(program)
        if located is None:
            return None
        real = os.path.realpath(located)
        first = self._argv0_by_path.get(real)
        if first is None:
            return None
        return AllowedProgram(path=real, argv0=located if located in self._spellings else first)


@dataclass(frozen=True)
class Limits:
    """An agent's resource limits (setrlimit, soft = hard so the agent cannot raise them); 0 = none."""

    cpu_seconds: int = 0
    memory_mb: int = 0
    open_files: int = 0

    def __post_init__(self) -> None:
        for name in ("cpu_seconds", "memory_mb", "open_files"):
            if getattr(self, name) < 0:
                raise CommandConfigError(f"ATHENA_COMMAND_{name.upper()} must be 0 (no limit) or positive.")

    def launcher_args(self) -> list[str]:
        """What the launcher takes: RLIMIT_CPU seconds, RLIMIT_AS bytes, RLIMIT_NOFILE count."""
        return [str(self.cpu_seconds), str(self.memory_mb * 1024 * 1024), str(self.open_files)]


def parse_passthrough(spec: str) -> tuple[str, ...]:
    """`ATHENA_COMMAND_ENV_PASSTHROUGH`: names of server variables an agent also inherits. `ATHENA_*`
    names are refused: they are the server's own settings (the database URL, tokens, provider keys)."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    for name in names:
        if not _ENV_NAME.match(name):
            raise CommandConfigError(f"{PASSTHROUGH_SETTING} entry {name!r} is not an environment variable name.")
        if name.upper().startswith("ATHENA_"):
            raise CommandConfigError(
                f"{PASSTHROUGH_SETTING} entry {name!r} is a server setting; those are never passed to agents."
            )
    return tuple(dict.fromkeys(names))


def agent_env(
    workdir: Path,
    run: Mapping[str, str],
    passthrough: Iterable[str] = (),
    source: Mapping[str, str] = os.environ,
) -> dict[str, str]:
    """The agent's whole environment: PATH (and the locale and time zone) from the server, HOME and TMPDIR
    in its working directory, the run's `ATHENA_*` variables, and the operator's pass-through names."""
    env = {name: source[name] for name in (*INHERITED_ENV, *passthrough) if name in source}
    env.setdefault("PATH", os.defpath)
    env.update(HOME=str(workdir), TMPDIR=str(workdir))
    env.update(run)
    return env


def workdir_path(root: Path, run_id: str, attempt: int) -> Path:
    """`<root>/<run id>.<attempt>`: from the server's run id and attempt number only, never client input."""
    if not _RUN_ID.match(run_id):
        raise ValueError(f"not a server-generated run id: {run_id!r}")
    return root / f"{run_id}.{attempt}"


def make_workdir(path: Path) -> None:
    """Create the attempt's directory, private to the server's user (0700 whatever the umask). The root is
    created 0700 too when missing; an existing root keeps the operator's mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.mkdir(mode=0o700)
    path.chmod(0o700)


def remove_workdir(path: Path) -> None:
    """Delete an attempt's directory and all the agent left in it. Directories it made read-only or
    unsearchable (Go's module cache does) are opened up first; symlinks are never followed."""
    with contextlib.suppress(FileNotFoundError):
        _open_up(path)
        for top, dirs, _ in os.walk(path):
            for name in dirs:
                _open_up(Path(top) / name)
    shutil.rmtree(path, ignore_errors=True)


def _open_up(path: Path) -> None:
    with contextlib.suppress(OSError):
        if stat.S_ISDIR(os.lstat(path).st_mode):
            os.chmod(path, 0o700)
