"""The command table: which command of `athena` calls which RPC of the contract.

Each row names an RPC and its command path (group, verb); the command's flags come from the RPC's request
fields (`athena_client/cli/fields.py`), its help from the proto comments, and its output from the RPC's
REST `response_body`. A row can adjust the generated command: fields taken as positional arguments,
different flag names, a `--file` holding the request (or one of its fields) as JSON, groups of flags of
which exactly one must be given, an example. A few rows name a hand-written action instead
(`athena_client/cli/composites.py`); they still take their flags from the contract.

tests/test_unit_cli.py checks that every RPC of the contract is reachable through some row, so a new RPC
cannot be forgotten here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

PACKAGE = "athena.v1."


@dataclass(frozen=True)
class CommandSpec:
    """One command. `rpc` is the RPC's name under `athena.v1.` (`RunService.GetRun`)."""

    rpc: str
    path: tuple[str, ...]
    # Request fields given as positional arguments, in order (`athena runs get RUN_ID`).
    positional: tuple[str, ...] = ()
    # Field -> flag declaration, where the generated one reads badly (`--enabled/--disabled`).
    flags: Mapping[str, str] = field(default_factory=dict)
    # `--file PATH`: JSON of the whole request ("", the REST body) or of one message field.
    file_field: str | None = None
    # Groups of fields of which exactly one must be given.
    one_of: tuple[tuple[str, ...], ...] = ()
    # The arguments after the command path in the help's example; generated when empty.
    example: str = ""
    # A hand-written action (composites.COMPOSITES) instead of the generated call.
    composite: str | None = None
    # Other RPCs the command also calls (`sessions transcript --follow` streams the transcript).
    also: tuple[str, ...] = ()
    # The columns of a list for people (JSON output has every field); all when empty.
    columns: tuple[str, ...] = ()

    @property
    def full_name(self) -> str:
        return PACKAGE + self.rpc

    @property
    def rpcs(self) -> tuple[str, ...]:
        return (self.full_name, *(PACKAGE + name for name in self.also))

    @property
    def name(self) -> str:
        return " ".join(self.path)


