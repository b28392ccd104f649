"""A cheap check that no other connection changed a chain head: ``head_changes``.

The SQLite store keeps each session's chain head (next seq, chain value, batch count, status)
in memory after its own appends, so that an append does not read every session's head back.
It used to drop that cache whenever another connection had committed anything at all
(``PRAGMA data_version``); in the live engine the scoring process commits decisions between
nearly every two appends, so each append of 64 batches read 64 heads back (a join per
session; 6 % of the ingest thread's samples in the 64 KiB throughput benchmark). Now triggers
count every change that can move a head other than a new batch (a batch updated or deleted; a
session's status changed or a session deleted) in one row; a new batch shows in the largest
batch id. The store drops its cache only when either moved by more than its own writes
(`storage.sqlite`). No trigger on a batch's insert: a row trigger costs 15-20 us a row on
this machine (measured: an append of 64 small batches 29-31 us a batch without, 44-66 with),
the append's hot path.

- SQLite: one row, a counter every such change increments (row triggers).
- PostgreSQL: the table only (the schema is the same on both dialects); nothing writes it:
  that store reads its heads under row locks in every append, it keeps no cache.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from assessengine.storage.migrate import record

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_WATCHED = (("batches", "UPDATE"), ("batches", "DELETE"), ("sessions", "UPDATE OF status"),
            ("sessions", "DELETE"))  # fmt: skip


def _name(table: str, event: str) -> str:
    return f"head_changed_{table}_{event.split(maxsplit=1)[0].lower()}"


def upgrade() -> None:
    op.create_table(
        "head_changes",
        sa.Column("n", sa.BigInteger, primary_key=True, autoincrement=False),
    )  # fmt: skip
    op.execute("INSERT INTO head_changes (n) VALUES (0)")
    if op.get_bind().dialect.name == "sqlite":
        for table, event in _WATCHED:
            op.execute(f"CREATE TRIGGER {_name(table, event)} AFTER {event} ON {table} "
                       "BEGIN UPDATE head_changes SET n = n + 1; END")  # fmt: skip
    record(revision)
