"""The review's input to the model: a marker line, the persona's rubric, the answer's schema, the changed
files and the diff; and the repair input that follows an answer that did not fit the schema.

The sections are delimited by fixed lines so the mock provider (and a human reading the transcript) can find
them. This module imports nothing of the server: the mock provider reads the format with it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from athena_server.personas.constants import (
    CHANGED_FILES_MAX_CHARS,
    PROBLEM_MAX_CHARS,
    REPAIR_MAX_PROBLEMS,
    REPAIR_QUOTE_CHARS,
    REVIEW_INPUT_MAX_CHARS,
)

MARKER = "[athena persona review v1]"
REPAIR_MARKER = "[athena persona review v1: repair]"
FILES_BEGIN = "=== changed files ==="
FILES_END = "=== end of changed files ==="
DIFF_BEGIN = "=== diff ==="
DIFF_END = "=== end of diff ==="

ANSWER_SCHEMA = """Answer with one JSON object and nothing else (no prose, no code fence), of this shape:
{
  "schemaVersion": 1,
  "mergeGate": "pass" | "fail",
  "reportMarkdown": "<the review for a human, Markdown>",
  "findings": [
    {
      "priority": "P1" | "P2" | "P3",
      "confidence": <number from 0 to 1>,
      "title": "<short title>",
      "message": "<what is wrong and why>",
      "suggestion": "<optional: how to fix it>",
      "file": "<optional: a path from the changed files>",
      "line": <optional: a line number of the new revision>
    }
  ]
}
Any P1 finding means mergeGate "fail"."""


_NOTE_RESERVE = 100


@dataclass(frozen=True)
class ReviewInput:
    """What a review input holds, as read back from its text."""

    files: tuple[str, ...]
    repair: bool


def _files_block(files: Sequence[str], more: bool) -> str:
    lines: list[str] = []
    size = 0
    for name in files:
        line = f"- {name}"
        if size + len(line) + 1 > CHANGED_FILES_MAX_CHARS:
            more = True
            break
        lines.append(line)
        size += len(line) + 1
    if more:
        lines.append("(more files changed than are listed here)")
    return "\n".join(lines) if lines else "(no files changed)"


def review_input(
    persona: str,
    rubric: str,
    base: str,
    head: str,
    files: Sequence[str],
    files_truncated: bool,
    diff: str,
    diff_truncated: bool,
) -> tuple[str, str]:
    """The input, at most REVIEW_INPUT_MAX_CHARS: the diff is cut further when the rest leaves it less room.
    Returns the text and the diff as shown (what findings are checked against)."""
    head_part = "\n".join(
        [
            MARKER,
            f"Persona: {persona}. Changes from {base} to {head}.",
            "",
            rubric,
            "",
            ANSWER_SCHEMA,
            "",
            FILES_BEGIN,
            _files_block(files, files_truncated),
            FILES_END,
            "",
            DIFF_BEGIN,
            "",
        ]
    )
    room = REVIEW_INPUT_MAX_CHARS - len(head_part) - len(DIFF_END) - _NOTE_RESERVE
    shown = diff.rstrip("\n")
    if len(shown) > room:
        shown, diff_truncated = shown[: max(room, 0)], True
    note = f"\n(The diff was cut after {len(shown)} characters; review what is shown.)" if diff_truncated else ""
    return f"{head_part}{shown}{note}\n{DIFF_END}", shown


def repair_input(first_input: str, answer: str, problems: Sequence[str]) -> str:
    """The first input again, preceded by what was wrong with the answer to it (and the answer's start)."""
    quoted = answer[:REPAIR_QUOTE_CHARS] + ("…" if len(answer) > REPAIR_QUOTE_CHARS else "")
    listed = "\n".join(f"- {p[:PROBLEM_MAX_CHARS]}" for p in problems[:REPAIR_MAX_PROBLEMS])
    return "\n".join(
        [
            REPAIR_MARKER,
            "Your previous answer did not match the required JSON schema:",
            listed,
            "Previous answer:",
            quoted,
            "Answer again, with one JSON object only, following the instructions below.",
            "",
            first_input,
        ]
    )


def read_input(text: str) -> ReviewInput | None:
    """The review input `text` holds, None when it is not one."""
    repair = text.startswith(REPAIR_MARKER)
    if not repair and not text.startswith(MARKER):
        return None
    begin, end = text.find(FILES_BEGIN), text.find(FILES_END)
    if begin < 0 or end < begin:
        return ReviewInput((), repair)
    block = text[begin + len(FILES_BEGIN) : end]
    files = tuple(line[2:] for line in block.splitlines() if line.startswith("- "))
    return ReviewInput(files, repair)
