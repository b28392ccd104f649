"""The JSON API of the review queue and the cohort dashboard, and the CSV exports, under
``/api/v1``: thin routes over `CohortService` (``request.app.state.cohorts``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from .csv_export import csv_response, queue_csv, sessions_csv
from .guard import GuardedRoute
from .problems import responses
from .routes import PREFIX, Text, Who
from .service import SessionFilters, calibration
from .service.calibration import AgreementOut, ValidityOut
from .service.cohort_models import CohortOut, QueuePage, Reason
from .service.cohorts import CohortFilters, CohortService, QueueFilters, check_range

router = APIRouter(prefix=PREFIX, responses=responses(400, 401, 403, 422),
                   route_class=GuardedRoute)  # fmt: skip


def cohorts_of(request: Request) -> CohortService:
    cohorts: CohortService = request.app.state.cohorts
    return cohorts


Cohorts = Annotated[CohortService, Depends(cohorts_of)]
Outcome = Literal["pass", "fail", "incomplete"]
From = Annotated[datetime | None, Query(description="opened at or after (ISO 8601)")]
To = Annotated[datetime | None, Query(description="opened at or before (ISO 8601)")]


class QueueParams:
    """The queue's filters as query parameters."""

    def __init__(
        self,
        reason: Annotated[Reason | None, Query(description="critical: a critical criterion "
                          "failed; pending: an observed item awaits an observation; "
                          "incomplete: the counted outcome")] = None,
        scenario: Text = None,
        rubric: Text = None,
        learner: Text = None,
        outcome: Annotated[Outcome | None, Query(description="the counted outcome (with "
                           "overrides)")] = None,
        opened_from: From = None,
        opened_to: To = None,
    ) -> None:  # fmt: skip
        check_range(opened_from, opened_to)
        self.filters = QueueFilters(reason=reason, scenario=scenario, rubric=rubric,
                                    learner=learner, outcome=outcome, opened_from=opened_from,
                                    opened_to=opened_to)  # fmt: skip


@router.get("/review-queue", tags=["review"], summary="Sessions that need a person, counted "
            "per reason")  # fmt: skip
def review_queue(
    cohorts: Cohorts,
    who: Who,
    params: Annotated[QueueParams, Depends()],
    cursor: Annotated[str | None, Query(max_length=100, description="`next_cursor` of the "
                                        "previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> QueuePage:
    """Closed sessions with a critical criterion failed, an observed item pending or an
    incomplete outcome, newest first; `counts` per reason under every filter but `reason`.
    Admins, trainers and assessors."""
    return cohorts.queue(who, params.filters, cursor=cursor, limit=limit)


@router.get("/review-queue.csv", tags=["review"], summary="The review queue as CSV",
            response_class=Response,
            responses={200: {"content": {"text/csv": {}}}})  # fmt: skip
def review_queue_csv(
    cohorts: Cohorts, who: Who, params: Annotated[QueueParams, Depends()]
) -> Response:
    """Every queued session under the filters (no pages; at most 50,000 rows), one row each;
    cells that a spreadsheet would run as a formula are neutralised with a leading `'`."""
    return csv_response(queue_csv(cohorts.queue_export(who, params.filters)),
                        "review-queue.csv")  # fmt: skip


@router.get("/sessions.csv", tags=["sessions"], summary="A session search as CSV",
            response_class=Response,
            responses={200: {"content": {"text/csv": {}}}})  # fmt: skip
def sessions_csv_export(
    cohorts: Cohorts,
    who: Who,
    learner: Text = None,
    scenario: Text = None,
    rubric: Text = None,
    outcome: Annotated[Outcome | None, Query(description="the outcome with observations")] = None,
    source: Literal["simulator", "field"] | None = None,
    status: Literal["open", "closed"] | None = None,
    opened_from: From = None,
    opened_to: To = None,
) -> Response:
    """What `GET /sessions` lists under the same filters, every page at once (at most 50,000
    rows); formulas neutralised. Learners get their own sessions."""
    check_range(opened_from, opened_to)
    filters = SessionFilters(learner=learner, scenario=scenario, rubric=rubric, outcome=outcome,
                             source=source, status=status, opened_from=opened_from,
                             opened_to=opened_to)  # fmt: skip
    return csv_response(sessions_csv(cohorts.sessions_export(who, filters)), "sessions.csv")


@router.get("/dashboard", tags=["cohorts"], summary="The cohort dashboard's numbers")
def dashboard(
    cohorts: Cohorts,
    who: Who,
    rubric: Text = None,
    version: Annotated[int | None, Query(ge=1, le=1_000_000, description="rubric version")] = None,
    scenario: Text = None,
    source: Literal["simulator", "field"] | None = None,
    site: Text = None,
    opened_from: From = None,
    opened_to: To = None,
    period: Annotated[Literal["day", "month"] | None, Query(description="pass rates per day "
                      "or month; default: by day over at most 92 days, else by month")] = None,
) -> CohortOut:
    """Pass rate over time per rubric version, per-criterion failure rates (first and later
    attempts), attempts until first pass, breakdowns by scenario, site and source, and the
    slowest-improving criteria; over closed, scored sessions, counted outcomes (with
    observations and overrides). Admins, trainers and assessors."""
    check_range(opened_from, opened_to)
    filters = CohortFilters(rubric=rubric, rubric_version=version, scenario=scenario,
                            source=source, site=site, opened_from=opened_from,
                            opened_to=opened_to, period=period)  # fmt: skip
    return cohorts.cohort(who, filters)


class CalibrationParams:
    """Which sessions calibration counts, as query parameters."""

    def __init__(
        self,
        rubric: Text = None,
        version: Annotated[int | None, Query(ge=1, le=1_000_000,
                                             description="rubric version")] = None,
        scenario: Text = None,
        site: Text = None,
        opened_from: From = None,
        opened_to: To = None,
    ) -> None:  # fmt: skip
        check_range(opened_from, opened_to)
        self.filters = CohortFilters(rubric=rubric, rubric_version=version, scenario=scenario,
                                     site=site, opened_from=opened_from,
                                     opened_to=opened_to)  # fmt: skip


@router.get("/calibration/agreement", tags=["cohorts"],
            summary="Assessor-versus-engine agreement, per assessor and criterion")  # fmt: skip
def calibration_agreement(
    cohorts: Cohorts, who: Who, params: Annotated[CalibrationParams, Depends()]
) -> AgreementOut:
    """Per assessor, over the closed, scored sessions they reviewed (recorded an observation
    or override on), and per criterion the scorer decided: verdicts compared, overrides,
    override rate, percent agreement and Cohen's kappa of the assessor's verdicts against the
    scorer's (not overriding counts as agreeing); a warning below `min_count` verdicts.
    Trainers and admins."""
    return calibration.agreement(cohorts, who, params.filters)


@router.get("/calibration/validity", tags=["cohorts"],
            summary="Simulator-to-field validity over learners with both")  # fmt: skip
def calibration_validity(
    cohorts: Cohorts, who: Who, params: Annotated[CalibrationParams, Depends()]
) -> ValidityOut:
    """For each learner with a pass or fail session from both sources, their latest simulator
    session against their latest field session: the confusion table of outcomes, Cohen's
    kappa, the point-biserial correlation of simulator score with field pass, the Spearman
    correlation of the scores, each with its count, and a warning below `min_count` learners.
    Trainers and admins."""
    return calibration.validity(cohorts, who, params.filters)
