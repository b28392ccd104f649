"""Reviewed outcomes of the review rows that arrived by replication (sites and a hub,
`storage.replication`).

The app keeps a session's reviewed outcome (``review_outcomes``: what the session list
filters on and the cohort index counts) as it records an observation or override
(`ReviewService.observe`, `.override`). Rows that another place of the federation wrote
arrive through the apply worker, which runs no Python: a PostgreSQL trigger that fires there
only marks their session due (``review_outcomes_due``, revision 0014), and `recompute_due`
computes the outcome of each session due with the session page's rules (`verdicts.review`)
before anything reads outcomes. On SQLite (never replicated) nothing is ever due and the
check is one indexed lookup of an empty table.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from ...core.instants import utc_text
from .verdicts import review

if TYPE_CHECKING:
    from .service import ReviewService

CHUNK: Final = 500
"""Sessions looked up per round; a round recomputes each in a transaction of its own."""


def recompute_due(service: ReviewService) -> int:
    """Recompute the reviewed outcome of every session due (with a report); returns how many
    this call recomputed (one another caller took first is left to it)."""
    done = 0
    while due := service.review.outcomes_due(CHUNK):
        for session in due:
            done += _recompute(service, session)
        if len(due) < CHUNK:
            break
    return done


def _recompute(service: ReviewService, session: str) -> int:
    record, report = service.store.session(session), service.store.report(session)
    if record is None or report is None:  # outcomes_due lists only sessions with a report
        return 0
    entry = service.catalog.find(record.info.rubric, record.info.rubric_version,
                                 record.info.rubric_sha256)  # fmt: skip
    with service.review.session_write(session) as tx:
        if not tx.take_due():
            return 0
        row = review(session, report, entry, tx.observations(), tx.overrides()).outcome_row()
        if row is not None:
            tx.set_outcome(row, utc_text(datetime.now(UTC), "microseconds"))
    return 1
