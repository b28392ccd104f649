"""The JSON API under ``/api/v1``: thin routes over `ReviewService` (which checks roles)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Path, Query, Request, Response, UploadFile
from fastapi.responses import PlainTextResponse

from .guard import GuardedRoute, Requires
from .problems import responses
from .service import FieldUpload, Principal, ReviewService, SessionFilters, TooLargeError
from .service.access import Action
from .service.models import (
    AuditPage,
    LearnerHistory,
    Me,
    ObservationIn,
    OverrideIn,
    RescoreIn,
    RescoreOut,
    RubricVersionOut,
    SeriesOut,
    SessionDetail,
    SessionPage,
)

PREFIX = "/api/v1"
MAX_RUBRIC_BYTES = 1_000_000


def service_of(request: Request) -> ReviewService:
    service: ReviewService = request.app.state.service
    return service


Service = Annotated[ReviewService, Depends(service_of)]
Who = Annotated[Principal, Depends(Requires())]
"""The principal of the request's bearer token (401 problem without a valid one)."""


# Routes with a body name the action they take: the role is checked, like the token, before the
# body is read (the service checks it again).
MayObserve = Annotated[Principal, Depends(Requires(Action.OBSERVE))]
MayOverride = Annotated[Principal, Depends(Requires(Action.OVERRIDE))]
MayUploadField = Annotated[Principal, Depends(Requires(Action.UPLOAD_FIELD_SESSION))]
MayUploadRubric = Annotated[Principal, Depends(Requires(Action.UPLOAD_RUBRIC))]
MayRescore = Annotated[Principal, Depends(Requires(Action.RESCORE))]
SessionPath = Annotated[str, Path(min_length=1, max_length=200, description="session id")]
Text = Annotated[str | None, Query(min_length=1, max_length=200)]

router = APIRouter(prefix=PREFIX, responses=responses(400, 401, 403, 422),
                   route_class=GuardedRoute)  # fmt: skip


# ==================================================================================== who


@router.get("/me", tags=["access"], summary="The token's identity and role")
def me(who: Who) -> Me:
    return Me(token_id=who.token_id, name=who.name, role=who.role, learner=who.learner)


# ==================================================================================== sessions


