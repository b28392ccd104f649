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
from ...storage.reviews import DueSession, OutcomeRow
from .verdicts import review

if TYPE_CHECKING:
    from .service import ReviewService

CHUNK: Final = 500
"""Sessions recomputed per transaction."""


def recompute_due(service: ReviewService) -> int:
    """Recompute the reviewed outcome of every session due (with a report); returns how many
    this call recomputed (those another caller took at once are left to it)."""
    done = 0
    while True:
        at = utc_text(datetime.now(UTC), "microseconds")
        taken = service.review.recompute_due(CHUNK, lambda due: _outcome(service, due), at)
        done += taken
        if taken < CHUNK:
            return done


def _outcome(service: ReviewService, due: DueSession) -> OutcomeRow | None:
    entry = service.catalog.find_for(due.info)
    return review(due.session, due.report, entry, due.observations, due.overrides).outcome_row()
