"""The credential store port: issued credentials, status list slots, revocations.

Kept apart from the session `Store` (another port, another owner): `SqlCredentialStore`
lives in the engine store's database (SQLite or PostgreSQL), in tables of its own (all named
``credential_*``, created by the store's migrations); `MemoryCredentialStore` is the
fake beside it. Both follow the same rules:

- A status slot (list, index) is allocated once and never reused, whether or not the
  credential it was meant for was then issued (an index never changes meaning).
- Indices are drawn at random within a list (herd privacy: an index says nothing about when a
  credential was issued); a new list starts when one is full.
- A credential is revoked at most once; the revocation keeps its reason, who and when.
- A credential has at most one active share (the public id of its public page); hiding it
  retires the id for good, sharing again makes a new one (`storage.shares`).
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

from ..core.instants import utc_text
from ..core.status_list import MIN_ENTRIES
from ..errors import AssessEngineError
from .appdb import AppDb, AppTables, Db
from .port import StoreError
from .shares import MemoryShares, Share, ShareError, sql_active, sql_hide, sql_lookup, sql_share
from .sqlite import APPLICATION_ID
from .url import parse_url

Chooser = Callable[[int], int]
"""``choose(size)`` -> a candidate index in ``0..size-1`` (default: `secrets.randbelow`)."""

RANDOM_TRIES: Final = 64  # random draws before scanning for a free index


class CredentialStoreError(AssessEngineError):
    """The credential store refused an operation (unknown credential, already revoked, ...)."""


@dataclass(frozen=True, slots=True)
class StatusSlot:
    """Where a credential's status bit lives: list number and index within it."""

    list_id: int
    index: int
    size: int = MIN_ENTRIES


@dataclass(frozen=True, slots=True)
class IssuedCredential:
    """An issued (signed) credential and what it is filed under."""

    id: str
    learner: str
    policy: str
    issued_at: datetime
    valid_until: datetime | None
    status: StatusSlot
    document: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Revocation:
    credential_id: str
    reason: str
    revoked_by: str
    revoked_at: datetime


@dataclass(frozen=True, slots=True)
class PublishedList:
    """A signed status list as published: `document` is the exact JSON text served (so its
    bytes, and the ETag made from them, stay the same until it is signed again); `revision`
    fingerprints what it says (see `CredentialService.published_status_list`)."""

    list_id: int
    revision: str
    document: str
    valid_until: datetime


class CredentialStore(Protocol):
    """Durable storage of issued credentials. Every mutating call has committed on return."""

    def allocate_status(self, *, choose: Chooser | None = None) -> StatusSlot:
        """A fresh revocation slot: a free index of the newest list that has one, else of a new
        list. Never returns the same slot twice."""
        ...

    def save_issued(self, credential: IssuedCredential) -> None:
        """File an issued credential; CredentialStoreError for a known id or a slot that was not
        allocated or is already used."""
        ...

    def issued(self, credential_id: str) -> IssuedCredential | None: ...

    def issued_to(self, learner: str, *, policy: str | None = None) -> list[IssuedCredential]:
        """The learner's credentials, oldest first: by issued_at, then id, never in the order
        they were filed (optionally for one policy)."""
        ...

    def expiring(self, after: datetime, until: datetime) -> list[IssuedCredential]:
        """The unrevoked credentials whose validUntil is in (`after`, `until`], soonest first
        (then by id)."""
        ...

    def revoke(
        self, credential_id: str, *, reason: str, revoked_by: str, at: datetime
    ) -> Revocation:
        """Record the revocation; CredentialStoreError when the credential is unknown, already
        revoked, was issued at another site of this hub (revoke it there), or the reason is
        empty."""
        ...

    def revocation(self, credential_id: str) -> Revocation | None: ...

    def revoked_indices(self, list_id: int) -> list[int]:
        """The indices of revoked credentials in list `list_id`, sorted."""
        ...

    def status_lists(self) -> list[StatusSlot]:
        """Every list that has slots: (list_id, index = slots allocated, size)."""
        ...

    def published(self, list_id: int) -> PublishedList | None:
        """The signed list last published for `list_id`, if any."""
        ...

    def publish(self, published: PublishedList) -> None:
        """Keep `published` as its list's published document (replacing the one before)."""
        ...

    def share(self, credential_id: str, *, public_id: str, by: str, at: datetime) -> Share:
        """The credential's active share; made with `public_id` when it has none (an active
        one is returned unchanged). CredentialStoreError for an unknown credential, a public
        id already used (by any share, hidden or not) or a malformed one."""
        ...

    def hide_share(self, credential_id: str, *, by: str, at: datetime) -> Share | None:
        """Hide the credential's active share for good (None: it had none).
        CredentialStoreError for an unknown credential."""
        ...

    def share_of(self, credential_id: str) -> Share | None:
        """The credential's active share, if any."""
        ...

    def shared(self, public_id: str) -> IssuedCredential | None:
        """The credential whose active share is `public_id` (None when no share has that id,
        or it is hidden: the two are not told apart)."""
        ...

    def close(self) -> None: ...


