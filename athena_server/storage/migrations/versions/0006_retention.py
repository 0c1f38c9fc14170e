"""Retention (issue 14): the sweep's state row and the indexes that let it find old rows without a scan.

`retention_state` holds one row (id 1): the highest event id the sweep deleted (a resume point below it is
refused with EVENT_CURSOR_EXPIRED rather than silently skipping the deleted events) and the lease that
lets one server process of a fleet sweep at a time. Schedule logs and workflow runs gain an index on
their end time, the age the sweep judges them by.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    state = op.create_table(
        "retention_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("events_pruned_through", sa.BigInteger, nullable=False),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        sa.Column("lease_until_ms", sa.BigInteger, nullable=False),
        sa.Column("swept_at_ms", sa.BigInteger, nullable=True),
    )
    op.bulk_insert(state, [{"id": 1, "events_pruned_through": 0, "lease_owner": None, "lease_until_ms": 0}])
    op.create_index("ix_schedule_logs_finished", "schedule_logs", ["finished_at_ms"])
    op.create_index("ix_workflow_runs_finished", "workflow_runs", ["finished_at_ms"])


def downgrade() -> None:
    op.drop_index("ix_workflow_runs_finished", table_name="workflow_runs")
    op.drop_index("ix_schedule_logs_finished", table_name="schedule_logs")
    op.drop_table("retention_state")
