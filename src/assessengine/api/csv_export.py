"""CSV exports of listed sessions (the review queue, a session search), for the API and the
pages alike.

Every cell is text a spreadsheet must not run: one that starts with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return (what spreadsheets read as a formula) gets a leading ``'``,
so it shows as typed and is never evaluated (OWASP "CSV injection"). RFC 4180: comma
separated, CRLF line ends, fields quoted where needed; UTF-8 with a byte order mark so that
spreadsheets detect the encoding.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Final
from urllib.parse import quote

from fastapi.responses import Response

from .service.cohort_models import QueueItem
from .service.models import SessionSummary

FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
MEDIA_TYPE: Final = "text/csv; charset=utf-8"
QUEUE_COLUMNS: Final = (
    "session", "learner", "scenario", "rubric", "rubric_version", "source", "site", "opened_at",
    "closed_at", "outcome", "machine_outcome", "score", "reasons",
)  # fmt: skip
SESSION_COLUMNS: Final = (
    "session", "learner", "scenario", "rubric", "rubric_version", "source", "status",
    "opened_at", "closed_at", "outcome", "score", "outcome_with_overrides",
    "score_with_overrides", "overridden",
)  # fmt: skip


def cell(value: object) -> str:
    """`value` as a CSV cell: None empty, numbers as Python writes them, a formula neutralised
    (see the module)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([cell(h) for h in header])
    writer.writerows([cell(v) for v in row] for row in rows)
    return out.getvalue()


def queue_csv(items: Iterable[QueueItem]) -> str:
    """One row per queued session; `reasons` joins the reasons' texts with ``; ``."""
    return csv_text(QUEUE_COLUMNS, (
        (i.session, i.learner, i.scenario, i.rubric, i.rubric_version, i.source, i.site,
         i.opened_at, i.closed_at, i.outcome, i.machine_outcome, i.score,
         "; ".join(r.text for r in i.reasons))
        for i in items
    ))  # fmt: skip


def sessions_csv(items: Iterable[SessionSummary]) -> str:
    """One row per listed session: both outcomes and scores (empty until scored)."""
    def row(s: SessionSummary) -> tuple[object, ...]:
        machine, final = s.machine, s.with_overrides
        return (s.session, s.learner, s.scenario, s.rubric, s.rubric_version, s.source,
                s.status, s.opened_at, s.closed_at, machine and machine.outcome,
                machine and machine.score, final and final.outcome, final and final.score,
                s.overridden)  # fmt: skip

    return csv_text(SESSION_COLUMNS, (row(s) for s in items))


def csv_response(text: str, filename: str) -> Response:
    """A download: the CSV text with a BOM, as an attachment named `filename`."""
    return Response(
        "\ufeff" + text, media_type=MEDIA_TYPE,
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
                 "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )  # fmt: skip