# ------------------------------------------------------------------------------ shared rules


def _check_revocation(reason: str, revoked_by: str, at: datetime) -> None:
    if not reason.strip():
        raise CredentialStoreError("a revocation needs a reason")
    if not revoked_by.strip():
        raise CredentialStoreError("a revocation needs the name of who revokes")
    if at.tzinfo is None:
        raise CredentialStoreError("the revocation time must be timezone-aware")


def _pick(size: int, taken: Callable[[int], bool], choose: Chooser | None) -> int | None:
    """A free index of a list of `size`: random draws first, then a scan; None when full."""
    draw = choose or secrets.randbelow
    for _ in range(RANDOM_TRIES):
        index = draw(size)
        if not 0 <= index < size:
            raise CredentialStoreError(f"chooser returned {index}, outside 0..{size - 1}")
        if not taken(index):
            return index
    return next((i for i in range(size) if not taken(i)), None)


def _unknown(credential_id: str) -> CredentialStoreError:
    return CredentialStoreError(f"no issued credential with id {credential_id!r}")


@contextmanager
def _share_errors() -> Iterator[None]:
    try:
        yield
    except ShareError as exc:
        raise CredentialStoreError(str(exc)) from exc


def _require_issued_here(db: Db, credential_id: str) -> None:
    """The credential must be filed, and issued by this database (a site's credential is
    shared and hidden at that site: the share reaches its hub by replication)."""
    row = db.execute("SELECT status_list FROM credential_issued WHERE id = ?",
                     (credential_id,)).fetchone()  # fmt: skip
    if row is None:
        raise _unknown(credential_id)
    if db.made_elsewhere(int(row[0])):
        raise CredentialStoreError(
            f"credential {credential_id!r} was issued at another site of this hub; share or "
            "hide it there: the change reaches here by replication")


# ------------------------------------------------------------------------------ memory


