"""A learner's record: attempts per rubric over time, and each competency's status."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

from ...storage.reviews import SessionRow
from .catalog import Entry
from .models import Attempt, CompetencyStatus, LearnerHistory, RubricHistory
from .verdicts import Reviewed

Status = Literal["demonstrated", "failed", "pending"]


@dataclass(frozen=True, slots=True)
class Scored:
    """One attempt: its list row, its rubric version (None: not known here) and its verdicts
    (None: not scored yet)."""

    row: SessionRow
    entry: Entry | None
    reviewed: Reviewed | None


def build(learner: str, attempts: Sequence[Scored]) -> LearnerHistory:
    """Group attempts (oldest first) by rubric id; competencies from the newest known version
    of each rubric the learner attempted."""
    by_rubric: dict[str, list[Scored]] = {}
    for attempt in attempts:
        by_rubric.setdefault(attempt.row.rubric, []).append(attempt)
    return LearnerHistory(
        learner=learner,
        rubrics=[_rubric(rubric, group) for rubric, group in sorted(by_rubric.items())],
    )


def _rubric(rubric: str, attempts: Sequence[Scored]) -> RubricHistory:
    rows = [
        Attempt(
            session=a.row.session, opened_at=a.row.opened_at, source=cast(Any, a.row.source),
            rubric_version=a.row.rubric_version,
            machine=None if a.reviewed is None else a.reviewed.machine,
            with_overrides=None if a.reviewed is None else a.reviewed.with_overrides,
        )
        for a in attempts
    ]
    known = [a.entry for a in attempts if a.entry is not None]
    newest = max(known, key=lambda e: e.rubric.version, default=None)
    competencies = [] if newest is None else [
        _competency(c.code, c.name, attempts) for c in newest.rubric.competencies
    ]
    return RubricHistory(rubric=rubric, attempts=rows, competencies=competencies)


def _competency(code: str, name: str, attempts: Sequence[Scored]) -> CompetencyStatus:
    first: str | None = None
    latest: Status = "pending"
    count = 0
    for attempt in attempts:
        if attempt.reviewed is None:
            continue
        verdicts = [c.final_verdict for c in attempt.reviewed.criteria if c.competency == code]
        if not verdicts:
            continue
        count += 1
        if "fail" in verdicts:
            latest = "failed"
        elif "pending" not in verdicts and "pass" in verdicts:
            latest = "demonstrated"
            first = first or attempt.row.session
        else:
            latest = "pending"
    status: Status = "demonstrated" if first is not None else latest
    return CompetencyStatus(code=code, name=name, status=status, first_demonstrated_in=first,
                            attempts=count)
