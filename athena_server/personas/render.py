"""A review's result as the `stdout` text the caller asked for: `summary` (a few lines), `json` (the
result as the API prints it), `md` (the report) or `none`."""

from __future__ import annotations

import json
from collections import Counter

from athena.v1 import personas_pb2
from athena_client.contract import message_to_json
from athena_server.personas.constants import PRIORITIES, STDOUT_JSON, STDOUT_MD, STDOUT_NONE, STDOUT_SUMMARY


def summary(result: personas_pb2.PersonaRunResult) -> str:
    lines = [f"{result.persona_name}: {result.status}"]
    if result.HasField("merge_gate"):
        lines[0] += f" (mergeGate: {result.merge_gate})"
    counts = Counter(f.priority for f in result.findings)
    by_priority = ", ".join(f"{p}: {counts.get(p, 0)}" for p in PRIORITIES)
    outside = sum(1 for f in result.findings if f.outside_diff)
    lines.append(f"findings: {len(result.findings)} ({by_priority}; outside the diff: {outside})")
    lines.append(f"range: {result.base_ref}..{result.head_ref} in {result.repo_path}")
    lines.append(f"runId: {result.run_id}")
    lines.append(f"sessionId: {result.session_id}")
    if result.HasField("error"):
        lines.append(f"error: {result.error}")
    return "\n".join(lines) + "\n"


def markdown(result: personas_pb2.PersonaRunResult) -> str:
    if result.HasField("report_markdown"):
        return result.report_markdown.rstrip("\n") + "\n"
    return f"# {result.persona_name}: {result.status}\n\n{result.error or 'No report.'}\n"


def render(mode: str, result: personas_pb2.PersonaRunResult) -> str:
    if mode == STDOUT_JSON:
        return json.dumps(message_to_json(result), indent=2, ensure_ascii=False) + "\n"
    if mode == STDOUT_MD:
        return markdown(result)
    if mode == STDOUT_NONE:
        return ""
    assert mode == STDOUT_SUMMARY
    return summary(result)