class MemoryCredentialStore:
    """A `CredentialStore` in memory, for tests. Thread-safe through one lock."""

    def __init__(self, *, list_size: int = MIN_ENTRIES) -> None:
        self._lock = threading.Lock()
        self._size = list_size
        self._slots: dict[int, set[int]] = {}
        self._used: set[tuple[int, int]] = set()
        self._issued: dict[str, IssuedCredential] = {}
        self._revocations: dict[str, Revocation] = {}
        self._published: dict[int, PublishedList] = {}
        self._shares = MemoryShares()

    def allocate_status(self, *, choose: Chooser | None = None) -> StatusSlot:
        with self._lock:
            list_id = max(self._slots, default=1)
            while True:
                taken = self._slots.setdefault(list_id, set())
                index = _pick(self._size, taken.__contains__, choose)
                if index is not None:
                    taken.add(index)
                    return StatusSlot(list_id, index, self._size)
                list_id += 1

    def save_issued(self, credential: IssuedCredential) -> None:
        slot = credential.status
        with self._lock:
            if credential.id in self._issued:
                raise CredentialStoreError(f"credential {credential.id!r} is already filed")
            if slot.index not in self._slots.get(slot.list_id, set()):
                raise CredentialStoreError(f"status slot {slot} was not allocated")
            if (slot.list_id, slot.index) in self._used:
                raise CredentialStoreError(f"status slot {slot} is already used")
            self._used.add((slot.list_id, slot.index))
            self._issued[credential.id] = credential

    def issued(self, credential_id: str) -> IssuedCredential | None:
        with self._lock:
            return self._issued.get(credential_id)

    def issued_to(self, learner: str, *, policy: str | None = None) -> list[IssuedCredential]:
        with self._lock:
            found = [c for c in self._issued.values() if c.learner == learner]
        mine = [c for c in found if policy is None or c.policy == policy]
        return sorted(mine, key=lambda c: (c.issued_at, c.id))  # as the SQL store: time order

    def expiring(self, after: datetime, until: datetime) -> list[IssuedCredential]:
        with self._lock:
            found = [c for c in self._issued.values() if c.id not in self._revocations
                     and c.valid_until is not None and after < c.valid_until <= until]
        return sorted(found, key=lambda c: (c.valid_until, c.id))

    def revoke(
        self, credential_id: str, *, reason: str, revoked_by: str, at: datetime
    ) -> Revocation:
        _check_revocation(reason, revoked_by, at)
        with self._lock:
            if credential_id not in self._issued:
                raise _unknown(credential_id)
            if credential_id in self._revocations:
                raise CredentialStoreError(f"credential {credential_id!r} is already revoked")
            revocation = Revocation(credential_id, reason, revoked_by, at)
            self._revocations[credential_id] = revocation
            return revocation

    def revocation(self, credential_id: str) -> Revocation | None:
        with self._lock:
            return self._revocations.get(credential_id)

    def revoked_indices(self, list_id: int) -> list[int]:
        with self._lock:
            slots = [self._issued[c].status for c in self._revocations]
        return sorted(s.index for s in slots if s.list_id == list_id)

    def status_lists(self) -> list[StatusSlot]:
        with self._lock:
            return [StatusSlot(k, len(v), self._size) for k, v in sorted(self._slots.items())]

    def published(self, list_id: int) -> PublishedList | None:
        with self._lock:
            return self._published.get(list_id)

    def publish(self, published: PublishedList) -> None:
        with self._lock:
            self._published[published.list_id] = published

    def share(self, credential_id: str, *, public_id: str, by: str, at: datetime) -> Share:
        with self._lock, _share_errors():
            if credential_id not in self._issued:
                raise _unknown(credential_id)
            return self._shares.share(credential_id, public_id=public_id, by=by, at=at)

    def hide_share(self, credential_id: str, *, by: str, at: datetime) -> Share | None:
        with self._lock, _share_errors():
            if credential_id not in self._issued:
                raise _unknown(credential_id)
            return self._shares.hide(credential_id, by=by, at=at)

    def share_of(self, credential_id: str) -> Share | None:
        with self._lock:
            return self._shares.active(credential_id)

    def shared(self, public_id: str) -> IssuedCredential | None:
        with self._lock:
            found = self._shares.lookup(public_id)
            return None if found is None else self._issued.get(found.credential_id)

    def close(self) -> None:
        """Nothing to release."""


# ------------------------------------------------------------------------------ SQL

_ISSUED_COLUMNS: Final = (
    "id, learner, policy, issued_at, valid_until, status_list, status_index, document"
)


