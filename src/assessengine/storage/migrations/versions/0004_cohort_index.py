"""The cohort index (`storage.cohorts`): per closed, scored session its counted outcome and the
review queue's flags, and per criterion the scorer's and the final verdict, so the queue and
the cohort dashboard aggregate flat rows in SQL. Derived data: the tables start empty and are
filled from the reports and reviews on first use.

The definitions below are a frozen copy of `storage.schema`'s as of this revision.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from assessengine.storage.migrate import record
from assessengine.storage.schema import RowId

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cohort_sessions",
        sa.Column("session_id", RowId, sa.ForeignKey("sessions.id"), primary_key=True,
                  autoincrement=False),
        sa.Column("saved_at", sa.Text, nullable=False),
        sa.Column("reviewed_at", sa.Text),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("machine_outcome", sa.Text, nullable=False),
        sa.Column("score", sa.Float),
        sa.Column("site", sa.Text),
        sa.Column("critical_failed", sa.Integer, nullable=False),
        sa.Column("pending", sa.Integer, nullable=False),
    )  # fmt: skip
    op.create_index("cohort_sessions_by_outcome", "cohort_sessions", ["outcome"])
    op.create_table(
        "cohort_verdicts",
        sa.Column("session_id", RowId, sa.ForeignKey("sessions.id"), primary_key=True,
                  autoincrement=False),
        sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("criterion", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("critical", sa.Integer, nullable=False),
        sa.Column("observed", sa.Integer, nullable=False),
        sa.Column("verdict", sa.Text, nullable=False),
        sa.Column("final", sa.Text, nullable=False),
    )  # fmt: skip
    op.create_index("cohort_verdicts_by_criterion", "cohort_verdicts", ["criterion"])
    record(revision)
