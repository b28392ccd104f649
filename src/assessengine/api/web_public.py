"""Public, content-negotiated representations of shared credentials (no token):

    /public/credentials/{public id}                   the public page (HTML), or the signed
                                                      credential (JSON / JSON-LD)
    /public/credentials/{public id}/credential.json   the signed credential, as a download
    /public/subjects/{credential}                     a credential's `credentialSubject.id`
    /public/evidence/{credential}/{session}           a credential's `evidence[].id`

Which representation: `core.sharing.negotiate` over the ``Accept`` header (``text/html`` the
page; ``application/json`` JSON; ``application/ld+json`` JSON-LD, the same document; anything
else, or nothing: the page). Every answer carries ``Vary: Accept``. Whatever is not shared
(hidden, never shared, unknown, malformed) is one 404, in the representation asked for.
What is public, and what is not: `api.service.public_credentials`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ..core.sharing import MEDIA_TYPES, Representation, negotiate
from .problems import MEDIA_TYPE
from .service import NotFoundError, badges
from .service.public_credentials import PublicCredentials
from .web import SECURITY_HEADERS, _render
from .web_credentials import badge_view, evidence_view

router = APIRouter(include_in_schema=False)

PUBLIC_HEADERS: Final = {**SECURITY_HEADERS, "Cache-Control": "no-cache", "Vary": "Accept",
                         "Referrer-Policy": "no-referrer"}  # fmt: skip
"""No-cache (a hidden share must stop answering at once) and no referrer (the page's URL is
its secret: it must not leak to the sites it links to)."""


def public_of(request: Request) -> PublicCredentials:
    public: PublicCredentials = request.app.state.public_credentials
    return public


@router.get("/public/credentials/{public_id}", response_class=HTMLResponse)
def credential_page(request: Request, public_id: str) -> Response:
    kind = negotiate(request.headers.get("accept"))
    public = public_of(request)
    try:
        if kind != "html":
            return _json(public.document(public_id).document, kind)
        view = public.page(public_id)
    except NotFoundError as exc:
        return _not_found(request, kind, exc)
    document = view.document
    policy = public.document(public_id).policy
    kinds = badges.badge_kinds(public.api, policy)
    baked = [] if view.revoked_at else [
        (kind.upper(), f"{_path(request)}/badge.{kind}") for kind in kinds]
    response = _render(
        request, "public_credential.html", c=view, badge=badge_view(document),
        evidence=evidence_view(document), result=view.verification,
        json_url=f"{_path(request)}/credential.json", baked=baked,
        image_url=f"/api/v1/achievements/{quote(policy, safe='')}/image.{kinds[0]}",
    )  # fmt: skip
    response.headers.update(PUBLIC_HEADERS)
    return response


@router.get("/public/credentials/{public_id}/credential.json")
def credential_download(request: Request, public_id: str) -> Response:
    try:
        issued = public_of(request).document(public_id)
    except NotFoundError as exc:
        return _not_found(request, "json", exc)
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", issued.policy) + "-credential.json"
    response = _json(issued.document, "json", indent=2)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@router.get("/public/credentials/{public_id}/badge.{kind}")
def credential_baked(request: Request, public_id: str, kind: str) -> Response:
    """The shared credential baked into its badge (PNG or SVG, as the policy's image comes);
    none of a revoked credential."""
    public = public_of(request)
    try:
        issued = public.document(public_id)
        if kind not in badges.badge_kinds(public.api, issued.policy):
            raise NotFoundError(f"no badge.{kind} of this credential")
        if public.api._credentials().revocation(issued.id) is not None:
            raise NotFoundError("the credential was revoked: its badge is not handed out")
        image = badges.baked_document(public.api, issued.policy, issued.document,
                                      "png" if kind == "png" else "svg")  # fmt: skip
    except NotFoundError as exc:
        return _not_found(request, "json", exc)
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", issued.policy) + f"-badge.{kind}"
    headers = {**PUBLIC_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'}
    return Response(image.data, media_type=image.media_type, headers=headers)


@router.get("/public/subjects/{ref}", response_class=HTMLResponse)
def subject(request: Request, ref: str) -> Response:
    kind = negotiate(request.headers.get("accept"))
    public = public_of(request)
    try:
        body, issued = public.subject(ref)
        page_url = public.public_url(issued.id)
    except NotFoundError as exc:
        return _not_found(request, kind, exc)
    if kind != "html":
        return _json(body, kind)
    return _page(request, "public_subject.html", subject=body, page_url=page_url,
                 badge=badge_view(issued.document))  # fmt: skip


@router.get("/public/evidence/{ref}/{session}", response_class=HTMLResponse)
def evidence(request: Request, ref: str, session: str) -> Response:
    kind = negotiate(request.headers.get("accept"))
    public = public_of(request)
    try:
        body, issued = public.evidence(ref, session)
        page_url = public.public_url(issued.id)
    except NotFoundError as exc:
        return _not_found(request, kind, exc)
    if kind != "html":
        return _json(body, kind)
    shown = evidence_view({"evidence": [body]})
    return _page(request, "public_evidence.html", evidence=shown[0], page_url=page_url,
                 badge=badge_view(issued.document))  # fmt: skip


def achievement_page(request: Request, achievement: Mapping[str, Any]) -> Response:
    """The page of an achievement (`/api/v1/achievements/{policy}` asked for HTML)."""
    badge = badge_view({"credentialSubject": {"achievement": achievement}})
    descriptions = [{"name": str(d.get("name", "")), "type": str(d.get("resultType", "")),
                     "required": d.get("requiredValue") or d.get("requiredLevel")}
                    for d in achievement.get("resultDescription", [])]  # fmt: skip
    return _page(request, "public_achievement.html", badge=badge, descriptions=descriptions)


# ==================================================================================== helpers


def _page(request: Request, template: str, **context: Any) -> Response:
    response = _render(request, template, **context)
    response.headers.update(PUBLIC_HEADERS)
    return response


def _json(document: Mapping[str, Any], kind: Representation, *, indent: int | None = None
          ) -> Response:  # fmt: skip
    body = json.dumps(document, ensure_ascii=False, indent=indent)
    media = MEDIA_TYPES["ld+json" if kind == "ld+json" else "json"]
    return Response(body, media_type=media, headers=PUBLIC_HEADERS)


def _not_found(request: Request, kind: Representation, exc: NotFoundError) -> Response:
    if kind == "html":
        return _page(request, "error.html", status=404, title="Not found", detail=exc.detail)
    problem = {"type": "urn:assessengine:problem:not-found", "title": "Not found",
               "status": 404, "detail": exc.detail, "instance": request.url.path}  # fmt: skip
    return Response(json.dumps(problem), status_code=404, media_type=MEDIA_TYPE,
                    headers=PUBLIC_HEADERS)  # fmt: skip


def _path(request: Request) -> str:
    return request.url.path.rstrip("/")