COMMANDS: tuple[CommandSpec, ...] = (
    # runs
    CommandSpec(
        "RunService.CreateRun",
        ("run",),
        positional=("input",),
        composite="run",
        example="'hello' --session-id s1 --provider mock --metadata team=infra",
    ),
    CommandSpec("RunService.GetRun", ("runs", "get"), positional=("run_id",)),
    CommandSpec(
        "RunService.ListActiveRuns",
        ("runs", "active"),
        example="--session-id s1",
        columns=("runId", "sessionId", "startedAt", "pid"),
    ),
    CommandSpec("RunService.ListCancelRequests", ("runs", "cancel-requests")),
    CommandSpec(
        "RunService.CancelRunByRunId",
        ("runs", "cancel"),
        positional=("run_id",),
        example="RUN_ID --reason 'operator cancel'",
    ),
    CommandSpec(
        "RunService.CancelRunBySessionId",
        ("runs", "cancel-session"),
        positional=("session_id",),
        example="s1 --reason 'operator cancel'",
    ),
    # sessions
    CommandSpec(
        "SessionService.ListSessions",
        ("sessions", "list"),
        example="--all",
        columns=("id", "provider", "model", "createdAt", "updatedAt"),
    ),
    CommandSpec(
        "SessionService.ListTranscriptEntries",
        ("sessions", "transcript"),
        positional=("session_id",),
        composite="transcript",
        also=("SessionService.StreamTranscript",),
        example="s1 --follow",
        columns=("createdAt", "role", "content", "isError", "runId"),
    ),
    # events
    CommandSpec(
        "EventService.ListEvents",
        ("events", "list"),
        example="--session-id s1 --type run.completed --limit 20",
        columns=("id", "createdAt", "type", "sessionId", "runId", "payload"),
    ),
    CommandSpec("EventService.StreamEvents", ("events", "tail"), example="--session-id s1 --type run.completed"),
    # schedules
    CommandSpec(
        "ScheduleService.CreateSchedule",
        ("schedule", "add"),
        flags={"enabled": "--enabled/--disabled"},
        one_of=(("every_minutes", "cron"),),
        example="--id job1 --session-id s1 --input 'scheduled input' --every-minutes 5 --start-now",
    ),
    CommandSpec(
        "ScheduleService.UpdateSchedule",
        ("schedule", "update"),
        flags={"enabled": "--enabled/--disabled"},
        example="--id job1 --session-id s1 --input 'new input' --cron '0 9 * * 1-5'",
    ),
    CommandSpec(
        "ScheduleService.ListSchedules",
        ("schedule", "list"),
        columns=("id", "sessionId", "input", "everyMinutes", "cron", "enabled", "nextRunAt", "running"),
    ),
    CommandSpec("ScheduleService.GetSchedule", ("schedule", "get"), example="--id job1"),
    CommandSpec("ScheduleService.ListScheduleLogs", ("schedule", "logs"), example="--id job1 --limit 10"),
    CommandSpec("ScheduleService.RunSchedule", ("schedule", "run"), example="--id job1"),
    CommandSpec("ScheduleService.EnableSchedule", ("schedule", "enable"), example="--id job1"),
    CommandSpec("ScheduleService.DisableSchedule", ("schedule", "disable"), example="--id job1"),
    CommandSpec("ScheduleService.DeleteSchedule", ("schedule", "remove"), example="--id job1"),
    CommandSpec("ScheduleService.TickSchedules", ("schedule", "tick"), example="--at 2026-02-16T15:00:00.000Z"),
    # work queue
    CommandSpec(
        "WorkService.EnqueueWork",
        ("work", "enqueue"),
        example="--session-id s1 --payload 'follow-up task' --mode followup",
    ),
    CommandSpec("WorkService.DrainWork", ("work", "drain"), example="--session-id s1"),
    CommandSpec("WorkService.GetWorkQueue", ("work", "show"), example="--session-id s1"),
    # workflows
    CommandSpec(
        "WorkflowService.CreateWorkflow",
        ("workflow", "create"),
        file_field="definition",
        example="--file workflow.json",
    ),
    CommandSpec("WorkflowService.ListWorkflows", ("workflow", "list")),
    CommandSpec("WorkflowService.GetWorkflowRun", ("workflow", "status"), example="--id WORKFLOW_ID"),
    CommandSpec("WorkflowService.ResumeWorkflowRun", ("workflow", "resume"), example="--id WORKFLOW_ID --no-wait"),
    # policy
    CommandSpec("PolicyService.GetPolicy", ("policy", "get")),
    CommandSpec(
        "PolicyService.PutPolicy",
        ("policy", "set"),
        file_field="",
        example="--file policy.json --audit-comment 'raise the limit'",
    ),
    CommandSpec("PolicyService.ListPolicyRejections", ("policy", "rejections"), example="--session-id s1"),
    # catalog
    CommandSpec("DirectiveService.ListDirectives", ("directive", "list")),
    CommandSpec(
        "DirectiveService.CreateDirective",
        ("directive", "create"),
        example="--input 'Review the change' --context-ref docs/guide.md --metadata team=infra",
    ),
    CommandSpec("HarnessProfileService.ListHarnessProfiles", ("harness-profile", "list")),
    CommandSpec(
        "HarnessProfileService.CreateHarnessProfile",
        ("harness-profile", "create"),
        file_field="",
        example='--display-name reviewer --version v1 --config \'{"provider":"mock","model":"default"}\'',
    ),
    CommandSpec("RunTemplateService.ListRunTemplates", ("template", "list")),
    CommandSpec(
        "RunTemplateService.CreateRunTemplate",
        ("template", "create"),
        example="--harness-profile-id PROFILE_ID --directive-template 'Review {{topic}}' --default-param topic=tests",
    ),
    CommandSpec(
        "RunTemplateService.RunRunTemplate",
        ("template", "run"),
        composite="run",
        example="--id TEMPLATE_ID --param topic=docs --session-id s1",
    ),
    # memory, personas, dead letters, fleet, system
    CommandSpec("MemoryService.SearchMemory", ("memory", "search"), example="--query 'retry budget' --max-results 5"),
    CommandSpec("MemoryService.GetMemory", ("memory", "get"), example="--path MEMORY.md --from-line 1 --lines 20"),
    CommandSpec(
        "PersonaService.RunPersona",
        ("persona", "run"),
        example="--name code-review --repo-path . --base-ref main --head-ref HEAD",
    ),
    CommandSpec("A2aDlqService.ListA2aDlqItems", ("dlq", "list"), example="--status pending"),
    CommandSpec("A2aDlqService.RequeueA2aDlqItem", ("dlq", "requeue"), example="--id ITEM_ID"),
    CommandSpec("A2aDlqService.DiscardA2aDlqItem", ("dlq", "discard"), example="--id ITEM_ID --audit-note 'obsolete'"),
    CommandSpec(
        "A2aService.SendA2aMessage",
        ("a2a", "send"),
        example="--from-session-id planner --to-session-id reviewer --input 'Review the plan' --max-attempts 3",
    ),
    CommandSpec("A2aService.GetA2aMessage", ("a2a", "get"), example="--id MESSAGE_ID"),
    CommandSpec(
        "A2aService.ListA2aMessages",
        ("a2a", "list"),
        example="--status dead-lettered --to-session-id s2",
        columns=("id", "fromSessionId", "toSessionId", "status", "attempts", "maxAttempts", "updatedAt"),
    ),
    CommandSpec("FleetService.GetFleetSummary", ("fleet",)),
    CommandSpec("SystemService.GetCapabilities", ("system", "capabilities")),
    CommandSpec("SystemService.GetHealth", ("system", "health")),
    CommandSpec("SystemService.GetReadiness", ("system", "readiness")),
    CommandSpec("SystemService.GetAdminHealth", ("system", "admin-health")),
)

# The help line of each group in `athena --help`.
GROUPS: dict[str, str] = {
    "runs": "Read, list and cancel runs (start one with `athena run`).",
    "sessions": "Sessions and their transcripts.",
    "events": "The event log: list a page, or tail it live.",
    "schedule": "Schedules: every N minutes or by cron; their logs; fire due ones.",
    "work": "A session's work queue: enqueue follow-ups, drain them as runs.",
    "workflow": "Workflows: DAGs of directive + harness-profile steps.",
    "policy": "The run policy (concurrency, timeouts, retries, daily cost) and its refusals.",
    "directive": "Directives: stored run inputs.",
    "harness-profile": "Harness profiles: provider, model and policies of runs.",
    "template": "Run templates: a directive template over a harness profile.",
    "memory": "Search and read memory files.",
    "persona": "Run a persona (e.g. code-review).",
    "dlq": "Dead letters of agent-to-agent messages.",
    "a2a": "Agent-to-agent messages: send one to another agent's session, follow its delivery.",
    "system": "Capabilities, health and readiness of the control plane.",
}


def by_path() -> dict[tuple[str, ...], CommandSpec]:
    return {spec.path: spec for spec in COMMANDS}
