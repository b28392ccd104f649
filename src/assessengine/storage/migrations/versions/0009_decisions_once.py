"""A criterion's decision is stored once per session: a unique index on (session_id,
criterion). Two engines that derived the same decision (a takeover's replay and the old owner
saving the same tail after an outage; recovery at start beside the engine that stored a
CLOSE) each insert it; the second insert is left out (``ON CONFLICT DO NOTHING``). Duplicates
stored before this revision are removed first, keeping the first (they are equal: scoring is
deterministic).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from alembic import op

from assessengine.storage.migrate import record

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM decisions WHERE id NOT IN "
               "(SELECT min(id) FROM decisions GROUP BY session_id, criterion)")  # fmt: skip
    op.create_index("decisions_once", "decisions", ["session_id", "criterion"], unique=True)
    record(revision)
