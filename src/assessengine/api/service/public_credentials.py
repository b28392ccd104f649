"""`PublicCredentials`: what anyone may read of a shared credential, and sharing it.

Everything here is answered without a token, from the credential's **active share**
(`storage.shares`): the public page (`page`), the signed document, the subject and each
evidence entry that the credential's own IRIs name (`subject`, `evidence`). A credential that
is not shared (hidden, never shared, or unknown) is one answer, 404 "nothing is shared
here", whatever the reason: the answer never tells whether a credential exists.

What is public is what the signed credential says already, less what identifies the learner
beyond it: no learner id, no session links, no raw telemetry, no revocation reason or author;
a subject's ``identifier`` (a salted email hash) is left out of its representation.

Sharing and hiding are the learner's (their own credentials only: another learner's is 404)
and an admin's, audited (``credential.share``, ``credential.hide``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from ...core.credentials import CREDENTIAL_CONTEXT
from ...core.sharing import linkedin_add_to_profile_url
from ...credential_service import credential_ref
from ...storage.credentials import CredentialStoreError, IssuedCredential
from ...storage.shares import Share, is_public_id
from .access import Action, Principal
from .credentials import CredentialApi, VerificationOut
from .errors import ConflictError, ForbiddenError, NotFoundError
from .models import Model

NOT_SHARED: Final = "nothing is shared here (the link is wrong, or its owner hid it)"
PRIVATE_SUBJECT_KEYS: Final = frozenset({"identifier"})
"""Keys of `credentialSubject` its public representation leaves out."""


class ShareOut(Model):
    """A credential's share link: `url` is its public page (null while hidden)."""

    credential: str
    shared: bool
    url: str | None
    public_id: str | None
    since: datetime | None


class PublicCredential(Model):
    """A shared credential as its public page shows it."""

    public_id: str
    url: str
    document: dict[str, Any]
    verification: VerificationOut
    revoked_at: datetime | None
    linkedin_url: str


