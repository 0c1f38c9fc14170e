"""Persona definitions: the packaged ones (`builtin/<name>/`) and the workspace's own
(`<workspace>/personas/<name>/`, the original's location), each a directory holding `persona.json` and the
rubric (`rubric.md`) the model is given. A workspace definition replaces a packaged one of the same name, so
a team can tune `code-review` without forking the server."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from athena_server.errors import config_error
from athena_server.personas.constants import CONTEXT, MANIFEST_MAX_BYTES, NAME_MAX_CHARS, RUBRIC_MAX_CHARS

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
WORKSPACE_SUBDIR = "personas"
MANIFEST_FILE = "persona.json"
RUBRIC_FILE = "rubric.md"
# Lowercase letters, digits and dashes: a name is a directory name and part of run and session ids.
NAME_PATTERN = re.compile(rf"^[a-z0-9](?:[a-z0-9-]{{0,{NAME_MAX_CHARS - 1}}})$")


@dataclass(frozen=True)
class Persona:
    name: str
    description: str
    rubric: str
    # Whether tracked files must be unchanged in the worktree (the original's per-persona rule).
    require_clean_worktree: bool
    # Where the definition came from: "builtin" or "workspace".
    source: str


def check_name(value: str) -> str:
    name = value.strip()
    if not name:
        raise config_error(f"{CONTEXT}.name must be a non-empty string.")
    if not NAME_PATTERN.match(name):
        raise config_error(
            f"{CONTEXT}.name must be {NAME_MAX_CHARS} or fewer lowercase letters, digits and dashes, "
            "starting with a letter or digit."
        )
    return name


def _read_bounded(path: Path, limit: int, what: str) -> str:
    """A definition file's text; a file too large or unreadable is the operator's CONFIG_ERROR, and so is a
    symlink leading out of the persona's directory (its text would be sent to a model)."""
    if path.is_symlink() and not path.resolve().is_relative_to(path.parent.resolve()):
        raise config_error(f"Persona {what} is a symlink leading out of the persona's directory.")
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise config_error(f"Persona {what} could not be read: {exc.strerror}.") from None
    if len(data) > limit:
        raise config_error(f"Persona {what} is larger than {limit} bytes.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise config_error(f"Persona {what} is not UTF-8 text.") from None


def _definition_dir(root: Path, name: str) -> Path | None:
    """`root/<name>` when it is a directory inside `root` (a symlink leading elsewhere does not count)."""
    candidate = root / name
    if not candidate.is_dir():
        return None
    resolved, base = candidate.resolve(), root.resolve()
    return resolved if resolved.is_relative_to(base) else None


def _parse(directory: Path, name: str, source: str) -> Persona:
    where = f"'{name}' ({source})"
    raw = _read_bounded(directory / MANIFEST_FILE, MANIFEST_MAX_BYTES, f"{where} {MANIFEST_FILE}")
    try:
        doc: Any = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise config_error(f"Persona {where} {MANIFEST_FILE} is not valid JSON: {exc.msg}.") from None
    if not isinstance(doc, dict):
        raise config_error(f"Persona {where} {MANIFEST_FILE} must hold a JSON object.")
    if doc.get("schemaVersion", 1) != 1:
        raise config_error(f"Persona {where} {MANIFEST_FILE} schemaVersion must be 1.")
    if doc.get("name", name) != name:
        raise config_error(f"Persona {where} {MANIFEST_FILE} name must be '{name}' (its directory's name).")
    description = doc.get("description", "")
    clean = doc.get("requireCleanWorktree", True)
    if not isinstance(description, str) or not isinstance(clean, bool):
        raise config_error(
            f"Persona {where} {MANIFEST_FILE}: description must be a string, requireCleanWorktree a boolean."
        )
    rubric = _read_bounded(directory / RUBRIC_FILE, RUBRIC_MAX_CHARS * 4, f"{where} {RUBRIC_FILE}").strip()
    if not rubric or len(rubric) > RUBRIC_MAX_CHARS:
        raise config_error(f"Persona {where} {RUBRIC_FILE} must hold 1 to {RUBRIC_MAX_CHARS} characters.")
    return Persona(name, description, rubric, clean, source)


def load(name: str, workspace: Path) -> Persona:
    """The persona called `name`: the workspace's definition, else the packaged one; CONFIG_ERROR when
    neither exists (a name, like a directive id, that references nothing)."""
    name = check_name(name)
    own = _definition_dir(workspace / WORKSPACE_SUBDIR, name)
    if own is not None:
        return _parse(own, name, "workspace")
    packaged = _definition_dir(BUILTIN_DIR, name)
    if packaged is not None:
        return _parse(packaged, name, "builtin")
    known = ", ".join(sorted(p.name for p in BUILTIN_DIR.iterdir() if p.is_dir()))
    raise config_error(
        f"{CONTEXT}.name must name a packaged persona ({known}) or a directory "
        f"{WORKSPACE_SUBDIR}/<name>/ of the workspace. Received: {name}."
    )
