"""Issuing, revoking and publishing credentials: the session store, a policy and a key joined.

`CredentialService` is what the CLI and the HTTP API call (each endpoint a thin wrapper):

- `history(learner)`: the learner's closed, scored sessions as `core.eligibility.Attempt`s;
- `decide(learner, policy)`: eligible or not, and what is missing;
- `issue(learner, policy)`: decide, build the Open Badges 3.0 document (`core.credentials`),
  allocate a status list slot, sign (`adapters.signer`), check it against the official schema,
  file it (`storage.credentials`); `NotEligibleError` with the reasons otherwise;
- `revoke(credential_id, reason=..., by=...)`: set its bit in the revocation list, recorded;
- `published_status_list(list_id)`: the signed ``BitstringStatusListCredential`` to publish,
  signed once per change (see there); `status_list_credential` is its document;
- `verify(document)`: `credential_verify.verify` trusting the engine's own key and the
  configured `trusted_issuers`, with the engine's own current status list;
- `session_statements(session_id, config)`: the xAPI statements of one scored session.

Reviews: a stored report is the machine's; assessors' in-field observations (and, if the
deployment wants them to count, overrides) live elsewhere. Pass ``review=`` a function that
returns the report as reviewed (same JSON shape, optionally with an ``"assessor"``);
`reviewed_report` does the re-scoring for a set of recorded verdicts.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast
from urllib.parse import quote

from .adapters.issuer import Issuer, key_resolver
from .adapters.policies import RubricLookup, shipped_rubric
from .adapters.signer import IssuerKey
from .adapters.standards import schema_problems
from .core import eligibility, xapi
from .core.credentials import (
    AchievementInfo,
    CompetencyAlignment,
    CredentialError,
    CriterionOutcome,
    IssuerProfile,
    PriorCredential,
    RecipientIdentity,
    RubricOutcome,
    SessionEvidence,
    StatusEntry,
    build_credential,
)
from .core.eligibility import Attempt, CriterionVerdict, Decision
from .core.policy import Policy
from .core.reasons import report_reasons
from .core.report import finite
from .core.rubric import Rubric
from .core.scoring import score_and_outcome
from .core.status_list import MIN_ENTRIES, bitstring, status_entries, status_list_credential
from .credential_verify import VerificationResult, verify
from .storage.credentials import (
    Chooser,
    CredentialStore,
    IssuedCredential,
    PublishedList,
    Revocation,
)
from .storage.port import SessionRecord, Store
from .storage.shares import Share, new_public_id

DEFAULT_HTTP: Final = "127.0.0.1:8080"
"""`assessengine serve`'s default HTTP address."""
DEFAULT_BASE_URL: Final = f"http://{DEFAULT_HTTP}"
STATUS_LIST_VALIDITY: Final = timedelta(days=30)
"""How long a signed status list is valid (its ``validUntil``): verifiers refuse an expired
list, so a list that has not changed is signed again once `STATUS_LIST_REFRESH` is left."""
STATUS_LIST_REFRESH: Final = timedelta(days=15)
STATUS_LIST_TTL_S: Final = 300
"""How long a verifier may cache a status list (its ``ttl``, and the HTTP max-age): a
revocation reaches every verifier within this."""
"""The engine's public URL when none is configured: serve's default address, so that the CLI
and the server write (and recognise) the same URLs."""

Review = Callable[[SessionRecord, dict[str, Any]], dict[str, Any]]
"""(stored session, stored report) -> the report as reviewed (same JSON shape)."""


class NotEligibleError(CredentialError):
    """The learner does not meet the policy; `reasons` says what is missing."""

    def __init__(self, learner: str, decision: Decision) -> None:
        self.learner = learner
        self.decision = decision
        self.reasons = decision.reasons
        super().__init__(
            f"learner {learner!r} is not eligible for {decision.policy!r}:\n"
            + "\n".join(f"  - {r}" for r in decision.reasons)
        )


