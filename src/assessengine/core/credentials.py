"""Open Badges 3.0 credential documents, built from small frozen inputs. Pure: no keys, no I/O.

`build_credential` returns the unsigned JSON document of an `OpenBadgeCredential` (VC Data Model
2.0 + Open Badges 3.0). The signer (`assessengine.adapters.signer`) adds the proof. Every
property emitted here is defined by the two bundled JSON-LD contexts, so JSON-LD expansion
drops nothing and every value is covered by the signature; tests hold the output to the
official JSON Schema.

Shape (see docs/credentials.md)::

    OpenBadgeCredential
      issuer               Profile (id = did:key of the signing key, name, url, description,
                           email, image)
      name, description    the achievement's
      validFrom/validUntil UTC, whole seconds; awardedDate
      credentialSchema     the official JSON Schema (1EdTechJsonSchemaValidator2019)
      credentialSubject    AchievementSubject (id = the learner; identifier = the salted
                           sha256 of the learner's email, when known)
        achievement        Achievement (MicroCredential, criteria narrative,
                           alignment = competencies, resultDescription = one per rubric and
                           one per rubric criterion)
        result             one Result per rubric (score, Completed/Failed) and per criterion
                           (achieved pass/fail/not-applicable level)
      evidence             one Evidence per qualifying session: verdict narrative and the
                           sha256 head of the session's stored event chain
      credentialStatus     BitstringStatusListEntry (optional)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal
from urllib.parse import quote

from ..errors import AssessEngineError
from .instants import utc_text

VC_V2_CONTEXT: Final = "https://www.w3.org/ns/credentials/v2"
OB_V3_CONTEXT: Final = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
#: The ``@context`` of every credential, in the order the Open Badges 3.0 schema requires.
OB_EXTENSIONS_CONTEXT: Final = "https://purl.imsglobal.org/spec/ob/v3p0/extensions.json"
CREDENTIAL_CONTEXT: Final = (VC_V2_CONTEXT, OB_V3_CONTEXT)
#: The ``@context`` of an issued credential: the extensions context defines the type of its
#: ``credentialSchema`` (``1EdTechJsonSchemaValidator2019``).
ISSUED_CONTEXT: Final = (*CREDENTIAL_CONTEXT, OB_EXTENSIONS_CONTEXT)
#: The official JSON Schema of an ``AchievementCredential``/``OpenBadgeCredential``.
OB_SCHEMA_URL: Final = (
    "https://purl.imsglobal.org/spec/ob/v3p0/schema/json/ob_v3p0_achievementcredential_schema.json"
)
OB_SCHEMA_VALIDATOR: Final = "1EdTechJsonSchemaValidator2019"
CREDENTIAL_TYPE: Final = ("VerifiableCredential", "OpenBadgeCredential")

#: Text that precedes the chain head in each evidence entry's ``description``.
CHAIN_HEAD_LABEL: Final = "sha256 head of the stored event chain: "

FinalVerdict = Literal["pass", "fail", "not_applicable"]
SessionKind = Literal["simulator", "field"]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_EMAIL = re.compile(r"^[^@\s<>\"]{1,64}@[^@\s<>\"]+\.[^@\s<>\"]+$")
_LEVEL_NAMES: Final[dict[FinalVerdict, str]] = {
    "pass": "Pass",
    "fail": "Fail",
    "not_applicable": "Not applicable",
}
_GENRES: Final[dict[SessionKind, str]] = {
    "simulator": "Simulator session",
    "field": "Field assessment",
}


class CredentialError(AssessEngineError):
    """A credential cannot be built, signed or checked as asked; the message says why."""


# ---------------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True, slots=True)
class IssuerProfile:
    """The issuing organisation. `id` must be the controller of the signing key (a did:key)."""

    id: str
    name: str
    url: str | None = None
    description: str | None = None
    email: str | None = None
    image_url: str | None = None  # the issuer's logo (``image``)

    def __post_init__(self) -> None:
        _require_iri(self.id, "issuer id")
        _require_text(self.name, "issuer name")
        for value, what in ((self.url, "issuer url"), (self.image_url, "issuer image")):
            if value is not None:
                _require_iri(value, what)
        if self.email is not None and not _EMAIL.match(self.email):
            raise CredentialError(f"issuer email is not an email address: {self.email!r}")


@dataclass(frozen=True, slots=True)
class RecipientIdentity:
    """The learner's email, to be carried as a salted hash (``credentialSubject.identifier``:
    an ``IdentityObject`` of ``identityType`` ``emailAddress``, ``hashed`` true,
    ``identityHash`` = ``sha256$`` + hex sha256 of the address (trimmed, lower-cased) followed
    by `salt`). The address itself is never written."""

    email: str
    salt: str

    def __post_init__(self) -> None:
        if not _EMAIL.match(self.email.strip()):
            raise CredentialError(f"not an email address: {self.email!r}")
        if not 8 <= len(self.salt) <= 64 or not self.salt.isalnum():
            raise CredentialError("the salt must be 8 to 64 letters or digits")

    @property
    def identity_hash(self) -> str:
        return identity_hash(self.email, self.salt)


def identity_hash(email: str, salt: str) -> str:
    """``sha256$<hex>`` of the address (trimmed, lower-cased) followed by the salt: what a
    host computes from the address it knows and the credential's ``salt`` to match it."""
    text = email.strip().lower() + salt
    return "sha256$" + hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class CompetencyAlignment:
    """A competency the achievement certifies: an ``alignment`` entry (``targetUrl`` required)."""

    code: str
    name: str
    url: str
    framework: str | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        _require_text(self.code, "competency code")
        _require_text(self.name, "competency name")
        _require_iri(self.url, f"url of competency {self.code!r}")


