"""The OAuth store port: registered clients (RFC 7591) and the grants made to them.

What the Open Badges API's authorization server keeps (`api.oauth`): one row per client that
registered itself, and one per authorization code, access token and refresh token it handed
out. Secrets are never stored, only their sha256 (hex): a client secret, a code or a token
carries at least 256 random bits, so a fast hash leaves nothing to guess.

`SqlOAuthStore` keeps them in the engine store's database, SQLite or PostgreSQL (tables
``oauth_clients`` and ``oauth_grants``, made by the migrations; each database issues its own:
they are not replicated between sites); `MemoryOAuthStore` is the fake beside it. Both follow
the same rules:

- `use` marks a grant used (a code redeemed, a refresh token rotated, a token revoked) once:
  of two concurrent calls exactly one gets True, so a code is redeemed at most once.
- `revoke_descendants(origin)` marks used every grant made from the code `origin`: what a
  second redemption of a code calls (RFC 6749 section 4.1.2).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from ..core.instants import utc_text
from ..errors import AssessEngineError
from .appdb import AppDb, AppTables
from .port import StoreError

GrantKind = Literal["code", "access", "refresh"]
GRANT_KINDS: Final = ("code", "access", "refresh")


class OAuthStoreError(AssessEngineError):
    """The OAuth store refused an operation (a client id or grant taken, the store closed)."""


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """A registered client: `metadata` is its RFC 7591 client metadata as registered
    (redirect_uris, scope, client_name, ...), `secret_hash` the sha256 of its secret."""

    client_id: str
    secret_hash: str
    metadata: Mapping[str, Any]
    issued_at: datetime


@dataclass(frozen=True, slots=True)
class OAuthGrant:
    """A code or token handed to `client_id` for `learner`'s records within `scope` (space
    separated). `digest` is the sha256 of its value. A code keeps the redirect URI and the
    PKCE challenge it was asked with; a token names the code it descends from (`origin`)."""

    digest: str
    kind: GrantKind
    client_id: str
    learner: str
    scope: str
    issued_at: datetime
    expires_at: datetime
    redirect_uri: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    origin: str | None = None
    used_at: datetime | None = None


class OAuthStore(Protocol):
    """Durable storage of clients and grants. Every mutating call has committed on return."""

    def save_client(self, client: OAuthClient) -> None:
        """File a new client; OAuthStoreError when its id is taken."""
        ...

    def client(self, client_id: str) -> OAuthClient | None: ...

    def save_grant(self, grant: OAuthGrant) -> None:
        """File a new grant; OAuthStoreError when its digest is taken or its client unknown."""
        ...

    def grant(self, digest: str) -> OAuthGrant | None: ...

    def use(self, digest: str, at: datetime) -> bool:
        """Mark the grant used at `at`; True when this call did, False when it was used
        already (or is unknown)."""
        ...

    def revoke_descendants(self, origin: str, at: datetime) -> int:
        """Mark used every unused grant whose `origin` is `origin`; how many."""
        ...

    def close(self) -> None: ...


# ------------------------------------------------------------------------------ memory


class MemoryOAuthStore:
    """An `OAuthStore` in memory, for tests. Thread-safe through one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, OAuthClient] = {}
        self._grants: dict[str, OAuthGrant] = {}

    def save_client(self, client: OAuthClient) -> None:
        with self._lock:
            if client.client_id in self._clients:
                raise OAuthStoreError(f"client id {client.client_id!r} is taken")
            self._clients[client.client_id] = client

    def client(self, client_id: str) -> OAuthClient | None:
        with self._lock:
            return self._clients.get(client_id)

    def save_grant(self, grant: OAuthGrant) -> None:
        with self._lock:
            if grant.digest in self._grants:
                raise OAuthStoreError("grant digest is taken")
            if grant.client_id not in self._clients:
                raise OAuthStoreError(f"no client {grant.client_id!r}")
            self._grants[grant.digest] = grant

    def grant(self, digest: str) -> OAuthGrant | None:
        with self._lock:
            return self._grants.get(digest)

    def use(self, digest: str, at: datetime) -> bool:
        with self._lock:
            found = self._grants.get(digest)
            if found is None or found.used_at is not None:
                return False
            self._grants[digest] = replace(found, used_at=at)
            return True

    def revoke_descendants(self, origin: str, at: datetime) -> int:
        with self._lock:
            hits = [g for g in self._grants.values() if g.origin == origin and g.used_at is None]
            for grant in hits:
                self._grants[grant.digest] = replace(grant, used_at=at)
            return len(hits)

    def close(self) -> None:
        """Nothing to release."""


