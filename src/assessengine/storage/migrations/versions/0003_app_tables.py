"""The HTTP app's tables (reviews, tokens, audit log, credentials, status lists) on both
dialects, under the migrations like the engine's.

Releases before this revision created them on SQLite from the adapters
(``CREATE TABLE IF NOT EXISTS``), unversioned: a store of such a release may have all, some or
none of them. This revision adopts the ones it finds as they are, after checking their columns
are the ones expected (StoreOpenError naming the table otherwise), and creates what is missing
(tables and indexes).

The definitions below are a frozen copy of `storage.schema`'s as of this revision (a test
compares a freshly migrated database with the schema); a later change is a later revision.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from assessengine.storage.migrate import record
from assessengine.storage.port import StoreOpenError
from assessengine.storage.schema import RowId

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


_metadata = sa.MetaData()


def _id() -> sa.Column[int]:
    return sa.Column("id", RowId, sa.Identity(), primary_key=True)


sa.Table(
    "review_tokens", _metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("learner", sa.Text),
    sa.Column("hash", sa.Text, nullable=False, unique=True),
    sa.Column("created_at", sa.Text, nullable=False),
    sa.Column("revoked_at", sa.Text),
    sa.CheckConstraint("role IN ('admin', 'trainer', 'assessor', 'learner')",
                       name="review_tokens_role"),
)  # fmt: skip

sa.Table(
    "review_observations", _metadata,
    _id(),
    sa.Column("session", sa.Text, nullable=False),
    sa.Column("criterion", sa.Text, nullable=False),
    sa.Column("verdict", sa.Text, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("observed_at", sa.Text, nullable=False),
    sa.Column("t", sa.Float),
    sa.Column("location", sa.Text),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("recorded_at", sa.Text, nullable=False),
    sa.CheckConstraint("verdict IN ('pass', 'fail')", name="review_observations_verdict"),
    sa.Index("review_observations_by_session", "session", "id"),
)  # fmt: skip

sa.Table(
    "review_overrides", _metadata,
    _id(),
    sa.Column("session", sa.Text, nullable=False),
    sa.Column("criterion", sa.Text, nullable=False),
    sa.Column("verdict", sa.Text, nullable=False),
    sa.Column("machine_verdict", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("recorded_at", sa.Text, nullable=False),
    sa.CheckConstraint("verdict IN ('pass', 'fail', 'not_applicable')",
                       name="review_overrides_verdict"),
    sa.CheckConstraint("length(trim(reason)) > 0", name="review_overrides_reason"),
    sa.Index("review_overrides_by_session", "session", "id"),
)  # fmt: skip

sa.Table(
    "review_outcomes", _metadata,
    sa.Column("session", sa.Text, primary_key=True),
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("score", sa.Float, nullable=False),
    sa.Column("outcome_with_overrides", sa.Text, nullable=False),
    sa.Column("score_with_overrides", sa.Float, nullable=False),
    sa.Column("overrides", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.Text, nullable=False),
)  # fmt: skip

sa.Table(
    "review_rubrics", _metadata,
    _id(),
    sa.Column("rubric", sa.Text, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("scenario", sa.Text, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("filename", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("uploaded_by", sa.Text, nullable=False),
    sa.Column("uploaded_at", sa.Text, nullable=False),
    sa.UniqueConstraint("rubric", "version", name="review_rubrics_version"),
)  # fmt: skip

sa.Table(
    "review_rescores", _metadata,
    _id(),
    sa.Column("rubric", sa.Text, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("created_at", sa.Text, nullable=False),
    sa.Column("result", sa.Text, nullable=False),
)  # fmt: skip

sa.Table(
    "review_audit", _metadata,
    _id(),
    sa.Column("at", sa.Text, nullable=False),
    sa.Column("actor", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("session", sa.Text),
    sa.Column("reason", sa.Text),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Index("review_audit_by_session", "session", "id"),
)  # fmt: skip

sa.Table(
    "credential_status_lists", _metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
              autoincrement=False),
    sa.Column("purpose", sa.Text, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.Text, nullable=False),
)  # fmt: skip

sa.Table(
    "credential_status_slots", _metadata,
    sa.Column("list_id", sa.BigInteger, sa.ForeignKey("credential_status_lists.id"),
              primary_key=True, autoincrement=False),
    sa.Column("idx", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("allocated_at", sa.Text, nullable=False),
)  # fmt: skip

sa.Table(
    "credential_issued", _metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("learner", sa.Text, nullable=False),
    sa.Column("policy", sa.Text, nullable=False),
    sa.Column("issued_at", sa.Text, nullable=False),
    sa.Column("valid_until", sa.Text),
    sa.Column("status_list", sa.BigInteger, nullable=False),
    sa.Column("status_index", sa.BigInteger, nullable=False),
    sa.Column("document", sa.Text, nullable=False),
    sa.UniqueConstraint("status_list", "status_index", name="credential_issued_slot"),
    sa.ForeignKeyConstraint(["status_list", "status_index"],
                            ["credential_status_slots.list_id", "credential_status_slots.idx"]),
    sa.Index("credential_issued_by_learner", "learner", "issued_at"),
)  # fmt: skip

sa.Table(
    "credential_revocations", _metadata,
    sa.Column("credential_id", sa.Text, sa.ForeignKey("credential_issued.id"),
              primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("revoked_by", sa.Text, nullable=False),
    sa.Column("revoked_at", sa.Text, nullable=False),
)  # fmt: skip

sa.Table(
    "credential_status_published", _metadata,
    sa.Column("list_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("revision", sa.Text, nullable=False),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("valid_until", sa.Text, nullable=False),
)  # fmt: skip

APP_TABLES = tuple(_metadata.sorted_tables)


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    existing = set(inspector.get_table_names())
    for table in APP_TABLES:
        if table.name not in existing:
            table.create(bind)
            continue
        found = [column["name"] for column in inspector.get_columns(table.name)]
        expected = [column.name for column in table.columns]
        if found != expected:
            raise StoreOpenError(
                f"table {table.name} has columns ({', '.join(found)}), expected "
                f"({', '.join(expected)}): not a table of an assessengine release"
            )
        indexes = {index["name"] for index in inspector.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexes:
                index.create(bind)
    record(revision)