@dataclass(frozen=True, slots=True)
class AchievementInfo:
    """What is certified. `id` is an absolute IRI without a fragment (result descriptions
    are named by fragments of it)."""

    id: str
    name: str
    description: str
    criteria_narrative: str
    competencies: tuple[CompetencyAlignment, ...] = ()
    achievement_type: str = "MicroCredential"
    criteria_url: str | None = None  # a page describing the criteria (the rubric's, in words)
    image_url: str | None = None  # the badge image (``image``, captioned with the name)

    def __post_init__(self) -> None:
        _require_iri(self.id, "achievement id")
        if "#" in self.id:
            raise CredentialError(f"achievement id must not have a fragment: {self.id!r}")
        for value, what in (
            (self.name, "achievement name"),
            (self.description, "achievement description"),
            (self.criteria_narrative, "criteria narrative"),
        ):
            _require_text(value, what)
        if self.criteria_url is not None:
            _require_iri(self.criteria_url, "criteria url")
        if self.image_url is not None:
            _require_iri(self.image_url, "achievement image")


@dataclass(frozen=True, slots=True)
class CriterionOutcome:
    """One rubric criterion's final verdict. `points` is the criterion's weight, if any."""

    id: str
    title: str
    verdict: FinalVerdict
    critical: bool = False
    points: float | None = None

    def __post_init__(self) -> None:
        _require_text(self.id, "criterion id")
        _require_text(self.title, f"title of criterion {self.id!r}")
        if self.verdict not in _LEVEL_NAMES:
            raise CredentialError(
                f"criterion {self.id!r}: verdict must be pass, fail or not_applicable,"
                f" not {self.verdict!r}"
            )


@dataclass(frozen=True, slots=True)
class RubricOutcome:
    """A rubric's result as the credential reports it: score in 0..100 and its criteria."""

    rubric: str
    version: int
    title: str
    outcome: Literal["pass", "fail"]
    score: float
    criteria: tuple[CriterionOutcome, ...]
    min_score: float | None = None

    def __post_init__(self) -> None:
        _require_text(self.rubric, "rubric id")
        _require_score(self.score, f"score of rubric {self.rubric!r}")
        if self.min_score is not None:
            _require_score(self.min_score, f"min_score of rubric {self.rubric!r}")
        _require_unique([c.id for c in self.criteria], f"criteria of rubric {self.rubric!r}")


