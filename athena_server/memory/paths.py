"""Which files are memory, and reaching them without leaving the workspace.

A memory path is `MEMORY.md` or a `.md` file under `memory/`, relative to the workspace. What a client
sends is checked as text first (no `..`, no absolute or percent-encoded forms, no backslashes or control
characters), then resolved on disk: a symlink is followed only when its target is itself a memory file of
the workspace, so a link cannot expose anything else (the walk skips symlinked directories altogether).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from athena_server.errors import config_error, not_found

MEMORY_FILE = "MEMORY.md"
MEMORY_DIR = "memory"
SUFFIX = ".md"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def is_memory_path(rel: str) -> bool:
    """Whether a normalised, relative, `/`-separated path names a memory file."""
    if rel == MEMORY_FILE:
        return True
    parts = rel.split("/")
    return len(parts) >= 2 and parts[0] == MEMORY_DIR and parts[-1].endswith(SUFFIX) and len(parts[-1]) > len(SUFFIX)


def normalise(raw: str, context: str) -> str:
    """The client's path as a normalised relative memory path, or CONFIG_ERROR saying what is wrong."""
    field = f"{context}.path"
    if not raw.strip():
        raise config_error(f"{field} must be a non-empty string.")
    if _CONTROL.search(raw):
        raise config_error(f"{field} must not contain control characters.")
    if "\\" in raw:
        raise config_error(f"{field} must use '/' separators, not backslashes.")
    if "%" in raw:
        raise config_error(f"{field} must not be percent-encoded.")
    if raw.startswith("/") or raw.startswith("~"):
        raise config_error(f"{field} must be relative to the workspace.")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise config_error(f"{field} must not leave the workspace ('..').")
    rel = "/".join(parts)
    if not is_memory_path(rel):
        raise config_error(f"{field} must be '{MEMORY_FILE}' or a '{SUFFIX}' file under '{MEMORY_DIR}/'.")
    return rel


@dataclass(frozen=True)
class FileState:
    """A memory file as the walk saw it: what the index compares to decide whether to read it again."""

    path: str
    real: str
    mtime_ns: int
    size: int


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.realpath(root))

    def _relative(self, real: str) -> str | None:
        """`real` relative to the workspace (`/`-separated), None when it is outside."""
        root = str(self.root)
        if real == root or not real.startswith(root.rstrip("/") + "/"):
            return None
        return os.path.relpath(real, root).replace(os.sep, "/")

    def _follow(self, rel: str) -> str | None:
        """The real file behind the memory path `rel`, None when a symlink leads outside the memory files."""
        real = os.path.realpath(self.root / rel)
        target = self._relative(real)
        return real if target is not None and is_memory_path(target) else None

    def locate(self, rel: str) -> str:
        """The real path of the memory file `rel` (already normalised): NOT_FOUND when it does not exist,
        CONFIG_ERROR when a symlink leads out of the memory files or it is not a regular file."""
        candidate = self.root / rel
        try:
            os.lstat(candidate)
        except FileNotFoundError:
            raise not_found(f"memory file not found: {rel}") from None
        except NotADirectoryError:
            raise not_found(f"memory file not found: {rel}") from None
        except OSError as exc:
            raise config_error(f"memory file {rel} cannot be read: {exc.strerror}.") from None
        if os.path.islink(self.root / MEMORY_DIR) and rel != MEMORY_FILE:
            raise config_error(f"memory path {rel} leads through a symlinked directory.")
        real = self._follow(rel)
        if real is None:
            raise config_error(f"memory path {rel} is a symlink leading outside the workspace's memory files.")
        try:
            mode = os.stat(real).st_mode
        except FileNotFoundError:
            raise not_found(f"memory file not found: {rel}") from None
        except OSError as exc:
            raise config_error(f"memory file {rel} cannot be read: {exc.strerror}.") from None
        if not stat.S_ISREG(mode):
            raise config_error(f"memory path {rel} is not a regular file.")
        return real

    def walk(self) -> Iterator[FileState]:
        """Every memory file: `MEMORY.md`, then `memory/**/*.md` (symlinked directories are not entered;
        symlinked files count only when their target is a memory file of the workspace)."""
        top = self._state(MEMORY_FILE, str(self.root / MEMORY_FILE))
        if top is not None:
            yield top
        base = self.root / MEMORY_DIR
        if os.path.islink(base) or not os.path.isdir(base):
            return
        stack = [MEMORY_DIR]
        while stack:
            rel_dir = stack.pop()
            try:
                entries = sorted(os.scandir(self.root / rel_dir), key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                rel = f"{rel_dir}/{entry.name}"
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(rel)
                        continue
                except OSError:
                    continue
                if is_memory_path(rel):
                    state = self._entry_state(rel, entry)
                    if state is not None:
                        yield state

    def _entry_state(self, rel: str, entry: os.DirEntry[str]) -> FileState | None:
        """As `_state`, with one system call for a plain file (the directory entry knows its type)."""
        try:
            if entry.is_symlink():
                return self._state(rel, entry.path)
            st = entry.stat(follow_symlinks=False)
        except OSError:
            return None
        return FileState(rel, entry.path, st.st_mtime_ns, st.st_size) if stat.S_ISREG(st.st_mode) else None

    def _state(self, rel: str, path: str) -> FileState | None:
        try:
            if os.path.islink(path):
                real = self._follow(rel)
                if real is None:
                    return None
            else:
                real = path
            st = os.stat(real, follow_symlinks=False)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return FileState(rel, real, st.st_mtime_ns, st.st_size)


def open_lines(real: str, rel: str) -> Iterator[str]:
    """The lines of a located memory file (no line ends; `\\r\\n` counts as one), read as UTF-8 with
    undecodable bytes replaced (line by line: UTF-8 never puts a newline byte inside a character). Opened
    without following a final symlink: `locate` already resolved it."""
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise not_found(f"memory file not found: {rel}") from None
    except OSError as exc:
        raise config_error(f"memory file {rel} cannot be read: {exc.strerror}.") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise config_error(f"memory path {rel} is not a regular file.")
    with open(fd, "rb") as handle:
        for raw in handle:
            yield raw.removesuffix(b"\n").removesuffix(b"\r").decode("utf-8", errors="replace")


def split_lines(data: bytes) -> list[str]:
    """The lines `open_lines` yields for a file holding `data`, so search citations and get windows agree."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line.removesuffix(b"\r").decode("utf-8", errors="replace") for line in lines]
