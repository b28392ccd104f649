"""The audit log in the order things happened (`storage.reviews.ReviewStore.audit`).

Audit entries are written at a hub and at its sites and replicated between them; each place
numbers its rows in its own id range, so ordering by id listed every entry of a
higher-numbered place above every entry of a lower-numbered one, whenever they were made.
The log is now listed newest first by the time each entry was recorded (``at``), then by id
(unique across places): its indexes follow that order. Entries written before this revision
carry ``at`` in the same fixed-width form (ISO 8601 UTC, microseconds, ``Z``), so they sort
among the new ones as they happened; nothing is rewritten.

The definitions below are a frozen copy of `storage.schema`'s as of this revision.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from alembic import op

from assessengine.storage.migrate import record

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("review_audit_by_session", table_name="review_audit")
    op.create_index("review_audit_by_session", "review_audit", ["session", "at", "id"])
    op.create_index("review_audit_by_time", "review_audit", ["at", "id"])
    record(revision)
