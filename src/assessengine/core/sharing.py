"""What the public page of a credential offers besides the credential: the "Add to LinkedIn
profile" link, and which representation a request asks for (content negotiation). Pure.

LinkedIn's add-to-profile link for certifications (LinkedIn "Add to Profile for
Certifications"): ``https://www.linkedin.com/profile/add`` with ``startTask=CERTIFICATION_NAME``,
``name`` (the certification), ``organizationId`` (the issuer's LinkedIn company id) or else
``organizationName``, ``issueYear`` / ``issueMonth``, ``expirationYear`` /
``expirationMonth`` (left out when the credential does not expire), ``certUrl`` (where it can
be checked: the public page) and ``certId`` (the credential's id).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal
from urllib.parse import urlencode

LINKEDIN_ADD_TO_PROFILE: Final = "https://www.linkedin.com/profile/add"

Representation = Literal["html", "json", "ld+json"]
_OFFERED: Final[dict[str, Representation]] = {
    "text/html": "html",
    "application/json": "json",
    "application/ld+json": "ld+json",
    "application/vc+ld+json": "ld+json",
}
MEDIA_TYPES: Final[dict[Representation, str]] = {
    "html": "text/html",
    "json": "application/json",
    "ld+json": "application/ld+json",
}


def linkedin_add_to_profile_url(
    *,
    name: str,
    organization_name: str,
    organization_id: str | None = None,
    issued: datetime,
    expires: datetime | None,
    cert_url: str,
    cert_id: str,
) -> str:
    """The link that opens LinkedIn's "add certification" form filled in (see the module)."""
    query: list[tuple[str, str]] = [("startTask", "CERTIFICATION_NAME"), ("name", name)]
    if organization_id:
        query.append(("organizationId", organization_id))
    else:
        query.append(("organizationName", organization_name))
    query += [("issueYear", str(issued.year)), ("issueMonth", str(issued.month))]
    if expires is not None:
        query += [("expirationYear", str(expires.year)), ("expirationMonth", str(expires.month))]
    query += [("certUrl", cert_url), ("certId", cert_id)]
    return f"{LINKEDIN_ADD_TO_PROFILE}?{urlencode(query)}"


def negotiate(accept: str | None) -> Representation:
    """The representation an ``Accept`` header prefers among HTML, JSON and JSON-LD (RFC 9110
    quality values; the more specific range wins over ``*/*`` and ``type/*``; on a tie HTML,
    then JSON-LD, then JSON). No header, a malformed one, or one that accepts none of them:
    HTML, the browser's page (never a 406: a person following a link gets something to read)."""
    if not accept:
        return "html"
    best: dict[Representation, tuple[float, int]] = {}
    for part in accept.split(",")[:64]:
        media, quality = _media_range(part)
        if media is None:
            continue
        for offered, kind in _OFFERED.items():
            specificity = _matches(media, offered)
            if specificity < 0:
                continue
            found = best.get(kind)
            if found is None or specificity > found[1]:
                best[kind] = (quality, specificity)
    ranked = [(q, kind) for kind, (q, _) in best.items() if q > 0]
    if not ranked:
        return "html"
    order: dict[Representation, int] = {"html": 2, "ld+json": 1, "json": 0}
    return max(ranked, key=lambda item: (item[0], order[item[1]]))[1]


def _media_range(part: str) -> tuple[str | None, float]:
    media, *params = (p.strip() for p in part.split(";"))
    if media.count("/") != 1:
        return None, 0.0
    quality = 1.0
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                quality = float(value)
            except ValueError:
                return None, 0.0
            if not 0.0 <= quality <= 1.0:
                return None, 0.0
    return media.lower(), quality


def _matches(media: str, offered: str) -> int:
    """-1: `media` does not cover `offered`; else how specific it is (0 ``*/*``, 1 ``t/*``,
    2 exact)."""
    if media == "*/*":
        return 0
    kind, _, sub = media.partition("/")
    if sub == "*":
        return 1 if offered.startswith(f"{kind}/") else -1
    return 2 if media == offered else -1
