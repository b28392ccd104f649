"""What the review service takes and returns: pydantic v2 models, frozen, unknown keys refused.

The HTTP API uses them as request bodies and response models (so they are its OpenAPI
schemas); the web pages render them.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Outcome = Literal["pass", "fail", "incomplete"]
Verdict = Literal["pass", "fail", "pending", "not_applicable"]
Source = Literal["simulator", "field"]
Status = Literal["open", "closed"]
DecidedBy = Literal["scorer", "observation", "pending"]

MAX_TEXT = 4000
MAX_BATCH = 1000
SessionId = Annotated[str, Field(min_length=1, max_length=200)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ===================================================================================== input


class Location(Model):
    """Where an observation was made: WGS 84 coordinates and/or a label ("bay 3")."""

    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    accuracy_m: float | None = Field(default=None, ge=0, le=1e7)
    label: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _something(self) -> Location:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("give both lat and lon, or neither")
        if self.lat is None and not self.label:
            raise ValueError("a location needs lat and lon, or a label")
        return self


class ObservationIn(Model):
    """An assessor's in-field observation of an `observed` criterion."""

    criterion: Name
    verdict: Literal["pass", "fail"]
    note: str = Field(max_length=MAX_TEXT, description="what the assessor saw")
    observed_at: datetime | None = Field(
        default=None, description="when it was observed (default: now); ISO 8601"
    )
    t: float | None = Field(
        default=None, ge=0, le=1e9, description="seconds into the session, to place it on the "
        "timeline"
    )
    location: Location | None = None

    @field_validator("note")
    @classmethod
    def _note(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("write what was observed")
        return value.strip()

    @field_validator("t")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("t must be finite")
        return value

    @field_validator("observed_at")
    @classmethod
    def _representable(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            try:
                value.astimezone(UTC)
            except OverflowError:
                raise ValueError("observed_at must lie within the years 1 to 9999 in UTC") from None
        return value


class OverrideIn(Model):
    """An assessor's override of a criterion's verdict, with a written reason."""

    criterion: Name
    verdict: Literal["pass", "fail", "not_applicable"]
    reason: str = Field(max_length=MAX_TEXT, description="why the machine verdict is wrong")

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("an override needs a written reason")
        return value.strip()


class Cohort(Model):
    """Sessions chosen by filters (the session list's), newest first, at most `limit`."""

    learner: str | None = Field(default=None, max_length=200)
    scenario: str | None = Field(default=None, max_length=200)
    rubric: str | None = Field(default=None, max_length=200)
    source: Source | None = None
    outcome: Outcome | None = None
    opened_from: datetime | None = None
    opened_to: datetime | None = None
    limit: int = Field(default=200, ge=1, le=MAX_BATCH)


class RescoreIn(Model):
    """Re-score sessions under rubric `rubric` version `version`: name the sessions, or give a
    cohort. Stored reports do not change; the run and its differences are recorded."""

    rubric: Name
    version: int = Field(ge=1, le=1_000_000)
    sessions: list[SessionId] | None = Field(default=None, min_length=1, max_length=MAX_BATCH)
    cohort: Cohort | None = None

    @model_validator(mode="after")
    def _one(self) -> RescoreIn:
        if (self.sessions is None) == (self.cohort is None):
            raise ValueError("give exactly one of 'sessions' or 'cohort'")
        return self


# ===================================================================================== output


class Me(Model):
    token_id: str
    name: str
    role: str
    learner: str | None


class OutcomeScore(Model):
    outcome: Outcome
    score: float | None = Field(description="null when the stored report holds no finite "
                                "score (a report saved before non-finite numbers were refused)")


class SessionSummary(Model):
    """One session in a list. `machine` is the rubric's outcome from the scorer's verdicts and
    the in-field observations; `with_overrides` applies the assessors' overrides too (both
    None until the session is scored)."""

    session: str
    learner: str
    scenario: str
    rubric: str
    rubric_version: int
    source: Source
    status: Status
    opened_at: str
    closed_at: str | None
    machine: OutcomeScore | None
    with_overrides: OutcomeScore | None
    overridden: bool


class SessionPage(Model):
    items: list[SessionSummary]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null at the end"
    )
    limit: int


class ObservationOut(Model):
    id: int
    criterion: str
    verdict: Literal["pass", "fail"]
    note: str
    observed_at: str
    t: float | None
    location: dict[str, Any] | None
    by: str
    recorded_at: str


class OverrideOut(Model):
    id: int
    criterion: str
    verdict: Literal["pass", "fail", "not_applicable"]
    machine_verdict: Verdict
    reason: str
    by: str
    recorded_at: str


class CriterionOut(Model):
    """A criterion's verdicts side by side: `scorer_verdict` as the scorer left it, `verdict`
    with an in-field observation (what the rubric says), `override` if an assessor overrode it,
    and `final_verdict` (the override's if any)."""

    id: str
    title: str
    competency: str | None
    critical: bool
    points: float | None = Field(description="null when the stored report holds no finite "
                                 "number of points")
    template: str | None
    scorer_verdict: Verdict
    verdict: Verdict
    decided_by: DecidedBy
    evidence: dict[str, Any]
    observation: ObservationOut | None
    override: OverrideOut | None
    final_verdict: Verdict


class ReasonOut(Model):
    """One reason for the outcome that counts (`core.reasons`)."""

    kind: Literal["critical_failed", "below_pass_mark", "pass_mark_met", "pending", "override",
                  "observation"]
    text: str
    criterion: str | None = Field(description="the criterion it names, if one")


class SessionDetail(SessionSummary):
    rubric_sha256: str
    rubric_available: bool = Field(description="false: the rubric version is not known here, so "
                                   "observations and overrides cannot be applied")
    scored: OutcomeScore | None = Field(description="the stored report's outcome (scorer only)")
    close_t: float | None
    batches: int
    chain_head: str
    metadata: dict[str, Any]
    criteria: list[CriterionOut]
    observations: list[ObservationOut]
    overrides: list[OverrideOut]
    pass_mark: float | None = Field(default=None, description="the rubric's pass mark (null: "
                                    "the rubric version is not known here)")
    reasons: list[ReasonOut] = Field(
        default_factory=list,
        description="why the session has the outcome that counts (`with_overrides`): failed "
        "critical criteria, the score against the pass mark, pending items; then each override "
        "and observation, who and when",
    )


class EventOut(Model):
    seq: int
    t: float
    event: str


class SeriesOut(Model):
    """Raw rows (`downsampled` false): `t` and, per signal, its value at each row (null: not
    reported at that row). Downsampled: `t` are bucket starts, `t_end` bucket ends, and per
    signal the min and max in each bucket with the times they occurred (null: no sample)."""

    session: str
    t_from: float
    t_to: float
    downsampled: bool
    rows: int = Field(description="source rows in the time range")
    t: list[float]
    t_end: list[float] | None = None
    seq: list[int] | None = None
    values: dict[str, list[float | None]] | None = None
    min: dict[str, list[float | None]] | None = None
    max: dict[str, list[float | None]] | None = None
    t_min: dict[str, list[float | None]] | None = None
    t_max: dict[str, list[float | None]] | None = None
    events: list[EventOut]


class LocatedIssue(Model):
    line: int
    column: int
    message: str


class RubricVersionOut(Model):
    rubric: str
    version: int
    sha256: str
    scenario: str
    title: str
    criteria: int
    origin: Literal["upload", "file"]
    filename: str
    uploaded_by: str | None
    uploaded_at: str | None


class VerdictChange(Model):
    criterion: str
    before: Verdict | None = Field(description="null: the criterion is new in this version")
    after: Verdict | None = Field(description="null: the criterion is gone in this version")


class SessionRescore(Model):
    session: str
    learner: str
    before: OutcomeScore | None
    after: OutcomeScore | None
    changed: list[VerdictChange]
    problem: str | None = Field(default=None, description="why it could not be re-scored")


class RescoreOut(Model):
    id: int
    rubric: str
    version: int
    sha256: str
    by: str
    at: str
    sessions: list[SessionRescore]
    changed_sessions: int
    changed_verdicts: int


class Attempt(Model):
    session: str
    opened_at: str
    source: Source
    rubric_version: int
    machine: OutcomeScore | None
    with_overrides: OutcomeScore | None


class CompetencyStatus(Model):
    """`demonstrated`: all its criteria passed (final verdicts) in some attempt; `failed`: not
    yet, and one failed in the latest attempt; `pending`: neither."""

    code: str
    name: str
    status: Literal["demonstrated", "failed", "pending"]
    first_demonstrated_in: str | None
    attempts: int


class RubricHistory(Model):
    rubric: str
    attempts: list[Attempt]
    competencies: list[CompetencyStatus]


class LearnerHistory(Model):
    learner: str
    rubrics: list[RubricHistory]


class AuditOut(Model):
    id: int
    at: str
    actor: str
    role: str
    action: str
    target: str
    session: str | None
    reason: str | None
    detail: dict[str, Any]


class AuditPage(Model):
    items: list[AuditOut]
    next_cursor: str | None
    limit: int
