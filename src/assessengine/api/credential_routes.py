"""The credential API under ``/api/v1``: thin routes over `CredentialApi` (which checks roles).

Issuing (assessor, admin), revoking (admin), a learner's credentials (the learner, assessor,
admin), a session's xAPI statements (as reading the session) and forwarding them to the LRS
(admin). Verifying, the status lists and the achievements are public: every credential names
its status list and achievement, and anyone holding one must be able to check it.

The service is ``request.app.state.credentials`` (set by `api.app.create_app`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Final
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..adapters.baking import MAX_BAKED_BYTES, BakingError, extract
from ..core.sharing import MEDIA_TYPES, negotiate
from ..credential_service import STATUS_LIST_TTL_S
from .guard import GuardedRoute, Requires
from .problems import MEDIA_TYPE, responses
from .routes import PREFIX, Who
from .service import FieldProblem, InvalidError, Principal, ServiceError, TooLargeError
from .service.access import Action
from .service.credentials import (
    MAX_CREDENTIAL_BYTES,
    CredentialApi,
    CredentialOut,
    ExpiringOut,
    ForwardOut,
    IssueIn,
    LearnerOut,
    PolicyProgress,
    RevokeIn,
    VerificationOut,
)
from .service.public_credentials import PublicCredentials, ShareOut

MAX_LIST_ID: Final = 2**62
"""The largest status list id asked for (a site numbers its lists in its own range of ids,
`storage.replication`: up to 2**63)."""

TAG: Final = "credentials"
CREDENTIAL_MEDIA_TYPE: Final = "application/json"


def credentials_of(request: Request) -> CredentialApi:
    api: CredentialApi = request.app.state.credentials
    return api


def public_of(request: Request) -> PublicCredentials:
    public: PublicCredentials = request.app.state.public_credentials
    return public


Credentials = Annotated[CredentialApi, Depends(credentials_of)]
Public = Annotated[PublicCredentials, Depends(public_of)]
LearnerPath = Annotated[str, Path(min_length=1, max_length=200, description="learner id")]
CredentialPath = Annotated[str, Path(min_length=1, max_length=200, description=(
    "credential id (`urn:uuid:...`, URL-encoded or not; the bare UUID also works)"))]
SessionPath = Annotated[str, Path(min_length=1, max_length=200, description="session id")]
MayIssue = Annotated[Principal, Depends(Requires(Action.ISSUE_CREDENTIALS))]
MayRevoke = Annotated[Principal, Depends(Requires(Action.REVOKE_CREDENTIALS))]
MayForward = Annotated[Principal, Depends(Requires(Action.FORWARD_XAPI))]
MayReadCohorts = Annotated[Principal, Depends(Requires(Action.READ_COHORTS))]
MAX_EXPIRING_DAYS: Final = 3650
MayShare = Annotated[Principal, Depends(Requires(Action.SHARE_CREDENTIALS))]
_OBJECT: Final = {"type": "object", "additionalProperties": True}

router = APIRouter(prefix=PREFIX, tags=[TAG], responses=responses(400, 422),
                   route_class=GuardedRoute)  # fmt: skip


well_known = APIRouter(tags=[TAG], responses=responses(404))
"""Routes at the host's root, outside ``/api/v1``: the engine's DID document."""
DID_JSON_MEDIA_TYPE: Final = "application/did+json"
DID_DOCUMENT_PATH: Final = "/.well-known/did.json"


class BadBodyError(ServiceError):
    status, slug, title = 400, "bad-request", "The body is not JSON"


def _upstream(description: str) -> dict[int | str, dict[str, Any]]:
    schema = {"$ref": "#/components/schemas/Problem"}
    return {502: {"description": description, "content": {MEDIA_TYPE: {"schema": schema}}}}


# ==================================================================================== issuing


@router.post(
    "/credentials/issue", status_code=201, summary="Issue a credential (assessor, admin)",
    responses={
        **responses(401, 403, 409, 422),
        201: {"description": "The signed OpenBadgeCredential (Open Badges 3.0, VC 2.0, "
              "DataIntegrityProof eddsa-rdfc-2022)", "content": {"application/json": {
                  "schema": _OBJECT}}},
    },
)  # fmt: skip
def issue(api: Credentials, who: MayIssue, body: IssueIn, response: Response) -> dict[str, Any]:
    """Decides over the learner's scored sessions (the machine's verdicts plus assessors'
    in-field observations; overrides do not count) and, when the policy is met, signs and files
    the credential. Not eligible: 422 problem `not-eligible` whose `errors` name each unmet
    requirement (`requirements[k]`) and what is missing. 409 when the learner already holds an
    active credential of the policy."""
    issued = api.issue(who, body)
    response.headers["Location"] = _credential_url(issued.learner, issued.id)
    return dict(issued.document)


@router.get("/learners/{learner}", summary="A learner: where their records are",
            responses=responses(401, 403, 404))  # fmt: skip
def get_learner(api: Credentials, who: Who, learner: LearnerPath) -> LearnerOut:
    """The `credentialSubject.id` of the learner's credentials. Learners: their own only."""
    return api.learner(who, learner)


