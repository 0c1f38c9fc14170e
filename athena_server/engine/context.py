"""Compiles a session's history and the new input into the provider's prompt ("raw" strategy).

Each turn is `<role>: <content>`, turns joined by a blank line, as the original does, so the mock
provider's echo of a second turn reads `Echo: user: hello\n\nassistant: Echo: user: hello\n\nuser: again`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from athena_server.errors import AthenaError, ErrorCode

MAX_HISTORY_ENTRIES = 200
MAX_ENTRY_CHARS = 8000
MAX_CONTEXT_CHARS = 30_000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_USER = "user: "
_SYSTEM = "system: "


@dataclass(frozen=True)
class CompiledContext:
    prompt: str
    # "raw" when all history fit; "truncated-history" when the oldest turns were dropped to fit.
    strategy: str
    history_entries: int
    # Citations of the memory blocks in the prompt (`ATHENA_MEMORY_IN_CONTEXT`), in prompt order.
    memory_citations: tuple[str, ...] = ()


def _clean(content: str) -> str:
    return _CONTROL.sub("", content)[:MAX_ENTRY_CHARS]


def check_input(user_input: str) -> None:
    """CONTEXT_OVERFLOW when the input alone cannot fit the context window, whatever the history. Run
    creation calls it before storing anything, so a refused input leaves no run, transcript entry or shadow
    directive; so do the stores of text that only ever becomes a run's input (schedules, work items)."""
    size = len(_USER) + len(user_input)
    if size > MAX_CONTEXT_CHARS:
        raise AthenaError(
            ErrorCode.ERROR_CODE_CONTEXT_OVERFLOW,
            f"Context of {size} chars exceeds the limit of {MAX_CONTEXT_CHARS} chars.",
        )


def memory_block(citation: str, snippet: str) -> str:
    """One recalled memory hit as the prompt shows it."""
    return f"[Memory: {citation}]\n{snippet}"


def compile_context(
    history: Sequence[tuple[str, str]], user_input: str, memory: Sequence[tuple[str, str]] = ()
) -> CompiledContext:
    """`history` is (role, content) oldest first. Drops the oldest turns when the whole does not fit;
    fails with CONTEXT_OVERFLOW only when the new input alone does not fit. `memory` is (citation, snippet)
    pairs, best first: as the original, a `system` turn of memory blocks goes between the history and the
    input, with the blocks that fit beside the input (before any history)."""
    check_input(user_input)
    last = f"{_USER}{user_input}"
    blocks: list[str] = []
    citations: list[str] = []
    size = len(last)
    for citation, snippet in memory:
        block = _CONTROL.sub("", memory_block(citation, snippet))
        extra = len(block) + (len(_SYSTEM) + 2 if not blocks else 2)
        if size + extra <= MAX_CONTEXT_CHARS:
            blocks.append(block)
            citations.append(citation)
            size += extra
    tail = [_SYSTEM + "\n\n".join(blocks), last] if blocks else [last]
    turns = [f"{role}: {_clean(content)}" for role, content in history[-MAX_HISTORY_ENTRIES:]]
    kept: list[str] = []
    for turn in reversed(turns):
        if size + len(turn) + 2 > MAX_CONTEXT_CHARS:
            break
        kept.append(turn)
        size += len(turn) + 2
    kept.reverse()
    strategy = "raw" if len(kept) == len(history) else "truncated-history"
    return CompiledContext("\n\n".join([*kept, *tail]), strategy, len(kept), tuple(citations))
