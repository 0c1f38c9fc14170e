"""Line chunks (the units the index ranks) and snippets cut from them, with exact line bounds.

Chunks do not overlap, so each hit's `id` (`<path>:<lineStart>`) is unique and two hits never cite the
same lines. A snippet is the chunk when it fits the snippet width; otherwise the lines around the first
line that mentions a query term (up to 30% of the width before it, as the original started its snippets),
and its `lineStart`/`lineEnd` are the lines it shows.
"""

from __future__ import annotations

from dataclasses import dataclass

# A chunk is at most this many lines and (past its first line) this many characters.
CHUNK_LINES = 20
CHUNK_CHARS = 2000
LEAD_SHARE = 0.3


@dataclass(frozen=True)
class Chunk:
    line_start: int
    line_end: int
    text: str


def chunk_lines(lines: list[str]) -> list[Chunk]:
    """Consecutive lines grouped into chunks, without blank lines at either end; chunks holding only
    blank lines are left out."""
    chunks: list[Chunk] = []
    start, size = 0, 0
    group: list[str] = []
    for number, line in enumerate(lines, 1):
        if group and (len(group) >= CHUNK_LINES or size + len(line) + 1 > CHUNK_CHARS):
            chunks.append(Chunk(start, start + len(group) - 1, "\n".join(group)))
            group, size = [], 0
        if not group:
            start = number
        group.append(line)
        size += len(line) + 1
    if group:
        chunks.append(Chunk(start, start + len(group) - 1, "\n".join(group)))
    return [trimmed for c in chunks if (trimmed := _trim(c)) is not None]


def _trim(chunk: Chunk) -> Chunk | None:
    """The chunk without its leading and trailing blank lines (None if nothing else): a hit cites text."""
    lines = chunk.text.split("\n")
    filled = [i for i, line in enumerate(lines) if line.strip()]
    if not filled:
        return None
    first, last = filled[0], filled[-1]
    return Chunk(chunk.line_start + first, chunk.line_start + last, "\n".join(lines[first : last + 1]))


def _mentions(line: str, terms: list[str]) -> int:
    """Where `line` first mentions a term (or, for stemmed matches, a term's first five letters); -1 if not."""
    lowered = line.lower()
    for probe in (terms, [t[:5] for t in terms if len(t) > 5]):
        found = [i for i in (lowered.find(t) for t in probe) if i >= 0]
        if found:
            return min(found)
    return -1


def snippet(chunk: Chunk, terms: list[str], width: int) -> Chunk:
    """The part of `chunk` shown for a hit: at most `width` characters, bounds true to what it shows."""
    if len(chunk.text) <= width:
        return chunk
    lines = chunk.text.split("\n")
    hit = next((i for i, line in enumerate(lines) if _mentions(line, terms) >= 0), 0)
    number = chunk.line_start + hit
    line = lines[hit]
    if len(line) >= width:
        at = max(0, _mentions(line, terms))
        begin = max(0, min(at - int(width * LEAD_SHARE), len(line) - width))
        return Chunk(number, number, line[begin : begin + width])
    first, last, used = hit, hit, len(line)
    lead = int(width * LEAD_SHARE)
    while first > 0 and len(lines[first - 1]) + 1 <= lead and used + len(lines[first - 1]) + 1 <= width:
        first -= 1
        lead -= len(lines[first]) + 1
        used += len(lines[first]) + 1
    while last + 1 < len(lines) and used + len(lines[last + 1]) + 1 <= width:
        last += 1
        used += len(lines[last]) + 1
    return Chunk(chunk.line_start + first, chunk.line_start + last, "\n".join(lines[first : last + 1]))
