"""Session lists in the order sessions were opened (`storage.order`).

The session list, a learner's history, the review queue and the cohort dashboard's attempt
numbers ordered sessions by id. At a hub each site's sessions carry ids from that site's range,
so by id every session of a higher-numbered site came before every session of a lower one,
whenever they were opened. They are now ordered by ``opened_at``, then id; this index serves
that order (and the ``opened_from``/``opened_to`` filters). Sessions opened before this
revision carry ``opened_at`` in the same fixed-width form (ISO 8601 UTC, microseconds,
``Z``): they sort among the new ones as they happened; nothing is rewritten.

The definitions below are a frozen copy of `storage.schema`'s as of this revision.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

from assessengine.storage.migrate import record

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("sessions_by_opened", "sessions", ["opened_at", "id"])
    record(revision)
