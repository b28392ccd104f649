"""Badge images, baked badges and certificates under ``/api/v1``: thin routes over
`api.service.badges`.

    GET /achievements/{policy}/image[.png|.svg]   the policy's badge image (no token: it is
                                                  every credential's `achievement.image`)
    GET /learners/{id}/credentials/{cid}/badge.png|badge.svg   the credential baked into it
    GET /learners/{id}/credentials/{cid}/certificate.pdf       the one-page PDF certificate

The last two need the access of reading the credential (the learner themself, assessors,
trainers, admins).
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Path, Query, Response
from starlette.concurrency import run_in_threadpool

from ..adapters.baking import BadgeImage, ImageKind
from .credential_routes import CredentialPath, Credentials, LearnerPath
from .guard import GuardedRoute
from .problems import responses
from .routes import PREFIX, Who
from .service import badges

TAG: Final = "credentials"
MAX_NAME: Final = 120
PolicyPath = Annotated[str, Path(min_length=1, max_length=200, description="policy id")]
_IMAGES: Final = {"image/png": {"schema": {"type": "string", "format": "binary"}},
                  "image/svg+xml": {"schema": {"type": "string"}}}  # fmt: skip
_CACHE: Final = "public, max-age=300"

router = APIRouter(prefix=PREFIX, tags=[TAG], responses=responses(400, 422),
                   route_class=GuardedRoute)  # fmt: skip


@router.get("/achievements/{policy}/image", summary="A policy's badge image (no token needed)",
            responses={**responses(404, 409), 200: {"description": "PNG or SVG",
                                                    "content": _IMAGES}})  # fmt: skip
def achievement_image(api: Credentials, policy: PolicyPath) -> Response:
    """The image the policy names (PNG or SVG, from `credentials/`), else the badge the engine
    generates from the achievement's name and competencies (SVG). Not baked."""
    return _image(badges.badge_image(api, policy), cache=True)


@router.get("/achievements/{policy}/image.{kind}",
            summary="A policy's badge image as PNG or SVG (no token needed)",
            responses={**responses(404, 409), 200: {"description": "the image",
                                                    "content": _IMAGES}})  # fmt: skip
def achievement_image_as(
    api: Credentials, policy: PolicyPath, kind: Annotated[ImageKind, Path()]
) -> Response:
    """A generated badge comes in both; an image the policy names only in its own kind
    (404 for the other)."""
    return _image(badges.badge_image(api, policy, kind), cache=True)


@router.get("/learners/{learner}/credentials/{credential_id}/badge.{kind}",
            summary="The credential baked into its badge image (Open Badges 3.0 baking)",
            responses={**responses(401, 403, 404, 409), 200: {
                "description": "PNG with an openbadgecredential iTXt chunk, or SVG with an "
                "openbadges:credential element", "content": _IMAGES}})  # fmt: skip
def baked_badge(
    api: Credentials,
    who: Who,
    learner: LearnerPath,
    credential_id: CredentialPath,
    kind: Annotated[ImageKind, Path()],
) -> Response:
    """The signed credential inside the badge image: hosts and wallets that import baked
    badges take it as it is, and `POST /credentials/verify` (or `assessengine credential
    verify FILE`) takes it back. 409 for a revoked credential; 404 for a kind the policy's
    image does not come in."""
    image = badges.baked_badge(api, who, learner, credential_id, kind)
    name = badges.download_name(learner, credential_id, f"badge.{image.kind}")
    return _image(image, filename=name)


@router.get("/learners/{learner}/credentials/{credential_id}/certificate.pdf",
            summary="The credential's one-page PDF certificate",
            responses={**responses(401, 403, 404, 409, 422), 200: {
                "description": "PDF", "content": {"application/pdf": {
                    "schema": {"type": "string", "format": "binary"}}}}})  # fmt: skip
async def certificate(
    api: Credentials,
    who: Who,
    learner: LearnerPath,
    credential_id: CredentialPath,
    name: Annotated[str | None, Query(min_length=1, max_length=MAX_NAME, description=(
        "the name to print (default: the learner id; the engine keeps no names)"))] = None,
) -> Response:
    """Learner name, achievement, competencies, dates, issuer, and a QR code to the
    credential's page. 409 for a revoked credential."""
    pdf = await run_in_threadpool(badges.certificate, api, who, learner, credential_id,
                                  learner_name=name)  # fmt: skip
    filename = badges.download_name(learner, credential_id, "certificate.pdf")
    disposition = f'attachment; filename="{filename}"'
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": disposition})


def _image(image: BadgeImage, *, cache: bool = False, filename: str | None = None) -> Response:
    headers = {"X-Content-Type-Options": "nosniff"}
    if image.kind == "svg":  # an SVG opened directly runs no script and loads nothing
        headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    if cache:
        headers["Cache-Control"] = _CACHE
    if filename is not None:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return Response(image.data, media_type=image.media_type, headers=headers)