@dataclass(frozen=True, slots=True)
class SessionEvidence:
    """One qualifying session, summarised for an ``evidence`` entry.

    id:                 IRI where the session can be looked up (e.g. the engine's session URL)
    chain_head_sha256:  hex sha256 head of the session's stored event chain (64 lowercase hex)
    """

    id: str
    session: str
    kind: SessionKind
    rubric: str
    rubric_version: int
    outcome: Literal["pass", "fail"]
    score: float
    ended_at: datetime
    chain_head_sha256: str
    criteria: tuple[CriterionOutcome, ...] = ()
    assessor: str | None = None

    def __post_init__(self) -> None:
        _require_iri(self.id, f"evidence id of session {self.session!r}")
        _require_text(self.session, "session id")
        _require_score(self.score, f"score of session {self.session!r}")
        _timestamp(self.ended_at, f"end of session {self.session!r}")
        if not _SHA256_HEX.match(self.chain_head_sha256):
            raise CredentialError(
                f"session {self.session!r}: chain head must be 64 lowercase hex digits"
            )


@dataclass(frozen=True, slots=True)
class StatusEntry:
    """Where the credential's status bit lives: a ``BitstringStatusListEntry``."""

    list_credential: str
    index: int
    purpose: Literal["revocation", "suspension"] = "revocation"

    def __post_init__(self) -> None:
        _require_iri(self.list_credential, "status list credential")
        if "#" in self.list_credential:
            raise CredentialError("status list credential URL must not have a fragment")
        if self.index < 0:
            raise CredentialError(f"status list index must be >= 0, not {self.index}")


# ---------------------------------------------------------------------------------------------
# Building


@dataclass(frozen=True, slots=True)
class PriorCredential:
    """The credential a renewal renews: its id and when it was (or is) valid until. It goes
    into the new credential as one more ``evidence`` entry (genre `RENEWAL_GENRE`, id the
    prior credential's id), after the sessions."""

    id: str
    valid_until: datetime


RENEWAL_GENRE: Final = "Renewal"


def build_credential(
    *,
    credential_id: str,
    issuer: IssuerProfile,
    subject_id: str,
    achievement: AchievementInfo,
    results: Sequence[RubricOutcome],
    evidence: Sequence[SessionEvidence],
    valid_from: datetime,
    valid_until: datetime | None = None,
    status: StatusEntry | None = None,
    renews: PriorCredential | None = None,
    recipient: RecipientIdentity | None = None,
    awarded: datetime | None = None,
) -> dict[str, Any]:
    """The unsigned ``OpenBadgeCredential`` document (a fresh dict each call); `renews`: the
    credential this one renews (an ``evidence`` entry points at it).

    `awarded` (``awardedDate``) defaults to `valid_from`; `recipient` adds the hashed
    email identifier. Dates must be timezone-aware; they are written in UTC to the second. Raises
    `CredentialError` for a relative IRI, a validity period that ends before it starts, or two
    results for the same rubric.
    """
    _require_iri(credential_id, "credential id")
    _require_iri(subject_id, "credential subject id")
    _require_unique([r.rubric for r in results], "rubric results")
    start = _timestamp(valid_from, "validFrom")
    document: dict[str, Any] = {
        "@context": list(ISSUED_CONTEXT),
        "id": credential_id,
        "type": list(CREDENTIAL_TYPE),
        "name": achievement.name,
        "description": achievement.description,
        "issuer": _issuer(issuer),
        "validFrom": start,
        "awardedDate": _timestamp(awarded or valid_from, "awardedDate"),
        "credentialSchema": [{"id": OB_SCHEMA_URL, "type": OB_SCHEMA_VALIDATOR}],
    }
    if valid_until is not None:
        if valid_until <= valid_from:
            raise CredentialError("validUntil must be later than validFrom")
        document["validUntil"] = _timestamp(valid_until, "validUntil")
    subject: dict[str, Any] = {
        "id": subject_id,
        "type": ["AchievementSubject"],
        "achievement": _achievement(achievement, results),
    }
    if recipient is not None:
        subject["identifier"] = [_identity(recipient)]
    if results:
        subject["result"] = [item for r in results for item in _results(achievement.id, r)]
    document["credentialSubject"] = subject
    entries = [_evidence(e) for e in evidence]
    if renews is not None:
        entries.append(_renewed(renews))
    if entries:
        document["evidence"] = entries
    if status is not None:
        document["credentialStatus"] = _status(status)
    return document