# ------------------------------------------------------------------------------ SQL

_GRANT_COLUMNS: Final = (
    "digest, kind, client_id, learner, scope, issued_at, expires_at, redirect_uri, "
    "code_challenge, code_challenge_method, origin, used_at"
)


class SqlOAuthStore(AppTables):
    """An `OAuthStore` in an assessengine store's database (tables ``oauth_clients`` and
    ``oauth_grants`` of `storage.schema`). `source` is a store URL or path, or an open
    `AppDb` (closed with this store). OAuthStoreError when the database cannot be opened."""

    error = OAuthStoreError
    closed = "the OAuth store is closed"

    def __init__(self, source: str | Path | AppDb) -> None:
        try:
            super().__init__(source if isinstance(source, AppDb) else AppDb(source))
        except StoreError as exc:
            raise OAuthStoreError(str(exc)) from exc

    def save_client(self, client: OAuthClient) -> None:
        with self._write() as db:
            if db.execute("SELECT 1 FROM oauth_clients WHERE client_id = ?",
                          (client.client_id,)).fetchone():  # fmt: skip
                raise OAuthStoreError(f"client id {client.client_id!r} is taken")
            db.execute(
                "INSERT INTO oauth_clients (client_id, secret_hash, metadata, issued_at) "
                "VALUES (?, ?, ?, ?)",
                (client.client_id, client.secret_hash, _json(client.metadata),
                 _stamp(client.issued_at)),
            )  # fmt: skip

    def client(self, client_id: str) -> OAuthClient | None:
        with self._read() as db:
            row = db.execute(
                "SELECT client_id, secret_hash, metadata, issued_at FROM oauth_clients "
                "WHERE client_id = ?", (client_id,),
            ).fetchone()  # fmt: skip
        if row is None:
            return None
        return OAuthClient(row[0], row[1], json.loads(row[2]), _parse(row[3]))

    def save_grant(self, grant: OAuthGrant) -> None:
        with self._write() as db:
            if db.execute("SELECT 1 FROM oauth_grants WHERE digest = ?",
                          (grant.digest,)).fetchone():  # fmt: skip
                raise OAuthStoreError("grant digest is taken")
            if not db.execute("SELECT 1 FROM oauth_clients WHERE client_id = ?",
                              (grant.client_id,)).fetchone():  # fmt: skip
                raise OAuthStoreError(f"no client {grant.client_id!r}")
            db.execute(
                f"INSERT INTO oauth_grants ({_GRANT_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (grant.digest, grant.kind, grant.client_id, grant.learner, grant.scope,
                 _stamp(grant.issued_at), _stamp(grant.expires_at), grant.redirect_uri,
                 grant.code_challenge, grant.code_challenge_method, grant.origin,
                 None if grant.used_at is None else _stamp(grant.used_at)),
            )  # fmt: skip

    def grant(self, digest: str) -> OAuthGrant | None:
        with self._read() as db:
            row = db.execute(f"SELECT {_GRANT_COLUMNS} FROM oauth_grants WHERE digest = ?",
                             (digest,)).fetchone()  # fmt: skip
        if row is None:
            return None
        (digest, kind, client_id, learner, scope, issued_at, expires_at, redirect_uri,
         challenge, method, origin, used_at) = row  # fmt: skip
        return OAuthGrant(
            digest=digest, kind=kind, client_id=client_id, learner=learner, scope=scope,
            issued_at=_parse(issued_at), expires_at=_parse(expires_at),
            redirect_uri=redirect_uri, code_challenge=challenge, code_challenge_method=method,
            origin=origin, used_at=None if used_at is None else _parse(used_at),
        )  # fmt: skip

    def use(self, digest: str, at: datetime) -> bool:
        with self._write() as db:
            row = db.execute(
                "UPDATE oauth_grants SET used_at = ? WHERE digest = ? AND used_at IS NULL "
                "RETURNING digest", (_stamp(at), digest),
            ).fetchone()  # fmt: skip
        return row is not None

    def revoke_descendants(self, origin: str, at: datetime) -> int:
        with self._write() as db:
            rows = db.execute(
                "UPDATE oauth_grants SET used_at = ? WHERE origin = ? AND used_at IS NULL "
                "RETURNING digest", (_stamp(at), origin),
            ).fetchall()  # fmt: skip
        return len(rows)



def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _stamp(moment: datetime) -> str:
    return utc_text(moment, "microseconds")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
