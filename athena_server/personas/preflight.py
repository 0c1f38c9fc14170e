"""What a review checks before it runs, each failure a CONFIG_ERROR naming the field: the repository lies
under an allowed root (after symlinks are resolved, and its top level too, so a review never reads an
arbitrary directory of the server's machine), it is a git work tree, its tracked files are unchanged when the
persona requires it, and both revisions resolve to commits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from athena_server.errors import config_error
from athena_server.personas.constants import BASE_FROM_FLAG, BASE_FROM_MAIN, BASE_FROM_ORIGIN_HEAD, CONTEXT
from athena_server.personas.git import Git, check_ref
from athena_server.personas.manifest import Persona

# Tried in order when the request names no base (the original's rule).
_DEFAULT_BASES = (("main", BASE_FROM_MAIN), ("origin/HEAD", BASE_FROM_ORIGIN_HEAD))


@dataclass(frozen=True)
class Checked:
    git: Git
    # The repository directory as resolved (symlinks followed).
    repo: Path
    head_ref: str
    head_commit: str
    base_ref: str
    base_commit: str
    base_from: str


def allowed_roots(workspace: Path, extra: str) -> list[Path]:
    """The workspace and the comma-separated `ATHENA_PERSONA_REPO_ROOTS` (relative ones from the workspace),
    resolved."""
    roots = [workspace.resolve()]
    for item in extra.split(","):
        if item.strip():
            roots.append((workspace / item.strip()).resolve())
    return roots


def _root_of(path: Path, roots: Sequence[Path]) -> Path | None:
    return next((root for root in roots if path.is_relative_to(root)), None)


def repo_directory(value: str, workspace: Path, roots: Sequence[Path]) -> tuple[Path, Path]:
    """(the resolved directory, the allowed root holding it). Relative paths start at the workspace."""
    raw = value.strip()
    if not raw:
        raise config_error(f"{CONTEXT}.repoPath must be a non-empty string.")
    if "\x00" in raw:
        raise config_error(f"{CONTEXT}.repoPath must not contain NUL characters.")
    try:
        resolved = (workspace / raw).resolve(strict=True)
    except (OSError, RuntimeError):
        raise config_error(f"{CONTEXT}.repoPath must be an existing directory. Received: {raw}.") from None
    root = _root_of(resolved, roots)
    if root is None:
        raise config_error(
            f"{CONTEXT}.repoPath must lie under the workspace or ATHENA_PERSONA_REPO_ROOTS "
            f"(symlinks resolved). Received: {raw}."
        )
    if not resolved.is_dir():
        raise config_error(f"{CONTEXT}.repoPath must be an existing directory. Received: {raw}.")
    return resolved, root


async def _base(git: Git, given: str) -> tuple[str, str, str]:
    if given.strip():
        ref = check_ref(given, "baseRef", CONTEXT)
        sha = await git.resolve(ref)
        if sha is None:
            raise config_error(f"{CONTEXT}.baseRef does not resolve to a commit. Received: {ref}.")
        return ref, sha, BASE_FROM_FLAG
    for ref, source in _DEFAULT_BASES:
        sha = await git.resolve(ref)
        if sha is not None:
            return ref, sha, source
    raise config_error(f"{CONTEXT}.baseRef was not given and neither main nor origin/HEAD resolves to a commit.")


async def check(
    persona: Persona, repo_path: str, head_ref: str, base_ref: str, workspace: Path, roots: Sequence[Path]
) -> Checked:
    # Shape first: a malformed ref is refused whatever the repository.
    head = check_ref(head_ref, "headRef", CONTEXT)
    if base_ref.strip():
        check_ref(base_ref, "baseRef", CONTEXT)
    repo, root = repo_directory(repo_path, workspace, roots)
    git = Git(repo, root.parent)
    top = await git.toplevel()
    if top is None:
        raise config_error(f"{CONTEXT}.repoPath must be a git work tree. Received: {repo_path.strip()}.")
    if _root_of(top, roots) is None:
        raise config_error(f"{CONTEXT}.repoPath is inside a repository whose top level lies outside the allowed roots.")
    if persona.require_clean_worktree and await git.has_tracked_changes():
        raise config_error(
            f"{CONTEXT}.repoPath has uncommitted changes to tracked files; persona '{persona.name}' "
            "requires a clean worktree (commit or stash them)."
        )
    head_commit = await git.resolve(head)
    if head_commit is None:
        raise config_error(f"{CONTEXT}.headRef does not resolve to a commit. Received: {head}.")
    base, base_commit, base_from = await _base(git, base_ref)
    return Checked(git, repo, head, head_commit, base, base_commit, base_from)
