"""The review queue, session search and cohort dashboard pages (server-rendered, in the style
of `api.web`, whose sign-in, cookies and error pages they use), and the learner page's
"issue credential" form:

    /review                 sessions that need a person, counted per reason; filters
    /review.csv             the filtered queue as CSV
    /review/next?after=ID   303 to the queue's next session after ID (the queue's last filters,
                            kept in a cookie), or back to the queue when nothing is left
    /search, /search.csv    any session by learner, scenario, rubric, outcome, source, status,
                            date range; and as CSV
    /dashboard              the cohort dashboard: SVG charts and tables of `GET /api/v1/dashboard`
    /calibration            assessor-versus-engine agreement and simulator-to-field validity
                            (`GET /api/v1/calibration/agreement` and `/validity`); trainers, admins
    POST /learners/{id}/credentials/issue   issue a policy's credential (trainers, assessors,
                            admins), then to the credential's page

Invalid filters give an error page (422) naming each one. The services are
``request.app.state.cohorts`` and ``request.app.state.credentials``.
"""

from __future__ import annotations

from typing import Annotated, Final
from urllib.parse import parse_qsl, quote, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup
from pydantic import ValidationError

from . import cohort_charts as charts
from .csv_export import csv_response, queue_csv, sessions_csv
from .guard import GuardedRoute
from .service import Principal, ReviewService, SessionFilters, calibration
from .service.cohort_models import CohortOut
from .service.cohorts import (
    OUTCOMES,
    REASONS,
    SOURCES,
    CohortFilters,
    CohortService,
    cohort_filters,
    queue_filters,
)
from .service.credentials import CredentialApi, IssueIn
from .service.errors import ForbiddenError, InvalidError
from .web import SIGNED_IN, _action, _page, _problem_text, _redirect, _render, _set_cookie
from .web_credentials import credentials_url

router = APIRouter(include_in_schema=False, route_class=GuardedRoute)

QUEUE_COOKIE: Final = "ae_queue"
PAGE: Final = 50
STATUSES: Final = ("open", "closed")


def _cohorts(request: Request) -> CohortService:
    cohorts: CohortService = request.app.state.cohorts
    return cohorts


def _params(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items() if k != "cursor"}


def _catalog_names(service: ReviewService) -> tuple[list[str], list[str]]:
    entries = service.catalog.entries()
    return (sorted({e.scenario.scenario for e in entries}),
            sorted({e.rubric.rubric for e in entries}))  # fmt: skip


# ==================================================================================== queue


@router.get("/review", response_class=HTMLResponse)
def review_queue(request: Request, cursor: str | None = None) -> Response:
    params = _params(request)

    def build(who: Principal, service: ReviewService) -> Response:
        if who.role == "learner":
            raise ForbiddenError("The review queue is for assessors, trainers and admins.")
        filters = queue_filters(params)
        page = _cohorts(request).queue(who, filters, cursor=cursor, limit=PAGE)
        scenarios, rubrics = _catalog_names(service)
        kept = filters.params()
        more = None if page.next_cursor is None else "/review?" + urlencode(
            {**kept, "cursor": page.next_cursor})  # fmt: skip
        response = _render(
            request, "review.html", who=who, page=page, scenarios=scenarios,
            f=_form(kept, ("reason", "scenario", "rubric", "learner", "outcome", "from", "to")),
            rubrics=rubrics, reasons=REASONS, outcomes=OUTCOMES, more=more,
            first_page=cursor is None, csv_url="/review.csv" + _query(kept),
            reason_url=lambda r: "/review" + _query({**kept, "reason": r} if r else
                                                    {k: v for k, v in kept.items()
                                                     if k != "reason"}),
        )  # fmt: skip
        _set_cookie(response, request, QUEUE_COOKIE, urlencode(kept))
        return response

    return _page(request, build)


