"""Double marking (`storage.double_marks`): a trainer asks a second assessor to mark a
session's observed items blind; the assignments and the second assessor's marks.

The definitions below are a frozen copy of `storage.schema`'s as of this revision.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from assessengine.storage.migrate import record
from assessengine.storage.schema import RowId

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_double_assignments",
        sa.Column("id", RowId, sa.Identity(), primary_key=True),
        sa.Column("session", sa.Text, nullable=False),
        sa.Column("assessor", sa.Text, nullable=False),
        sa.Column("assigned_by", sa.Text, nullable=False),
        sa.Column("assigned_at", sa.Text, nullable=False),
        sa.Column("completed_at", sa.Text),
        sa.UniqueConstraint("session", "assessor", name="review_double_assignments_once"),
    )  # fmt: skip
    op.create_index("review_double_assignments_by_assessor", "review_double_assignments",
                    ["assessor", "completed_at"])  # fmt: skip
    op.create_table(
        "review_double_marks",
        sa.Column("id", RowId, sa.Identity(), primary_key=True),
        sa.Column("assignment", RowId, sa.ForeignKey("review_double_assignments.id"),
                  nullable=False),
        sa.Column("session", sa.Text, nullable=False),
        sa.Column("criterion", sa.Text, nullable=False),
        sa.Column("verdict", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.Text, nullable=False),
        sa.CheckConstraint("verdict IN ('pass', 'fail')", name="review_double_marks_verdict"),
        sa.UniqueConstraint("assignment", "criterion", name="review_double_marks_once"),
    )  # fmt: skip
    op.create_index("review_double_marks_by_session", "review_double_marks", ["session", "id"])
    record(revision)