class SqlCredentialStore(AppTables):
    """A `CredentialStore` in an assessengine store's database, SQLite or PostgreSQL (tables
    ``credential_*`` of `storage.schema`, made by the migrations when the engine's store
    opens).

    `source` is a store URL or path, or an `AppDb` already open on it (closed with this
    store). Raises CredentialStoreError when a SQLite file is missing or is not an
    assessengine store, or the database cannot be opened. Safe to use beside the engine's
    store on the same database, in this process or another.
    """

    error = CredentialStoreError
    closed = "the credential store is closed"

    def __init__(self, source: str | Path | AppDb, *, list_size: int = MIN_ENTRIES) -> None:
        self._size = list_size
        if isinstance(source, AppDb):
            db = source
        else:
            _check_sqlite_file(source)
            try:
                db = AppDb(source)
            except StoreError as exc:
                raise CredentialStoreError(str(exc)) from exc
        super().__init__(db)
        if db.dialect == "sqlite":
            with self._read() as conn:
                _check_store(self.where, conn)

    def allocate_status(self, *, choose: Chooser | None = None) -> StatusSlot:
        with self._write() as db:
            first, last = db.id_range()
            list_id = db.execute("SELECT MAX(id) FROM credential_status_lists "
                                 "WHERE id BETWEEN ? AND ?", (first, last)).fetchone()[0]
            if list_id is None:
                list_id = self._new_list(db, first)
            while True:
                size = db.execute(
                    "SELECT size FROM credential_status_lists WHERE id = ?", (list_id,)
                ).fetchone()[0]
                index = _pick(size, _taken_in(db, list_id), choose)
                if index is not None:
                    db.execute(
                        "INSERT INTO credential_status_slots (list_id, idx, allocated_at) "
                        "VALUES (?, ?, ?)",
                        (list_id, index, _stamp(datetime.now(UTC))),
                    )
                    return StatusSlot(list_id, index, size)
                list_id = self._new_list(db, list_id + 1)

    def _new_list(self, db: Db, list_id: int) -> int:
        db.execute(
            "INSERT INTO credential_status_lists (id, purpose, size, created_at) "
            "VALUES (?, 'revocation', ?, ?)",
            (list_id, self._size, _stamp(datetime.now(UTC))),
        )
        return list_id

    def save_issued(self, credential: IssuedCredential) -> None:
        slot = credential.status
        with self._write() as db:
            if db.execute(
                "SELECT 1 FROM credential_issued WHERE id = ?", (credential.id,)
            ).fetchone():
                raise CredentialStoreError(f"credential {credential.id!r} is already filed")
            allocated = db.execute(
                "SELECT 1 FROM credential_status_slots WHERE list_id = ? AND idx = ?",
                (slot.list_id, slot.index),
            ).fetchone()
            if allocated is None:
                raise CredentialStoreError(f"status slot {slot} was not allocated")
            used = db.execute(
                "SELECT id FROM credential_issued WHERE status_list = ? AND status_index = ?",
                (slot.list_id, slot.index),
            ).fetchone()
            if used is not None:
                raise CredentialStoreError(f"status slot {slot} is already used")
            db.execute(
                f"INSERT INTO credential_issued ({_ISSUED_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    credential.id,
                    credential.learner,
                    credential.policy,
                    _stamp(credential.issued_at),
                    None if credential.valid_until is None else _stamp(credential.valid_until),
                    slot.list_id,
                    slot.index,
                    json.dumps(credential.document, ensure_ascii=False, separators=(",", ":")),
                ),
            )

    def issued(self, credential_id: str) -> IssuedCredential | None:
        with self._read() as db:
            row = db.execute(
                f"SELECT {_ISSUED_COLUMNS} FROM credential_issued WHERE id = ?", (credential_id,)
            ).fetchone()
            return None if row is None else self._credential(db, row)

    def issued_to(self, learner: str, *, policy: str | None = None) -> list[IssuedCredential]:
        with self._read() as db:
            mine = "" if policy is None else " AND policy = ?"
            rows = db.execute(
                f"SELECT {_ISSUED_COLUMNS} FROM credential_issued WHERE learner = ?{mine} "
                "ORDER BY issued_at, id",
                (learner,) if policy is None else (learner, policy),
            ).fetchall()
            return [self._credential(db, row) for row in rows]

    def expiring(self, after: datetime, until: datetime) -> list[IssuedCredential]:
        with self._read() as db:
            rows = db.execute(
                f"SELECT {_ISSUED_COLUMNS} FROM credential_issued WHERE valid_until > ? AND "
                "valid_until <= ? AND id NOT IN (SELECT credential_id FROM "
                "credential_revocations) ORDER BY valid_until, id",
                (_stamp(after), _stamp(until)),
            ).fetchall()
            return [self._credential(db, row) for row in rows]

    def revoke(
        self, credential_id: str, *, reason: str, revoked_by: str, at: datetime
    ) -> Revocation:
        _check_revocation(reason, revoked_by, at)
        with self._write() as db:
            row = db.execute(
                "SELECT status_list FROM credential_issued WHERE id = ?", (credential_id,)
            ).fetchone()
            if row is None:
                raise _unknown(credential_id)
            if db.made_elsewhere(int(row[0])):  # a site's credential, here at the hub
                raise CredentialStoreError(
                    f"credential {credential_id!r} was issued at another site of this hub (its "
                    f"status list {row[0]} is that site's); revoke it there: the revocation "
                    "reaches here by replication")
            if db.execute(
                "SELECT 1 FROM credential_revocations WHERE credential_id = ?", (credential_id,)
            ).fetchone():
                raise CredentialStoreError(f"credential {credential_id!r} is already revoked")
            db.execute(
                "INSERT INTO credential_revocations (credential_id, reason, revoked_by, "
                "revoked_at) VALUES (?, ?, ?, ?)",
                (credential_id, reason, revoked_by, _stamp(at)),
            )
        return Revocation(credential_id, reason, revoked_by, _parse(_stamp(at)))

    def revocation(self, credential_id: str) -> Revocation | None:
        with self._read() as db:
            row = db.execute(
                "SELECT credential_id, reason, revoked_by, revoked_at FROM credential_revocations "
                "WHERE credential_id = ?",
                (credential_id,),
            ).fetchone()
        return None if row is None else Revocation(row[0], row[1], row[2], _parse(row[3]))

    def revoked_indices(self, list_id: int) -> list[int]:
        with self._read() as db:
            rows = db.execute(
                "SELECT i.status_index FROM credential_revocations r JOIN credential_issued i "
                "ON i.id = r.credential_id WHERE i.status_list = ? ORDER BY i.status_index",
                (list_id,),
            ).fetchall()
        return [index for (index,) in rows]

    def status_lists(self) -> list[StatusSlot]:
        with self._read() as db:
            rows = db.execute(
                "SELECT l.id, COUNT(s.idx), l.size FROM credential_status_lists l "
                "LEFT JOIN credential_status_slots s ON s.list_id = l.id "
                "GROUP BY l.id ORDER BY l.id"
            ).fetchall()
        return [StatusSlot(*row) for row in rows]

    def published(self, list_id: int) -> PublishedList | None:
        with self._read() as db:
            row = db.execute(
                "SELECT revision, document, valid_until FROM credential_status_published "
                "WHERE list_id = ?", (list_id,),
            ).fetchone()  # fmt: skip
        return None if row is None else PublishedList(list_id, row[0], row[1], _parse(row[2]))

    def publish(self, published: PublishedList) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO credential_status_published (list_id, revision, document, "
                "valid_until) VALUES (?, ?, ?, ?) ON CONFLICT (list_id) DO UPDATE SET "
                "revision = excluded.revision, document = excluded.document, "
                "valid_until = excluded.valid_until",
                (published.list_id, published.revision, published.document,
                 _stamp(published.valid_until)),
            )  # fmt: skip

    def share(self, credential_id: str, *, public_id: str, by: str, at: datetime) -> Share:
        with self._write() as db, _share_errors():
            _require_issued_here(db, credential_id)
            return sql_share(db, credential_id, public_id=public_id, by=by, at=at)

    def hide_share(self, credential_id: str, *, by: str, at: datetime) -> Share | None:
        with self._write() as db, _share_errors():
            _require_issued_here(db, credential_id)
            return sql_hide(db, credential_id, by=by, at=at)

    def share_of(self, credential_id: str) -> Share | None:
        with self._read() as db:
            return sql_active(db, credential_id)

    def shared(self, public_id: str) -> IssuedCredential | None:
        with self._read() as db:
            found = sql_lookup(db, public_id)
            if found is None:
                return None
            row = db.execute(f"SELECT {_ISSUED_COLUMNS} FROM credential_issued WHERE id = ?",
                             (found.credential_id,)).fetchone()  # fmt: skip
            return None if row is None else self._credential(db, row)

    # ------------------------------------------------------------------------------ helpers

    def _credential(self, db: Db, row: tuple[Any, ...]) -> IssuedCredential:
        ident, learner, policy, issued_at, valid_until, list_id, index, document = row
        return IssuedCredential(
            id=ident,
            learner=learner,
            policy=policy,
            issued_at=_parse(issued_at),
            valid_until=None if valid_until is None else _parse(valid_until),
            status=StatusSlot(list_id, index, self._list_size(db, list_id)),
            document=json.loads(document),
        )

    def _list_size(self, db: Db, list_id: int) -> int:
        found = db.execute(
            "SELECT size FROM credential_status_lists WHERE id = ?", (list_id,)
        ).fetchone()
        return int(found[0]) if found else self._size



SqliteCredentialStore = SqlCredentialStore
"""The name of releases when only SQLite held credentials."""


def _check_sqlite_file(source: str | Path) -> None:
    """A SQLite store's file must exist (credentials live in an engine store file)."""
    parsed = parse_url(source)
    if parsed.backend == "sqlite" and not Path(parsed.target).is_file():
        raise CredentialStoreError(
            f"no store at {parsed.target}: credentials live in an engine store file"
        )


def _check_store(where: str, db: Db) -> None:
    if db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
        raise CredentialStoreError(
            f"{where} is not an assessengine store (open it with the engine first)"
        )


def _taken_in(db: Db, list_id: int) -> Callable[[int], bool]:
    def taken(index: int) -> bool:
        row = db.execute(
            "SELECT 1 FROM credential_status_slots WHERE list_id = ? AND idx = ?",
            (list_id, index),
        )
        return row.fetchone() is not None

    return taken


def _stamp(moment: datetime) -> str:
    return utc_text(moment, "microseconds")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
