"""Badge images, baked badges and PDF certificates of issued credentials, without HTTP.

Thin functions over `CredentialApi` (which checks roles and who may see which learner) and the
adapters that draw and bake (`adapters.policies.badge_image`, `adapters.baking`,
`adapters.certificate`); the HTTP routes (`api.badge_routes`) and the CLI
(`assessengine credential badge|certificate`) both come here.

- `badge_image(api, policy, kind)`: public, as the achievement is (it is `achievement.image`).
- `baked_badge(api, who, learner, credential, kind)` and `certificate(...)`: as reading the
  credential (the learner, assessors, trainers, admins); a revoked credential is refused
  (409): a badge or a paper handed on after the revocation would claim what no longer holds.
- The certificate's QR code points at `public_page_url(api, issued)`: the credential's public
  page while it is shared.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ...adapters.baking import BadgeImage, BakingError, ImageKind, bake
from ...adapters.certificate import render_certificate
from ...adapters.policies import badge_image as policy_badge_image
from ...core.certificate_facts import certificate_facts
from ...core.credentials import CredentialError
from ...core.policy import PolicyError
from ...credential_service import public_credential_url
from .access import Principal
from .credentials import CredentialApi, CredentialOut
from .errors import ConflictError, NotFoundError


def badge_image(api: CredentialApi, policy_id: str, kind: ImageKind | None = None) -> BadgeImage:
    """The policy's badge image (not baked); 404 for an unknown policy or a kind it does not
    come in (a PNG named by the policy has no SVG, and the other way round)."""
    policy = api.policy(policy_id)
    try:
        return policy_badge_image(policy, kind)
    except BakingError as error:
        raise NotFoundError(str(error)) from None
    except PolicyError as error:
        raise ConflictError(f"the badge image of {policy_id!r} is not usable: {error}") from None


def badge_kinds(api: CredentialApi, policy_id: str) -> tuple[ImageKind, ...]:
    """The kinds the policy's badge comes in: its own image's, or both when generated."""
    name = api.policy(policy_id).achievement.image
    if name is None:
        return ("png", "svg")
    return ("png",) if name.endswith(".png") else ("svg",)


def baked_badge(
    api: CredentialApi, who: Principal, learner: str, credential_id: str, kind: ImageKind
) -> BadgeImage:
    """The credential baked into its policy's badge image (Open Badges 3.0 baking)."""
    held = _active(api, who, learner, credential_id)
    image = badge_image(api, held.policy, kind)
    return BadgeImage(image.kind, bake(image, held.document))


def baked_document(api: CredentialApi, policy_id: str, document: Mapping[str, Any],
                   kind: ImageKind) -> BadgeImage:  # fmt: skip
    """`document` baked into `policy_id`'s badge image, for a caller that has already decided
    it may be handed out (the public page of a shared, unrevoked credential)."""
    image = badge_image(api, policy_id, kind)
    return BadgeImage(image.kind, bake(image, document))


def certificate(
    api: CredentialApi,
    who: Principal,
    learner: str,
    credential_id: str,
    *,
    learner_name: str | None = None,
    public_url: str | None = None,
) -> bytes:
    """The credential's one-page PDF certificate. The name printed is `learner_name`, else the
    learner id (the engine keeps no names); the QR code points at `public_url`, else
    `public_page_url`."""
    held = _active(api, who, learner, credential_id)
    try:
        facts = certificate_facts(held.document, learner_name=learner_name or learner)
        return render_certificate(facts, public_url=public_url or public_page_url(api, held))
    except CredentialError as error:
        raise ConflictError(f"cannot make the certificate: {error}") from None


def download_name(learner: str, credential_id: str, tail: str) -> str:
    """A file name for a download: ``<learner>-<first 8 of the uuid>-<tail>``, safe in a
    Content-Disposition header."""
    short = credential_id.removeprefix("urn:uuid:")[:8]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{learner}-{short}-{tail}")


def public_page_url(api: CredentialApi, held: CredentialOut) -> str:
    """Where a credential is looked at from a link: its public page
    (`credential_service.public_credential_url`, no sign-in) while it is shared; once the
    learner has hidden it, its page on this engine, which asks the reader to sign in."""
    share = api._credentials().share_of(held.id)
    if share is not None:
        return public_credential_url(api.urls.base, share.public_id)
    learner, credential_id = quote(held.learner, safe=""), quote(held.id, safe="")
    return f"{api.urls.base}/learners/{learner}/credentials/{credential_id}"


def _active(api: CredentialApi, who: Principal, learner: str, credential_id: str) -> CredentialOut:
    held = api.credential(who, learner, credential_id)
    if held.revoked is not None:
        raise ConflictError(f"credential {held.id} was revoked ({held.revoked.reason}): no badge "
                            "or certificate is made of it")  # fmt: skip
    return held