@router.get("/review.csv")
def review_queue_csv(request: Request) -> Response:
    params = _params(request)

    def build(who: Principal, _: ReviewService) -> Response:
        items = _cohorts(request).queue_export(who, queue_filters(params))
        return csv_response(queue_csv(items), "review-queue.csv")

    return _page(request, build)


@router.get("/review/next")
def next_in_queue(request: Request, after: str = "") -> Response:
    """To the next session of the queue (under the filters the queue page last showed)."""
    kept = dict(parse_qsl(request.cookies.get(QUEUE_COOKIE, "")))

    def build(who: Principal, _: ReviewService) -> Response:
        filters = queue_filters(kept)
        found = _cohorts(request).next_in_queue(who, after, filters)
        if found is None:
            return _redirect("/review" + _query({**filters.params(), "empty": "1"}))
        return _redirect(f"/sessions/{quote(found, safe='')}")

    return _page(request, build)


def _form(kept: dict[str, str], names: tuple[str, ...]) -> dict[str, str]:
    """The form's fields: what was given, empty for the rest."""
    return {name: kept.get(name, "") for name in names}


def _query(params: dict[str, str]) -> str:
    return "?" + urlencode(params) if params else ""


# ==================================================================================== search


@router.get("/search", response_class=HTMLResponse)
def search(request: Request, cursor: str | None = None) -> Response:
    params = _params(request)

    def build(who: Principal, service: ReviewService) -> Response:
        filters, kept = _session_filters(params)
        page = service.list_sessions(who, filters, cursor=cursor, limit=PAGE)
        scenarios, rubrics = _catalog_names(service)
        more = None if page.next_cursor is None else "/search?" + urlencode(
            {**kept, "cursor": page.next_cursor})  # fmt: skip
        return _render(request, "search.html", who=who, page=page,
                       f=_form(kept, ("learner", "scenario", "rubric", "outcome", "source",
                                      "status", "from", "to")),
                       scenarios=scenarios, rubrics=rubrics, outcomes=OUTCOMES,
                       sources=SOURCES, statuses=STATUSES, more=more,
                       csv_url="/search.csv" + _query(kept))  # fmt: skip

    return _page(request, build)


@router.get("/search.csv")
def search_csv(request: Request) -> Response:
    params = _params(request)

    def build(who: Principal, _: ReviewService) -> Response:
        filters, _kept = _session_filters(params)
        return csv_response(sessions_csv(_cohorts(request).sessions_export(who, filters)),
                            "sessions.csv")  # fmt: skip

    return _page(request, build)


def _session_filters(params: dict[str, str]) -> tuple[SessionFilters, dict[str, str]]:
    """The search's filters: the queue's parser for what they share (learner, scenario,
    rubric, outcome, dates), and source and status."""
    shared = queue_filters({k: v for k, v in params.items() if k != "reason"})
    source, status = params.get("source", "").strip(), params.get("status", "").strip()
    problems = [f"{name}: {value!r} is not one of {', '.join(allowed)}"
                for name, value, allowed in (("source", source, SOURCES),
                                             ("status", status, STATUSES))
                if value and value not in allowed]  # fmt: skip
    if problems:
        raise InvalidError("; ".join(problems))
    filters = SessionFilters(learner=shared.learner, scenario=shared.scenario,
                             rubric=shared.rubric, outcome=shared.outcome,
                             source=source or None, status=status or None,
                             opened_from=shared.opened_from, opened_to=shared.opened_to)
    kept = {**shared.params(), **{k: v for k, v in (("source", source), ("status", status))
                                  if v}}  # fmt: skip
    return filters, kept


# ==================================================================================== dashboard


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(request: Request) -> Response:
    params = _params(request)

    def build(who: Principal, service: ReviewService) -> Response:
        filters = cohort_filters(params)
        numbers = _cohorts(request).cohort(who, filters)
        scenarios, rubrics = _catalog_names(service)
        kept = filters.params()
        return _render(request, "dashboard.html", who=who, n=numbers, query=urlencode(kept),
                       f=_form(kept, ("rubric", "version", "scenario", "source", "site",
                                      "from", "to", "period")),
                       scenarios=scenarios, rubrics=rubrics, sources=SOURCES,
                       charts=_charts(numbers), percent=charts.percent)  # fmt: skip

    return _page(request, build)


