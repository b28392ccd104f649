"""The session page's double-marking part (`templates/_double_marking.html`)."""

from __future__ import annotations

from typing import Any

from .service import Action, Principal, ReviewService, double_marking
from .service.double_marking import MARKERS
from .service.models import SessionDetail


def context(who: Principal, service: ReviewService, detail: SessionDetail) -> dict[str, Any]:
    """The session page's double-marking part: ``dm`` (the session's assignments, the marks
    once both sides are in; None for learners), ``dm_blind`` (``who`` is still to mark it:
    the page then hides the observation and override forms too), ``dm_items`` (the observed
    items, for the blind form), ``dm_markers`` (who may be asked, for trainers and admins)."""
    if who.role == "learner" or not detail.rubric_available:
        return {"dm": None, "dm_blind": False}
    marks = double_marking.session_marks(service, who, detail.session)
    blind = bool(service.blind(who, [detail.session]))
    asked = {a.assessor for a in marks.assignments}
    seen = {r.actor for r in service.review.observations([detail.session])}
    seen |= {r.actor for r in service.review.overrides([detail.session])}
    markers = sorted({t.name for t in service.review.tokens() if t.revoked_at is None
                      and t.role in MARKERS} - asked - seen) if who.may(
        Action.ASSIGN_DOUBLE_MARKING) else []  # fmt: skip
    items = [{"id": c.id, "title": c.title} for c in detail.criteria
             if c.template == "observed"]  # fmt: skip
    return {"dm": marks, "dm_blind": blind, "dm_items": items, "dm_markers": markers}
