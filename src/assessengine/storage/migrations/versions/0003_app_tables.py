"""The HTTP app's tables (reviews, tokens, audit log, credentials, status lists) on both
dialects, under the migrations like the engine's.

Releases before this revision created them on SQLite from the adapters
(``CREATE TABLE IF NOT EXISTS``), unversioned: a store of such a release may have all, some or
none of them. This revision adopts the ones it finds as they are, after checking their columns
are the ones expected (StoreOpenError naming the table otherwise), and creates what is missing
(tables and indexes).

The tables are `storage.schema`'s as of this revision (`schema.APP_TABLES`); a later change to
one of them is a later revision (and this one then keeps a frozen copy of the definitions).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from assessengine.adapters.store import StoreOpenError
from assessengine.storage.migrate import record
from assessengine.storage.schema import APP_TABLES

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


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
