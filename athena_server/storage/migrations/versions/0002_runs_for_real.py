"""Run lifecycle and control, policy, directives, harness profiles, run templates, idempotency keys, work
queues.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Frozen copy of the schema at this revision: later changes go in new revisions, never here.
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("cost_usd", sa.Float, nullable=True))
        batch.add_column(sa.Column("directive_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("harness_profile_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("harness_snapshot", sa.JSON, nullable=True))
        batch.add_column(sa.Column("verification", sa.JSON, nullable=True))
        batch.add_column(sa.Column("evidence_count", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("timeout_ms", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("owner_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("pid", sa.Integer, nullable=True))
    op.create_index("ix_runs_finished", "runs", ["finished_at_ms"])
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("policy", sa.JSON, nullable=True))
    # Runs from before this revision that never finished cannot be running any more.
    op.execute(
        "UPDATE runs SET status = 'failed', error_code = 'INTERNAL_ERROR' WHERE status IN ('pending', 'running')"
    )
    op.create_index(
        "ux_runs_session_running",
        "runs",
        ["session_id"],
        unique=True,
        sqlite_where=sa.text("status = 'running'"),
        postgresql_where=sa.text("status = 'running'"),
    )
    op.create_table(
        "cancel_requests",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("session_id", sa.String(200), nullable=False),
        sa.Column("requested_at_ms", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("trace_id", sa.String(64), nullable=False),
        sa.Column("started_at_ms", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_cancel_requested", "cancel_requests", ["requested_at_ms"])
    op.create_table(
        "instances",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at_ms", sa.BigInteger, nullable=False),
        sa.Column("heartbeat_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "evidence",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_evidence_run", "evidence", ["run_id"])
    op.create_table(
        "policy",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "policy_rejections",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("session_id", sa.String(200), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("active_runs", sa.Integer, nullable=False),
        sa.Column("max_concurrent_runs", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("policy", sa.JSON, nullable=True),
        sa.Column("event", sa.JSON, nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_rejections_created", "policy_rejections", ["created_at_ms"])
    op.create_index("ix_rejections_session", "policy_rejections", ["session_id", "seq"])
    op.create_table(
        "directives",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("input", sa.Text, nullable=False),
        sa.Column("context_refs", sa.JSON, nullable=True),
        sa.Column("metadata", sa.JSON, nullable=True),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "harness_profiles",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "run_templates",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("harness_profile_id", sa.String(64), nullable=False),
        sa.Column("directive_template", sa.Text, nullable=False),
        sa.Column("default_params", sa.JSON, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.String(100), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("response", sa.LargeBinary, nullable=True),
        sa.Column("http_status", sa.Integer, nullable=True),
        sa.Column("error", sa.JSON, nullable=True),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_idempotency_created", "idempotency_keys", ["created_at_ms"])
    op.create_table(
        "work_items",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("session_id", sa.String(200), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_work_session_seq", "work_items", ["session_id", "seq"])
    op.create_table(
        "work_queues",
        sa.Column("session_id", sa.String(200), primary_key=True),
        sa.Column("draining", sa.Boolean, nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "work_queues",
        "work_items",
        "idempotency_keys",
        "run_templates",
        "harness_profiles",
        "directives",
        "policy_rejections",
        "policy",
        "evidence",
        "instances",
        "cancel_requests",
    ):
        op.drop_table(table)
    with op.batch_alter_table("events") as batch:
        batch.drop_column("policy")
    op.drop_index("ux_runs_session_running", "runs")
    op.drop_index("ix_runs_finished", "runs")
    with op.batch_alter_table("runs") as batch:
        for column in (
            "pid",
            "owner_id",
            "timeout_ms",
            "evidence_count",
            "verification",
            "harness_snapshot",
            "harness_profile_id",
            "directive_id",
            "cost_usd",
            "attempts",
        ):
            batch.drop_column(column)