class PublicCredentials:
    """Public reads and share links over `api`'s credential store."""

    def __init__(self, api: CredentialApi, *, linkedin_organization_id: str | None = None) -> None:
        self.api = api
        self.linkedin_organization_id = linkedin_organization_id

    # ---------------------------------------------------------------------------- public

    def page(self, public_id: str) -> PublicCredential:
        """The credential shared as `public_id`, verified now; NotFoundError otherwise."""
        issued = self._shared(public_id)
        url = self.api.urls.public_credential(public_id)
        revocation = self.api._credentials().revocation(issued.id)
        return PublicCredential(
            public_id=public_id, url=url, document=dict(issued.document),
            verification=self.api.verify(issued.document),
            revoked_at=None if revocation is None else revocation.revoked_at,
            linkedin_url=self._linkedin(issued, url),
        )  # fmt: skip

    def document(self, public_id: str) -> IssuedCredential:
        """The shared credential (its signed document, for download)."""
        return self._shared(public_id)

    def subject(self, ref: str) -> tuple[dict[str, Any], IssuedCredential]:
        """The `credentialSubject` of the shared credential named by `ref` (its subject IRI's
        last segment), as JSON-LD, without `PRIVATE_SUBJECT_KEYS`."""
        issued = self._by_ref(ref)
        subject = issued.document.get("credentialSubject")
        subject = subject if isinstance(subject, Mapping) else {}
        body = {k: v for k, v in subject.items() if k not in PRIVATE_SUBJECT_KEYS}
        return {"@context": _context(issued), **body}, issued

    def evidence(self, ref: str, session: str) -> tuple[dict[str, Any], IssuedCredential]:
        """The evidence entry of session `session` in the shared credential `ref`, as JSON-LD."""
        issued = self._by_ref(ref)
        wanted = self.api.urls.public_evidence(issued.id, session)
        for item in _items(issued.document.get("evidence")):
            if item.get("id") == wanted:
                return {"@context": _context(issued), **item}, issued
        raise NotFoundError(NOT_SHARED)

    def public_url(self, credential_id: str) -> str | None:
        """The public page's URL of a credential, None while it is not shared (for links and
        the certificate's QR code; no access check: callers have one)."""
        found = self.api._find(credential_id)
        if found is None:
            return None
        share = self.api._credentials().share_of(found.id)
        return None if share is None else self.api.urls.public_credential(share.public_id)

    # ---------------------------------------------------------------------------- sharing

    def share_state(self, who: Principal, credential_id: str) -> ShareOut:
        issued = self._mine(who, credential_id, Action.READ_CREDENTIALS)
        return self._out(issued.id, self.api._credentials().share_of(issued.id))

    def share(self, who: Principal, credential_id: str) -> ShareOut:
        """Share the credential (its public page): the active share, or a new one with a
        public id never used before."""
        issued = self._mine(who, credential_id, Action.SHARE_CREDENTIALS)
        before = self.api._credentials().share_of(issued.id)
        try:
            share = self.api._service(make_key=False).share(issued.id, by=who.name)
        except CredentialStoreError as error:
            raise ConflictError(str(error)) from None
        if before is None:
            self.api._audit(who, "credential.share", issued.id,
                            detail={"learner": issued.learner, "policy": issued.policy})
        return self._out(issued.id, share)

    def hide(self, who: Principal, credential_id: str) -> ShareOut:
        """Hide the credential's public page for good (its link answers 404 from now on)."""
        issued = self._mine(who, credential_id, Action.SHARE_CREDENTIALS)
        try:
            hidden = self.api._service(make_key=False).hide(issued.id, by=who.name)
        except CredentialStoreError as error:
            raise ConflictError(str(error)) from None
        if hidden is not None:
            self.api._audit(who, "credential.hide", issued.id,
                            detail={"learner": issued.learner, "policy": issued.policy})
        return self._out(issued.id, None)

    # ---------------------------------------------------------------------------- plumbing

    def _shared(self, public_id: str) -> IssuedCredential:
        found = self.api._credentials().shared(public_id) if is_public_id(public_id) else None
        if found is None:
            raise NotFoundError(NOT_SHARED)
        return found

    def _by_ref(self, ref: str) -> IssuedCredential:
        store = self.api._credentials()
        if not 0 < len(ref) <= 200:
            raise NotFoundError(NOT_SHARED)
        for candidate in (f"urn:uuid:{ref}", ref):
            found = store.issued(candidate)
            if found is not None and credential_ref(found.id) == ref:
                if store.share_of(found.id) is None:
                    break
                return found
        raise NotFoundError(NOT_SHARED)

    def _mine(self, who: Principal, credential_id: str, action: Action) -> IssuedCredential:
        if not who.may(action):
            raise ForbiddenError(f"role {who.role!r} may not {action.value.replace('_', ' ')}")
        found = self.api._find(credential_id)
        if found is None or not who.sees_learner(found.learner):
            raise NotFoundError(f"no credential {credential_id!r}")
        return found

    def _out(self, credential_id: str, share: Share | None) -> ShareOut:
        if share is None:
            return ShareOut(credential=credential_id, shared=False, url=None, public_id=None,
                            since=None)  # fmt: skip
        return ShareOut(credential=credential_id, shared=True, public_id=share.public_id,
                        url=self.api.urls.public_credential(share.public_id),
                        since=share.created_at)  # fmt: skip

    def _linkedin(self, issued: IssuedCredential, url: str) -> str:
        achievement = issued.document.get("credentialSubject", {}).get("achievement", {})
        issuer = issued.document.get("issuer")
        issuer_name = issuer.get("name") if isinstance(issuer, Mapping) else None
        return linkedin_add_to_profile_url(
            name=str(achievement.get("name") or issued.policy),
            organization_name=str(issuer_name or self.api.settings.issuer_name),
            organization_id=self.linkedin_organization_id,
            issued=issued.issued_at, expires=issued.valid_until, cert_url=url,
            cert_id=issued.id,
        )  # fmt: skip


def _context(issued: IssuedCredential) -> Any:
    """The credential's own contexts (they define every term of its parts)."""
    return issued.document.get("@context", list(CREDENTIAL_CONTEXT))


def _items(value: Any) -> list[Mapping[str, Any]]:
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, Mapping)]
