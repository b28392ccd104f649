"""Double marking and reviewed outcomes between sites and a hub (`storage.replication`).

- The double-marking tables become insert-only, so that each of their rows can go from where
  it was written to where it is read, as the other review rows do: an assignment's
  ``completed_at`` (set by an UPDATE after the insert) is dropped, completion is derived from
  the second marks present (`storage.double_marks`). Their unique constraints become plain
  indexes: two places may each write an assignment of the same assessor to the same session
  (or its marks) before either hears of the other's, and a unique key would stop
  replication on the second; the store keeps the rule within one database and reads such
  twins as one.
- ``review_outcomes_due``: the sessions whose review rows arrived by replication since their
  outcome (``review_outcomes``, kept by the app as it writes a review) was computed. On
  PostgreSQL a row trigger on ``review_observations`` and ``review_overrides`` writes it,
  enabled as a REPLICA trigger: it fires in the logical-replication apply worker only (the
  app computes the outcome of its own writes at once); the app recomputes the sessions due
  before it reads outcomes (`api.service.outcomes`). A database that joined a hub already
  has every session with review rows from elsewhere (ids outside its own range) marked due
  once: they were never counted there.
  SQLite (never replicated): the table only, always empty.

The definitions below are a frozen copy of `storage.schema`'s as of this revision.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from assessengine.storage.migrate import record

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_RANGE_BITS = 40  # storage.appdb.RANGE_BITS as of this revision
_REVIEWED = ("review_observations", "review_overrides")

_PG_FUNCTION = """
CREATE FUNCTION review_outcome_due() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO review_outcomes_due (session) VALUES (NEW.session)
  ON CONFLICT (session) DO NOTHING;
  RETURN NULL;
END
$$
"""


def upgrade() -> None:
    with op.batch_alter_table("review_double_assignments") as table:
        table.drop_constraint("review_double_assignments_once", type_="unique")
        table.drop_index("review_double_assignments_by_assessor")
        table.drop_column("completed_at")
        table.create_index("review_double_assignments_by_session", ["session", "assessor"])
        table.create_index("review_double_assignments_by_assessor", ["assessor"])
    with op.batch_alter_table("review_double_marks") as table:
        table.drop_constraint("review_double_marks_once", type_="unique")
        table.create_index("review_double_marks_by_assignment", ["assignment"])
    op.create_table(
        "review_outcomes_due",
        sa.Column("session", sa.Text, primary_key=True),
    )  # fmt: skip
    if op.get_bind().dialect.name == "postgresql":
        _replica_trigger()
    record(revision)


def _replica_trigger() -> None:
    op.execute(_PG_FUNCTION)
    # an apply worker runs with an empty search path (revision 0013)
    op.execute("ALTER FUNCTION review_outcome_due() SET search_path FROM CURRENT")
    for table in _REVIEWED:
        name = f"review_outcome_due_{table.removeprefix('review_')}"
        op.execute(f"CREATE TRIGGER {name} AFTER INSERT ON {table} FOR EACH ROW "
                   "EXECUTE FUNCTION review_outcome_due()")  # fmt: skip
        op.execute(f"ALTER TABLE {table} ENABLE REPLICA TRIGGER {name}")
    own = op.get_bind().execute(sa.text(
        "SELECT seqmin, seqmax FROM pg_sequence WHERE seqrelid = "
        "pg_get_serial_sequence('sessions', 'id')::regclass")).one()
    if own.seqmin >= 1 << _RANGE_BITS:  # joined a hub: count what came from elsewhere
        elsewhere = " ".join(
            f"{'UNION ' if k else ''}SELECT session FROM {table} WHERE id NOT BETWEEN "
            ":lo AND :hi" for k, table in enumerate(_REVIEWED))  # fmt: skip
        op.get_bind().execute(sa.text(
            f"INSERT INTO review_outcomes_due (session) {elsewhere} "
            "ON CONFLICT (session) DO NOTHING"), {"lo": own.seqmin, "hi": own.seqmax})
