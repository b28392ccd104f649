"""The Open Badges 3.0 API's routes (read side) and the OAuth endpoints beside them.

    GET  /ims/ob/v3p0/discovery                 the service description document (no token)
    GET  /ims/ob/v3p0/credentials               getCredentials (scope credential.readonly)
    GET  /ims/ob/v3p0/profile                   getProfile (scope profile.readonly)
    POST /oauth/register                        dynamic client registration (RFC 7591)
    POST /oauth/token                           authorization_code (with PKCE), refresh_token
    POST /oauth/revoke                          token revocation (RFC 7009)
    GET  /.well-known/oauth-authorization-server   RFC 8414 metadata
    GET/POST /oauth/authorize                   the learner's consent page (`api.web_oauth`)

OAuth errors are authlib's RFC 6749 / 7591 / 6750 answers (``{"error", "error_description"}``,
``WWW-Authenticate: Bearer error=...`` on the resource endpoints); the resource endpoints'
other refusals carry the specification's ``Imsx_StatusInfo`` body. The service is
``request.app.state.open_badges`` (`api.open_badges.OpenBadgesApi`).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

from authlib.oauth2.rfc6749.errors import OAuth2Error
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from .oauth import CREDENTIAL_READ, PROFILE_READ, BodyRequest, FormRequest, OAuthAnswer
from .oauth import error_answer as oauth_error
from .open_badges import (
    BASE_PATH,
    DEFAULT_LIMIT,
    MAX_LIMIT,
    METADATA_PATH,
    REGISTER_PATH,
    REVOKE_PATH,
    TOKEN_PATH,
    OpenBadgesApi,
)
from .service import Principal, ServiceError

router = APIRouter(include_in_schema=False)
FORM_TYPE: Final = "application/x-www-form-urlencoded"
NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def open_badges(request: Request) -> OpenBadgesApi:
    api: OpenBadgesApi = request.app.state.open_badges
    return api


async def oauth_request(request: Request, form: list[tuple[str, str]] | None = None,
                        ) -> FormRequest:  # fmt: skip
    """The OAuth request of `request`: its query, and its URL-encoded form (`form` when the
    caller read it already). Its URL is the engine's public one (`base_url`): authlib refuses
    one that is neither https nor on a loopback address (``insecure_transport``)."""
    if form is None:
        form = []
        if request.method == "POST" and request.headers.get("content-type", "").startswith(
                FORM_TYPE):  # fmt: skip
            text = (await request.body()).decode("utf-8", "replace")
            form = parse_qsl(text, keep_blank_values=True)
    uri = open_badges(request).base + request.url.path
    return FormRequest(request.method, uri, request.headers,
                       list(request.query_params.multi_items()), form)  # fmt: skip


def answer(result: OAuthAnswer) -> Response:
    """authlib's answer as a response (a JSON body, or none for a redirect)."""
    headers = dict(result.headers)
    headers.update(NO_STORE)
    if isinstance(result.body, dict) and result.body:
        headers.pop("Content-Type", None)
        return JSONResponse(result.body, status_code=result.status, headers=headers)
    return Response(status_code=result.status, headers=headers)


# ================================================================================= OAuth


@router.post(REGISTER_PATH)
async def register(request: Request) -> Response:
    """RFC 7591 registration: a JSON object of client metadata; 201 with the client id and
    secret, 400 ``invalid_redirect_uri`` / ``invalid_client_metadata`` otherwise."""
    try:
        data = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        return JSONResponse({"error": "invalid_client_metadata",
                             "error_description": "the body must be a JSON object"},
                            status_code=400, headers=NO_STORE)  # fmt: skip
    api = open_badges(request)
    try:
        body = BodyRequest("POST", api.base + request.url.path, request.headers, data)
    except OAuth2Error as error:
        return answer(oauth_error(error))
    return answer(await run_in_threadpool(api.server.register, body))


@router.post(TOKEN_PATH)
async def token(request: Request) -> Response:
    """The token endpoint: ``authorization_code`` (with the PKCE ``code_verifier``) and
    ``refresh_token``, the client authenticated by HTTP Basic."""
    try:
        found = await oauth_request(request)
    except OAuth2Error as error:
        return answer(oauth_error(error))
    return answer(await run_in_threadpool(open_badges(request).server.token, found))


@router.post(REVOKE_PATH)
async def revoke(request: Request) -> Response:
    """RFC 7009: revoke an access or refresh token (and its whole authorization)."""
    try:
        found = await oauth_request(request)
    except OAuth2Error as error:
        return answer(oauth_error(error))
    return answer(await run_in_threadpool(open_badges(request).server.revoke, found))


@router.get(METADATA_PATH)
def server_metadata(request: Request) -> JSONResponse:
    return JSONResponse(open_badges(request).server_metadata())


# ================================================================================= resources


