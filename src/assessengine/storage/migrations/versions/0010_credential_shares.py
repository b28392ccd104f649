"""Share links of credentials' public pages (``credential_shares``, `storage.shares`): one row
per share, the public id its key; a share is active until hidden.

Credentials issued before this revision have no share: nothing of them is public until their
learner (or an admin) shares them.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from assessengine.storage.migrate import record

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "credential_shares",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("credential_id", sa.Text, sa.ForeignKey("credential_issued.id"),
                  nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("hidden_at", sa.Text),
        sa.Column("hidden_by", sa.Text),
    )  # fmt: skip
    op.create_index("credential_shares_by_credential", "credential_shares",
                    ["credential_id", "created_at"])  # fmt: skip
    record(revision)
