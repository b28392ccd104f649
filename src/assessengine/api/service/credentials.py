"""`CredentialApi`: what the HTTP API and the web pages do with credentials, without HTTP.

Each method is a thin wrapper over `credential_service.CredentialService` (which decides,
builds, signs, revokes, publishes, verifies and makes xAPI statements) that first checks the
principal's role and whether the principal may see the learner or session at all (as
`ReviewService` does: 403 `ForbiddenError` for the role, 404 `NotFoundError` for another
learner's records), then turns the credential errors into `ServiceError`s.

Decisions (docs/credentials.md, "Over HTTP"):

- **Reviews.** A stored report is the machine's. Credentials count the scorer's verdicts plus
  the assessors' in-field observations of `observed` criteria (the latest per criterion, as
  the session page shows them), never overrides: an override is one assessor's disagreement
  with the machine, kept for review, and a credential that anyone can verify should rest on
  the evidence and the observations alone. The assessor a session names is the one who
  recorded its latest counted observation (else the session metadata's).
- **Issuer key.** `issuer_key_path` when given (it must exist); else ``<db file>.issuer.pem``
  beside the store, made (Ed25519, mode 600) the first time a credential is issued. Nothing is
  ever signed before that: the status list and verification work without it.
- **Public.** Verifying, the status lists and the achievements need no token: a credential
  names them, and anyone holding one must be able to check it.
- Issuing runs under one lock per process, so two requests never issue the same learner two
  active credentials of one policy.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, cast

from pydantic import Field

from ...adapters.did_web import DidWebError, did_document
from ...adapters.issuer import RETIRED_NEED_DID_WEB
from ...adapters.lrs import LrsClient, LrsError
from ...adapters.policies import list_policies, load_policy
from ...adapters.signer import IssuerKey
from ...core import xapi
from ...core.credentials import (
    CREDENTIAL_CONTEXT,
    RENEWAL_GENRE,
    CredentialError,
    CriterionOutcome,
    RubricOutcome,
    criteria_of,
    renewed_credential,
    result_descriptions,
)
from ...core.instants import utc_text
from ...core.latest import latest_by, newest
from ...core.policy import Policy, PolicyError, Requirement
from ...core.rubric import Rubric
from ...core.xapi import XapiError
from ...credential_service import (
    DEFAULT_BASE_URL,
    AlreadyIssuedError,
    CredentialService,
    EngineUrls,
    NotEligibleError,
    reviewed_report,
)
from ...credential_verify import VerificationResult
from ...storage import local_file
from ...storage.credentials import (
    CredentialStoreError,
    IssuedCredential,
    PublishedList,
    Revocation,
    SqlCredentialStore,
)
from ...storage.port import SessionRecord, StoreError
from ...storage.reviews import AuditEntry
from .access import Action, Principal
from .errors import (
    ConflictError,
    FieldProblem,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    ServiceError,
)
from .models import Model, Name
from .service import ReviewService

log = logging.getLogger(__name__)

ISSUER_KEY_SUFFIX: Final = ".issuer.pem"
MAX_CREDENTIAL_BYTES: Final = 1 * 2**20
MAX_REASON = 2000
EMAIL_PATTERN: Final = r"^[^@\s<>\"]{1,64}@[^@\s<>\"]+\.[^@\s<>\"]+$"
MAX_FORWARDS: Final = 10_000
"""The forwards of one session read back from the audit log (what to void)."""


# ==================================================================================== settings


@dataclass(frozen=True, slots=True)
class LrsSettings:
    """A Learning Record Store to forward xAPI statements to (HTTP basic auth)."""

    endpoint: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    attempts: int = 4


@dataclass(frozen=True, slots=True)
class CredentialSettings:
    """How the engine issues and verifies: its public URL (written into every credential:
    status lists, evidence, subjects), the issuer's name and home page, an optional LRS, and
    the issuers (DIDs) whose credentials verify as valid besides the engine's own key.
    `did_web`: the engine issues as this ``did:web:HOST`` (None: its key's did:key), its DID
    document listing the key and the `retired_keys` (raw Ed25519 public keys) that signed
    before a rotation (`adapters.issuer`). `did_documents`: partner did:web issuers' DID
    documents (DID -> document), trusted and resolved from there, never fetched."""

    base_url: str = DEFAULT_BASE_URL
    issuer_name: str = "assessengine"
    issuer_url: str | None = None
    lrs: LrsSettings | None = None
    issuer_description: str | None = None
    issuer_email: str | None = None
    issuer_image: str | None = None
    trusted_issuers: frozenset[str] = frozenset()
    did_web: str | None = None
    retired_keys: tuple[bytes, ...] = ()
    did_documents: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.retired_keys and self.did_web is None:
            raise DidWebError(RETIRED_NEED_DID_WEB)


def default_issuer_key_path(db_path: str | Path) -> Path:
    """Where the issuer key is made when none is configured: beside the store file.
    CredentialError for a store on a database server (it has no file to keep the key beside:
    the key must be given)."""
    found = local_file(db_path)
    if found is None:
        raise CredentialError("a store on a database server keeps no issuer key beside it: "
                              "give one (--issuer-key FILE)")  # fmt: skip
    return found.with_name(found.name + ISSUER_KEY_SUFFIX)


# ==================================================================================== models


class IssueIn(Model):
    """Issue `policy`'s credential to `learner` (refused, with what is missing, if the
    learner's sessions do not meet the policy)."""

    learner: Name
    policy: Name = Field(description="a credential policy id, e.g. forklift-operator")
    email: str | None = Field(None, max_length=254, pattern=EMAIL_PATTERN, description=(
        "the learner's email address, when known: the credential then identifies its "
        "recipient by the address's salted sha256 (credentialSubject.identifier); the address "
        "itself is neither written into the credential nor stored"))


class RevokeIn(Model):
    reason: str = Field(min_length=1, max_length=MAX_REASON, description="why (kept, audited)")


class CheckOut(Model):
    name: str = Field(description="proof, key, expansion, signature, issuer, schema, validity, "
                      "status")  # fmt: skip
    status: str = Field(description="ok, failed or skipped")
    detail: str


class VerificationOut(Model):
    """Each check of a credential; `valid` when none failed (a skipped check does not fail):
    correctly signed AND issued by a trusted issuer (this engine's key, or one configured)."""

    valid: bool
    signature: str = Field(description="the signature check: ok, failed or skipped")
    trusted: bool = Field(description="the issuer is one this engine trusts")
    issuer: str | None = Field(description="the credential's issuer id")
    reason: str | None = Field(description="why it is not valid (null when valid)")
    checks: list[CheckOut]


class RevocationOut(Model):
    reason: str
    by: str
    at: datetime


class CredentialOut(Model):
    """An issued credential as filed: the signed document and its state here."""

    id: str
    learner: str
    policy: str
    issued_at: datetime
    valid_until: datetime | None
    status_list: int
    status_index: int
    revoked: RevocationOut | None
    document: dict[str, Any] = Field(description="the signed OpenBadgeCredential")


class LearnerOut(Model):
    learner: str
    history: str = Field(description="URL of the attempt history")
    credentials: str = Field(description="URL of the credentials")


class RequirementProgress(Model):
    """One requirement of a policy: in words, met or not, the sessions that meet it, and what
    is missing."""

    text: str
    met: bool
    sessions: list[str]
    missing: str | None


class PolicyProgress(Model):
    """How far a learner is towards one credential policy. `eligible`: a credential can be
    issued now (every requirement met, within the window, none active already); `held`: the
    id of an active credential of this policy."""

    policy: str
    name: str
    eligible: bool
    held: str | None
    requirements: list[RequirementProgress]
    reasons: list[str]
    held_until: datetime | None = Field(default=None, description="the held credential's "
                                        "validUntil (None: none held, or it never expires)")
    renewal_opens: datetime | None = Field(default=None, description="when the held "
                                           "credential can be renewed (None: it cannot)")
    due_for_renewal: bool = Field(default=False, description="the renewal window is open: "
                                  "`requirements` and `eligible` are then the policy's "
                                  "recertification's, over the sessions since it opened")


class ExpiringOut(Model):
    """An active credential that expires soon (not revoked, not renewed already)."""

    id: str
    learner: str
    policy: str
    valid_until: datetime
    days_left: int = Field(description="whole days until validUntil")
    renewal_opens: datetime | None = Field(description="when it can be renewed (None: its "
                                           "policy has no recertification)")
    renewable_now: bool


class ForwardOut(Model):
    session: str
    lrs: str = Field(description="the LRS statements endpoint")
    statements: list[str] = Field(description="the ids of the session's statements, which the "
                                  "LRS holds now (derived from their content)")
    voided: list[str] = Field(description="the ids of statements forwarded before that no "
                              "longer stand (an observation or a re-scoring changed them), "
                              "voided now")


class UpstreamError(ServiceError):
    """A service the engine forwards to (the LRS) did not take the request."""

    status, slug, title = 502, "upstream", "The Learning Record Store refused or failed"


class IneligibleError(InvalidError):
    """The learner's sessions do not meet the policy; `errors` say what is missing (by
    requirement), `reasons` the decision's sentences."""

    slug, title = "not-eligible", "Not eligible"

    def __init__(
        self, detail: str, errors: list[FieldProblem], reasons: tuple[str, ...] = ()
    ) -> None:
        super().__init__(detail, errors)
        self.reasons = reasons


def verification_out(result: VerificationResult) -> VerificationOut:
    data = result.to_data()
    return VerificationOut(**{**data, "checks": [CheckOut(**c) for c in data["checks"]]})


# ==================================================================================== key


class IssuerKeyFile:
    """The issuer key at `path`, loaded once. `create`: made on first use when missing."""

    def __init__(self, path: Path, *, create: bool) -> None:
        self.path, self.create = path, create
        self._key: IssuerKey | None = None
        self._lock = threading.Lock()
        if not create:
            self.get(make=False)  # a configured key must be there and readable: fail early

    def get(self, *, make: bool) -> IssuerKey | None:
        """The key; None when it does not exist and `make` is False (or creating is off)."""
        with self._lock:
            if self._key is None:
                if not self.path.is_file():
                    if not self.create:
                        raise CredentialError(f"issuer key {self.path} not found")
                    if not make:
                        return None
                    self._make()
                self._key = self._read()
            return self._key

    def _read(self) -> IssuerKey:
        try:
            key = IssuerKey.from_pem(self.path.read_bytes())
        except (OSError, ValueError, TypeError, CredentialError) as error:
            raise CredentialError(f"issuer key {self.path}: not readable ({error})") from None
        mode = self.path.stat().st_mode & 0o777
        if mode & 0o077:
            log.warning("issuer key %s is readable by others (mode %o): chmod 600 it",
                        self.path, mode)  # fmt: skip
        return key

    def _make(self) -> None:
        key = IssuerKey.generate()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            descriptor = os.open(self.path, flags, 0o600)
        except FileExistsError:
            return  # another process made it first: read theirs
        with os.fdopen(descriptor, "wb") as file:
            file.write(key.to_pem())
        log.info("made the issuer key %s (%s); keep it private and backed up",
                 self.path, key.did)  # fmt: skip


# ==================================================================================== service


class CredentialApi:
    """Credentials over the store of `reviews` (the same database, `db_path`: a path or a
    store URL)."""

    def __init__(
        self,
        reviews: ReviewService,
        db_path: str | Path,
        *,
        issuer_key_path: Path | None = None,
        settings: CredentialSettings | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.reviews = reviews
        self.db_path = db_path
        self.settings = settings or CredentialSettings()
        self.urls = EngineUrls(self.settings.base_url.rstrip("/"))
        path = issuer_key_path or default_issuer_key_path(self.db_path)
        self.key = IssuerKeyFile(Path(path), create=issuer_key_path is None)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._store: SqlCredentialStore | None = None
        self._store_lock = threading.Lock()
        self._issue_lock = threading.Lock()

    def close(self) -> None:
        with self._store_lock:
            store, self._store = self._store, None
        if store is not None:
            store.close()

    # ---------------------------------------------------------------------------- issuing

    def policies(self) -> list[str]:
        return list_policies()

    def policy(self, policy_id: str) -> Policy:
        """A shipped policy by id (never a path: ids come from requests)."""
        known = self.policies()
        if policy_id not in known:
            raise NotFoundError(f"no credential policy {policy_id!r}; known: {', '.join(known)}")
        try:
            return load_policy(policy_id)
        except PolicyError as error:
            raise ConflictError(f"policy {policy_id!r} is not valid here: {error}") from None

    def issue(self, who: Principal, body: IssueIn) -> IssuedCredential:
        """`issue_policy` with a shipped policy by id (422 for an unknown one)."""
        _allow(who, Action.ISSUE_CREDENTIALS)
        try:
            policy = self.policy(body.policy)
        except NotFoundError as error:
            raise InvalidError(error.detail, [FieldProblem("body.policy", "unknown policy; one "
                               f"of: {', '.join(self.policies())}")]) from None  # fmt: skip
        return self.issue_policy(who, body.learner, policy, email=body.email)

    def issue_policy(
        self, who: Principal, learner: str, policy: Policy, *, email: str | None = None
    ) -> IssuedCredential:
        """Decide over the learner's reviewed sessions and issue, audited: the one path for
        issuing (the HTTP API and `assessengine credential issue` both come here).
        `IneligibleError` (422) with one error per missing requirement, `ConflictError` when
        the learner holds an active one already or the credential cannot be made."""
        _allow(who, Action.ISSUE_CREDENTIALS)
        with self._issue_lock:
            service = self._service(make_key=True)
            try:
                issued = service.issue(learner, policy, by=who.name, email=email)
            except NotEligibleError as refusal:
                raise _not_eligible(refusal, policy) from None
            except AlreadyIssuedError as refusal:
                raise ConflictError(str(refusal)) from None
            except (CredentialError, XapiError) as error:
                raise ConflictError(f"cannot issue: {error}") from None
        evidence = issued.document.get("evidence", [])
        sessions = [str(e.get("id", "")).rsplit("/", 1)[-1]
                    for e in evidence if e.get("genre") != RENEWAL_GENRE]  # fmt: skip
        self._audit(who, "credential.issue", issued.id, detail={
            "learner": issued.learner, "policy": issued.policy, "sessions": sessions,
            "renews": renewed_credential(issued.document),
            "status_list": issued.status.list_id, "status_index": issued.status.index,
            "valid_until": None if issued.valid_until is None else _iso(issued.valid_until),
        })  # fmt: skip
        return issued

    # ---------------------------------------------------------------------------- reading

    def credentials_of(self, who: Principal, learner: str) -> list[CredentialOut]:
        """The learner's credentials, oldest first (revoked ones too, marked)."""
        self._may_read(who, learner)
        store = self._credentials()
        return [self._out(c, store.revocation(c.id)) for c in store.issued_to(learner)]

    def credential(self, who: Principal, learner: str, credential_id: str) -> CredentialOut:
        self._may_read(who, learner)
        issued = self._find(credential_id)
        if issued is None or issued.learner != learner:
            raise NotFoundError(f"learner {learner!r} has no credential {credential_id!r}")
        return self._out(issued, self._credentials().revocation(issued.id))

    def credential_by_id(self, who: Principal, credential_id: str) -> CredentialOut:
        """One credential by its id alone (whoever may read its learner's credentials)."""
        issued = self._find(credential_id)
        if issued is None or not who.sees_learner(issued.learner):
            raise NotFoundError(f"no credential {credential_id!r}")
        return self.credential(who, issued.learner, issued.id)

    def learner(self, who: Principal, learner: str) -> LearnerOut:
        """Where a learner's records are (a credential's subject id is this learner's URL)."""
        _allow(who, Action.READ_LEARNERS)
        if not who.sees_learner(learner):
            raise NotFoundError(f"no learner {learner!r}")
        base = self.urls.learner(learner)
        return LearnerOut(learner=learner, history=f"{base}/history",
                          credentials=f"{base}/credentials")  # fmt: skip

    def progress(self, who: Principal, learner: str) -> list[PolicyProgress]:
        """The learner's standing towards every shipped policy (`PolicyProgress`); readable by
        whoever may read the learner's record."""
        _allow(who, Action.READ_LEARNERS)
        if not who.sees_learner(learner):
            raise NotFoundError(f"no learner {learner!r}")
        service = self._service(make_key=False)
        now = self._clock()
        out = []
        for policy_id in self.policies():
            policy = self.policy(policy_id)
            held = service.active_credential(learner, policy.policy)
            opens = None if held is None else service.renewal_opens(held, policy)
            due = held is not None and opens is not None and now >= opens
            decision = (service.decide_renewal(learner, policy, held)
                        if due and held is not None else service.decide(learner, policy))
            out.append(PolicyProgress(
                policy=policy.policy, name=policy.achievement.name,
                eligible=decision.eligible and (held is None or due),
                held=None if held is None else held.id,
                requirements=[RequirementProgress(
                    text=describe_requirement(r.requirement), met=r.met,
                    sessions=[a.session for a in r.sessions], missing=r.missing,
                ) for r in decision.requirements],
                reasons=list(decision.reasons),
                held_until=None if held is None else held.valid_until,
                renewal_opens=opens, due_for_renewal=due,
            ))  # fmt: skip
        return out

    def expiring(self, who: Principal, within_days: int) -> list[ExpiringOut]:
        """The active credentials that expire within `within_days` days, soonest first, that
        are not renewed already (their learner holds no later one of the policy): whom to
        schedule for a refresher (staff)."""
        _allow(who, Action.READ_COHORTS)
        now = self._clock()
        store = self._credentials()
        found = store.expiring(now, now + timedelta(days=within_days))
        service = self._service(make_key=False)
        out = []
        for issued in found:
            latest = service.active_credential(issued.learner, issued.policy)
            if latest is not None and latest.id != issued.id:
                continue  # renewed already
            opens = self._renewal_opens(service, issued)
            until = cast(datetime, issued.valid_until)
            out.append(ExpiringOut(
                id=issued.id, learner=issued.learner, policy=issued.policy, valid_until=until,
                days_left=(until - now).days, renewal_opens=opens,
                renewable_now=opens is not None and now >= opens,
            ))  # fmt: skip
        return out

    def _renewal_opens(self, service: CredentialService,
                       issued: IssuedCredential) -> datetime | None:  # fmt: skip
        try:
            policy = self.policy(issued.policy)
        except ServiceError:
            return None  # a policy no longer shipped: not renewable here
        return service.renewal_opens(issued, policy)

    def _may_read(self, who: Principal, learner: str) -> None:
        _allow(who, Action.READ_CREDENTIALS)
        if not who.sees_learner(learner):
            raise NotFoundError(f"no learner {learner!r}")

    def _find(self, credential_id: str) -> IssuedCredential | None:
        store = self._credentials()
        found = store.issued(credential_id)
        if found is None and ":" not in credential_id:
            found = store.issued(f"urn:uuid:{credential_id}")  # the bare UUID
        return found

    def _out(self, issued: IssuedCredential, revocation: Revocation | None) -> CredentialOut:
        revoked = None if revocation is None else RevocationOut(
            reason=revocation.reason, by=revocation.revoked_by, at=revocation.revoked_at)
        return CredentialOut(
            id=issued.id, learner=issued.learner, policy=issued.policy,
            issued_at=issued.issued_at, valid_until=issued.valid_until,
            status_list=issued.status.list_id, status_index=issued.status.index,
            revoked=revoked, document=dict(issued.document),
        )  # fmt: skip

    # ---------------------------------------------------------------------------- revoking

    def revoke(self, who: Principal, credential_id: str, body: RevokeIn) -> CredentialOut:
        """Revoke (admins); the next status list published carries it."""
        _allow(who, Action.REVOKE_CREDENTIALS)
        issued = self._find(credential_id)
        if issued is None:
            raise NotFoundError(f"no credential {credential_id!r}")
        store = self._credentials()
        if store.revocation(issued.id) is not None:
            raise ConflictError(f"credential {issued.id!r} is already revoked")
        try:
            revocation = self._service(make_key=False).revoke(issued.id, reason=body.reason,
                                                              by=who.name)  # fmt: skip
        except CredentialStoreError as error:
            raise ConflictError(str(error)) from None
        self._audit(who, "credential.revoke", issued.id, reason=body.reason, detail={
            "learner": issued.learner, "policy": issued.policy,
            "status_list": issued.status.list_id, "status_index": issued.status.index,
        })  # fmt: skip
        return self._out(issued, revocation)

    # ---------------------------------------------------------------------------- public

    def status_list(self, list_id: int) -> dict[str, Any]:
        """The signed BitstringStatusListCredential `list_id` as it stands now."""
        document: dict[str, Any] = json.loads(self.published_status_list(list_id).document)
        return document

    def published_status_list(self, list_id: int) -> PublishedList:
        """`status_list` as published: its exact text, signed once per change."""
        if self.key.get(make=False) is None:
            raise NotFoundError("no credential has been issued here yet: there is no status list")
        if list_id not in {s.list_id for s in self._credentials().status_lists()} | {1}:
            raise NotFoundError(f"there is no status list {list_id}")
        try:
            return self._service(make_key=False).published_status_list(list_id)
        except CredentialError as error:
            raise NotFoundError(str(error)) from None

    def did_document(self) -> dict[str, Any]:
        """The engine's DID document under its did:web: the current key (once made, on the
        first issue), then the retired ones. NotFoundError when the engine issues as did:key
        (no did:web configured) or holds no key yet."""
        did = self.settings.did_web
        if did is None:
            raise NotFoundError("this engine issues as did:key: no did:web is configured "
                                "(ASSESSENGINE_ISSUER_DID_WEB, serve --issuer-did-web HOST)")
        try:
            key = self.key.get(make=False)
        except CredentialError as error:
            raise ConflictError(str(error)) from None
        keys = [*([] if key is None else [key.public_key]), *self.settings.retired_keys]
        if not keys:
            raise NotFoundError(f"{did} has no key yet: its DID document lists the issuer key "
                                "once the first credential is issued")  # fmt: skip
        return did_document(did, keys)

    def verify(self, document: Mapping[str, Any]) -> VerificationOut:
        """`verification` as the HTTP API answers it."""
        return verification_out(self.verification(document))

    def verification(self, document: Mapping[str, Any]) -> VerificationResult:
        """Every check; valid only when issued by this engine's key or a configured trusted
        issuer; revocation against this engine's current list when the credential names one of
        its lists (else the status check is skipped)."""
        return self._service(make_key=False).verify(document)

    def achievement(self, policy_id: str) -> dict[str, Any]:
        """The Open Badges 3.0 `Achievement` of a policy (what its credentials certify)."""
        policy = self.policy(policy_id)
        spec = policy.achievement
        achievement: dict[str, Any] = {
            "@context": list(CREDENTIAL_CONTEXT),
            "id": spec.id or self.urls.achievement(policy.policy),
            "type": ["Achievement"],
            "achievementType": spec.achievement_type,
            "name": spec.name,
            "description": spec.description,
            "criteria": criteria_of(*self.urls.criteria(policy)),
            "image": {"id": self.urls.achievement_image(policy.policy), "type": "Image",
                      "caption": spec.name},
        }
        if spec.competencies:
            achievement["alignment"] = [
                {"type": ["Alignment"], "targetCode": c.code, "targetName": c.name,
                 "targetUrl": c.url}
                | ({"targetFramework": c.framework} if c.framework else {})
                | ({"targetDescription": c.description} if c.description else {})
                for c in spec.competencies
            ]  # fmt: skip
        descriptions = [d for rubric_id in policy.rubrics
                        for d in self._result_descriptions(achievement["id"], rubric_id)]
        if descriptions:
            achievement["resultDescription"] = descriptions
        return achievement

    def _result_descriptions(self, achievement_id: str, rubric_id: str) -> list[dict[str, Any]]:
        """What a credential's `result`s of rubric `rubric_id` point at (its current version
        here: the one new credentials are issued against)."""
        rubric = self._rubric(rubric_id)
        if rubric is None:
            return []
        shape = RubricOutcome(
            rubric=rubric_id, version=rubric.version, title=rubric.title, outcome="pass",
            score=0.0, min_score=rubric.pass_.min_score,
            criteria=tuple(CriterionOutcome(c.id, c.title, "not_applicable", critical=bool(
                c.critical), points=c.points or None) for c in rubric.criteria),
        )  # fmt: skip
        return result_descriptions(achievement_id, shape)

    # ---------------------------------------------------------------------------- xAPI

    def session_statements(self, who: Principal, session_id: str) -> list[dict[str, Any]]:
        """The xAPI statements of a closed, scored session (same access as reading it)."""
        _allow(who, Action.READ_SESSIONS)
        record = self.reviews.store.session(session_id)
        if record is None or not who.sees_learner(record.info.learner):
            raise NotFoundError(f"no session {session_id!r}")
        if self.reviews.blind(who, [session_id]):  # the statements carry the observations
            raise ConflictError(f"you are to double-mark session {session_id!r} blind: its xAPI "
                                "statements, which carry the first marks, are shown once you "
                                "have submitted your second marks")  # fmt: skip
        try:
            return self._service(make_key=False).session_statements(session_id)
        except (CredentialError, XapiError) as error:
            raise ConflictError(str(error)) from None

    def forward_statements(self, who: Principal, session_id: str) -> ForwardOut:
        """Send the session's statements to the configured LRS (admins), with retries, and
        void the ones forwarded before that no longer stand (the audit log keeps what was
        forwarded and voided)."""
        _allow(who, Action.FORWARD_XAPI)
        lrs = self.settings.lrs
        if lrs is None:
            raise ConflictError("no Learning Record Store is configured (serve with "
                                "ASSESSENGINE_LRS_URL)")  # fmt: skip
        statements = self.session_statements(who, session_id)
        current = [str(s["id"]) for s in statements]
        sent, voided = self._forwarded(session_id)
        stale = [i for i in sent if i not in current and i not in voided]
        config = self._service(make_key=False).xapi_config()
        voiding = [xapi.voiding_statement(i, config) for i in stale]
        client = LrsClient(lrs.endpoint, username=lrs.username, password=lrs.password,
                           attempts=lrs.attempts)  # fmt: skip
        try:
            client.send([*statements, *voiding])
        except LrsError as error:
            raise UpstreamError(str(error)) from None
        self._audit(who, "xapi.forward", session_id, session=session_id,
                    detail={"lrs": client.url, "statements": current, "voided": stale})  # fmt: skip
        return ForwardOut(session=session_id, lrs=client.url, statements=current, voided=stale)

    def _forwarded(self, session_id: str) -> tuple[list[str], set[str]]:
        """The ids of the session's statements forwarded so far (oldest first) and of those
        voided, from the audit log."""
        rows = self.reviews.review.audit(session=session_id, action="xapi.forward",
                                         limit=MAX_FORWARDS)  # fmt: skip
        sent = [str(i) for row in reversed(rows) for i in row.detail.get("statements", ())]
        voided = {str(i) for row in rows for i in row.detail.get("voided", ())}
        return list(dict.fromkeys(sent)), voided

    # ---------------------------------------------------------------------------- plumbing

    def _credentials(self) -> SqlCredentialStore:
        with self._store_lock:
            if self._store is None:
                try:
                    self._store = SqlCredentialStore(self.db_path)
                except (CredentialStoreError, StoreError) as error:
                    raise ConflictError(f"the credential store: {error}") from None
            return self._store

    def _service(self, *, make_key: bool) -> CredentialService:
        try:
            key = self.key.get(make=make_key)
        except CredentialError as error:
            raise ConflictError(str(error)) from None
        return CredentialService(
            self.reviews.store, self._credentials(), key=key, did_web=self.settings.did_web,
            retired_keys=self.settings.retired_keys, did_documents=self.settings.did_documents,
            issuer_name=self.settings.issuer_name, issuer_url=self.settings.issuer_url,
            issuer_description=self.settings.issuer_description,
            issuer_email=self.settings.issuer_email, issuer_image=self.settings.issuer_image,
            urls=self.urls, rubrics=self._rubric, review=self._reviewed, clock=self._clock,
            trusted_issuers=self.settings.trusted_issuers,
        )  # fmt: skip

    def _rubric(self, rubric_id: str) -> Rubric | None:
        entry = self.reviews.catalog.find(rubric_id)
        return None if entry is None else entry.rubric

    def _reviewed(self, record: SessionRecord, report: dict[str, Any]) -> dict[str, Any]:
        """The stored report with the latest observation of each criterion in place of the
        machine's verdict (overrides do not count), naming the assessor who recorded the
        latest of them."""
        info = record.info
        rows = self.reviews.review.observations([info.session])
        if not rows:
            return report
        entry = self.reviews.catalog.find(info.rubric, info.rubric_version, info.rubric_sha256)
        if entry is None:
            return report  # the rubric version is unknown here: the machine's report stands
        latest = latest_by(rows, lambda row: row.criterion)
        last = newest(latest.values())
        assert last is not None  # rows is not empty
        verdicts = {criterion: row.verdict for criterion, row in latest.items()}
        try:
            return reviewed_report(report, entry.rubric, verdicts, assessor=last.actor)
        except CredentialError:
            return report

    def _audit(self, who: Principal, action: str, target: str, *, session: str | None = None,
               reason: str | None = None, detail: Mapping[str, Any] | None = None) -> None:
        entry = AuditEntry(who.name, who.role, action, target, session=session, reason=reason,
                           detail=detail)  # fmt: skip
        self.reviews.review.record(entry, _iso(self._clock()))


def _allow(who: Principal, action: Action) -> None:
    if not who.may(action):
        raise ForbiddenError(f"role {who.role!r} may not {action.value.replace('_', ' ')}")


def _not_eligible(refusal: NotEligibleError, policy: Policy) -> IneligibleError:
    errors = [
        FieldProblem(f"requirements[{k}]", result.missing)
        for k, result in enumerate(refusal.decision.requirements)
        if result.missing is not None
    ]
    named = {e.reason for e in errors}
    errors += [FieldProblem("window", r) for r in refusal.reasons if r not in named]
    detail = (f"learner {refusal.learner!r} is not eligible for {policy.policy!r}: "
              + " ".join(refusal.reasons))  # fmt: skip
    return IneligibleError(detail, errors, refusal.reasons)


def _iso(moment: datetime) -> str:
    return utc_text(moment, "microseconds")


def describe_requirement(requirement: Requirement) -> str:
    """A requirement in words: "pass forklift-load-handling (version 2 or later) 3 times in a
    row in the simulator, observed by an assessor"."""
    times = "once" if requirement.passes == 1 else f"{requirement.passes} times"
    version = f" (version {requirement.min_version} or later)" if requirement.min_version > 1 \
        else ""  # fmt: skip
    row = " in a row" if requirement.consecutive and requirement.passes > 1 else ""
    where = "in the simulator" if requirement.source == "simulator" else "in the field"
    observed = ", observed by an assessor" if requirement.observed_by_assessor else ""
    return f"Pass {requirement.rubric}{version} {times}{row} {where}{observed}"
