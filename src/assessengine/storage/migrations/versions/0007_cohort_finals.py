"""The cohort index keeps each session's final verdicts as one code per criterion
(``finals``, in rubric order), so the dashboard counts
verdicts per criterion over the sessions' rows (vectorised) instead of grouping a row per
criterion in SQL (about 1 s over 10,000 sessions on SQLite). Rows indexed before this revision
have neither: the index takes them in again on first use (`storage.cohorts`).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from assessengine.storage.migrate import record

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("cohort_sessions", sa.Column("finals", sa.Text))
    record(revision)
