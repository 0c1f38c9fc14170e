"""The mock provider's answer to a review input: deterministic and schema-valid (one P3 finding per
changed file, mergeGate "pass"), so the whole persona flow runs in tests and demos without a model.

Run metadata `mock.review` picks a variant: `invalid-once` answers non-JSON to the first input and a valid
review to the repair input, `invalid` answers non-JSON to both, `p1` adds a P1 finding while still saying
"pass" (the server must fail the gate), `outside` adds a finding on a file outside the diff."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from athena_server.personas.prompt import read_input

OPTION = "mock.review"
INVALID_ONCE = "invalid-once"
INVALID = "invalid"
WITH_P1 = "p1"
OUTSIDE = "outside"
OUTSIDE_FILE = "not/in/the/diff.txt"
NOT_JSON = "I reviewed the change and it looks fine to me."


def answer(input_text: str, metadata: Mapping[str, str]) -> str | None:
    """The mock's answer when `input_text` is a review input, else None (the mock echoes as usual)."""
    review = read_input(input_text)
    if review is None:
        return None
    variant = metadata.get(OPTION, "")
    if variant == INVALID or (variant == INVALID_ONCE and not review.repair):
        return NOT_JSON
    findings: list[dict[str, Any]] = [
        {
            "priority": "P3",
            "confidence": 0.5,
            "title": f"Reviewed {name}",
            "message": f"The mock provider looked at {name} and found nothing specific.",
            "file": name,
        }
        for name in review.files
    ]
    if variant == WITH_P1:
        findings.append({"priority": "P1", "confidence": 0.9, "title": "Blocking issue", "message": "Mock P1."})
    if variant == OUTSIDE:
        findings.append(
            {"priority": "P2", "confidence": 0.4, "title": "Elsewhere", "message": "Mock.", "file": OUTSIDE_FILE}
        )
    report = "# Mock review\n\n" + "\n".join(f"- {f['title']}" for f in findings)
    doc = {"schemaVersion": 1, "mergeGate": "pass", "reportMarkdown": report, "findings": findings}
    return json.dumps(doc, indent=2)