class AlreadyIssuedError(CredentialError):
    """The learner already holds an active credential of this policy."""

    def __init__(self, credential: IssuedCredential, renewal_opens: datetime | None = None,
                 ) -> None:  # fmt: skip
        self.credential = credential
        self.renewal_opens = renewal_opens
        until = credential.valid_until.isoformat() if credential.valid_until else "no expiry"
        after = "revoke it to issue a new one" + (
            "" if renewal_opens is None else f", or renew it from {renewal_opens.isoformat()}")
        super().__init__(
            f"learner {credential.learner!r} already holds credential {credential.id} of"
            f" {credential.policy!r} (valid until {until}); {after}"
        )


PUBLIC_CREDENTIALS_PATH: Final = "/public/credentials"
"""Where the public pages of shared credentials live under the base URL."""
PUBLIC_SUBJECTS_PATH: Final = "/public/subjects"
PUBLIC_EVIDENCE_PATH: Final = "/public/evidence"
"""Where a credential's `credentialSubject.id` and `evidence[].id` resolve (while shared)."""


def credential_ref(credential_id: str) -> str:
    """The path segment that names a credential in its subject and evidence IRIs: the UUID of
    a ``urn:uuid:`` id, else the whole id (percent-encoded)."""
    return quote(credential_id.removeprefix("urn:uuid:"), safe="")


def public_credential_url(base_url: str, public_id: str) -> str:
    """The public page of the credential shared as `public_id` (`storage.shares`), under the
    engine's public base URL (`Settings.base_url`, e.g. ``https://engine.example.org``; a
    final ``/`` is ignored): ``BASE/public/credentials/PUBLIC_ID``. No token is needed to open
    it; it answers 404 once the share is hidden."""
    return f"{base_url.rstrip('/')}{PUBLIC_CREDENTIALS_PATH}/{quote(public_id, safe='')}"


@dataclass(frozen=True, slots=True)
class EngineUrls:
    """The engine's public URLs, which issued documents point at (the HTTP API serves them)."""

    base: str = DEFAULT_BASE_URL

    def __post_init__(self) -> None:
        if not self.base.startswith(("https://", "http://")) or self.base.endswith("/"):
            raise CredentialError(f"base URL must be http(s) without a final '/': {self.base!r}")

    def session(self, session: str) -> str:
        return f"{self.base}/api/v1/sessions/{quote(session, safe='')}"

    def learner(self, learner: str) -> str:
        return f"{self.base}/api/v1/learners/{quote(learner, safe='')}"

    def achievement(self, policy: str) -> str:
        return f"{self.base}/api/v1/achievements/{quote(policy, safe='')}"

    def public_subject(self, credential_id: str) -> str:
        """The `credentialSubject.id` of credential `credential_id`: the subject as this one
        credential shows it, nothing more (no learner id, no name)."""
        return f"{self.base}{PUBLIC_SUBJECTS_PATH}/{credential_ref(credential_id)}"

    def public_evidence(self, credential_id: str, session: str) -> str:
        """An `evidence[].id` of credential `credential_id`: one qualifying session's summary."""
        return (f"{self.base}{PUBLIC_EVIDENCE_PATH}/{credential_ref(credential_id)}/"
                f"{quote(session, safe='')}")  # fmt: skip

    def public_credential(self, public_id: str) -> str:
        """A shared credential's public page (`public_credential_url`)."""
        return public_credential_url(self.base, public_id)

    def achievement_image(self, policy: str) -> str:
        """The policy's badge image (not baked): `achievement.image` of its credentials."""
        return f"{self.achievement(policy)}/image"

    def status_list(self, list_id: int) -> str:
        return f"{self.base}/api/v1/credentials/status/{list_id}"

    def rubric_page(self, rubric: str) -> str:
        """The rubric's public plain-language page (`api.web_rubrics`)."""
        return f"{self.base}/rubrics/{quote(rubric, safe='')}"

    def criteria(self, policy: Policy) -> tuple[str | None, str]:
        """The achievement's `criteria`: (id, narrative). A policy of one rubric points at that
        rubric's page; the narrative of a policy of several links each rubric's page."""
        narrative = policy.criteria_narrative()
        pages = [(rubric, self.rubric_page(rubric)) for rubric in policy.rubrics]
        if len(pages) == 1:
            return pages[0][1], narrative
        links = ", ".join(f"[{rubric}]({url})" for rubric, url in pages)
        return None, f"{narrative}\n\nThe rubrics in plain language: {links}."


