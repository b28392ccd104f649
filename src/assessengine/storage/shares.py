"""Share links of issued credentials: the public id that names a credential's public page.

A credential has at most one **active** share at a time: a public id (random, unguessable,
URL-safe) that the public page, its downloads and the certificate's QR code name. Hiding it
ends that share for good: its id answers nothing from then on (as an id that never existed),
and sharing again makes a new id, so a link handed out before stays dead. Every share is
kept (who made it and when, who hid it and when).

The rules live here once, for both `CredentialStore`s: `MemoryShares` (the in-memory fake's
part) and the ``sql_*`` functions, which `SqlCredentialStore` runs inside its own
transactions on table ``credential_shares`` (`storage.schema`, migration 0010).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Final

from ..core.instants import utc_text
from .appdb import Db

PUBLIC_ID_BYTES: Final = 16
"""Random bytes of a public id (128 bits: 22 URL-safe characters)."""
PUBLIC_ID: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")
"""What a public id looks like; anything else is answered as unknown without a lookup."""


def new_public_id() -> str:
    """A fresh public id: `PUBLIC_ID_BYTES` random bytes, URL-safe base64 without padding."""
    return secrets.token_urlsafe(PUBLIC_ID_BYTES)


def is_public_id(text: str) -> bool:
    """Whether `text` has the shape of a public id (no store lookup)."""
    return PUBLIC_ID.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class Share:
    """One share of a credential: active while `hidden_at` is None."""

    public_id: str
    credential_id: str
    created_at: datetime
    created_by: str
    hidden_at: datetime | None = None
    hidden_by: str | None = None

    @property
    def active(self) -> bool:
        return self.hidden_at is None


class ShareError(ValueError):
    """A share refused: a malformed or already used public id, an empty name, a naive time."""


def check_share(public_id: str, by: str, at: datetime) -> None:
    if not is_public_id(public_id):
        raise ShareError(f"not a public id: {public_id!r} (16-64 URL-safe characters)")
    _check_actor(by, at)


def _check_actor(by: str, at: datetime) -> None:
    if not by.strip():
        raise ShareError("a share or hide needs the name of who does it")
    if at.tzinfo is None:
        raise ShareError("the time must be timezone-aware")


# ------------------------------------------------------------------------------ memory


class MemoryShares:
    """The shares of `MemoryCredentialStore` (call under the store's lock)."""

    def __init__(self) -> None:
        self._by_id: dict[str, Share] = {}

    def share(self, credential_id: str, *, public_id: str, by: str, at: datetime) -> Share:
        check_share(public_id, by, at)
        active = self.active(credential_id)
        if active is not None:
            return active
        if public_id in self._by_id:
            raise ShareError(f"public id {public_id!r} is already used")
        made = Share(public_id, credential_id, at, by)
        self._by_id[public_id] = made
        return made

    def hide(self, credential_id: str, *, by: str, at: datetime) -> Share | None:
        _check_actor(by, at)
        active = self.active(credential_id)
        if active is None:
            return None
        hidden = replace(active, hidden_at=at, hidden_by=by)
        self._by_id[active.public_id] = hidden
        return hidden

    def active(self, credential_id: str) -> Share | None:
        return next((s for s in self._by_id.values()
                     if s.credential_id == credential_id and s.active), None)  # fmt: skip

    def lookup(self, public_id: str) -> Share | None:
        found = self._by_id.get(public_id)
        return found if found is not None and found.active else None


# ------------------------------------------------------------------------------ SQL

_COLUMNS: Final = "id, credential_id, created_at, created_by, hidden_at, hidden_by"


def sql_share(db: Db, credential_id: str, *, public_id: str, by: str, at: datetime) -> Share:
    """In a write transaction: the active share of `credential_id`, made when it has none."""
    check_share(public_id, by, at)
    active = sql_active(db, credential_id, lock=True)
    if active is not None:
        return active
    if db.execute("SELECT 1 FROM credential_shares WHERE id = ?", (public_id,)).fetchone():
        raise ShareError(f"public id {public_id!r} is already used")
    db.execute(
        f"INSERT INTO credential_shares ({_COLUMNS}) VALUES (?, ?, ?, ?, NULL, NULL)",
        (public_id, credential_id, _stamp(at), by),
    )
    return Share(public_id, credential_id, _parse(_stamp(at)), by)


def sql_hide(db: Db, credential_id: str, *, by: str, at: datetime) -> Share | None:
    """In a write transaction: hide the active share of `credential_id` (None: there was none)."""
    _check_actor(by, at)
    active = sql_active(db, credential_id, lock=True)
    if active is None:
        return None
    db.execute("UPDATE credential_shares SET hidden_at = ?, hidden_by = ? WHERE id = ?",
               (_stamp(at), by, active.public_id))  # fmt: skip
    return replace(active, hidden_at=_parse(_stamp(at)), hidden_by=by)


def sql_active(db: Db, credential_id: str, *, lock: bool = False) -> Share | None:
    """The active share of `credential_id`. `lock`: inside a write, the credential's row is
    locked first (PostgreSQL), so two shares of one credential take turns."""
    if lock:
        db.execute("SELECT id FROM credential_issued WHERE id = ?"
                   + db.for_update(), (credential_id,))  # fmt: skip
    row = db.execute(
        f"SELECT {_COLUMNS} FROM credential_shares WHERE credential_id = ? "
        "AND hidden_at IS NULL ORDER BY created_at DESC, id LIMIT 1", (credential_id,),
    ).fetchone()  # fmt: skip
    return None if row is None else _share(row)


def sql_lookup(db: Db, public_id: str) -> Share | None:
    """The active share named `public_id` (None when unknown or hidden)."""
    row = db.execute(
        f"SELECT {_COLUMNS} FROM credential_shares WHERE id = ? AND hidden_at IS NULL",
        (public_id,),
    ).fetchone()
    return None if row is None else _share(row)


def _share(row: tuple[str, str, str, str, str | None, str | None]) -> Share:
    ident, credential_id, created_at, created_by, hidden_at, hidden_by = row
    return Share(ident, credential_id, _parse(created_at), created_by,
                 None if hidden_at is None else _parse(hidden_at), hidden_by)  # fmt: skip


def _stamp(moment: datetime) -> str:
    return utc_text(moment, "microseconds")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