def evidence_narrative(evidence: SessionEvidence) -> str:
    """The Markdown narrative of one session's verdicts (what ``evidence.narrative`` holds);
    the score is shown to two decimals."""
    ended = _timestamp(evidence.ended_at, "ended_at")
    lines = [
        f"{_GENRES[evidence.kind]} `{evidence.session}`, rubric `{evidence.rubric}`"
        f" version {evidence.rubric_version}, ended {ended}:"
        f" **{evidence.outcome}**, score {_number(round(evidence.score, 2))} / 100.",
    ]
    if evidence.assessor is not None:
        lines.append(f"Assessor: {evidence.assessor}.")
    if evidence.criteria:
        lines.append("")
        lines.extend(
            f"- {c.verdict}: {c.title} (`{c.id}`{', critical' if c.critical else ''})"
            for c in evidence.criteria
        )
    return "\n".join(lines)


def rubric_result_id(achievement_id: str, rubric: str) -> str:
    """The id of the ``ResultDescription`` of a rubric's score."""
    return f"{achievement_id}#rubric/{_fragment(rubric)}"


def criterion_result_id(achievement_id: str, rubric: str, criterion: str) -> str:
    """The id of the ``ResultDescription`` of one rubric criterion."""
    return f"{rubric_result_id(achievement_id, rubric)}/criterion/{_fragment(criterion)}"


def _issuer(issuer: IssuerProfile) -> dict[str, Any]:
    profile: dict[str, Any] = {"id": issuer.id, "type": ["Profile"], "name": issuer.name}
    if issuer.url is not None:
        profile["url"] = issuer.url
    if issuer.description is not None:
        profile["description"] = issuer.description
    if issuer.email is not None:
        profile["email"] = issuer.email
    if issuer.image_url is not None:
        profile["image"] = {"id": issuer.image_url, "type": "Image", "caption": issuer.name}
    return profile


def _identity(recipient: RecipientIdentity) -> dict[str, Any]:
    return {
        "type": "IdentityObject",
        "identityHash": recipient.identity_hash,
        "identityType": "emailAddress",
        "hashed": True,
        "salt": recipient.salt,
    }


def _achievement(info: AchievementInfo, results: Sequence[RubricOutcome]) -> dict[str, Any]:
    achievement: dict[str, Any] = {
        "id": info.id,
        "type": ["Achievement"],
        "achievementType": info.achievement_type,
        "name": info.name,
        "description": info.description,
        "criteria": criteria_of(info.criteria_url, info.criteria_narrative),
    }
    if info.image_url is not None:
        achievement["image"] = {"id": info.image_url, "type": "Image", "caption": info.name}
    if info.competencies:
        achievement["alignment"] = [_alignment(c) for c in info.competencies]
    descriptions = [d for r in results for d in _result_descriptions(info.id, r)]
    if descriptions:
        achievement["resultDescription"] = descriptions
    return achievement


def criteria_of(url: str | None, narrative: str) -> dict[str, Any]:
    """An Open Badges 3.0 `Criteria`: the page that describes them (if any) and the narrative."""
    return {"id": url, "narrative": narrative} if url is not None else {"narrative": narrative}


def _alignment(competency: CompetencyAlignment) -> dict[str, Any]:
    alignment: dict[str, Any] = {
        "type": ["Alignment"],
        "targetCode": competency.code,
        "targetName": competency.name,
        "targetUrl": competency.url,
    }
    if competency.framework is not None:
        alignment["targetFramework"] = competency.framework
    if competency.description is not None:
        alignment["targetDescription"] = competency.description
    return alignment


def result_descriptions(achievement_id: str, rubric: RubricOutcome) -> list[dict[str, Any]]:
    """The `ResultDescription`s of one rubric under an achievement (the rubric's score, then
    each criterion's levels), as every credential of it carries them. Reads the rubric's
    shape only (ids, titles, version, pass score, points, critical), never its outcome."""
    return _result_descriptions(achievement_id, rubric)


def _result_descriptions(achievement_id: str, rubric: RubricOutcome) -> list[dict[str, Any]]:
    score: dict[str, Any] = {
        "id": rubric_result_id(achievement_id, rubric.rubric),
        "type": ["ResultDescription"],
        "name": f"{rubric.title}: score (rubric {rubric.rubric} version {rubric.version})",
        "resultType": "Percent",
        "valueMin": "0",
        "valueMax": "100",
    }
    if rubric.min_score is not None:
        score["requiredValue"] = _number(rubric.min_score)
    return [score, *(_criterion_description(achievement_id, rubric, c) for c in rubric.criteria)]