# ------------------------------------------------------------------------------ history


def observed_criteria(rubric: Rubric | None) -> frozenset[str]:
    """Ids of the rubric's `observed` criteria (none when the rubric is unknown)."""
    if rubric is None:
        return frozenset()
    return frozenset(c.id for c in rubric.criteria if c.observed is not None)


def attempt_from(
    record: SessionRecord, report: Mapping[str, Any], observed: frozenset[str] = frozenset()
) -> Attempt | None:
    """The attempt of a closed session with a report (None for an open session or an
    unreadable report). The assessor is the report's ``"assessor"``, else the session
    metadata's."""
    if record.status != "closed" or record.closed_at is None:
        return None
    try:
        outcome = str(report["outcome"])
        if outcome not in ("pass", "fail", "incomplete"):
            return None
        criteria = tuple(
            CriterionVerdict(
                id=str(c["id"]),
                title=str(c["title"]),
                verdict=c["verdict"],
                critical=bool(c.get("critical", False)),
                points=finite(c.get("points")),
                observed=str(c["id"]) in observed,
            )
            for c in report["criteria"]
        )
        score = finite(report["score"])  # a stored NaN or infinity: unreadable
    except (KeyError, TypeError, ValueError):
        return None
    if score is None:
        return None
    assessor = report.get("assessor") or record.info.metadata.get("assessor")
    return Attempt(
        session=record.info.session,
        rubric=record.info.rubric,
        rubric_version=record.info.rubric_version,
        source=record.info.source,
        outcome=cast(eligibility.Outcome, outcome),
        score=score,
        ended_at=_parse_time(record.closed_at),
        chain_head=record.chain_head,
        criteria=criteria,
        assessor=str(assessor) if assessor else None,
    )


def reviewed_report(
    report: Mapping[str, Any],
    rubric: Rubric,
    verdicts: Mapping[str, str],
    *,
    assessor: str | None = None,
) -> dict[str, Any]:
    """`report` with recorded `verdicts` (criterion id -> pass/fail/not_applicable) in place of
    the machine's, score and outcome recomputed with the rubric's rules, and the assessor
    named. A verdict for a criterion the rubric does not have is a CredentialError."""
    by_id = {str(c["id"]): dict(c) for c in report["criteria"]}
    unknown = sorted(set(verdicts) - {c.id for c in rubric.criteria})
    if unknown or set(by_id) != {c.id for c in rubric.criteria}:
        raise CredentialError(
            f"report of {report.get('session')!r} does not match rubric {rubric.rubric!r}"
            + (f" (unknown criteria: {', '.join(unknown)})" if unknown else "")
        )
    for criterion, verdict in verdicts.items():
        by_id[criterion]["verdict"] = verdict
    ordered = [by_id[c.id] for c in rubric.criteria]
    score, outcome = score_and_outcome(rubric, [c["verdict"] for c in ordered])
    result = {**report, "criteria": ordered, "score": score, "outcome": outcome}
    if assessor is not None:
        result["assessor"] = assessor
    return result


def learner_history(
    store: Store,
    learner: str,
    *,
    rubrics: RubricLookup = shipped_rubric,
    review: Review | None = None,
) -> list[Attempt]:
    """Every closed, scored session of `learner` as an attempt, oldest first."""
    attempts: list[Attempt] = []
    for record in store.sessions(status="closed"):
        if record.info.learner != learner:
            continue
        report = store.report(record.info.session)
        if report is None:
            continue
        if review is not None:
            report = review(record, report)
        attempt = attempt_from(record, report, observed_criteria(rubrics(record.info.rubric)))
        if attempt is not None:
            attempts.append(attempt)
    return sorted(attempts, key=lambda a: (a.ended_at, a.session))


# ------------------------------------------------------------------------------ service


