"""The learner's consent page of the Open Badges API (server-rendered, in the style of
`api.web`, whose sign-in, cookies, CSRF check and error pages it uses):

    GET  /oauth/authorize    the authorization request of a host (RFC 6749 4.1.1, with PKCE):
                             checked first (an unknown client or redirect URI is an error
                             page, never a redirect; other errors go back to the host), then
                             the learner signs in and sees who asks for what
    POST /oauth/authorize    the learner's answer (Allow / Deny, CSRF-checked): back to the
                             host's redirect URI with a code, or ``error=access_denied``

Only a learner can authorise a host (staff are refused with 403): the host then reads that
learner's credentials and profile, nothing else. The service is
``request.app.state.open_badges``.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qsl, urlsplit

from authlib.oauth2.rfc6749.errors import OAuth2Error
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from .guard import GuardedRoute
from .oauth import SCOPES, FormRequest, OAuthServer
from .oauth import error_answer as oauth_error
from .open_badges import AUTHORIZE_PATH
from .open_badges_routes import FORM_TYPE, answer, oauth_request, open_badges
from .service import ForbiddenError, Principal, ReviewService
from .web import SECURITY_HEADERS, SIGNED_IN, _action, _page, _render

router = APIRouter(include_in_schema=False, route_class=GuardedRoute)
_OWN_FIELDS: Final = ("csrf", "decision")


@router.get(AUTHORIZE_PATH, response_class=HTMLResponse)
async def authorize_form(request: Request) -> Response:
    server = open_badges(request).server
    try:
        found = await oauth_request(request)
        grant = await run_in_threadpool(server.consent, found)
    except OAuth2Error as error:
        return _refused(request, error)

    def build(who: Principal, _: ReviewService) -> Response:
        _learner_only(who)
        params = [(k, v) for k, v in request.query_params.multi_items() if k not in _OWN_FIELDS]
        response = _render(request, "oauth_consent.html", who=who, client=grant.client,
                           scopes=[(s, SCOPES[s]) for s in found.scope.split()],
                           params=params, redirect=_origin(grant.redirect_uri))  # fmt: skip
        response.headers["Content-Security-Policy"] = _csp(grant.redirect_uri)
        return response

    return await run_in_threadpool(_page, request, build)


@router.post(AUTHORIZE_PATH, response_class=HTMLResponse, dependencies=[SIGNED_IN])
async def authorize(request: Request) -> Response:
    if not request.headers.get("content-type", "").startswith(FORM_TYPE):
        return _refused(request, None)
    text = (await request.body()).decode("utf-8", "replace")
    fields = parse_qsl(text, keep_blank_values=True)
    mine = dict(fields)
    params = [(k, v) for k, v in fields if k not in _OWN_FIELDS]
    server = open_badges(request).server
    try:
        found = await oauth_request(request, form=params)
    except OAuth2Error as error:
        return _refused(request, error)

    def build(who: Principal, _: ReviewService) -> Response:
        _learner_only(who)
        return _decide(server, found, who, allow=mine.get("decision") == "allow")

    return await run_in_threadpool(_action, request, mine.get("csrf", ""), build)


def _decide(server: OAuthServer, found: FormRequest, who: Principal, *, allow: bool) -> Response:
    try:
        grant = server.consent(found)
    except OAuth2Error as error:
        return answer(oauth_error(error)) if error.redirect_uri else _bad_request(error)
    return answer(server.authorize(found, grant, who.learner if allow else None))


def _learner_only(who: Principal) -> None:
    if who.role != "learner" or not who.learner:
        raise ForbiddenError("Only a learner can let a host read their credentials: sign in "
                             "with a learner's token.")  # fmt: skip


def _refused(request: Request, error: OAuth2Error | None) -> Response:
    """An invalid authorization request: back to the client when its redirect URI is known
    good, else an error page (never a redirect to an unchecked URI)."""
    if error is not None and error.redirect_uri:
        return answer(oauth_error(error))
    return _bad_request(error)


def _bad_request(error: OAuth2Error | None) -> Response:
    detail = "The request is not an OAuth authorization request."
    if error is not None:
        detail = f"{error.error}: {error.description or 'invalid request'}"
    html = ("<!doctype html><title>Invalid request</title><h1>This host's request cannot be "
            "answered</h1><p>" + _escape(detail) + "</p>")  # fmt: skip
    return HTMLResponse(html, status_code=400, headers=SECURITY_HEADERS)


def _escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))  # fmt: skip


def _origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"


def _csp(redirect_uri: str) -> str:
    """The pages' policy, with the host's origin among the form's targets: the answer
    redirects there, and browsers hold a form's redirects to ``form-action``."""
    policy = SECURITY_HEADERS["Content-Security-Policy"]
    return policy.replace("form-action 'self'", f"form-action 'self' {_origin(redirect_uri)}")