@router.get("/learners/{learner}/progress", summary="A learner's progress towards each "
            "credential policy", responses=responses(401, 403, 404))  # fmt: skip
def learner_progress(api: Credentials, who: Who, learner: LearnerPath) -> list[PolicyProgress]:
    """Per shipped policy: each requirement met or not (with the sessions that meet it and
    what is missing), whether a credential can be issued now (`eligible`), and the active one
    held. Learners: their own only (another learner's: 404)."""
    return api.progress(who, learner)


@router.get("/credentials/expiring", summary="Credentials that expire soon (assessor, "
            "trainer, admin)", responses=responses(401, 403, 422))  # fmt: skip
def expiring(
    api: Credentials, who: MayReadCohorts,
    within_days: Annotated[int, Query(ge=1, le=MAX_EXPIRING_DAYS, description=(
        "how many days ahead to look"))] = 90,
) -> list[ExpiringOut]:  # fmt: skip
    """Active credentials whose validUntil falls within `within_days` days, soonest first,
    not renewed already: whom to schedule for a refresher. `renewal_opens` says when each can
    be renewed (None: its policy has no recertification)."""
    return api.expiring(who, within_days)


@router.get("/learners/{learner}/credentials", summary="A learner's credentials",
            responses=responses(401, 403, 404))  # fmt: skip
def list_credentials(api: Credentials, who: Who, learner: LearnerPath) -> list[CredentialOut]:
    """Oldest first, revoked ones included (`revoked` says when, by whom and why). Learners:
    their own only (another learner's: 404); assessors and admins: anyone's."""
    return api.credentials_of(who, learner)


@router.get("/learners/{learner}/credentials/{credential_id}", summary="One credential",
            responses=responses(401, 403, 404))  # fmt: skip
def get_credential(
    api: Credentials, who: Who, learner: LearnerPath, credential_id: CredentialPath
) -> CredentialOut:
    return api.credential(who, learner, credential_id)


@router.post("/credentials/{credential_id}/revoke", summary="Revoke a credential (admin)",
             responses=responses(401, 403, 404, 409, 422))  # fmt: skip
def revoke(
    api: Credentials, who: MayRevoke, credential_id: CredentialPath, body: RevokeIn
) -> CredentialOut:
    """Recorded with who, when and the reason (audit action `credential.revoke`); the status
    list served from now on has the credential's bit set, so verifiers see it revoked."""
    return api.revoke(who, credential_id, body)


# ==================================================================================== sharing


@router.get("/credentials/{credential_id}/share", summary="A credential's public page link",
            responses=responses(401, 403, 404))  # fmt: skip
def share_state(public: Public, who: Who, credential_id: CredentialPath) -> ShareOut:
    """Whether the credential has a public page, and its URL. Learners: their own only
    (another learner's: 404); assessors, trainers and admins: anyone's."""
    return public.share_state(who, credential_id)


@router.put("/credentials/{credential_id}/share", summary="Share a credential's public page "
            "(its learner, admin)", responses=responses(401, 403, 404, 409))  # fmt: skip