class CredentialService:
    """Issue, revoke and publish credentials for the sessions in `store`.

    key:          the issuer's Ed25519 key (issuing and publishing need it; revoking does not)
    did_web:      sign as this did:web (``did:web:HOST``) instead of the key's did:key;
                  `retired_keys`: the raw public keys it signed with before (its DID document
                  keeps them, and this engine verifies what they signed); `adapters.issuer`
    did_documents:  DID -> DID document of partner did:web issuers: trusted, and their keys
                  resolved from these documents (never fetched)
    issuer_name:  the issuer Profile's name; `issuer_url` its url (default: the base URL);
                  `issuer_description`, `issuer_email`, `issuer_image` (a logo's URL) optional
    urls:         the engine's public URLs
    rubrics:      rubric id -> rubric (titles, pass scores, observed criteria)
    review:       see the module docstring
    trusted_issuers:  issuer ids (DIDs) whose credentials verify as valid besides the key's
    clock, new_id, choose, new_public_id, new_salt:  injected for tests (time, credential ids,
                  status indices, share links' public ids, the salt of a recipient's hashed
                  email)
    """

    def __init__(
        self,
        store: Store,
        credentials: CredentialStore,
        *,
        key: IssuerKey | None = None,
        did_web: str | None = None,
        retired_keys: Sequence[bytes] = (),
        did_documents: Mapping[str, Mapping[str, Any]] | None = None,
        issuer_name: str = "assessengine",
        issuer_url: str | None = None,
        issuer_description: str | None = None,
        issuer_email: str | None = None,
        issuer_image: str | None = None,
        urls: EngineUrls | None = None,
        rubrics: RubricLookup = shipped_rubric,
        review: Review | None = None,
        trusted_issuers: Collection[str] = (),
        clock: Callable[[], datetime] | None = None,
        new_id: Callable[[], str] | None = None,
        choose: Chooser | None = None,
        new_public_id: Callable[[], str] = new_public_id,
        new_salt: Callable[[], str] | None = None,
    ) -> None:
        self.store = store
        self.credentials = credentials
        self.key = key
        self.did_web = did_web
        self.issuer = None if key is None else Issuer.of(key, did_web, retired_keys)
        self.did_documents = dict(did_documents or {})
        self.urls = urls or EngineUrls()
        self.issuer_name = issuer_name
        self.issuer_url = issuer_url or self.urls.base
        self.issuer_description = issuer_description
        self.issuer_email = issuer_email
        self.issuer_image = issuer_image
        self.rubrics = rubrics
        self.review = review
        self.trusted_issuers = frozenset(trusted_issuers)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._new_id = new_id or (lambda: f"urn:uuid:{uuid.uuid4()}")
        self._choose = choose
        self._new_public_id = new_public_id
        self._new_salt = new_salt or (lambda: secrets.token_hex(16))

    # ---------------------------------------------------------------------------- deciding

    def history(self, learner: str) -> list[Attempt]:
        return learner_history(self.store, learner, rubrics=self.rubrics, review=self.review)

    def decide(self, learner: str, policy: Policy) -> Decision:
        return eligibility.decide(policy, self.history(learner))

    # ---------------------------------------------------------------------------- issuing

    def active_credential(
        self, learner: str, policy_id: str, now: datetime | None = None
    ) -> IssuedCredential | None:
        """The learner's credential of this policy that is still valid at `now` (default: the
        clock) and not revoked, if any."""
        now = now or self._clock().astimezone(UTC).replace(microsecond=0)
        found = None
        for held in self.credentials.issued_to(learner, policy=policy_id):
            active = held.valid_until is None or held.valid_until > now
            if active and self.credentials.revocation(held.id) is None:
                found = held  # oldest first: the last active one is the latest (renewed)
        return found

    def renewal_opens(self, held: IssuedCredential, policy: Policy) -> datetime | None:
        """When `held` can be renewed under `policy` (None: never; no recertification or no
        expiry)."""
        if policy.recertification is None or held.valid_until is None:
            return None
        return policy.recertification.opens(held.valid_until)

    def decide_renewal(self, learner: str, policy: Policy, held: IssuedCredential) -> Decision:
        """The decision over `policy`'s recertification requirements, counting only the
        sessions that ended once renewing `held` opened (fresh evidence, never the sessions
        of the credential it renews)."""
        opens = self.renewal_opens(held, policy)
        if opens is None:
            raise CredentialError(f"credential {held.id} of {policy.policy!r} is not renewable")
        fresh = [a for a in self.history(learner) if a.ended_at >= opens]
        return eligibility.decide(policy.renewal(), fresh)

    def issue(
        self, learner: str, policy: Policy, *, by: str = "engine", email: str | None = None
    ) -> IssuedCredential:
        """Issue `policy`'s credential to `learner`, file it, share it (its public page, made
        by `by`) and return it. With `email` (the learner's address, known to the caller; the
        engine keeps no directory of learners), the credential identifies its recipient by the
        address's salted sha256 (`core.credentials.RecipientIdentity`); the address itself is
        written nowhere.

        When the learner holds an active one whose renewal window is open (the policy's
        `recertification`), this **renews** it instead: decided by the recertification's
        requirements over the sessions since the window opened, valid until `valid_for` after
        the held one's ``validUntil``, with an evidence entry pointing at it
        (`core.credentials.PriorCredential`).

        Raises NotEligibleError (with the reasons) when the learner does not meet the policy
        (or its recertification), AlreadyIssuedError when they hold an active one that cannot
        be renewed now, CredentialError when no key is set.
        """
        issuer = self._require_issuer()
        now = self._clock().astimezone(UTC).replace(microsecond=0)
        held = self.active_credential(learner, policy.policy, now)
        renews = None
        if held is None:
            decision = self.decide(learner, policy)
            valid_until = policy.valid_for.after(now) if policy.valid_for else None
        else:
            opens = self.renewal_opens(held, policy)
            if opens is None or now < opens or policy.valid_for is None:
                raise AlreadyIssuedError(held, opens)
            decision = self.decide_renewal(learner, policy, held)
            renews = PriorCredential(held.id, cast(datetime, held.valid_until))
            valid_until = policy.valid_for.after(renews.valid_until)
        if not decision.eligible:
            raise NotEligibleError(learner, decision)
        recipient = None if email is None else RecipientIdentity(email, self._new_salt())
        slot = self.credentials.allocate_status(choose=self._choose)
        credential_id = self._new_id()
        document = build_credential(
            credential_id=credential_id,
            issuer=self.issuer_profile(issuer),
            subject_id=self.urls.public_subject(credential_id),
            achievement=self._achievement(policy),
            results=self._results(decision.qualifying),
            evidence=[self._evidence(credential_id, a) for a in decision.qualifying],
            valid_from=now,
            valid_until=valid_until,
            status=StatusEntry(self.urls.status_list(slot.list_id), slot.index),
            renews=renews,
            recipient=recipient,
            awarded=now,
        )
        signed = issuer.sign(document, created=now)
        problems = schema_problems(signed)
        if problems:
            raise CredentialError(
                "the issued credential breaks the Open Badges 3.0 schema: " + "; ".join(problems)
            )
        issued = IssuedCredential(
            id=str(signed["id"]),
            learner=learner,
            policy=policy.policy,
            issued_at=now,
            valid_until=valid_until,
            status=slot,
            document=signed,
        )
        self.credentials.save_issued(issued)
        self.share(issued.id, by=by)
        return issued

    # ---------------------------------------------------------------------------- sharing

    def share(self, credential_id: str, *, by: str) -> Share:
        """The credential's active share (its public page), made when it has none: a new
        public id each time, never one used before. CredentialStoreError when unknown."""
        return self.credentials.share(credential_id, public_id=self._new_public_id(), by=by,
                                      at=self._clock().astimezone(UTC))  # fmt: skip

    def hide(self, credential_id: str, *, by: str) -> Share | None:
        """Hide the credential's public page for good (None: it was not shared)."""
        return self.credentials.hide_share(credential_id, by=by,
                                           at=self._clock().astimezone(UTC))  # fmt: skip

    def public_url(self, credential_id: str) -> str | None:
        """The URL of the credential's public page, None while it is not shared."""
        active = self.credentials.share_of(credential_id)
        return None if active is None else self.urls.public_credential(active.public_id)

    def credentials_of(self, learner: str) -> list[IssuedCredential]:
        return self.credentials.issued_to(learner)

    def issuer_profile(self, issuer: Issuer) -> IssuerProfile:
        """The issuer `Profile` written into credentials `issuer` signs."""
        return IssuerProfile(id=issuer.did, name=self.issuer_name, url=self.issuer_url,
                             description=self.issuer_description, email=self.issuer_email,
                             image_url=self.issuer_image)  # fmt: skip

    def _achievement(self, policy: Policy) -> AchievementInfo:
        spec = policy.achievement
        criteria_url, narrative = self.urls.criteria(policy)
        return AchievementInfo(
            id=spec.id or self.urls.achievement(policy.policy),
            name=spec.name,
            description=spec.description,
            criteria_narrative=narrative,
            criteria_url=criteria_url,
            achievement_type=spec.achievement_type,
            image_url=self.urls.achievement_image(policy.policy),
            competencies=tuple(
                CompetencyAlignment(
                    code=c.code,
                    name=c.name,
                    url=c.url,
                    framework=c.framework,
                    description=c.description,
                )
                for c in spec.competencies
            ),
        )

    def _results(self, qualifying: Sequence[Attempt]) -> list[RubricOutcome]:
        """One result per rubric: its latest qualifying field session, else its latest."""
        chosen: dict[str, Attempt] = {}
        for attempt in sorted(qualifying, key=lambda a: (a.source == "field", a.ended_at)):
            chosen[attempt.rubric] = attempt
        results = []
        for rubric_id in dict.fromkeys(a.rubric for a in qualifying):
            attempt = chosen[rubric_id]
            rubric = self.rubrics(rubric_id)
            results.append(
                RubricOutcome(
                    rubric=rubric_id,
                    version=attempt.rubric_version,
                    title=rubric.title if rubric else rubric_id,
                    outcome="pass" if attempt.outcome == "pass" else "fail",
                    score=attempt.score,
                    criteria=_outcomes(attempt),
                    min_score=rubric.pass_.min_score if rubric else None,
                )
            )
        return results

    def _evidence(self, credential_id: str, attempt: Attempt) -> SessionEvidence:
        return SessionEvidence(
            id=self.urls.public_evidence(credential_id, attempt.session),
            session=attempt.session,
            kind=attempt.source,
            rubric=attempt.rubric,
            rubric_version=attempt.rubric_version,
            outcome="pass" if attempt.outcome == "pass" else "fail",
            score=attempt.score,
            ended_at=attempt.ended_at,
            chain_head_sha256=attempt.chain_head,
            criteria=_outcomes(attempt),
            assessor=attempt.assessor,
        )

    # ---------------------------------------------------------------------------- revoking

    def revoke(self, credential_id: str, *, reason: str, by: str) -> Revocation:
        """Revoke an issued credential (its status bit is set in the next published list)."""
        return self.credentials.revoke(
            credential_id, reason=reason, revoked_by=by, at=self._clock().astimezone(UTC)
        )

    def status_list_credential(self, list_id: int = 1) -> dict[str, Any]:
        """The signed revocation list `list_id` as it stands now (to publish at
        ``urls.status_list(list_id)``)."""
        document: dict[str, Any] = json.loads(self.published_status_list(list_id).document)
        return document

    def published_status_list(self, list_id: int = 1) -> PublishedList:
        """The signed revocation list `list_id` as published: signed once per change, not per
        request. The list kept in the credential store is served as long as its revision (the
        issuer, its signing key, the URL and the bits) is the current one and more than
        `STATUS_LIST_REFRESH` of its validity is left; otherwise it is signed afresh
        (``validFrom`` now, ``validUntil`` `STATUS_LIST_VALIDITY` later, ``ttl``
        `STATUS_LIST_TTL_S`) and kept."""
        issuer = self._require_issuer()
        sizes = {s.list_id: s.size for s in self.credentials.status_lists()}
        if list_id not in sizes and list_id != 1:
            raise CredentialError(f"there is no status list {list_id}")
        url = self.urls.status_list(list_id)
        bits = bitstring(self.credentials.revoked_indices(list_id),
                         sizes.get(list_id, MIN_ENTRIES))  # fmt: skip
        signer = f"{issuer.did}\n{issuer.key.did}\n"  # a rotated key signs the list afresh
        revision = hashlib.sha256(f"{signer}{url}\n".encode() + bits).hexdigest()
        now = self._clock().astimezone(UTC).replace(microsecond=0)
        kept = self.credentials.published(list_id)
        if kept is not None and kept.revision == revision and (
            kept.valid_until - now > STATUS_LIST_REFRESH
        ):
            return kept
        document = status_list_credential(
            list_url=url, issuer=issuer.did, bits=bits, valid_from=now,
            valid_until=now + STATUS_LIST_VALIDITY, ttl_ms=STATUS_LIST_TTL_S * 1000,
        )  # fmt: skip
        signed = issuer.sign(document, created=now)
        published = PublishedList(list_id, revision, json.dumps(signed, separators=(",", ":")),
                                  now + STATUS_LIST_VALIDITY)  # fmt: skip
        self.credentials.publish(published)
        return published

    def trusted(self) -> frozenset[str]:
        """The issuers whose credentials verify as valid here: the engine's own (its did:web,
        else its key's did:key) and the configured."""
        own = self.did_web if self.issuer is None else self.issuer.did
        return self.trusted_issuers | set(self.did_documents) | ({own} if own else set())

    def verify(self, document: Mapping[str, Any]) -> VerificationResult:
        """Verify `document` (valid only when issued by a `trusted` issuer), reading its
        status from this engine's current list when it points at one (else the status check
        is skipped)."""
        status_list = None
        prefix = self.urls.status_list(0).removesuffix("0")
        for entry in status_entries(document):
            url = str(entry.get("statusListCredential", ""))
            number = url.removeprefix(prefix)
            if url.startswith(prefix) and number.isdigit() and self.key is not None:
                try:
                    status_list = self.status_list_credential(int(number))
                except CredentialError:
                    status_list = None  # not a list of ours: the status check is skipped
                break
        issuer = self.issuer
        own = (self.did_web or "") if issuer is None else issuer.did
        resolve = key_resolver(own, self.did_web, () if issuer is None else issuer.public_keys,
                               self.did_documents)  # fmt: skip
        return verify(document, trusted=self.trusted(), status_list=status_list,
                      now=self._clock(), resolve=resolve)

    # ---------------------------------------------------------------------------- xAPI

    def session_statements(
        self, session_id: str, config: xapi.XapiConfig | None = None
    ) -> list[dict[str, Any]]:
        """The xAPI statements of a closed, scored session; CredentialError otherwise."""
        record = self.store.session(session_id)
        report = self.store.report(session_id) if record is not None else None
        if record is None or report is None or record.closed_at is None:
            raise CredentialError(f"session {session_id!r} is not closed and scored")
        if self.review is not None:
            report = self.review(record, report)
        rubric = self.rubrics(record.info.rubric)
        assessor = report.get("assessor") or record.info.metadata.get("assessor")
        facts = xapi.SessionFacts(
            session=session_id,
            learner=record.info.learner,
            source=record.info.source,
            ended_at=_parse_time(record.closed_at),
            duration_s=record.close_t or 0.0,
            assessor=str(assessor) if assessor else None,
            scenario=record.info.scenario,
            rubric_title=rubric.title if rubric else None,
            chain_head=record.chain_head,
            reasons=tuple(r.text for r in report_reasons(
                report, rubric.pass_.min_score if rubric else None)),
        )  # fmt: skip
        return xapi.session_statements(report, facts, config or self.xapi_config())

    def xapi_config(self) -> xapi.XapiConfig:
        """Where the engine's xAPI identities live: its base URL."""
        return xapi.XapiConfig(
            home_page=self.urls.base, activity_base=f"{self.urls.base}/xapi/activities"
        )

    def _require_issuer(self) -> Issuer:
        if self.issuer is None:
            raise CredentialError(
                "no issuer key: make one with `assessengine keys issuer --out FILE` and pass it"
            )
        return self.issuer


def _outcomes(attempt: Attempt) -> tuple[CriterionOutcome, ...]:
    outcomes = []
    for c in attempt.criteria:
        if c.verdict == "pending":
            raise CredentialError(
                f"session {attempt.session!r}: criterion {c.id!r} is still pending"
            )
        outcomes.append(
            CriterionOutcome(c.id, c.title, c.verdict, critical=c.critical, points=c.points or None)
        )
    return tuple(outcomes)


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
