"""The learner's credential pages (server-rendered, in the style of `api.web`, whose sign-in,
cookies and error pages they use):

    /learners/{id}/credentials                     the learner's credentials
    /learners/{id}/credentials/{credential_id}     one: the badge (achievement, competencies),
                                                   its evidence (each session's narrative and
                                                   chain head) and its verification result
    /learners/{id}/credentials/{credential_id}/credential.json   the signed document
    /learners/{id}/credentials/{credential_id}/badge.png|svg     baked into its badge image
    /learners/{id}/credentials/{credential_id}/certificate.pdf   its PDF certificate
    /credentials/expiring[?within_days=N]          staff: active credentials that expire
                                                   within N days (90), not renewed yet

Access is the API's (`CredentialApi`): the learner themself (another learner's: not found),
assessors and admins. The service is ``request.app.state.credentials``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import quote, unquote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup, escape

from ..adapters.did_web import DidWebError, did_document_url
from ..core.credentials import CHAIN_HEAD_LABEL
from ..credential_service import PUBLIC_EVIDENCE_PATH
from .credential_routes import MAX_EXPIRING_DAYS
from .service import InvalidError, NotFoundError, Principal, ReviewService, badges
from .service.credentials import CredentialApi, CredentialOut
from .service.public_credentials import PublicCredentials
from .web import SECURITY_HEADERS, SIGNED_IN, _action, _page, _redirect, _render

router = APIRouter(include_in_schema=False)

_STRONG = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")


def _api(request: Request) -> CredentialApi:
    api: CredentialApi = request.app.state.credentials
    return api


def _public(request: Request) -> PublicCredentials:
    public: PublicCredentials = request.app.state.public_credentials
    return public


def credentials_url(learner: str, credential_id: str | None = None) -> str:
    base = f"/learners/{quote(learner, safe='')}/credentials"
    return base if credential_id is None else f"{base}/{quote(credential_id, safe='')}"


@router.get("/credentials/expiring", response_class=HTMLResponse)
def expiring_page(request: Request, within_days: str = "90") -> Response:
    def build(who: Principal, _: ReviewService) -> Response:
        days = int(within_days) if within_days.isdigit() else 0
        if not 1 <= days <= MAX_EXPIRING_DAYS:
            raise InvalidError(f"within_days must be a whole number from 1 to "
                               f"{MAX_EXPIRING_DAYS}, not {within_days!r}")  # fmt: skip
        items = _api(request).expiring(who, days)
        return _render(request, "expiring.html", who=who, items=items, within_days=days)

    return _page(request, build)


@router.get("/learners/{learner}/credentials", response_class=HTMLResponse)
def credentials_page(request: Request, learner: str) -> Response:
    def build(who: Principal, _: ReviewService) -> Response:
        items = [_summary(c) for c in reversed(_api(request).credentials_of(who, learner))]
        return _render(request, "credentials.html", who=who, learner=learner, items=items)

    return _page(request, build)


@router.get("/learners/{learner}/credentials/{credential_id}", response_class=HTMLResponse)
def credential_page(request: Request, learner: str, credential_id: str) -> Response:
    def build(who: Principal, _: ReviewService) -> Response:
        api = _api(request)
        found = api.credential(who, learner, credential_id)
        result = api.verify(found.document)
        json_url = credentials_url(learner, found.id) + "/credential.json"
        downloads = [] if found.revoked else [
            (f"Baked badge ({kind.upper()})", f"{credentials_url(learner, found.id)}/badge.{kind}")
            for kind in badges.badge_kinds(api, found.policy)
        ] + [("Certificate (PDF)", f"{credentials_url(learner, found.id)}/certificate.pdf")]
        share = _public(request).share_state(who, found.id)
        return _render(request, "credential.html", who=who, learner=learner, downloads=downloads,
                       c=_summary(found), badge=badge_view(found.document),
                       evidence=evidence_view(found.document), result=result,
                       list_url=credentials_url(learner), json_url=json_url, share=share,
                       may_share=who.role in ("admin", "learner"))  # fmt: skip

    return _page(request, build)


@router.get("/learners/{learner}/credentials/{credential_id}/badge.{kind}")
def credential_badge(request: Request, learner: str, credential_id: str, kind: str) -> Response:
    def build(who: Principal, _: ReviewService) -> Response:
        if kind not in ("png", "svg"):
            raise NotFoundError(f"no badge.{kind}: badge.png or badge.svg")
        image = badges.baked_badge(_api(request), who, learner, credential_id,
                                   "png" if kind == "png" else "svg")  # fmt: skip
        return _download(image.data, image.media_type, learner, credential_id, f"badge.{kind}")

    return _page(request, build)


@router.get("/learners/{learner}/credentials/{credential_id}/certificate.pdf")
def credential_certificate(request: Request, learner: str, credential_id: str) -> Response:
    def build(who: Principal, _: ReviewService) -> Response:
        pdf = badges.certificate(_api(request), who, learner, credential_id)
        return _download(pdf, "application/pdf", learner, credential_id, "certificate.pdf")

    return _page(request, build)


def _download(body: bytes, media: str, learner: str, credential_id: str, tail: str) -> Response:
    name = badges.download_name(learner, credential_id, tail)
    headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'}
    return Response(body, media_type=media, headers=headers)


@router.post("/learners/{learner}/credentials/{credential_id}/share", dependencies=[SIGNED_IN])
def share_credential(
    request: Request, learner: str, credential_id: str, csrf: Annotated[str, Form()] = "",
    hide: Annotated[str, Form()] = "",
) -> Response:
    """The share form of the credential page: share (a public page, a new link if it was
    hidden) or, with ``hide``, hide it; then back to the credential page."""

    def build(who: Principal, _: ReviewService) -> Response:
        api = _api(request)
        found = api.credential(who, learner, credential_id)
        public = _public(request)
        if hide:
            public.hide(who, found.id)
        else:
            public.share(who, found.id)
        return _redirect(credentials_url(learner, found.id) + "#share")

    return _action(request, csrf, build)


@router.get("/learners/{learner}/credentials/{credential_id}/credential.json")
def credential_json(request: Request, learner: str, credential_id: str) -> Response:
    def build(who: Principal, _: ReviewService) -> Response:
        found = _api(request).credential(who, learner, credential_id)
        body = json.dumps(found.document, indent=2, ensure_ascii=False) + "\n"
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{found.learner}-{found.policy}") + ".json"
        headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'}
        return Response(body, media_type="application/json", headers=headers)

    return _page(request, build)


# ==================================================================================== views


def _summary(c: CredentialOut) -> dict[str, Any]:
    name = _text(_dig(c.document, "credentialSubject", "achievement", "name")) or c.policy
    return {
        "id": c.id, "policy": c.policy, "name": name, "learner": c.learner,
        "issued_at": c.issued_at.strftime("%Y-%m-%d %H:%M UTC"),
        "valid_until": None if c.valid_until is None else c.valid_until.strftime("%Y-%m-%d"),
        "revoked": c.revoked, "url": credentials_url(c.learner, c.id),
    }  # fmt: skip


def badge_view(document: Mapping[str, Any]) -> dict[str, Any]:
    """What the credential certifies, read from the signed document itself."""
    achievement = _dig(document, "credentialSubject", "achievement")
    achievement = achievement if isinstance(achievement, Mapping) else {}
    issuer = document.get("issuer")
    issuer = issuer if isinstance(issuer, Mapping) else {"id": issuer}
    results = []
    for item in _list(_dig(document, "credentialSubject", "result")):
        described = _text(item.get("resultDescription"))
        if "/criterion/" not in described:  # the per-rubric results (scores)
            results.append({"rubric": described.rsplit("/", 1)[-1], "score": _text(
                item.get("value")), "status": _text(item.get("status"))})
    return {
        "name": _text(achievement.get("name")),
        "type": _text(achievement.get("achievementType")),
        "description": _text(achievement.get("description")),
        "criteria": _narrative(_text(_dig(achievement, "criteria", "narrative"))),
        "competencies": [
            {"code": _text(a.get("targetCode")), "name": _text(a.get("targetName")),
             "framework": _text(a.get("targetFramework")), "url": _text(a.get("targetUrl"))}
            for a in _list(achievement.get("alignment"))
        ],
        "issuer": _text(issuer.get("name")) or _text(issuer.get("id")),
        "issuer_id": _text(issuer.get("id")),
        "issuer_did_document": _did_document_of(_text(issuer.get("id"))),
        "valid_from": _text(document.get("validFrom")),
        "valid_until": _text(document.get("validUntil")),
        "results": results,
    }  # fmt: skip


def _did_document_of(issuer: str) -> str | None:
    """Where a did:web issuer's DID document is published (None for another DID)."""
    try:
        return did_document_url(issuer) if issuer.startswith("did:web:") else None
    except DidWebError:
        return None