def _criterion_description(
    achievement_id: str, rubric: RubricOutcome, criterion: CriterionOutcome
) -> dict[str, Any]:
    rd_id = criterion_result_id(achievement_id, rubric.rubric, criterion.id)
    levels = []
    for verdict, name in _LEVEL_NAMES.items():
        level: dict[str, Any] = {
            "id": f"{rd_id}/level/{verdict}",
            "type": ["RubricCriterionLevel"],
            "name": name,
        }
        if verdict == "pass" and criterion.points is not None:
            level["points"] = _number(criterion.points)
        elif verdict == "fail" and criterion.points is not None:
            level["points"] = "0"
        levels.append(level)
    description: dict[str, Any] = {
        "id": rd_id,
        "type": ["ResultDescription"],
        "name": f"{criterion.title} ({rubric.rubric}/{criterion.id})",
        "resultType": "RubricCriterionLevel",
        "rubricCriterionLevel": levels,
    }
    if criterion.critical:
        description["requiredLevel"] = f"{rd_id}/level/pass"
    return description


def _results(achievement_id: str, rubric: RubricOutcome) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = [
        {
            "type": ["Result"],
            "resultDescription": rubric_result_id(achievement_id, rubric.rubric),
            "value": _number(rubric.score),
            "status": "Completed" if rubric.outcome == "pass" else "Failed",
        }
    ]
    for criterion in rubric.criteria:
        rd_id = criterion_result_id(achievement_id, rubric.rubric, criterion.id)
        results.append(
            {
                "type": ["Result"],
                "resultDescription": rd_id,
                "achievedLevel": f"{rd_id}/level/{criterion.verdict}",
                "value": criterion.verdict,
            }
        )
    return results


def _evidence(evidence: SessionEvidence) -> dict[str, Any]:
    return {
        "id": evidence.id,
        "type": ["Evidence"],
        "name": f"{_GENRES[evidence.kind]} {evidence.session}",
        "genre": _GENRES[evidence.kind],
        "narrative": evidence_narrative(evidence),
        "description": f"{CHAIN_HEAD_LABEL}{evidence.chain_head_sha256}",
    }


def renewed_credential(document: Mapping[str, Any]) -> str | None:
    """The id of the credential `document` renews (its `RENEWAL_GENRE` evidence), if any."""
    evidence = document.get("evidence")
    for entry in evidence if isinstance(evidence, list) else ():
        if isinstance(entry, Mapping) and entry.get("genre") == RENEWAL_GENRE:
            return str(entry.get("id"))
    return None


def _renewed(prior: PriorCredential) -> dict[str, Any]:
    _require_iri(prior.id, "renewed credential id")
    until = _timestamp(prior.valid_until, "renewed credential's validUntil")
    return {
        "id": prior.id,
        "type": ["Evidence"],
        "name": "Renewed credential",
        "genre": RENEWAL_GENRE,
        "narrative": f"Renews credential `{prior.id}` (valid until {until}), on the "
                     "recertification requirements met by the sessions above.",
    }  # fmt: skip


def _status(status: StatusEntry) -> dict[str, Any]:
    return {
        "id": f"{status.list_credential}#{status.index}",
        "type": "BitstringStatusListEntry",
        "statusPurpose": status.purpose,
        "statusListIndex": str(status.index),
        "statusListCredential": status.list_credential,
    }


# ---------------------------------------------------------------------------------------------
# Checks and formatting


def _require_iri(value: str, what: str) -> None:
    if not _SCHEME.match(value):
        raise CredentialError(f"{what} must be an absolute IRI (scheme:...), not {value!r}")


def _require_text(value: str, what: str) -> None:
    if not value.strip():
        raise CredentialError(f"{what} must not be empty")


def _require_score(value: float, what: str) -> None:
    if not 0.0 <= value <= 100.0:
        raise CredentialError(f"{what} must be within 0..100, not {value!r}")


def _require_unique(values: Sequence[str], what: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise CredentialError(f"{what}: {value!r} appears twice")
        seen.add(value)


def _timestamp(moment: datetime, what: str) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise CredentialError(f"{what} must be timezone-aware")
    return utc_text(moment)


def _fragment(value: str) -> str:
    return quote(value, safe="-._~")


def _number(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))
