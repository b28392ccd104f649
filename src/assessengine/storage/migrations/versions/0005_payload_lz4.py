"""PostgreSQL: batch payloads compressed with lz4 instead of pglz when the server has it.

A columns-v1 payload of real telemetry compresses about fivefold; the server's default TOAST
compression (pglz) did that at about 15 MB/s on this project's benchmark machine and was the
limit of the whole engine on PostgreSQL. lz4 compresses less (about 3.6-fold) at several
hundred MB/s (docs/performance.md has the figures). The setting applies to values written
from now on; payloads already stored stay as they are and read the same.

A server built without lz4 (``default_toast_compression`` does not offer it) or before
PostgreSQL 14 (no per-column compression) keeps pglz. Nothing changes on SQLite (payloads
live in segment files there).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from assessengine.storage.migrate import record

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_HAS_LZ4 = (
    "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' "
    "AND 'lz4' = ANY(enumvals)"
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and bind.execute(sa.text(_HAS_LZ4)).first():
        op.execute("ALTER TABLE batches ALTER COLUMN payload SET COMPRESSION lz4")
    record(revision)
