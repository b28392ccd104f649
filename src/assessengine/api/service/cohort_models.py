"""What the review queue and the cohort dashboard answer (JSON API; the pages show the same)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .double_marking import AssignmentOut
from .models import Model

Reason = Literal["critical", "pending", "incomplete"]


class CriterionRef(Model):
    id: str
    title: str


class QueueReason(Model):
    """Why a person must look: `critical` (a critical criterion's final verdict is fail),
    `pending` (an observed item has no observation yet), `incomplete` (the counted outcome)."""

    kind: Reason
    text: str
    criteria: list[CriterionRef]


class QueueItem(Model):
    session: str
    learner: str
    scenario: str
    rubric: str
    rubric_version: int
    source: Literal["simulator", "field"]
    site: str | None
    opened_at: str
    closed_at: str | None
    outcome: str = Field(description="the counted outcome (with observations and overrides)")
    machine_outcome: str = Field(description="with observations, without overrides")
    score: float | None = Field(description="with overrides")
    reasons: list[QueueReason]


class QueueCounts(Model):
    """Sessions in the queue under every filter but `reason`: in all and per reason (a
    session may have several reasons)."""

    total: int
    critical: int
    pending: int
    incomplete: int


class QueuePage(Model):
    counts: QueueCounts
    items: list[QueueItem] = Field(description="sessions you are to double-mark are left "
                                   "out (they are in `double_marking`)")
    double_marking: list[AssignmentOut] = Field(
        default_factory=list, description="your open double-marking assignments")
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")
    limit: int


class PassRate(Model):
    """Sessions of one rubric version opened in one period (a day ``YYYY-MM-DD`` or a month
    ``YYYY-MM``) and their counted outcomes; `pass_rate` = passed / sessions."""

    rubric: str
    rubric_version: int
    period: str
    sessions: int
    passed: int
    failed: int
    incomplete: int
    pass_rate: float


class CriterionRate(Model):
    """One criterion's final verdicts (with observations and overrides). Rates are failed /
    decided (pass or fail; pending and not applicable are `undecided`), null without a
    decided one. `improvement` = first-attempt rate - later-attempt rate (percentage points
    as a fraction; null unless both exist)."""

    rubric: str
    criterion: str
    title: str
    decided: int
    failed: int
    failure_rate: float | None
    first_attempt_decided: int
    first_attempt_failure_rate: float | None
    later_decided: int
    later_failure_rate: float | None
    improvement: float | None
    undecided: int


class FirstPass(Model):
    """How many learners of a rubric first passed on attempt `attempt` (null: not yet)."""

    rubric: str
    attempt: int | None
    learners: int


class Breakdown(Model):
    """Sessions of one scenario, site or source and their counted outcomes."""

    key: str | None
    sessions: int
    passed: int
    failed: int
    incomplete: int
    pass_rate: float


class CohortOut(Model):
    """The cohort dashboard's numbers over the sessions the filters select (closed and
    scored). Attempts are numbered per learner and rubric in open order among them."""

    sessions: int
    first_opened: str | None
    last_opened: str | None
    period: Literal["day", "month"]
    pass_rates: list[PassRate]
    criteria: list[CriterionRate]
    attempts_to_first_pass: list[FirstPass]
    by_scenario: list[Breakdown]
    by_site: list[Breakdown]
    by_source: list[Breakdown]
    slowest_improving: list[CriterionRate] = Field(
        description="criteria failed on first attempts whose failure rate fell least on later "
        "attempts, least improvement first (at most 5)"
    )
