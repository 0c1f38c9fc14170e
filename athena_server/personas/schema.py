"""The answer a review expects from the model, checked by hand (no JSON Schema library is installed, and
the rules are few): one JSON object with `mergeGate`, `reportMarkdown` and `findings[]`. Every problem is
listed with its path, because the list becomes the repair input."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from athena_server.personas.constants import (
    GATES,
    MAX_FINDINGS,
    PATH_MAX_CHARS,
    PRIORITIES,
    REPORT_MAX_CHARS,
    SCHEMA_VERSION,
    TEXT_MAX_CHARS,
    TITLE_MAX_CHARS,
)

# A model may wrap its JSON in one Markdown code fence despite being asked not to; that much is forgiven.
_FENCE = re.compile(r"^```(?:json)?\s*\n(.*)\n```$", re.DOTALL)


@dataclass(frozen=True)
class Finding:
    priority: str
    confidence: float
    title: str
    message: str
    suggestion: str | None = None
    file: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class Review:
    merge_gate: str
    report_markdown: str
    findings: tuple[Finding, ...]


class InvalidAnswer(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def _text(obj: dict[str, Any], key: str, where: str, limit: int, problems: list[str], *, required: bool) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            problems.append(f"{where}{key} is required (a string).")
        return None
    if not isinstance(value, str):
        problems.append(f"{where}{key} must be a string.")
        return None
    if required and not value.strip():
        problems.append(f"{where}{key} must not be empty.")
        return None
    if len(value) > limit:
        problems.append(f"{where}{key} must be at most {limit} characters.")
        return None
    return value


def _finding(item: Any, where: str, problems: list[str]) -> Finding | None:
    if not isinstance(item, dict):
        problems.append(f"{where} must be an object.")
        return None
    before = len(problems)
    priority = item.get("priority")
    if priority not in PRIORITIES:
        problems.append(f"{where}.priority must be one of {', '.join(PRIORITIES)}.")
    raw = item.get("confidence")
    confidence = math.nan
    if isinstance(raw, float):
        confidence = raw
    elif isinstance(raw, int) and not isinstance(raw, bool) and raw in (0, 1):
        # Other ints are out of range anyway (and a huge one would overflow a float).
        confidence = float(raw)
    if not 0 <= confidence <= 1:
        problems.append(f"{where}.confidence must be a number from 0 to 1.")
    title = _text(item, "title", f"{where}.", TITLE_MAX_CHARS, problems, required=True)
    message = _text(item, "message", f"{where}.", TEXT_MAX_CHARS, problems, required=True)
    suggestion = _text(item, "suggestion", f"{where}.", TEXT_MAX_CHARS, problems, required=False)
    file = _text(item, "file", f"{where}.", PATH_MAX_CHARS, problems, required=False)
    line = item.get("line")
    if line is not None and (not isinstance(line, int) or isinstance(line, bool) or not 1 <= line <= 2**31 - 1):
        problems.append(f"{where}.line must be a positive integer.")
    if len(problems) > before:
        return None
    assert isinstance(priority, str) and title is not None and message is not None
    return Finding(priority, confidence, title, message, suggestion, file or None, line)


def parse(answer: str) -> Review:
    """The review `answer` holds; InvalidAnswer listing every problem otherwise."""
    text = answer.strip()
    if fenced := _FENCE.match(text):
        text = fenced.group(1).strip()
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise InvalidAnswer([f"The answer is not a JSON object: {reason}."]) from None
    if not isinstance(doc, dict):
        raise InvalidAnswer(["The answer must be a JSON object."])
    problems: list[str] = []
    if doc.get("schemaVersion", SCHEMA_VERSION) != SCHEMA_VERSION:
        problems.append(f"schemaVersion must be {SCHEMA_VERSION}.")
    gate = doc.get("mergeGate")
    if gate not in GATES:
        problems.append(f"mergeGate must be one of {', '.join(GATES)}.")
    report = _text(doc, "reportMarkdown", "", REPORT_MAX_CHARS, problems, required=True)
    raw_findings = doc.get("findings")
    findings: list[Finding] = []
    if not isinstance(raw_findings, list):
        problems.append("findings is required (an array).")
    elif len(raw_findings) > MAX_FINDINGS:
        problems.append(f"findings must hold at most {MAX_FINDINGS} items.")
    else:
        for i, item in enumerate(raw_findings):
            finding = _finding(item, f"findings[{i}]", problems)
            if finding is not None:
                findings.append(finding)
    if problems:
        raise InvalidAnswer(problems)
    assert isinstance(gate, str) and report is not None
    return Review(gate, report, tuple(findings))
