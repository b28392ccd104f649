"""The Open Badges API's OAuth tables: registered clients and the codes and tokens handed to
them (`storage.oauth`). A frozen copy of `storage.schema`'s definitions as of this revision.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from assessengine.storage.migrate import record

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_clients",
        sa.Column("client_id", sa.Text, primary_key=True),
        sa.Column("secret_hash", sa.Text, nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("issued_at", sa.Text, nullable=False),
    )
    op.create_table(
        "oauth_grants",
        sa.Column("digest", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("client_id", sa.Text, sa.ForeignKey("oauth_clients.client_id"),
                  nullable=False),
        sa.Column("learner", sa.Text, nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("issued_at", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Text, nullable=False),
        sa.Column("redirect_uri", sa.Text),
        sa.Column("code_challenge", sa.Text),
        sa.Column("code_challenge_method", sa.Text),
        sa.Column("origin", sa.Text),
        sa.Column("used_at", sa.Text),
        sa.CheckConstraint("kind IN ('code', 'access', 'refresh')", name="oauth_grants_kind"),
    )  # fmt: skip
    op.create_index("oauth_grants_by_origin", "oauth_grants", ["origin"])
    record(revision)