def evidence_view(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for item in _list(document.get("evidence")):
        ident = _text(item.get("id"))
        session = unquote(ident.rsplit("/", 1)[-1]) if _names_session(ident) else None
        description = _text(item.get("description"))
        out.append({
            "name": _text(item.get("name")) or ident, "genre": _text(item.get("genre")),
            "session": session, "narrative": _narrative(_text(item.get("narrative"))),
            "chain_head": description.removeprefix(CHAIN_HEAD_LABEL)
            if description.startswith(CHAIN_HEAD_LABEL) else None,
        })  # fmt: skip
    return out


def _names_session(evidence_id: str) -> bool:
    """Whether an evidence id ends in a session id: the public evidence IRI of credentials
    issued with share links, the session's API URL of those issued before."""
    return "/api/v1/sessions/" in evidence_id or f"{PUBLIC_EVIDENCE_PATH}/" in evidence_id


def _narrative(text: str) -> Markup:
    """The evidence narrative's small Markdown (paragraphs, ``- `` lists, ``**bold**``,
    ```code```) as HTML; everything else escaped."""
    html: list[str] = []
    listing = False
    for line in text.splitlines():
        inline = _CODE.sub(r"<code>\1</code>", _STRONG.sub(r"<strong>\1</strong>",
                                                           str(escape(line))))  # fmt: skip
        if line.startswith("- "):
            if not listing:
                html.append("<ul class=\"narrative\">")
                listing = True
            html.append(f"<li>{inline[2:]}</li>")
            continue
        if listing:
            html.append("</ul>")
            listing = False
        if line.strip():
            html.append(f"<p>{inline}</p>")
    if listing:
        html.append("</ul>")
    return Markup("\n".join(html))  # every piece of text was escaped above


def _dig(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _list(value: Any) -> list[Mapping[str, Any]]:
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, Mapping)]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
