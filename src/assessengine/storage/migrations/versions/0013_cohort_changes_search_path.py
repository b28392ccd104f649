"""The trigger function of revision 0011 (``cohort_changed``, PostgreSQL) runs with the
search path of the schema it was made in: a logical-replication apply worker runs with an
empty one, so on a hub the unqualified ``cohort_changes`` was not found and the sites'
sessions stopped replicating. SQLite: nothing to do.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from alembic import op

from assessengine.storage.migrate import record

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER FUNCTION cohort_changed() SET search_path FROM CURRENT")
    record(revision)
