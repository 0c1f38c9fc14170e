"""The /api/v1 routes the contract must serve: seed 001's endpoint list plus the four routes issue 2
adds (health, readiness, one run, the transcript stream). Path parameters are written `:name` as in
the seeds."""

from __future__ import annotations

SEED_001_ROUTES = [
    ("GET", "/api/v1/capabilities"),
    ("GET", "/api/v1/admin/health"),
    ("POST", "/api/v1/runs"),
    ("GET", "/api/v1/runs/active"),
    ("GET", "/api/v1/runs/cancel-requests"),
    ("POST", "/api/v1/run-control/by-run/:runId/cancel"),
    ("POST", "/api/v1/runs/:sessionId/cancel"),
    ("GET", "/api/v1/sessions"),
    ("GET", "/api/v1/sessions/:sessionId/transcript"),
    ("GET", "/api/v1/sessions/:sessionId/work-queue"),
    ("GET", "/api/v1/directives"),
    ("POST", "/api/v1/directives"),
    ("GET", "/api/v1/harness-profiles"),
    ("POST", "/api/v1/harness-profiles"),
    ("GET", "/api/v1/run-templates"),
    ("POST", "/api/v1/run-templates"),
    ("POST", "/api/v1/templates/:id/run"),
    ("GET", "/api/v1/workflows"),
    ("POST", "/api/v1/workflows"),
    ("GET", "/api/v1/workflows/run/:id"),
    ("POST", "/api/v1/workflows/run/:id/resume"),
    ("POST", "/api/v1/work/enqueue"),
    ("POST", "/api/v1/work/:sessionId/drain"),
    ("GET", "/api/v1/memory/search"),
    ("POST", "/api/v1/memory/get"),
    ("GET", "/api/v1/schedules"),
    ("POST", "/api/v1/schedules"),
    ("PUT", "/api/v1/schedules/:id"),
    ("DELETE", "/api/v1/schedules/:id"),
    ("POST", "/api/v1/schedules/:id/run"),
    ("POST", "/api/v1/schedules/:id/enable"),
    ("POST", "/api/v1/schedules/:id/disable"),
    ("GET", "/api/v1/schedules/:id/logs"),
    ("POST", "/api/v1/schedules/tick"),
    ("GET", "/api/v1/policy"),
    ("PUT", "/api/v1/policy"),
    ("GET", "/api/v1/policy/rejections"),
    ("GET", "/api/v1/fleet/summary"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/events/stream"),
    ("POST", "/api/v1/personas/run"),
    ("GET", "/api/v1/a2a/dlq"),
    ("POST", "/api/v1/a2a/dlq/:id/requeue"),
    ("POST", "/api/v1/a2a/dlq/:id/discard"),
]

ISSUE_2_ROUTES = [
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/readiness"),
    ("GET", "/api/v1/runs/:runId"),
    ("GET", "/api/v1/sessions/:id/transcript/stream"),
]

# Beyond the seeds, from the original implementation (reference/original-behaviour.md).
EXTRA_ROUTES = [
    ("GET", "/api/v1/schedules/:id"),
]

# The agent-to-agent bus whose dead letters seed 002 lists (issue 11).
A2A_ROUTES = [
    ("POST", "/api/v1/a2a/messages"),
    ("GET", "/api/v1/a2a/messages/:id"),
    ("GET", "/api/v1/a2a/messages"),
]

ALL_ROUTES = SEED_001_ROUTES + ISSUE_2_ROUTES + EXTRA_ROUTES + A2A_ROUTES
