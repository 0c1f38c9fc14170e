"""The words of the persona feature in one place: result statuses, merge gates, priorities, stdout modes,
event types and the limits every input is held to."""

from __future__ import annotations

from typing import Final

from athena_client.vocab import EventType

CONTEXT: Final = "personas.run"
SCHEMA_VERSION: Final = 1

STATUS_OK: Final = "ok"
STATUS_FAILED: Final = "failed"

GATE_PASS: Final = "pass"
GATE_FAIL: Final = "fail"
GATES: Final = (GATE_PASS, GATE_FAIL)

P1: Final = "P1"
P2: Final = "P2"
P3: Final = "P3"
PRIORITIES: Final = (P1, P2, P3)

# `stdout` modes; "markdown" is read as "md", an empty value as "summary".
STDOUT_SUMMARY: Final = "summary"
STDOUT_JSON: Final = "json"
STDOUT_MD: Final = "md"
STDOUT_NONE: Final = "none"
STDOUT_ALIASES: Final = {"": STDOUT_SUMMARY, "markdown": STDOUT_MD}
STDOUT_MODES: Final = (STDOUT_SUMMARY, STDOUT_JSON, STDOUT_MD, STDOUT_NONE)

# Where the base ref came from (`baseRefResolvedFrom`).
BASE_FROM_FLAG: Final = "flag"
BASE_FROM_MAIN: Final = "main"
BASE_FROM_ORIGIN_HEAD: Final = "origin-head"

EVENT_COMPLETED: Final = EventType.PERSONA_RUN_COMPLETED
EVENT_FAILED: Final = EventType.PERSONA_RUN_FAILED

# Run metadata the review's runs carry (visible through GET /runs/{id}).
LABEL_PERSONA: Final = "personaName"
LABEL_ATTEMPT: Final = "personaAttempt"
LABEL_FIRST_RUN: Final = "personaRunId"
ATTEMPT_REVIEW: Final = "review"
ATTEMPT_REPAIR: Final = "repair"

# Persona names become part of run ids (`persona-<name>-<ms>-<hex>[-repair]`, 64-character columns).
NAME_MAX_CHARS: Final = 24
# The diff the model sees (the original's 18,000) and the changed files listed (the original's 300).
DIFF_MAX_BYTES: Final = 18_000
MAX_CHANGED_FILES: Final = 300
CHANGED_FILES_MAX_CHARS: Final = 4_000
# A persona's rubric and manifest file.
RUBRIC_MAX_CHARS: Final = 4_000
MANIFEST_MAX_BYTES: Final = 16_384
# What the review's answer may hold.
MAX_FINDINGS: Final = 200
REPORT_MAX_CHARS: Final = 20_000
TITLE_MAX_CHARS: Final = 200
TEXT_MAX_CHARS: Final = 4_000
PATH_MAX_CHARS: Final = 1_024
# The review input's size (the diff is cut to fit), leaving room under the run's 30,000-character input limit
# for what a repair input adds: the quoted answer and at most REPAIR_MAX_PROBLEMS problems.
REVIEW_INPUT_MAX_CHARS: Final = 25_000
REPAIR_QUOTE_CHARS: Final = 1_500
REPAIR_MAX_PROBLEMS: Final = 10
PROBLEM_MAX_CHARS: Final = 200
# Seconds a git command may take.
GIT_TIMEOUT_SECONDS: Final = 30.0
