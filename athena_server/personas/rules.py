"""What the server decides about a valid answer instead of trusting it: a P1 finding fails the merge gate
whatever the model said, and a finding that points outside the change the model was shown is flagged."""

from __future__ import annotations

from dataclasses import dataclass

from athena_server.personas.constants import GATE_FAIL, P1
from athena_server.personas.diff import Shown
from athena_server.personas.schema import Finding, Review


@dataclass(frozen=True)
class Judged:
    merge_gate: str
    findings: tuple[tuple[Finding, bool], ...]  # (finding, outside the diff)
    # Set when the server overrode the model's gate.
    gate_note: str | None


def judge(review: Review, shown: Shown) -> Judged:
    gate, note = review.merge_gate, None
    if gate != GATE_FAIL and any(f.priority == P1 for f in review.findings):
        gate, note = GATE_FAIL, f"mergeGate set to 'fail': a {P1} finding requires it (the model said '{gate}')."
    flagged = tuple((f, not shown.covers(f.file, f.line)) for f in review.findings)
    return Judged(gate, flagged, note)