@router.get("/sessions", tags=["sessions"], summary="List sessions (filters, cursor pages)")
def list_sessions(
    service: Service,
    who: Who,
    learner: Text = None,
    scenario: Text = None,
    rubric: Text = None,
    outcome: Annotated[Literal["pass", "fail", "incomplete"] | None, Query(
        description="the outcome with observations (the `machine` outcome)")] = None,
    source: Literal["simulator", "field"] | None = None,
    status: Literal["open", "closed"] | None = None,
    opened_from: Annotated[datetime | None, Query(description="opened at or after")] = None,
    opened_to: Annotated[datetime | None, Query(description="opened at or before")] = None,
    cursor: Annotated[str | None, Query(max_length=100, description="`next_cursor` of the "
                                        "previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> SessionPage:
    """Newest first (the order sessions were opened in; stable across pages). Learners see only
    their own sessions."""
    filters = SessionFilters(learner=learner, scenario=scenario, rubric=rubric, outcome=outcome,
                             source=source, status=status, opened_from=opened_from,
                             opened_to=opened_to)  # fmt: skip
    return service.list_sessions(who, filters, cursor=cursor, limit=limit)


@router.get("/sessions/{session_id}", tags=["sessions"], summary="One session's review",
            responses=responses(404))  # fmt: skip
def get_session(service: Service, who: Who, session_id: SessionPath) -> SessionDetail:
    """Criteria with the scorer's verdict and evidence, the verdict with in-field observations,
    any override beside it; the outcome without (`machine`) and with overrides."""
    return service.session(who, session_id)


@router.get("/sessions/{session_id}/events", tags=["sessions"],
            summary="A session's events, raw or downsampled", responses=responses(404, 409))
def get_events(
    service: Service,
    who: Who,
    session_id: SessionPath,
    t_from: Annotated[float | None, Query(ge=0, le=1e9, description="seconds")] = None,
    t_to: Annotated[float | None, Query(ge=0, le=1e9, description="seconds")] = None,
    signals: Annotated[list[str] | None, Query(max_length=64, description="signal names "
                       "(repeat, or comma-separated); default: all")] = None,
    buckets: Annotated[int | None, Query(ge=1, le=5000, description="downsample to N time "
                       "buckets: min and max per bucket and signal")] = None,
    hold: Annotated[bool, Query(description="sample-and-hold: a missing value is the last one "
                    "reported before it; each bucket also holds the value held at its "
                    "start")] = False,
) -> SeriesOut:
    names = [n for part in signals or [] for n in part.split(",") if n]
    return service.events(who, session_id, t_from=t_from, t_to=t_to, signals=names or None,
                          buckets=buckets, hold=hold)  # fmt: skip


@router.post("/sessions/{session_id}/observations", tags=["review"], status_code=201,
             summary="Record an in-field observation", responses=responses(404, 409))
def post_observation(
    service: Service, who: MayObserve, session_id: SessionPath, body: ObservationIn
) -> SessionDetail:
    """For an `observed` criterion: pass or fail, a note, when (and where). The session's
    outcome is re-evaluated at once; the answer is the session as it now stands."""
    return service.observe(who, session_id, body)


@router.post("/sessions/{session_id}/overrides", tags=["review"], status_code=201,
             summary="Override a criterion's verdict (with a reason)",
             responses=responses(404, 409))  # fmt: skip
def post_override(
    service: Service, who: MayOverride, session_id: SessionPath, body: OverrideIn
) -> SessionDetail:
    """The machine verdict is kept beside the override; the session shows both outcomes."""
    return service.override(who, session_id, body)


@router.post("/field-sessions", tags=["sessions"], status_code=201,
             summary="Upload a field log (events JSONL or CSV) as a new session",
             responses=responses(409, 413))  # fmt: skip
def post_field_session(
    service: Service,
    who: MayUploadField,
    response: Response,
    file: Annotated[UploadFile, File(description="events JSONL (one session), or CSV with a "
                                     "header row: t, event, seq (optional), signal names")],
    learner: Annotated[str | None, Form(min_length=1, max_length=200)] = None,
    rubric: Annotated[str | None, Form(min_length=1, max_length=200)] = None,
    version: Annotated[int | None, Form(ge=1, le=1_000_000)] = None,
    session: Annotated[str | None, Form(min_length=1, max_length=200)] = None,
    format: Annotated[Literal["jsonl", "csv"] | None, Form()] = None,
) -> SessionDetail:
    """Stored as hash-chained batches like a simulator session (source `field`), closed, and
    scored by the rubric (`version` default: the newest known)."""
    data = _read(file, service.max_upload_bytes)
    upload = FieldUpload(filename=file.filename or "upload", data=data,
                         content_type=file.content_type, format=format, learner=learner,
                         rubric=rubric, version=version, session=session)  # fmt: skip
    detail = service.upload_field_session(who, upload)
    response.headers["Location"] = f"{PREFIX}/sessions/{detail.session}"
    return detail


# ==================================================================================== rubrics


@router.get("/rubrics", tags=["rubrics"], summary="Rubric versions with their sha256")
def list_rubrics(service: Service, who: Who, rubric: Text = None) -> list[RubricVersionOut]:
    """Versions from the rubric directories (`origin: file`) and uploaded ones."""
    return service.rubric_versions(who, rubric)


@router.post("/rubrics", tags=["rubrics"], status_code=201,
             summary="Upload a rubric version (checked first)", responses=responses(409, 413))
def post_rubric(
    service: Service,
    who: MayUploadRubric,
    response: Response,
    file: Annotated[UploadFile, File(description="the rubric YAML")],
) -> RubricVersionOut:
    """Checked as `assessengine rubric check` checks a file: problems come back as a 422
    problem whose `errors` give each one's line and column. 200 (not 201) when the very same
    version is known already; 409 when its version number is taken by other content."""
    data = _read(file, MAX_RUBRIC_BYTES)
    version, created = service.upload_rubric(who, file.filename or "rubric.yaml", data)
    if not created:
        response.status_code = 200
    response.headers["Location"] = f"{PREFIX}/rubrics/{version.rubric}/{version.version}"
    return version


@router.get("/rubrics/{rubric}/{version}", tags=["rubrics"], summary="An uploaded version's text",
            response_class=PlainTextResponse, responses=responses(404))  # fmt: skip
def get_rubric_text(
    service: Service,
    who: Who,
    rubric: Annotated[str, Path(min_length=1, max_length=200)],
    version: Annotated[int, Path(ge=1, le=1_000_000)],
) -> PlainTextResponse:
    text = service.rubric_text(who, rubric, version)
    return PlainTextResponse(text, media_type="application/yaml")


@router.post("/rescores", tags=["rubrics"], status_code=201,
             summary="Re-score sessions under another rubric version", responses=responses(404))
def post_rescore(service: Service, who: MayRescore, body: RescoreIn) -> RescoreOut:
    """Name the sessions, or give a cohort filter. Stored reports stay as they are; the answer
    lists each session's outcome before and after, and every verdict that changed."""
    return service.rescore(who, body)


@router.get("/rescores/{rescore_id}", tags=["rubrics"], summary="A re-scoring run",
            responses=responses(404))  # fmt: skip
def get_rescore(
    service: Service, who: Who, rescore_id: Annotated[int, Path(ge=1, le=2**62)]
) -> RescoreOut:
    return service.rescore_result(who, rescore_id)


# ==================================================================================== learners


@router.get("/learners/{learner}/history", tags=["learners"],
            summary="A learner's attempts and competencies", responses=responses(404))
def learner_history(
    service: Service,
    who: Who,
    learner: Annotated[str, Path(min_length=1, max_length=200)],
    rubric: Text = None,
) -> LearnerHistory:
    """Attempts per rubric, oldest first, with their scores; each competency's status
    (demonstrated in some attempt, failed, or pending). Learners: their own only."""
    return service.learner_history(who, learner, rubric=rubric)


# ==================================================================================== audit


@router.get("/audit", tags=["audit"], summary="The audit log: every change, newest first")
def list_audit(
    service: Service,
    who: Who,
    session: Text = None,
    actor: Text = None,
    action: Annotated[str | None, Query(max_length=100, description="observation.create, "
                      "override.create, rubric.upload, rescore.run, field_session.create, "
                      "token.create, token.revoke")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    return service.audit(who, session=session, actor=actor, action=action, since=since,
                         until=until, cursor=cursor, limit=limit)  # fmt: skip


def _read(file: UploadFile, limit: int) -> bytes:
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise TooLargeError(f"the file is larger than {limit} bytes")
    return data
