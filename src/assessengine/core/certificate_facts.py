"""What a printed certificate says, read from a signed credential. Pure: a document in, facts out.

`certificate_facts(document, learner_name=...)` takes the achievement's name, type and
description, the competencies (alignment code and name), the dates (awarded, valid from,
valid until), the issuer's name and the credential id from an Open Badges 3.0 credential, so
the certificate shows exactly what the signed document says and nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .credentials import CredentialError


@dataclass(frozen=True, slots=True)
class CertificateFacts:
    """One certificate's text. Dates are the document's (``YYYY-MM-DD``; None when absent)."""

    credential_id: str
    learner: str
    achievement: str
    achievement_type: str
    description: str
    competencies: tuple[tuple[str, str], ...]  # (code, name)
    issuer: str
    awarded: str
    valid_until: str | None


def certificate_facts(document: Mapping[str, Any], *, learner_name: str) -> CertificateFacts:
    """The facts of `document` (an OpenBadgeCredential); CredentialError when it lacks the
    achievement, the issuer's name or its dates."""
    try:
        subject = document["credentialSubject"]
        achievement = subject["achievement"]
        issuer = document["issuer"]
        awarded = str(document.get("awardedDate") or document["validFrom"])
        competencies = tuple(
            (str(a.get("targetCode", "")), str(a["targetName"]))
            for a in achievement.get("alignment", ())
        )
        until = document.get("validUntil")
        return CertificateFacts(
            credential_id=str(document["id"]),
            learner=learner_name,
            achievement=str(achievement["name"]),
            achievement_type=str(achievement.get("achievementType", "Achievement")),
            description=str(achievement.get("description", "")),
            competencies=competencies,
            issuer=str(issuer["name"] if isinstance(issuer, Mapping) else issuer),
            awarded=awarded[:10],
            valid_until=None if until is None else str(until)[:10],
        )
    except (KeyError, TypeError, AttributeError) as error:
        raise CredentialError(f"not a credential a certificate can be made of: {error}") from None