@router.get(f"{BASE_PATH}/discovery")
def discovery(request: Request) -> JSONResponse:
    """The service description document (no token)."""
    return JSONResponse(open_badges(request).discovery())


@router.get(f"{BASE_PATH}/credentials")
async def get_credentials(request: Request) -> Response:
    """getCredentials: the learner's signed credentials, paged by `limit` and `offset`, with
    ``X-Total-Count`` and RFC 8288 ``Link`` headers."""
    who = await _bearer(request, CREDENTIAL_READ)
    if isinstance(who, Response):
        return who
    query = request.query_params
    try:
        limit = _integer(query.get("limit"), "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = _integer(query.get("offset"), "offset", 0, 0, 2**62)
        since = _instant(query.get("since"))
    except ValueError as error:
        return _imsx(400, str(error), "invalid_query_parameter")
    api = open_badges(request)
    try:
        page = await run_in_threadpool(api.credential_page, who, limit=limit, offset=offset,
                                       since=since)  # fmt: skip
    except ServiceError as error:
        return _imsx(error.status, error.detail, "unknown_object")
    headers = {"X-Total-Count": str(page.total), **NO_STORE}
    links = _links(api.base + request.url.path, query.multi_items(), limit, offset, page.total)
    if links:
        headers["Link"] = links
    return JSONResponse({"credential": page.documents}, headers=headers)


@router.get(f"{BASE_PATH}/profile")
async def get_profile(request: Request) -> Response:
    """getProfile: the learner's profile."""
    who = await _bearer(request, PROFILE_READ)
    if isinstance(who, Response):
        return who
    try:
        profile = await run_in_threadpool(open_badges(request).profile, who)
    except ServiceError as error:
        return _imsx(error.status, error.detail, "unknown_object")
    return JSONResponse(profile, headers=NO_STORE)


async def _bearer(request: Request, scope: str) -> Principal | Response:
    """The learner the request's access token acts for (read only, as the learner's own token
    would), or the refusal: 401 ``invalid_token``, 403 ``insufficient_scope``."""
    api = open_badges(request)
    try:
        found = await oauth_request(request, form=[])
        grant = await run_in_threadpool(api.server.bearer, found, scope)
    except OAuth2Error as error:
        result = oauth_error(error)
        minor = "forbidden" if result.status == 403 else "unauthorized_request"
        description = str(getattr(error, "description", "") or error.error)
        headers = dict(result.headers)
        if "WWW-Authenticate" not in headers:  # RFC 6750 section 3: always say which scheme
            extra = f', scope="{scope}"' if result.status == 403 else ""
            headers["WWW-Authenticate"] = f'Bearer error="{error.error}"{extra}'
        return _imsx(result.status, description, minor, headers=headers)
    return Principal(token_id=f"oauth:{grant.client_id}", name=f"oauth:{grant.client_id}",
                     role="learner", learner=grant.learner)  # fmt: skip


def _imsx(status: int, description: str, minor: str, *,
          headers: dict[str, str] | None = None) -> JSONResponse:  # fmt: skip
    """The specification's error body (``Imsx_StatusInfo``)."""
    body = {
        "imsx_codeMajor": "failure", "imsx_severity": "error",
        "imsx_description": description,
        "imsx_codeMinor": {"imsx_codeMinorField": [
            {"imsx_codeMinorFieldName": "TargetEndSystem", "imsx_codeMinorFieldValue": minor}]},
    }  # fmt: skip
    merged = {k: v for k, v in (headers or {}).items() if k.lower() != "content-type"}
    return JSONResponse(body, status_code=status, headers={**merged, **NO_STORE})


def _integer(text: str | None, name: str, default: int, low: int, high: int) -> int:
    if text is None:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise ValueError(f"'{name}' must be an integer from {low} to {high}")
    return int(text)


def _instant(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        found = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("'since' must be an ISO 8601 date-time with an offset") from None
    if found.tzinfo is None:
        raise ValueError("'since' must be an ISO 8601 date-time with an offset")
    return found


def _links(url: str, query: list[tuple[str, str]], limit: int, offset: int,
           total: int) -> str:  # fmt: skip
    """RFC 8288 ``Link`` header value: first, last, and next / prev where they exist."""
    kept = [(k, v) for k, v in query if k not in ("limit", "offset")]

    def link(at: int, rel: str) -> str:
        params: list[tuple[str, Any]] = [*kept, ("limit", limit), ("offset", at)]
        return f'<{url}?{urlencode(params)}>; rel="{rel}"'

    last = max(0, (total - 1) // limit * limit)
    found = [link(0, "first")]
    if offset + limit < total:
        found.append(link(offset + limit, "next"))
    if offset > 0:
        found.append(link(max(0, offset - limit), "prev"))
    found.append(link(last, "last"))
    return ", ".join(found)