def share(public: Public, who: MayShare, credential_id: CredentialPath) -> ShareOut:
    """Idempotent: a shared credential keeps its link; a hidden one gets a new link (a public
    id never used before), so a link hidden once stays dead. Audited (`credential.share`)."""
    return public.share(who, credential_id)


@router.delete("/credentials/{credential_id}/share", summary="Hide a credential's public "
               "page (its learner, admin)", responses=responses(401, 403, 404, 409))  # fmt: skip
def hide(public: Public, who: MayShare, credential_id: CredentialPath) -> ShareOut:
    """From now on its link answers 404, as a link that never existed; its subject and
    evidence IRIs too. Idempotent. Audited (`credential.hide`)."""
    return public.hide(who, credential_id)


# ==================================================================================== public


@router.post(
    "/credentials/verify", summary="Verify a credential (no token needed)",
    responses=responses(400, 413, 422),
    openapi_extra={"requestBody": {"required": True, "description": "the credential (JSON, at "
                   f"most {MAX_CREDENTIAL_BYTES} bytes), or a baked badge (PNG or SVG, at most "
                   f"{MAX_BAKED_BYTES} bytes) that carries it",
                   "content": {"application/json": {"schema": _OBJECT},
                               "image/png": {"schema": {"type": "string", "format": "binary"}},
                               "image/svg+xml": {"schema": {"type": "string"}}}}},
)  # fmt: skip
async def verify(request: Request, api: Credentials) -> VerificationOut:
    """Each check reported: `proof`, `key`, `expansion`, `signature` (any change to the
    document fails it), `schema` (Open Badges 3.0 JSON Schema), `validity` (validFrom,
    validUntil), `status` (revocation, against this engine's current list when the credential
    names one of its lists; skipped otherwise). 200 whatever the verdict: `valid` is false when
    a check failed. A baked badge (``Content-Type: image/png`` or ``image/svg+xml``) is
    verified by the credential it carries; 422 when it is corrupt or carries none or two."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media in ("image/png", "image/svg+xml"):
        document = _baked(await _body(request, MAX_BAKED_BYTES, "a baked badge"))
    else:
        document = await _json_object(request, MAX_CREDENTIAL_BYTES)
    return await run_in_threadpool(api.verify, document)


@router.get(
    "/credentials/status/{list_id}", summary="A revocation list (no token needed)",
    responses={**responses(404), 200: {"description": "The signed "
               "BitstringStatusListCredential", "content": {"application/json": {
                   "schema": _OBJECT}}}},
)  # fmt: skip
def status_list(
    request: Request, api: Credentials, list_id: Annotated[int, Path(ge=1, le=MAX_LIST_ID)]
) -> Response:
    """W3C Bitstring Status List v1.0, statusPurpose `revocation`, signed by the issuer key,
    as it stands now. Every credential's `credentialStatus.statusListCredential` is this URL.
    Signed once per change (a revocation), so the same bytes are served until the next one:
    a strong `ETag` (304 to a matching `If-None-Match`), `Cache-Control: max-age` as the list's
    `ttl`, and a `validUntil` 30 days on (signed again, unchanged, halfway)."""
    published = api.published_status_list(list_id)
    body = published.document.encode("utf-8")
    headers = {"ETag": f'"{hashlib.sha256(body).hexdigest()[:32]}"',
               "Cache-Control": f"public, max-age={STATUS_LIST_TTL_S}"}  # fmt: skip
    if _matches(request.headers.get("if-none-match"), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=CREDENTIAL_MEDIA_TYPE, headers=headers)


@router.get(
    "/achievements/{policy}", summary="What a credential certifies (no token needed)",
    response_class=JSONResponse,
    responses={**responses(404), 200: {"description": "The Open Badges 3.0 Achievement",
               "content": {"application/json": {"schema": _OBJECT},
                           "application/ld+json": {"schema": _OBJECT},
                           "text/html": {"schema": {"type": "string"}}}}},
)  # fmt: skip
def achievement(
    request: Request, api: Credentials, policy: Annotated[str, Path(min_length=1, max_length=200)]
) -> Response:
    """The `achievement.id` of the engine's credentials: name, description, criteria, the
    competencies (alignment) of the policy and the `resultDescription`s its credentials'
    results point at. Content-negotiated: JSON (`application/json`), JSON-LD
    (`application/ld+json`), or a page for a browser (`text/html`, and any other Accept)."""
    body = api.achievement(policy)
    kind = negotiate(request.headers.get("accept"))
    if kind == "html":
        from .web_public import achievement_page  # noqa: PLC0415 (the pages import the API)

        return achievement_page(request, body)
    return JSONResponse(body, media_type=MEDIA_TYPES[kind], headers={"Vary": "Accept"})


@well_known.get(
    DID_DOCUMENT_PATH, summary="The engine's DID document under its did:web (no token needed)",
    responses={**responses(404), 200: {"description": "The DID document", "content": {
        DID_JSON_MEDIA_TYPE: {"schema": _OBJECT}}}},
)  # fmt: skip
def did_json(api: Credentials) -> Response:
    """Where ``did:web:HOST`` resolves (W3C did:web): every key the engine signed with as a
    ``Multikey`` verification method ``did:web:HOST#z6Mk...`` under `assertionMethod`, the
    current one first, then the retired ones a rotation kept, so that what they signed keeps
    verifying. 404 (a problem) when the engine issues as did:key, or before its first key."""
    body = json.dumps(api.did_document(), separators=(",", ":")).encode("utf-8")
    return Response(body, media_type=DID_JSON_MEDIA_TYPE,
                    headers={"Cache-Control": f"public, max-age={STATUS_LIST_TTL_S}"})


# ==================================================================================== xAPI


@router.get("/sessions/{session_id}/xapi", summary="A scored session as xAPI statements",
            responses=responses(401, 403, 404, 409))  # fmt: skip
def session_xapi(api: Credentials, who: Who, session_id: SessionPath) -> list[dict[str, Any]]:
    """xAPI 1.0.3: `completed`, then `passed` or `failed` (cmi5 verbs) with score, success,
    duration and each criterion's verdict (result extension); the assessor as
    `context.instructor` for field sessions. Reviewed as for credentials (observations count,
    overrides do not). 409 while the session is open or not scored."""
    return api.session_statements(who, session_id)


@router.post("/sessions/{session_id}/xapi/forward",
             summary="Send a session's xAPI statements to the LRS (admin)",
             responses={**responses(401, 403, 404, 409),
                        **_upstream("The LRS refused them, or failed every retry")})  # fmt: skip
def forward_xapi(api: Credentials, who: MayForward, session_id: SessionPath) -> ForwardOut:
    """POSTs the statements to the Learning Record Store the server was started with
    (`ASSESSENGINE_LRS_URL`, basic auth), retrying server errors, 429 and network failures with
    backoff. Statement ids follow their content; statements forwarded before that no longer
    stand (an observation or a re-scoring changed them) are voided in the same request
    (`voided`). 409 when no LRS is configured; 502 when the LRS refused or never answered."""
    return api.forward_statements(who, session_id)


# ==================================================================================== helpers


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names `etag` (or is ``*``); weak tags compare by
    their opaque part, as RFC 9110 says for If-None-Match."""
    if not if_none_match:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


def _credential_url(learner: str, credential_id: str) -> str:
    learner, credential_id = quote(learner, safe=""), quote(credential_id, safe="")
    return f"{PREFIX}/learners/{learner}/credentials/{credential_id}"


async def _body(request: Request, limit: int, what: str) -> bytes:
    """The request body, reading at most `limit` bytes (413 past it)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLargeError(f"{what} is at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _baked(data: bytes) -> dict[str, Any]:
    """The credential a baked badge carries; 422 naming what is wrong with the file."""
    try:
        return extract(data)[1]
    except BakingError as error:
        raise InvalidError(f"not a usable baked badge: {error}",
                           [FieldProblem("body", str(error))]) from None  # fmt: skip


async def _json_object(request: Request, limit: int) -> dict[str, Any]:
    """The request body as a JSON object, reading at most `limit` bytes."""
    body = await _body(request, limit, "a credential")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise BadBodyError("the body is not a JSON document") from None
    if not isinstance(data, dict):
        raise InvalidError("a credential is a JSON object",
                           [FieldProblem("body", "not a JSON object")])  # fmt: skip
    return data
