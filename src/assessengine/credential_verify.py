"""Verify a credential offline: proof, issuer trust, schema, validity period and revocation.

`verify(document, trusted=..., status_list=..., now=...)` never raises for a bad document; it
returns a `VerificationResult` with one `CheckResult` per check:

    proof, key, expansion, signature   the Data Integrity proof (adapters.signer)
    issuer                             the issuer is one of `trusted` (issuer ids, DIDs)
    schema                             the official Open Badges 3.0 JSON Schema
    validity                           validFrom <= now <= validUntil
    status                             the credential's bit in its Bitstring Status List

A check is ``ok``, ``failed`` or ``skipped`` (nothing to check, or nothing to check it with: a
credential without ``credentialStatus``, or no status list given). The credential is valid when
no check failed, so *valid* means correctly signed AND by a trusted issuer: anyone can make a
did:key and sign a copy of a credential under it, and such a copy verifies cryptographically
(``signature`` ok) while proving nothing about who issued it (``issuer`` failed). The caller
always says whom it trusts (the engine: its own key plus the configured issuer DIDs). The
status list must itself verify, come from the credential's issuer, be the list the credential
names, and be within its own validity period.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from .adapters.signer import KeyResolver, issuer_id, verify_credential
from .adapters.standards import schema_problems
from .core.credentials import CredentialError
from .core.instants import to_utc, utc_text
from .core.status_list import status_entries, status_of

CheckStatus = Literal["ok", "failed", "skipped"]
OPEN_BADGE_TYPES = ("OpenBadgeCredential", "AchievementCredential")
_DID = re.compile(r"did:[a-z0-9]+:[A-Za-z0-9._:%-]+")


def trusted_issuers(values: Iterable[str]) -> frozenset[str]:
    """The issuer ids in `values` (each may hold several, separated by commas or whitespace,
    as in ``ASSESSENGINE_TRUSTED_ISSUERS``); each must be a DID (``did:METHOD:ID``).
    CredentialError names the first that is not."""
    found: set[str] = set()
    for value in values:
        for item in value.replace(",", " ").split():
            if not _DID.fullmatch(item):
                raise CredentialError(f"a trusted issuer is a DID (did:key:z6Mk...), not {item!r}")
            found.add(item)
    return frozenset(found)


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: CheckStatus
    detail: str

    @property
    def ok(self) -> bool:
        """Not failed (a skipped check does not make a credential invalid)."""
        return self.status != "failed"


@dataclass(frozen=True, slots=True)
class VerificationResult:
    """Every check of one credential; `ok` (valid) when none failed."""

    checks: tuple[CheckResult, ...]
    issuer: str | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def signature(self) -> CheckStatus:
        """The signature check's status (``failed`` when it could not run)."""
        found = [c.status for c in self.checks if c.name == "signature"]
        return found[0] if found else "failed"

    @property
    def trusted(self) -> bool:
        """Whether the issuer is one the verifier trusts."""
        return any(c.name == "issuer" and c.status == "ok" for c in self.checks)

    @property
    def reason(self) -> str | None:
        """Why the credential is not valid (None when it is): a correct signature by an
        untrusted issuer says so; otherwise the first failed check."""
        if self.ok:
            return None
        failed = [c for c in self.checks if not c.ok]
        if self.signature == "ok" and not self.trusted and len(failed) == 1:
            return f"correctly signed, but by {self.issuer or 'no issuer'}, which is not trusted"
        return f"{failed[0].name}: {failed[0].detail}"

    def check(self, name: str) -> CheckResult:
        for item in self.checks:
            if item.name == name:
                return item
        raise KeyError(name)

    def to_data(self) -> dict[str, Any]:
        """JSON-ready: ``{"valid": bool, "signature": "ok"|"failed"|"skipped", "trusted": bool,
        "issuer": str|None, "reason": str|None, "checks": [{"name", "status", "detail"}, ...]}``.
        """
        return {
            "valid": self.ok,
            "signature": self.signature,
            "trusted": self.trusted,
            "issuer": self.issuer,
            "reason": self.reason,
            "checks": [
                {"name": c.name, "status": c.status, "detail": c.detail} for c in self.checks
            ],
        }


def verify(
    document: object,
    *,
    trusted: Collection[str],
    status_list: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    public_key: bytes | None = None,
    resolve: KeyResolver | None = None,
) -> VerificationResult:
    """Every check of `document` at time `now` (default: the current time); `trusted`: the
    issuer ids the verifier trusts (an empty collection trusts no one). The key of a
    verification method that is no did:key: `public_key` when given, else what `resolve`
    answers (the credential's and its status list's alike); nothing is fetched."""
    if not isinstance(document, Mapping):
        return VerificationResult((CheckResult("document", "failed", "not a JSON object"),))
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    proof = verify_credential(document, public_key=public_key, resolve=resolve)
    checks = [CheckResult(c.name, "ok" if c.ok else "failed", c.detail) for c in proof.checks]
    checks.append(_trust(document, trusted))
    checks.append(_schema(document))
    checks.append(_validity(document, moment))
    checks.append(_status(document, status_list, moment, resolve))
    return VerificationResult(tuple(checks), issuer_id(document))


