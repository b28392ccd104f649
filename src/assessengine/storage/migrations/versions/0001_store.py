"""The first store schema: sessions, batches (payloads inline), decisions, reports.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from assessengine.storage.migrate import record
from assessengine.storage.schema import RowId

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schema_version",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("applied_at", sa.Text, nullable=False),
    )
    op.create_table(
        "sessions",
        sa.Column("id", RowId, sa.Identity(), primary_key=True),
        sa.Column("session", sa.Text, nullable=False, unique=True),
        sa.Column("info", sa.Text, nullable=False),
        sa.Column("learner", sa.Text, nullable=False),
        sa.Column("scenario", sa.Text, nullable=False),
        sa.Column("rubric", sa.Text, nullable=False),
        sa.Column("rubric_version", sa.BigInteger, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("genesis", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("opened_at", sa.Text, nullable=False),
        sa.Column("close_t", sa.Float),
        sa.Column("closed_at", sa.Text),
        sa.CheckConstraint("source IN ('simulator', 'field')", name="sessions_source"),
        sa.CheckConstraint("status IN ('open', 'closed')", name="sessions_status"),
    )
    op.create_index("sessions_by_status", "sessions", ["status", "id"])
    op.create_table(
        "batches",
        sa.Column("id", RowId, sa.Identity(), primary_key=True),
        sa.Column("session_id", RowId, sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("idx", sa.BigInteger, nullable=False),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("encoding", sa.Text, nullable=False),
        sa.Column("received_at", sa.Text, nullable=False),
        sa.Column("chain", sa.Text, nullable=False),
        sa.Column("header", sa.LargeBinary, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("session_id", "idx", name="batches_session_idx"),
    )
    op.create_table(
        "decisions",
        sa.Column("id", RowId, sa.Identity(), primary_key=True),
        sa.Column("session_id", RowId, sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("criterion", sa.Text, nullable=False),
        sa.Column("verdict", sa.Text, nullable=False),
        sa.Column("row", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.Text, nullable=False),
    )
    op.create_index("decisions_by_session", "decisions", ["session_id", "id"])
    op.create_table(
        "reports",
        sa.Column("session_id", RowId, sa.ForeignKey("sessions.id"), primary_key=True,
                  autoincrement=False),
        sa.Column("report", sa.Text, nullable=False),
        sa.Column("saved_at", sa.Text, nullable=False),
    )  # fmt: skip
    record(revision)
