"""The server-rendered pages: review queue, session page, learner page (Jinja2, no build step).

    /signin            the sign-in form: a bearer token (``assessengine token create``)
    /review            the review queue, /search, /dashboard: `api.web_cohorts`
    /sessions/{id}     timeline (inline SVG), criteria with evidence, observation and override
                       forms (each POST answers 303 back to the page)
    /learners/{id}     attempts over time, competencies

Access is the API's: the token, kept in an HttpOnly SameSite=Strict cookie, is authenticated by
`ReviewService` on every request, and every read or change goes through the service, which
checks the role (a learner sees only their own sessions and record; another learner's session
is "not found"). The review queue is for admins, trainers and assessors.

CSRF: every form carries the value of the ``ae_csrf`` cookie (random, HttpOnly,
SameSite=Strict) in a hidden field; a POST whose field does not match the cookie is refused
with 403 before anything else happens (double submit). Signing in and out renews the cookie.

The service is ``request.app.state.service`` (set by `api.app.create_app`).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import quote, urlencode

import jinja2
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ..core.compiler import criterion_signals
from . import double_mark_view, session_view
from . import timeline as tl
from .guard import GuardedRoute
from .service import (
    Action,
    ForbiddenError,
    InvalidError,
    Principal,
    ReviewService,
    ServiceError,
    UnauthenticatedError,
)
from .service.catalog import Entry
from .service.models import ObservationIn, OverrideIn, SessionDetail

TOKEN_COOKIE: Final = "ae_token"
CSRF_COOKIE: Final = "ae_csrf"
CSRF_FIELD: Final = "csrf"
TOKEN_MAX_AGE: Final = 12 * 3600  # a working day in the field
HERE: Final = Path(__file__).parent
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

router = APIRouter(include_in_schema=False, route_class=GuardedRoute)
DONE: Final = {"double-marking": "The second assessor is asked to mark this session blind.",
               "double-marks": "Your second marks are recorded."}
"""What the session page confirms after a double-marking form (``?done=``)."""

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.globals.update(
    format_t=tl.format_t,
    session_url=lambda sid: f"/sessions/{quote(sid, safe='')}",
    learner_url=lambda lid: f"/learners/{quote(lid, safe='')}",
)
_env.filters["num"] = session_view.num
_CSS: Final = (HERE / "static" / "web.css").read_bytes()


# ================================================================================= plumbing


def _service(request: Request) -> ReviewService:
    service: ReviewService = request.app.state.service
    return service


def _csrf_value(request: Request) -> tuple[str, bool]:
    """The request's CSRF cookie value, or a fresh one (then True: set it on the response)."""
    value = request.cookies.get(CSRF_COOKIE, "")
    if len(value) >= 32:
        return value, False
    return secrets.token_urlsafe(32), True


def _set_cookie(response: Response, request: Request, name: str, value: str,
                max_age: int | None = None) -> None:  # fmt: skip
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")  # fmt: skip


def _render(
    request: Request, template: str, *, status: int = 200, who: Principal | None = None,
    **context: Any,
) -> HTMLResponse:  # fmt: skip
    """A page from `template`; sets the CSRF cookie when the request had none."""
    value, fresh = _csrf_value(request)
    html = _env.get_template(template).render(who=who, csrf=value, **context)
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    if fresh:
        _set_cookie(response, request, CSRF_COOKIE, value)
    return response


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


class SignedIn:
    """A guard dependency of the form POSTs that need a signed-in user: without a live token
    cookie the request goes to the sign-in form before its body is read (`GuardedRoute`)."""

    def __call__(self) -> None:
        """Nothing to give the route: `_page` authenticates the cookie again."""

    async def before_body(self, request: Request) -> Response | None:
        token = request.cookies.get(TOKEN_COOKIE)
        if not token:
            return _to_signin(request)
        try:
            await run_in_threadpool(_service(request).authenticate, token)
        except UnauthenticatedError:
            return _to_signin(request, forget=True)
        return None


SIGNED_IN: Final = Depends(SignedIn())


def _to_signin(request: Request, *, forget: bool = False) -> Response:
    """To the sign-in form, and back here after it (a form's page, for a form POST)."""
    if request.method == "GET":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    else:
        target = request.url.path.rsplit("/", 1)[0] or "/"
    response = _redirect("/signin?" + urlencode({"next": target}))
    if forget:
        response.delete_cookie(TOKEN_COOKIE, path="/")
    return response


