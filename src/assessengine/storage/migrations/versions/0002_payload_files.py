"""Payloads in segment files (SQLite): where each batch's payload lies, and the files' state.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from assessengine.storage.migrate import record

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for name in ("segment", "seg_offset", "seg_length"):
        op.add_column("batches", sa.Column(name, sa.BigInteger))
    op.create_table(
        "payload_files",
        sa.Column("only", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("segment", sa.BigInteger, nullable=False),
        sa.Column("end_offset", sa.BigInteger, nullable=False),
        sa.Column("synced_batch", sa.BigInteger, nullable=False),
        sa.CheckConstraint('"only" = 0', name="payload_files_only"),
    )
    op.execute(
        'INSERT INTO payload_files ("only", segment, end_offset, synced_batch) '
        "SELECT 0, 1, 0, COALESCE(MAX(id), 0) FROM batches"
    )
    record(revision)
