"""Work-queue draining, schedules and their logs, DAG workflows and their runs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Frozen copy of the schema at this revision: later changes go in new revisions, never here.
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("work_items") as batch:
        batch.add_column(sa.Column("run_id", sa.String(64), nullable=True))
    with op.batch_alter_table("work_queues") as batch:
        batch.add_column(sa.Column("drain_owner", sa.String(64), nullable=True))
    # Drains from before this revision had no owner and cannot be in progress any more.
    op.execute("UPDATE work_queues SET draining = false")
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("session_id", sa.String(200), nullable=False),
        sa.Column("input", sa.Text, nullable=False),
        sa.Column("every_minutes", sa.Integer, nullable=True),
        sa.Column("cron", sa.String(200), nullable=True),
        sa.Column("metadata", sa.JSON, nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("running", sa.Boolean, nullable=False),
        sa.Column("running_owner", sa.String(64), nullable=True),
        sa.Column("running_slot_ms", sa.BigInteger, nullable=True),
        sa.Column("running_since_ms", sa.BigInteger, nullable=True),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
        sa.Column("next_run_at_ms", sa.BigInteger, nullable=False),
        sa.Column("last_run_at_ms", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_schedules_due", "schedules", ["enabled", "next_run_at_ms"])
    op.create_index("ix_schedules_created", "schedules", ["created_at_ms", "id"])
    op.create_table(
        "schedule_logs",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("schedule_id", sa.String(200), nullable=False),
        sa.Column("session_id", sa.String(200), nullable=False),
        sa.Column("slot_ms", sa.BigInteger, nullable=True),
        sa.Column("started_at_ms", sa.BigInteger, nullable=False),
        sa.Column("finished_at_ms", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_schedule_logs_schedule", "schedule_logs", ["schedule_id", "seq"])
    op.create_index("ux_schedule_logs_slot", "schedule_logs", ["schedule_id", "slot_ms"], unique=True)
    op.create_table(
        "workflows",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "workflow_runs",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("workflow_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("resumed_from_run_id", sa.String(64), nullable=True),
        sa.Column("owner_id", sa.String(64), nullable=True),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
        sa.Column("started_at_ms", sa.BigInteger, nullable=True),
        sa.Column("finished_at_ms", sa.BigInteger, nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_workflow_runs_workflow", "workflow_runs", ["workflow_id", "seq"])
    op.create_table(
        "workflow_steps",
        sa.Column("workflow_run_id", sa.String(64), primary_key=True),
        sa.Column("step_id", sa.String(200), primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("started_at_ms", sa.BigInteger, nullable=True),
        sa.Column("finished_at_ms", sa.BigInteger, nullable=True),
        sa.Column("updated_at_ms", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("workflow_steps", "workflow_runs", "workflows", "schedule_logs", "schedules"):
        op.drop_table(table)
    with op.batch_alter_table("work_queues") as batch:
        batch.drop_column("drain_owner")
    with op.batch_alter_table("work_items") as batch:
        batch.drop_column("run_id")
