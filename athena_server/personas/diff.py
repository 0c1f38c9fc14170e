"""The change a review looks at: the diff between the two commits (cut at a byte budget, with a note when
cut), the changed files, and which lines of which files the model was shown, so a finding pointing
elsewhere can be flagged rather than trusted."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from athena_server.personas.constants import DIFF_MAX_BYTES, MAX_CHANGED_FILES
from athena_server.personas.git import Git

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_NEW_FILE = re.compile(r"^\+\+\+ b/(.*)$")
_OLD_FILE = re.compile(r"^--- a/(.*)$")
# Options every diff of a review uses: plain text, no external drivers or text conversions from the repo.
_DIFF_OPTIONS = ("--no-color", "--no-ext-diff", "--no-textconv", "--find-renames", "--src-prefix=a/", "--dst-prefix=b/")


@dataclass(frozen=True)
class Change:
    diff: str
    truncated: bool
    files: tuple[str, ...]
    # True when more files changed than `files` lists.
    files_truncated: bool


@dataclass(frozen=True)
class Shown:
    """What the model was shown: the changed files and, per file, the line numbers (new revision; old
    revision for deleted files) inside the hunks of the diff as shown."""

    files: frozenset[str]
    lines: dict[str, set[int]] = field(default_factory=dict)

    def covers(self, file: str | None, line: int | None) -> bool:
        """Whether a finding at `file`/`line` points into the change the model was shown."""
        if file is None:
            return line is None
        if file not in self.files:
            return False
        return line is None or line in self.lines.get(file, set())


def shown_lines(diff: str) -> dict[str, set[int]]:
    """File -> the line numbers its hunks cover, from unified diff text (a cut last hunk counts in full)."""
    out: dict[str, set[int]] = {}
    old: str | None = None
    current: str | None = None
    deleted = False
    for text in diff.splitlines():
        if m := _OLD_FILE.match(text):
            old = m.group(1)
        elif text.startswith("+++ "):
            m = _NEW_FILE.match(text)
            deleted = m is None
            current = m.group(1) if m else old
        elif current is not None and (m := _HUNK.match(text)):
            start, count = (int(m.group(1)), m.group(2)) if deleted else (int(m.group(3)), m.group(4))
            span = int(count) if count is not None else 1
            out.setdefault(current, set()).update(range(start, start + span))
    return out


async def change(git: Git, base: str, head: str) -> Change:
    """The diff of commits `base`..`head` (object ids from preflight) and the files it touches."""
    names = await git.run("diff", *_DIFF_OPTIONS, "--name-only", "-z", base, head, "--")
    files = [n.decode("utf-8", "replace") for n in names.data.split(b"\0") if n]
    body = await git.run("diff", *_DIFF_OPTIONS, base, head, "--", max_bytes=DIFF_MAX_BYTES)
    text = body.data.decode("utf-8", "ignore")
    return Change(
        diff=text,
        truncated=body.truncated,
        files=tuple(files[:MAX_CHANGED_FILES]),
        files_truncated=len(files) > MAX_CHANGED_FILES or names.truncated,
    )