def _trust(document: Mapping[str, Any], trusted: Collection[str]) -> CheckResult:
    issuer = issuer_id(document)
    if issuer is None:
        return CheckResult("issuer", "failed", "the credential names no issuer")
    if issuer in trusted:
        return CheckResult("issuer", "ok", f"{issuer} is a trusted issuer")
    return CheckResult("issuer", "failed", f"{issuer} is not a trusted issuer (trusted: "
                       f"{len(trusted)} issuer{'' if len(trusted) == 1 else 's'})")  # fmt: skip


def _schema(document: Mapping[str, Any]) -> CheckResult:
    types = document.get("type")
    if not isinstance(types, list) or not set(types) & set(OPEN_BADGE_TYPES):
        return CheckResult("schema", "skipped", "not an Open Badges 3.0 credential")
    problems = schema_problems(document)
    if problems:
        return CheckResult("schema", "failed", "; ".join(problems[:5]))
    return CheckResult("schema", "ok", "valid against the Open Badges 3.0 JSON Schema")


def _validity(document: Mapping[str, Any], now: datetime) -> CheckResult:
    problem, start, end = _period(document)
    if problem is not None:
        return CheckResult("validity", "failed", problem)
    span = f"valid from {_show(start)} " + (f"until {_show(end)}" if end else "with no expiry")
    if start is not None and now < start:
        return CheckResult("validity", "failed", f"not valid yet: {span}")
    if end is not None and now > end:
        return CheckResult("validity", "failed", f"expired: {span}")
    return CheckResult("validity", "ok", span)


def _status(
    document: Mapping[str, Any],
    status_list: Mapping[str, Any] | None,
    now: datetime,
    resolve: KeyResolver | None,
) -> CheckResult:
    entries = status_entries(document)
    if not entries:
        return CheckResult("status", "skipped", "the credential has no credentialStatus")
    if status_list is None:
        where = entries[0].get("statusListCredential", "?")
        return CheckResult("status", "skipped", f"not checked: no status list given ({where})")
    problem = _list_problem(document, status_list, now, resolve)
    if problem is not None:
        return CheckResult("status", "failed", problem)
    details = []
    for entry in entries:
        found = status_of(entry, status_list)
        if found.problem is not None:
            return CheckResult("status", "failed", found.problem)
        where = f"{found.purpose} list {status_list.get('id')}, index {found.index}"
        if found.set:
            word = "revoked" if found.purpose == "revocation" else "suspended"
            return CheckResult("status", "failed", f"{word} ({where})")
        details.append(f"not {'revoked' if found.purpose == 'revocation' else 'suspended'}"
                       f" ({where})")  # fmt: skip
    return CheckResult("status", "ok", "; ".join(details))


def _list_problem(
    document: Mapping[str, Any],
    status_list: Mapping[str, Any],
    now: datetime,
    resolve: KeyResolver | None,
) -> str | None:
    report = verify_credential(status_list, resolve=resolve)
    if not report.ok:
        failed = "; ".join(f"{c.name}: {c.detail}" for c in report.checks if not c.ok)
        return f"the status list does not verify ({failed})"
    if issuer_id(status_list) != issuer_id(document):
        return (
            f"the status list is issued by {issuer_id(status_list)!r}, the credential by"
            f" {issuer_id(document)!r}"
        )
    problem, start, end = _period(status_list)
    if problem is not None:
        return f"the status list: {problem}"
    if (start is not None and now < start) or (end is not None and now > end):
        return "the status list is outside its validity period"
    return None


def _period(document: Mapping[str, Any]) -> tuple[str | None, datetime | None, datetime | None]:
    """(problem, validFrom, validUntil) of a document."""
    values: list[datetime | None] = []
    for name in ("validFrom", "validUntil"):
        raw = document.get(name)
        if raw is None:
            values.append(None)
            continue
        try:
            moment = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError:
            return f"{name} is not a date-time: {raw!r}", None, None
        if moment.tzinfo is None:
            return f"{name} has no time zone: {raw!r}", None, None
        values.append(to_utc(moment))
    start, end = values
    if start is not None and end is not None and end < start:
        return "validUntil is before validFrom", None, None
    return None, start, end


def _show(moment: datetime | None) -> str:
    return "(unspecified)" if moment is None else utc_text(moment)
