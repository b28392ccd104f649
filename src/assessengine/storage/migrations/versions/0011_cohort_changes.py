"""A cheap change check for the cohort index: ``cohort_changes``, written by triggers on the
tables the index is derived from (``reports``, ``review_outcomes``, and the ``status`` of
``sessions``), so a request finds "nothing changed since the index was brought up to date"
with one indexed lookup instead of comparing every session's report and review times (60 to
100 ms over 10,000 sessions on SQLite).

- SQLite (one writer at a time): one row whose ``xid`` every change increments; a reader
  compares it with the value it last saw.
- PostgreSQL (concurrent writers): one row per changing transaction, its ``xid`` the
  transaction's id (statement-level triggers, ``ON CONFLICT DO NOTHING``, no row locked that
  another writer waits for); a reader asks whether a row exists at or after the oldest
  transaction that was still running when it last looked (`storage.cohorts`). The triggers
  fire for replicated rows too (``ENABLE ALWAYS``: a hub's index sees its sites' sessions).

Writers need to know nothing of the index. Derived data: never copied.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from assessengine.storage.migrate import record

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_WATCHED = (("reports", "INSERT"), ("reports", "UPDATE"), ("reports", "DELETE"),
            ("review_outcomes", "INSERT"), ("review_outcomes", "UPDATE"),
            ("review_outcomes", "DELETE"), ("sessions", "UPDATE OF status"))  # fmt: skip

_PG_FUNCTION = """
CREATE FUNCTION cohort_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO cohort_changes (xid) VALUES (pg_current_xact_id()::text::bigint)
  ON CONFLICT (xid) DO NOTHING;
  RETURN NULL;
END
$$
"""


def _name(table: str, event: str) -> str:
    return f"cohort_changed_{table}_{event.split(maxsplit=1)[0].lower()}"


def upgrade() -> None:
    op.create_table(
        "cohort_changes",
        sa.Column("xid", sa.BigInteger, primary_key=True, autoincrement=False),
    )  # fmt: skip
    op.execute("INSERT INTO cohort_changes (xid) VALUES (0)")
    if op.get_bind().dialect.name == "sqlite":
        for table, event in _WATCHED:
            op.execute(f"CREATE TRIGGER {_name(table, event)} AFTER {event} ON {table} "
                       "BEGIN UPDATE cohort_changes SET xid = xid + 1; END")  # fmt: skip
    else:
        op.execute(_PG_FUNCTION)
        for table, event in _WATCHED:
            op.execute(f"CREATE TRIGGER {_name(table, event)} AFTER {event} ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION cohort_changed()")  # fmt: skip
            op.execute(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {_name(table, event)}")
    record(revision)
