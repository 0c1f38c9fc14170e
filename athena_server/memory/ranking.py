"""From a client's free text to an FTS5 query, and from FTS5's bm25 to the score a client sees.

The query never reaches FTS5 as syntax: it is cut into words (runs of letters and digits, lowercased,
at most `MAX_TERMS` distinct ones of at most `MAX_TERM_CHARS`), each sent as a quoted string, joined with
OR. So `"`, `*`, `NEAR`, `:` or `-` in a query are just separators, never an FTS5 syntax error.

Scores: FTS5's `bm25()` is negative, lower is better. With `r = -bm25` (> 0 for any match) a hit scores
`r / r_best`, where `r_best` is the best match of the query: the top hit scores 1 and the others the
share of its relevance they reach, so `minScore: 0.5` keeps hits at least half as relevant as the best.
Scores are rounded to 6 decimals (at least 0.000001) and ties are ordered by path, then line.
"""

from __future__ import annotations

import re

MAX_TERMS = 32
MAX_TERM_CHARS = 64
_WORD = re.compile(r"[^\W_]+")


def terms(text: str) -> list[str]:
    """The distinct words of `text`, lowercased, in order of first appearance."""
    seen: dict[str, None] = {}
    for match in _WORD.finditer(text.lower()):
        word = match.group()[:MAX_TERM_CHARS]
        seen.setdefault(word, None)
        if len(seen) >= MAX_TERMS:
            break
    return list(seen)


def match_expression(words: list[str]) -> str:
    """An FTS5 MATCH expression: each word a quoted string (quotes doubled, though words hold none)."""
    return " OR ".join('"' + w.replace('"', '""') + '"' for w in words)


def score(relevance: float, best: float) -> float:
    """`relevance / best`, rounded, in (0, 1]."""
    if best <= 0:
        return 1.0
    return max(1e-6, min(1.0, round(relevance / best, 6)))
