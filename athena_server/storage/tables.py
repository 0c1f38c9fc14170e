"""The schema as SQLAlchemy Core tables. Alembic migrations (storage/migrations) create and evolve it;
these definitions are what queries are written against."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

# SQLite only autoincrements an INTEGER PRIMARY KEY; `sqlite_autoincrement` stops it reusing the ids of
# deleted rows, so sequence numbers (event ids, transcript order) never go backwards after a prune.
Sequence = BigInteger().with_variant(Integer(), "sqlite")

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("provider", String(200), nullable=False),
    Column("model", String(200), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
    Index("ix_sessions_updated", "updated_at_ms", "id"),
)

transcript_entries = Table(
    "transcript_entries",
    metadata,
    Column("seq", Sequence, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("session_id", String(200), nullable=False),
    Column("run_id", String(64), nullable=True),
    Column("role", String(16), nullable=False),
    Column("content", Text, nullable=False),
    Column("is_error", Boolean, nullable=False, default=False),
    Column("metadata", JSON, nullable=True),
    Column("created_at_ms", BigInteger, nullable=False),
    Index("ix_transcript_session_seq", "session_id", "seq"),
    sqlite_autoincrement=True,
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("session_id", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("provider", String(200), nullable=False),
    Column("model", String(200), nullable=False),
    Column("input", Text, nullable=False),
    Column("output", Text, nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("input_tokens", Integer, nullable=True),
    Column("output_tokens", Integer, nullable=True),
    Column("total_tokens", Integer, nullable=True),
    Column("metadata", JSON, nullable=True),
    Column("trace_id", String(64), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("started_at_ms", BigInteger, nullable=True),
    Column("finished_at_ms", BigInteger, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("cost_usd", Float, nullable=True),
    Column("directive_id", String(64), nullable=True),
    Column("harness_profile_id", String(64), nullable=True),
    Column("harness_snapshot", JSON, nullable=True),
    Column("verification", JSON, nullable=True),
    Column("evidence_count", Integer, nullable=False, default=0),
    Column("timeout_ms", Integer, nullable=False, default=0),
    # The server process executing the run (instances.id) and the pid shown in runs/active.
    Column("owner_id", String(64), nullable=True),
    Column("pid", Integer, nullable=True),
    Index("ix_runs_session_created", "session_id", "created_at_ms"),
    Index("ix_runs_status", "status"),
    Index("ix_runs_finished", "finished_at_ms"),
    # Runs in a session are serial: the store refuses a second running run in one session.
    Index(
        "ux_runs_session_running",
        "session_id",
        unique=True,
        sqlite_where=text("status = 'running'"),
        postgresql_where=text("status = 'running'"),
    ),
)

# A request to stop an active run; consumed (deleted) when the run ends.
cancel_requests = Table(
    "cancel_requests",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("session_id", String(200), nullable=False),
    Column("requested_at_ms", BigInteger, nullable=False),
    Column("reason", Text, nullable=True),
    Column("trace_id", String(64), nullable=False),
    Column("started_at_ms", BigInteger, nullable=True),
    Index("ix_cancel_requested", "requested_at_ms"),
)

# Server processes sharing the store, with a heartbeat, so a process's runs can be failed once it is gone.
instances = Table(
    "instances",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at_ms", BigInteger, nullable=False),
    Column("heartbeat_at_ms", BigInteger, nullable=False),
)

evidence = Table(
    "evidence",
    metadata,
    Column("seq", Sequence, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("label", String(200), nullable=False),
    Column("type", String(16), nullable=False),
    Column("content", Text, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Index("ix_evidence_run", "run_id"),
    sqlite_autoincrement=True,
)

# The operational policy document (one row, id 1), absent until the first PUT.
policy = Table(
    "policy",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("document", JSON, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
)

policy_rejections = Table(
    "policy_rejections",
    metadata,
    Column("seq", Sequence, primary_key=True, autoincrement=True),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("session_id", String(200), nullable=False),
    Column("run_id", String(64), nullable=True),
    Column("active_runs", Integer, nullable=False),
    Column("max_concurrent_runs", Integer, nullable=False),
    Column("reason", String(64), nullable=False),
    Column("policy", JSON, nullable=True),
    Column("event", JSON, nullable=True),
    Index("ix_rejections_created", "created_at_ms"),
    Index("ix_rejections_session", "session_id", "seq"),
    sqlite_autoincrement=True,
)

directives = Table(
    "directives",
    metadata,
    Column("seq", Sequence, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("input", Text, nullable=False),
    Column("context_refs", JSON, nullable=True),
    Column("metadata", JSON, nullable=True),
    Column("created_at_ms", BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

harness_profiles = Table(
    "harness_profiles",
    metadata,
    Column("seq", Sequence, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    # The whole profile as its JSON resource (displayName, version, config, policies, ...).
    Column("document", JSON, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

run_templates = Table(
    "run_templates",
    metadata,
    Column("seq", Sequence, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("harness_profile_id", String(64), nullable=False),
    Column("directive_template", Text, nullable=False),
    Column("default_params", JSON, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

# Idempotency-Key records: the first request's fingerprint and, once it finished, its answer.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("scope", String(100), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("owner_id", String(64), nullable=False),
    # "pending" while the first request runs, then "done".
    Column("state", String(16), nullable=False),
    Column("response", LargeBinary, nullable=True),
    Column("http_status", Integer, nullable=True),
    Column("error", JSON, nullable=True),
    Column("created_at_ms", BigInteger, nullable=False),
    Index("ix_idempotency_created", "created_at_ms"),
)

work_items = Table(
    "work_items",
    metadata,
    Column("seq", Sequence, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("session_id", String(200), nullable=False),
    Column("payload", Text, nullable=False),
    Column("mode", String(16), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    # The run a drain started for this item; the item leaves the queue once that run succeeded.
    Column("run_id", String(64), nullable=True),
    Index("ix_work_session_seq", "session_id", "seq"),
    sqlite_autoincrement=True,
)

# Per-session queue state (draining flag, last change), present once a session's queue was used.
work_queues = Table(
    "work_queues",
    metadata,
    Column("session_id", String(200), primary_key=True),
    Column("draining", Boolean, nullable=False, default=False),
    Column("updated_at_ms", BigInteger, nullable=False),
    # The server process (instance id) draining the queue; a dead one's drain is released by the reaper.
    Column("drain_owner", String(64), nullable=True),
)

schedules = Table(
    "schedules",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("session_id", String(200), nullable=False),
    Column("input", Text, nullable=False),
    Column("every_minutes", Integer, nullable=True),
    Column("cron", String(200), nullable=True),
    Column("metadata", JSON, nullable=True),
    Column("enabled", Boolean, nullable=False),
    # A run of the schedule is in progress, in process `running_owner`, for slot `running_slot_ms`.
    Column("running", Boolean, nullable=False),
    Column("running_owner", String(64), nullable=True),
    Column("running_slot_ms", BigInteger, nullable=True),
    Column("running_since_ms", BigInteger, nullable=True),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
    Column("next_run_at_ms", BigInteger, nullable=False),
    Column("last_run_at_ms", BigInteger, nullable=True),
    Index("ix_schedules_due", "enabled", "next_run_at_ms"),
    Index("ix_schedules_created", "created_at_ms", "id"),
)

schedule_logs = Table(
    "schedule_logs",
    metadata,
    Column("seq", Sequence, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("schedule_id", String(200), nullable=False),
    Column("session_id", String(200), nullable=False),
    # The slot a tick fired (NULL for manual runs): unique per schedule, so no slot is ever logged twice.
    Column("slot_ms", BigInteger, nullable=True),
    Column("started_at_ms", BigInteger, nullable=False),
    Column("finished_at_ms", BigInteger, nullable=False),
    Column("status", String(32), nullable=False),
    Column("error", Text, nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("run_id", String(64), nullable=True),
    Index("ix_schedule_logs_schedule", "schedule_id", "seq"),
    Index("ux_schedule_logs_slot", "schedule_id", "slot_ms", unique=True),
    Index("ix_schedule_logs_finished", "finished_at_ms"),
    sqlite_autoincrement=True,
)

workflows = Table(
    "workflows",
    metadata,
    Column("seq", Sequence, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("definition", JSON, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    sqlite_autoincrement=True,
)

workflow_runs = Table(
    "workflow_runs",
    metadata,
    Column("seq", Sequence, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("workflow_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("resumed_from_run_id", String(64), nullable=True),
    # The server process executing the run; NULL when nobody is (finished, or left by a dead process).
    Column("owner_id", String(64), nullable=True),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
    Column("started_at_ms", BigInteger, nullable=True),
    Column("finished_at_ms", BigInteger, nullable=True),
    Index("ix_workflow_runs_workflow", "workflow_id", "seq"),
    Index("ix_workflow_runs_finished", "finished_at_ms"),
    sqlite_autoincrement=True,
)

workflow_steps = Table(
    "workflow_steps",
    metadata,
    Column("workflow_run_id", String(64), primary_key=True),
    Column("step_id", String(200), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempt", Integer, nullable=False),
    # The run of the step's latest attempt: its output is the step's output.
    Column("run_id", String(64), nullable=True),
    Column("error", Text, nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("started_at_ms", BigInteger, nullable=True),
    Column("finished_at_ms", BigInteger, nullable=True),
    Column("updated_at_ms", BigInteger, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("seq", Sequence, primary_key=True, autoincrement=True),
    Column("type", String(100), nullable=False),
    Column("trace_id", String(64), nullable=False),
    Column("session_id", String(200), nullable=True),
    Column("run_id", String(64), nullable=True),
    Column("payload", JSON, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("policy", JSON, nullable=True),
    # The authenticated identity whose request caused the event (None without auth, or for the server's own
    # work); bounded like the identity header.
    Column("actor", String(256), nullable=True),
    Index("ix_events_session_seq", "session_id", "seq"),
    Index("ix_events_created", "created_at_ms"),
    Index("ix_events_trace", "trace_id"),
    sqlite_autoincrement=True,
)

# Agent-to-agent messages (athena_server/storage/a2a.py): each attempt is claimed by a conditional write
# (`pending` with the attempts read → `delivering`, owned), so exactly one process delivers it.
a2a_messages = Table(
    "a2a_messages",
    metadata,
    Column("seq", Sequence, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("from_session_id", String(200), nullable=False),
    Column("to_session_id", String(200), nullable=False),
    Column("input", Text, nullable=False),
    Column("metadata", JSON, nullable=True),
    Column("provider", String(200), nullable=False),
    Column("model", String(200), nullable=False),
    # pending | delivering | delivered | dead-lettered | discarded (A2aMessageStatus's JSON spelling).
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("requeues", Integer, nullable=False),
    Column("next_attempt_at_ms", BigInteger, nullable=True),
    # The process delivering the current attempt, and that attempt's run.
    Column("owner_id", String(64), nullable=True),
    Column("run_id", String(64), nullable=True),
    Column("last_error_code", String(64), nullable=True),
    Column("last_error_message", Text, nullable=True),
    Column("trace_id", String(64), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
    Column("delivered_at_ms", BigInteger, nullable=True),
    Index("ix_a2a_messages_due", "status", "next_attempt_at_ms"),
    Index("ix_a2a_messages_owner", "owner_id"),
    sqlite_autoincrement=True,
)

# Dead letters: one per dead-lettered message (same id), pending | requeued | discarded.
a2a_dlq = Table(
    "a2a_dlq",
    metadata,
    Column("seq", Sequence, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("status", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Column("payload", JSON, nullable=False),
    Column("audit_note", Text, nullable=True),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("updated_at_ms", BigInteger, nullable=False),
    Index("ix_a2a_dlq_status", "status", "seq"),
    sqlite_autoincrement=True,
)

# The retention sweep's state (athena_server/storage/retention.py), one row (id 1): the highest event id it
# deleted, below which a resume point is refused, and the lease that lets one process of a fleet sweep at a time.
retention_state = Table(
    "retention_state",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("events_pruned_through", BigInteger, nullable=False),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until_ms", BigInteger, nullable=False),
    Column("swept_at_ms", BigInteger, nullable=True),
)
