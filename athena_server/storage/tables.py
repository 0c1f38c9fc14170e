"""The schema as SQLAlchemy Core tables. Alembic migrations (storage/migrations) create and evolve it;
these definitions are what queries are written against."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Column, Index, Integer, MetaData, String, Table, Text

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
    Index("ix_runs_session_created", "session_id", "created_at_ms"),
    Index("ix_runs_status", "status"),
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
    Index("ix_events_session_seq", "session_id", "seq"),
    Index("ix_events_created", "created_at_ms"),
    Index("ix_events_trace", "trace_id"),
    sqlite_autoincrement=True,
)