def _error(request: Request, who: Principal | None, exc: ServiceError) -> HTMLResponse:
    return _render(request, "error.html", status=exc.status, who=who, title=exc.title,
                   detail=exc.detail)  # fmt: skip


def _page(request: Request, build: Callable[[Principal, ReviewService], Response]) -> Response:
    """Authenticate the token cookie (else: to the sign-in form), then `build` the answer;
    the service's refusals become error pages with their status."""
    service = _service(request)
    token = request.cookies.get(TOKEN_COOKIE)
    if not token:
        return _to_signin(request)
    try:
        who = service.authenticate(token)
    except UnauthenticatedError:
        return _to_signin(request, forget=True)
    try:
        return build(who, service)
    except ServiceError as exc:
        return _error(request, who, exc)


def _action(
    request: Request, csrf: str, build: Callable[[Principal, ReviewService], Response]
) -> Response:
    """`_page` for a form POST: refused with 403 unless `csrf` matches the CSRF cookie."""

    def checked(who: Principal, service: ReviewService) -> Response:
        if not _csrf_ok(request, csrf):
            raise _CsrfError
        return build(who, service)

    return _page(request, checked)


def _csrf_ok(request: Request, submitted: str) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    return len(cookie) >= 32 and secrets.compare_digest(cookie.encode(), submitted.encode())


class _CsrfError(ForbiddenError):
    def __init__(self) -> None:
        super().__init__("The form has expired or did not come from this site. Reload the page "
                         "and send it again.")  # fmt: skip


def _safe_next(target: str | None, who: Principal | None = None) -> str:
    """Where to go after signing in: `target` when it is a local path (never another site)
    that `who` may open, else their home. A learner lands on their own page unless `target` is
    a page of theirs (their record, a session): never on the staff's pages."""
    if target is not None and _local(target) and (
        who is None or who.role != "learner" or _learners_page(target, who)
    ):
        return target
    return _home(who)


def _local(target: str | None) -> bool:
    return bool(target) and str(target).startswith("/") and not str(target).startswith("//") \
        and "\\" not in str(target)  # fmt: skip


def _learners_page(target: str, who: Principal) -> bool:
    """Whether `target` is a page a learner may open: their record, a session (another
    learner's session is "not found" there) or a host's authorization request (the Open
    Badges API's consent page)."""
    own = f"/learners/{quote(who.learner or '', safe='')}"
    path = target.split("?", 1)[0]
    return path in (own, "/oauth/authorize") or path.startswith((own + "/", "/sessions/"))


def _home(who: Principal | None) -> str:
    if who is not None and who.role == "learner" and who.learner:
        return f"/learners/{quote(who.learner, safe='')}"
    return "/review"


# ================================================================================== sign-in


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    return _page(request, lambda who, _: _redirect(_home(who)))


@router.get("/static/web.css")
def stylesheet() -> Response:
    return Response(_CSS, media_type="text/css",
                    headers={"Cache-Control": "public, max-age=3600"})  # fmt: skip


@router.get("/signin", response_class=HTMLResponse)
def signin_form(request: Request, next: str | None = None) -> Response:
    return _render(request, "signin.html", next=next if _local(next) else "", error=None)


