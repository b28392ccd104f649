"""A report's outcome and score as columns of ``reports`` (indexed by outcome), filled from
the stored JSON: the session list filters and shows them without parsing every report (on
PostgreSQL, ``report::jsonb ->> 'outcome'`` over 10,000 reports made a listing by outcome
take 139 ms at p95).

The stores write both columns with every report from now on (`report_row`); this revision
backfills the reports already stored: the outcome when the JSON's ``outcome`` is a string,
the score when ``score`` is a number, NULL otherwise (and NULL for a report that is not strict
JSON, as an old SQLite store could hold: the list showed no outcome for it before either).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from assessengine.storage.migrate import record

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_BACKFILL = {
    "sqlite": """
        UPDATE reports SET
          outcome = CASE WHEN json_valid(report) AND json_type(report, '$.outcome') = 'text'
                         THEN json_extract(report, '$.outcome') END,
          score = CASE WHEN json_valid(report)
                            AND json_type(report, '$.score') IN ('integer', 'real')
                       THEN json_extract(report, '$.score') END
    """,
    "postgresql": """
        UPDATE reports r SET
          outcome = CASE WHEN jsonb_typeof(j.doc -> 'outcome') = 'string'
                         THEN j.doc ->> 'outcome' END,
          score = CASE WHEN jsonb_typeof(j.doc -> 'score') = 'number'
                       THEN (j.doc ->> 'score')::float8 END
        FROM (SELECT session_id, report::jsonb AS doc FROM reports) j
        WHERE r.session_id = j.session_id
    """,
}


def upgrade() -> None:
    op.add_column("reports", sa.Column("outcome", sa.Text))
    op.add_column("reports", sa.Column("score", sa.Float))
    op.execute(_BACKFILL[op.get_bind().dialect.name])
    op.create_index("reports_by_outcome", "reports", ["outcome", "session_id"])
    record(revision)