@router.get("/calibration", response_class=HTMLResponse)
def calibration_page(request: Request) -> Response:
    params = _params(request)

    def build(who: Principal, service: ReviewService) -> Response:
        filters = cohort_filters(params)
        filters = CohortFilters(rubric=filters.rubric, rubric_version=filters.rubric_version,
                                opened_from=filters.opened_from,
                                opened_to=filters.opened_to)  # fmt: skip
        cohorts = _cohorts(request)
        agreement = calibration.agreement(cohorts, who, filters)
        validity = calibration.validity(cohorts, who, filters)
        raters = calibration.inter_rater(cohorts, who, filters)
        _, rubrics = _catalog_names(service)
        kept = filters.params()
        return _render(request, "calibration.html", who=who, a=agreement, v=validity, r=raters,
                       query=urlencode(kept), f=_form(kept, ("rubric", "version", "from", "to")),
                       rubrics=rubrics, percent=charts.percent)  # fmt: skip

    return _page(request, build)


def _charts(n: CohortOut) -> dict[str, Markup]:
    """The dashboard's SVGs (every text escaped by `cohort_charts`)."""
    series: dict[str, list[charts.Point]] = {}
    for p in n.pass_rates:
        series.setdefault(f"{p.rubric} v{p.rubric_version}", []).append(
            charts.Point(p.period, p.pass_rate, p.sessions))
    rates = charts.lines_svg([charts.Series(k, v) for k, v in series.items()],
                             label="Pass rate over time per rubric version")  # fmt: skip
    criteria = charts.bars_svg(
        [charts.Bar(f"{c.title}", c.failure_rate, f"{c.failed} of {c.decided} failed")
         for c in n.criteria],
        label="Failure rate per criterion", kind="failure-rate",
    )  # fmt: skip
    total: dict[str, int] = {}
    for f in n.attempts_to_first_pass:
        total[f.rubric] = total.get(f.rubric, 0) + f.learners
    first = charts.bars_svg(
        [charts.Bar(f"{f.rubric}: " + (f"attempt {f.attempt}" if f.attempt else "not yet"),
                    f.learners / total[f.rubric], f"{f.learners} learners")
         for f in n.attempts_to_first_pass],
        label="Learners by the attempt they first passed on", kind="share",
    )  # fmt: skip
    groups = {
        name: charts.bars_svg(
            [charts.Bar(str(b.key or "(none)"), b.pass_rate, f"{b.passed} of {b.sessions}")
             for b in rows], label=f"Pass rate by {name}", kind="pass-rate")
        for name, rows in (("scenario", n.by_scenario), ("site", n.by_site),
                           ("source", n.by_source))
    }  # fmt: skip
    return {"rates": Markup(rates), "criteria": Markup(criteria), "first": Markup(first),
            **{k: Markup(v) for k, v in groups.items()}}  # fmt: skip


# ==================================================================================== issue


@router.post("/learners/{learner}/credentials/issue", response_class=HTMLResponse,
             dependencies=[SIGNED_IN])  # fmt: skip
def issue_credential(
    request: Request,
    learner: str,
    csrf: Annotated[str, Form()] = "",
    policy: Annotated[str, Form()] = "",
) -> Response:
    def build(who: Principal, _: ReviewService) -> Response:
        api: CredentialApi = request.app.state.credentials
        try:
            body = IssueIn(learner=learner, policy=policy)
        except ValidationError as exc:
            raise InvalidError(_problem_text(exc)) from None
        issued = api.issue(who, body)
        return _redirect(credentials_url(learner, issued.id))

    return _action(request, csrf, build)