@router.post("/signin", response_class=HTMLResponse)
def signin(
    request: Request,
    token: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    if not _csrf_ok(request, csrf):
        return _error(request, None, _CsrfError())
    try:
        who = _service(request).authenticate(token.strip())
    except UnauthenticatedError:
        return _render(request, "signin.html", status=401, next=next if _local(next) else "",
                       error="That token is not valid (unknown or revoked).")  # fmt: skip
    response = _redirect(_safe_next(next, who))
    _set_cookie(response, request, TOKEN_COOKIE, token.strip(), TOKEN_MAX_AGE)
    _set_cookie(response, request, CSRF_COOKIE, secrets.token_urlsafe(32))
    return response


@router.post("/signout")
def signout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    if not _csrf_ok(request, csrf):
        return _error(request, None, _CsrfError())
    response = _redirect("/signin")
    response.delete_cookie(TOKEN_COOKIE, path="/")
    _set_cookie(response, request, CSRF_COOKIE, secrets.token_urlsafe(32))
    return response


# ============================================================================== session page


@router.get("/sessions/{session_id}", response_class=HTMLResponse)
def session_page(
    request: Request, session_id: str, done: str | None = None, criterion: str | None = None,
    zoom: str | None = None, view: str | None = None,
) -> Response:  # fmt: skip
    """The session page; `zoom`: a criterion id (the timeline shows its evidence);
    `view=print`: the printable report (no forms, signature lines)."""

    def build(who: Principal, service: ReviewService) -> Response:
        done_what = (done, criterion) if done in ("observation", "override") and criterion \
            else (done, "") if done in DONE else None  # fmt: skip
        return _session_response(request, who, service, session_id, done=done_what, zoom=zoom,
                                 printing=view == "print")  # fmt: skip

    return _page(request, build)


@router.post("/sessions/{session_id}/observations", response_class=HTMLResponse,
             dependencies=[SIGNED_IN])  # fmt: skip
def record_observation(
    request: Request,
    session_id: str,
    csrf: Annotated[str, Form()] = "",
    criterion: Annotated[str, Form()] = "",
    verdict: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
) -> Response:
    def record(who: Principal, service: ReviewService) -> None:
        body = ObservationIn(criterion=criterion, verdict=verdict, note=note)
        service.observe(who, session_id, body)

    form = {"kind": "observation", "criterion": criterion, "verdict": verdict, "text": note}
    return _review_post(request, session_id, csrf, form, record)


@router.post("/sessions/{session_id}/overrides", response_class=HTMLResponse,
             dependencies=[SIGNED_IN])  # fmt: skip
def record_override(
    request: Request,
    session_id: str,
    csrf: Annotated[str, Form()] = "",
    criterion: Annotated[str, Form()] = "",
    verdict: Annotated[str, Form()] = "",
    reason: Annotated[str, Form()] = "",
) -> Response:
    def record(who: Principal, service: ReviewService) -> None:
        body = OverrideIn(criterion=criterion, verdict=verdict, reason=reason)
        service.override(who, session_id, body)

    form = {"kind": "override", "criterion": criterion, "verdict": verdict, "text": reason}
    return _review_post(request, session_id, csrf, form, record)


def _review_post(
    request: Request,
    session_id: str,
    csrf: str,
    form: dict[str, str],
    record: Callable[[Principal, ReviewService], None],
) -> Response:
    """A review form's POST: record it, then 303 back to the session page's confirmation;
    invalid input gives the session page again (422) with the error at the field it concerns
    (`_field_errors`), the typed text kept and the focus on that field."""

    def build(who: Principal, service: ReviewService) -> Response:
        try:
            record(who, service)
        except (ValidationError, InvalidError) as exc:
            return _session_response(request, who, service, session_id, status=422,
                                     error=_problem_text(exc), form=form,
                                     field_errors=_field_errors(exc))  # fmt: skip
        return _redirect(_after_post(session_id, form["kind"], form["criterion"]))

    return _action(request, csrf, build)


def _after_post(session_id: str, done: str, criterion: str) -> str:
    """The session page, scrolled to the confirmation (which also takes the focus): it names
    what was recorded and the new outcome."""
    query = urlencode({"done": done, "criterion": criterion})
    return f"/sessions/{quote(session_id, safe='')}?{query}#confirmation"


def _problem_text(exc: ValidationError | InvalidError) -> str:
    if isinstance(exc, InvalidError):
        return exc.detail
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _field_errors(exc: ValidationError | InvalidError) -> dict[str, str]:
    """A refusal's messages by the form field they concern (``verdict``, ``note``,
    ``reason``); ``""`` holds the rest (the criterion, the session), shown at the text field."""
    if isinstance(exc, InvalidError):
        return {"": exc.detail}
    errors: dict[str, str] = {}
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        field = field if field in ("verdict", "note", "reason") else ""
        message = str(error["msg"]).removeprefix("Value error, ")
        errors[field] = f"{errors[field]}; {message}" if field in errors else message
    return errors


def _session_response(
    request: Request, who: Principal, service: ReviewService, session_id: str, *,
    status: int = 200, done: tuple[str, str] | None = None, error: str | None = None,
    form: Mapping[str, str] | None = None, field_errors: Mapping[str, str] | None = None,
    zoom: str | None = None, printing: bool = False,
) -> Response:  # fmt: skip
    """The session page; `done`: what was just recorded (kind, criterion id), confirmed at
    the top with the new outcome; `error`, `form`, `field_errors`: a refused form, kept."""
    detail = service.session(who, session_id)
    entry = service.catalog.find(detail.rubric, detail.rubric_version, detail.rubric_sha256)
    criteria = {c.id: c for c in entry.rubric.criteria} if entry is not None else {}
    units = {n: sig.unit for n, sig in entry.scenario.signals.items()} if entry else {}
    focus = session_view.zoom_window(detail, zoom)
    svgs, problem = _timeline(who, service, detail, entry, focus)
    double = double_mark_view.context(who, service, detail)
    reviewing = detail.rubric_available and not printing and not double["dm_blind"]
    return _render(
        request, "session.html", status=status, who=who, s=detail,
        timeline=_svg(svgs.wide), timeline_narrow=_svg(svgs.narrow), event_keys=svgs.event_keys,
        timeline_problem=problem, zoom=focus,
        criteria=[session_view.criterion_view(detail.session, k + 1, c, criteria.get(c.id), units)
                  for k, c in enumerate(detail.criteria)],
        can_observe=who.may(Action.OBSERVE) and reviewing,
        can_override=who.may(Action.OVERRIDE) and reviewing, **double,
        min_score=detail.pass_mark, printing=printing,
        titles={c.id: c.title for c in detail.criteria},
        flash=DONE[done[0]] if done and done[0] in DONE else session_view.confirmation(
            detail, done), error=error, form=form or {},
        field_errors=field_errors or {},
    )  # fmt: skip


def _timeline(
    who: Principal, service: ReviewService, detail: SessionDetail, entry: Entry | None,
    focus: session_view.Zoom | None,
) -> tuple[session_view.Timelines, str | None]:  # fmt: skip
    """The session's timeline SVGs over the rubric's signals (the whole session, or the
    `focus` window), wide and narrow, or why there are none."""
    names: list[str] | None = None
    if entry is not None:
        used = {n for c in entry.rubric.criteria for n in criterion_signals(c)}
        names = [n for n in entry.scenario.signal_names if n in used] or None
    window = {} if focus is None else {"t_from": focus.t_from, "t_to": focus.t_to}
    try:
        series = service.events(who, detail.session, signals=names, buckets=tl.plot_buckets(),
                                hold=True, times=False, **window)  # fmt: skip
    except ServiceError as exc:
        if isinstance(exc, ForbiddenError):
            raise
        return session_view.Timelines(), exc.detail
    return session_view.timelines(detail, entry, series), None


def _svg(svg: str | None) -> Markup | None:
    return None if svg is None else Markup(svg)  # the timeline module escapes every text


# ============================================================================== learner page


@router.get("/learners/{learner}", response_class=HTMLResponse)
def learner_page(request: Request, learner: str) -> Response:
    def build(who: Principal, service: ReviewService) -> Response:
        history = service.learner_history(who, learner)
        rubrics = []
        for rh in history.rubrics:
            entry = service.catalog.find(rh.rubric)
            min_score = None if entry is None else entry.rubric.pass_.min_score
            points = [
                tl.AttemptPoint(
                    a.session, _attempt_label(k, a.opened_at, a.with_overrides),
                    None if a.with_overrides is None else a.with_overrides.score,
                    None if a.with_overrides is None else a.with_overrides.outcome,
                    f"/sessions/{quote(a.session, safe='')}",
                )
                for k, a in enumerate(rh.attempts)
            ]
            chart = tl.attempts_svg(points, min_score=min_score,
                                    label=f"Score per attempt, {rh.rubric}")  # fmt: skip
            rubrics.append({
                "r": rh, "title": rh.rubric if entry is None else entry.rubric.title,
                "chart": Markup(chart),  # attempts_svg escapes every text
                "min_score": min_score,
            })  # fmt: skip
        credentials = request.app.state.credentials
        return _render(request, "learner.html", who=who, learner=learner, rubrics=rubrics,
                       progress=credentials.progress(who, learner),
                       can_issue=who.may(Action.ISSUE_CREDENTIALS))  # fmt: skip

    return _page(request, build)


def _attempt_label(k: int, opened_at: str, final: Any) -> str:
    score = "" if final is None or final.score is None else f", score {final.score:.4g}"
    outcome = "not scored" if final is None else f"{final.outcome}{score}"
    return f"Attempt {k + 1} ({opened_at[:16].replace('T', ' ')}): {outcome}"
